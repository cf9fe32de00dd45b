"""The UNets the benchmarks time, read from ``configs/base.py`` (never copied here).

``architecture("tiny")``: the ``:tiny`` variant (0.28M parameters); ``"cifar"``: Ho et
al.'s CIFAR-10 UNet (35.7M), the base config's model. Returns the six architecture
fields both the JAX UNet and ``benchmarks/torch_unet.py`` take.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import base  # noqa: E402

ARCH_KEYS = ("channels", "channel_mult", "num_res_blocks", "attention_resolutions",
             "dropout", "num_groups")
NAMES = ("tiny", "cifar")


def architecture(name: str) -> dict:
  """``{channels, channel_mult, num_res_blocks, attention_resolutions, dropout,
  num_groups}`` of the model ``name`` (tuples as tuples).

  Raises:
    ValueError: a name not in :data:`NAMES`.
  """
  if name not in NAMES:
    raise ValueError(f"model {name!r} is not one of {NAMES}.")
  config = base.get_config()
  if name == "tiny":
    base.tiny(config)
  return {k: tuple(v) if isinstance(v, (list, tuple)) else v
          for k, v in config.model.to_dict().items() if k in ARCH_KEYS}

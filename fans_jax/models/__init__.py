"""Denoising networks, chosen by name from ``config.model.name``.

Every model maps ``(x [B, H, W, C], t [B] int) -> [B, H, W, C]`` and knows nothing
about the noise schedule. Register a new one with :func:`register_model`::

    @models.register_model("my_net", MyNetConfig)
    def build(cfg: MyNetConfig, image_shape, rngs) -> nnx.Module: ...
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

from fans_jax.models import unet
from fans_jax.utils import config as config_utils

_MODELS: dict[str, tuple[type, Callable[..., nnx.Module]]] = {}


def register_model(name: str, config_cls: type):
  """Registers ``build(cfg: config_cls, image_shape, rngs) -> nnx.Module`` as ``name``."""
  def wrap(fn):
    _MODELS[name] = (config_cls, fn)
    return fn
  return wrap


def model_names() -> list[str]:
  return sorted(_MODELS)


def model_config(model_cfg: Any):
  """The typed, frozen config of ``model_cfg`` (a ConfigDict with a ``name`` key).

  Raises:
    ValueError: unknown model name or unknown keys.
  """
  name = model_cfg["name"] if "name" in model_cfg else None
  if name not in _MODELS:
    raise ValueError(f"config.model.name={name!r} is not one of {model_names()}.")
  return config_utils.from_config(_MODELS[name][0], model_cfg, "model", ignore=("name",))


def get_model(model_cfg: Any, image_shape, rngs: nnx.Rngs) -> nnx.Module:
  """Builds the model named by ``model_cfg.name`` for images ``image_shape = (H, W, C)``.

  Use ``nnx.eval_shape(lambda: get_model(...))`` to get shapes without allocating.
  """
  cfg = model_config(model_cfg)
  return _MODELS[model_cfg["name"]][1](cfg, tuple(int(s) for s in image_shape), rngs)


@register_model("unet", unet.UNetConfig)
def _build_unet(cfg: unet.UNetConfig, image_shape, rngs: nnx.Rngs) -> nnx.Module:
  return unet.UNet(cfg, image_shape, rngs=rngs)


def init(model_cfg: Any, image_shape, key: jax.Array, out_sharding=None):
  """Builds the model and initialises its parameters inside one jitted call.

  Eager NNX initialisation dispatches every op separately (seconds for a UNet on
  CPU); jitting it is fast and places the parameters directly with ``out_sharding``
  (e.g. replicated over a mesh).
  Args:
    model_cfg: ``config.model``; image_shape: ``(H, W, C)``; key: PRNG key.
  Returns:
    ``(graphdef, params)``: the static structure and the ``nnx.Param`` state.
  """
  graphdef, _ = abstract_params(model_cfg, image_shape)
  return graphdef, jax.jit(lambda k: split_model(model_cfg, image_shape, k)[1],
                           out_shardings=out_sharding)(key)


def split_model(model_cfg: Any, image_shape, key: jax.Array):
  """``(graphdef, params)`` of a freshly built model (traceable: the one place a model
  is built, called inside :func:`init`, the train state's jitted initialiser and
  :func:`abstract_params`)."""
  return nnx.split(get_model(model_cfg, image_shape, nnx.Rngs(params=key)), nnx.Param)


def abstract_params(model_cfg: Any, image_shape, sharding=None):
  """``(graphdef, params)`` with ``jax.ShapeDtypeStruct`` leaves (carrying
  ``sharding``): a restore target; allocates nothing."""
  graphdef, params = nnx.eval_shape(lambda: split_model(model_cfg, image_shape,
                                                        jax.random.key(0)))
  return graphdef, jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), params)


def count_params(model_or_state) -> int:
  """Number of scalar parameters (``nnx.Param``) of a model or a state pytree."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  state = (nnx.state(model_or_state, nnx.Param) if isinstance(model_or_state, nnx.Module)
           else model_or_state)
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(state)))


__all__ = ["abstract_params", "count_params", "get_model", "init", "model_config", "model_names",
           "register_model", "split_model", "unet"]

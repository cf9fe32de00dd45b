r"""DDPM on EGM, the synthetic edges-gratings-checkerboards mixture (non-Gaussian),
generated on the fly from a seed, no download.

    python launch/train.py --config=configs/egm_ddpm.py --workdir=workdirs/egm_ddpm
    python launch/train.py --config=configs/egm_ddpm.py:tiny --workdir=workdirs/egm_ddpm_tiny
"""

from configs import base


def experiment():
  """The unlocked config (shared with egm_fans.py)."""
  config = base.get_config()
  config.data.name = "egm"
  config.data.image_size = 64
  config.data.num_examples = 50_000
  config.train.num_train_steps = 200_000
  return config


def tiny(config):
  base.tiny(config)
  config.data.image_size = 32
  config.data.num_examples = 10_000


def get_config(arg: str | None = None):
  return base.finalize(experiment(), arg, {"tiny": tiny})

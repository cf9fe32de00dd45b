r"""DDPM on PLTB, the synthetic power-law texture bank (P ∝ f^-alpha, alpha = 1 as
published): Gaussian random fields generated on the fly from a seed, no download.

64x64x3 images, 50,000 examples, the CIFAR-10 UNet and recipe (GPU-scale):

    python launch/train.py --config=configs/pltb_ddpm.py --workdir=workdirs/pltb_ddpm

CPU, a few minutes (32x32, 0.28M-parameter UNet):

    python launch/train.py --config=configs/pltb_ddpm.py:tiny --workdir=workdirs/pltb_ddpm_tiny

Other slopes: ``--config.data.alpha=2``.
"""

from configs import base


def experiment():
  """The unlocked config (shared with pltb_fans.py)."""
  config = base.get_config()
  config.data.name = "pltb"
  config.data.image_size = 64
  config.data.num_examples = 50_000
  config.data.alpha = 1.0
  config.train.num_train_steps = 200_000
  return config


def tiny(config):
  base.tiny(config)
  config.data.image_size = 32
  config.data.num_examples = 10_000


def get_config(arg: str | None = None):
  return base.finalize(experiment(), arg, {"tiny": tiny})

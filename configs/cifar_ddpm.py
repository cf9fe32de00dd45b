r"""DDPM on CIFAR-10: Ho et al. (2020), 35.7M-parameter UNet, T = 1000, linear betas.

Batch 128, Adam 2e-4 with 5000 warm-up steps, gradient clipping 1, EMA 0.9999,
dropout 0.1, 800k steps (Ho et al. also flip images horizontally, which this data
pipeline does not do).

    python launch/train.py --config=configs/cifar_ddpm.py --workdir=workdirs/cifar_ddpm

Offline (the 10k-image subset in ../shared/data, no download):

    python launch/train.py --config=configs/cifar_ddpm.py \
      --config.data.name=cifar10_local --workdir=workdirs/cifar_ddpm_local

CPU smoke run (tiny UNet, minutes): ``--config=configs/cifar_ddpm.py:tiny``
(uses ``cifar10_local``).
"""

from configs import base


def experiment():
  """The unlocked config (shared with cifar_fans.py)."""
  config = base.get_config()  # base's defaults are this experiment
  config.data.name = "cifar10"
  return config


def tiny(config):
  base.tiny(config)
  config.data.name = "cifar10_local"


def get_config(arg: str | None = None):
  return base.finalize(experiment(), arg, {"tiny": tiny})

r"""DDPM on textures (DTD), 64x64.

With tensorflow-datasets' ``dtd`` (downloads once):

    python launch/train.py --config=configs/dtd_ddpm.py --workdir=workdirs/dtd_ddpm

Offline: ``--config.data.name=dtd_local`` (2,400 64x64 patches of 10 DTD classes in
../shared/data). CPU: ``--config=configs/dtd_ddpm.py:tiny`` (dtd_local resized to
32x32, tiny UNet).
"""

from configs import base


def experiment():
  """The unlocked config (shared with dtd_fans.py)."""
  config = base.get_config()
  config.data.name = "dtd"
  config.data.image_size = 64
  config.data.crop = "random"
  config.train.num_train_steps = 200_000
  return config


def tiny(config):
  base.tiny(config)
  config.data.name = "dtd_local"
  config.data.image_size = 32
  config.noise.spectrum_images = 0  # all 2,400


def get_config(arg: str | None = None):
  return base.finalize(experiment(), arg, {"tiny": tiny})

r"""DDPM on astronomy images: Galaxy Zoo (SDSS gri composites), 64x64.

Offline (2,000 images in ../shared/data; no download):

    python launch/train.py --config=configs/galaxy_ddpm.py --workdir=workdirs/galaxy_ddpm

Multimodal Universe cutouts from local files (arcsinh-stretched):
``--config.data.name=mmu --config.data.path=/path/to/cutouts.hdf5``.
CPU: ``--config=configs/galaxy_ddpm.py:tiny`` (32x32, tiny UNet).
"""

from configs import base


def experiment():
  """The unlocked config (shared with galaxy_fans.py)."""
  config = base.get_config()
  config.data.name = "galaxy_zoo_local"
  config.data.split = "train"
  config.data.image_size = 64
  config.noise.spectrum_images = 0  # all
  config.train.num_train_steps = 100_000
  return config


def tiny(config):
  base.tiny(config)
  config.data.image_size = 32
  config.noise.spectrum_images = 0


def get_config(arg: str | None = None):
  return base.finalize(experiment(), arg, {"tiny": tiny})

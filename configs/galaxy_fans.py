r"""FANS on astronomy images: Galaxy Zoo (SDSS gri composites), 64x64.

    python launch/train.py --config=configs/galaxy_fans.py --workdir=workdirs/galaxy_fans

Multimodal Universe: ``--config.data.name=mmu --config.data.path=...``.
CPU: ``--config=configs/galaxy_fans.py:tiny``. Noise: ``annealed`` (gamma 0 -> 1, see
cifar_fans.py); other families by variant (``:matched``, ``:band_annealed``,
``:blog``).
"""

from configs import base
from configs import galaxy_ddpm


def get_config(arg: str | None = None):
  config = galaxy_ddpm.experiment()
  base.set_fans(config, "annealed", gamma_T=0.0, gamma_0=1.0, path="linear", max_ratio=1e3)
  return base.finalize(config, arg, dict(base.fans_variants(), tiny=galaxy_ddpm.tiny))

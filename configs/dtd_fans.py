r"""FANS on textures (DTD), 64x64.

    python launch/train.py --config=configs/dtd_fans.py --workdir=workdirs/dtd_fans

Offline: ``--config.data.name=dtd_local``; CPU: ``--config=configs/dtd_fans.py:tiny``.
Noise: ``annealed`` (gamma 0 -> 1, see cifar_fans.py); other families by variant
(``:matched``, ``:band_annealed``, ``:blog``).
"""

from configs import base
from configs import dtd_ddpm


def get_config(arg: str | None = None):
  config = dtd_ddpm.experiment()
  base.set_fans(config, "annealed", gamma_T=0.0, gamma_0=1.0, path="linear", max_ratio=1e3)
  return base.finalize(config, arg, dict(base.fans_variants(), tiny=dtd_ddpm.tiny))

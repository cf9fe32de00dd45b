r"""FANS on EGM (synthetic edges, gratings and checkerboards).

    python launch/train.py --config=configs/egm_fans.py --workdir=workdirs/egm_fans
    python launch/train.py --config=configs/egm_fans.py:tiny --workdir=workdirs/egm_fans_tiny

Noise: ``annealed`` (gamma 0 -> 1, see cifar_fans.py); other families by variant
(``:matched``, ``:band_annealed``, ``:blog``).
"""

from configs import base
from configs import egm_ddpm


def get_config(arg: str | None = None):
  config = egm_ddpm.experiment()
  base.set_fans(config, "annealed", gamma_T=0.0, gamma_0=1.0, path="linear", max_ratio=1e3)
  return base.finalize(config, arg, dict(base.fans_variants(), tiny=egm_ddpm.tiny))

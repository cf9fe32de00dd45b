r"""FANS on PLTB (synthetic power-law textures, alpha = 1): the README's first run.

Trains a tiny FANS model on a laptop CPU in a few minutes, with no download, and
writes sample grids to ``<workdir>/samples/``:

    python launch/train.py --config=configs/pltb_fans.py:tiny --workdir=workdirs/pltb_fans_tiny
    python launch/sample.py --workdir=workdirs/pltb_fans_tiny --num_samples=64

Full size (GPU): ``--config=configs/pltb_fans.py``. Noise: ``annealed`` (gamma 0 -> 1,
see cifar_fans.py); other families by variant (``:matched``, ``:band_annealed``,
``:blog``), e.g. ``--config=configs/pltb_fans.py:blog,tiny``.
"""

from configs import base
from configs import pltb_ddpm


def get_config(arg: str | None = None):
  config = pltb_ddpm.experiment()
  base.set_fans(config, "annealed", gamma_T=0.0, gamma_0=1.0, path="linear", max_ratio=1e3)
  return base.finalize(config, arg, dict(base.fans_variants(), tiny=pltb_ddpm.tiny))

r"""FANS on CIFAR-10: the DDPM recipe of cifar_ddpm.py with coloured, annealed noise.

Noise: ``annealed``, S_t ∝ Pbar^gamma(t) with gamma 0 (white, as DDPM: the same
N(0, I) prior) at t = T-1 going linearly to 1 (EqualSNR: every frequency the same SNR)
at t = 0, so the high frequencies are no longer generated last; on the dataset's radial
power spectrum (estimated from 10,000 training images, dynamic range capped at 1e3).
Same UNet, loss (eps), optimiser and steps as DDPM.

    python launch/train.py --config=configs/cifar_fans.py --workdir=workdirs/cifar_fans

Offline: add ``--config.data.name=cifar10_local`` (the 10k-image subset in
../shared/data; no download).

Other FANS families by variant (all their options then overridable):
``--config=configs/cifar_fans.py:matched`` (gamma 1, constant in time),
``:band_annealed``, ``:blog`` (the published recipe), and ``:tiny`` for a CPU run,
e.g. ``--config=configs/cifar_fans.py:blog,tiny``. Options:
``--config.noise.options.gamma_0=1.5``.
"""

from configs import base
from configs import cifar_ddpm


def get_config(arg: str | None = None):
  config = cifar_ddpm.experiment()
  base.set_fans(config, "annealed", gamma_T=0.0, gamma_0=1.0, path="linear", max_ratio=1e3)
  return base.finalize(config, arg, dict(base.fans_variants(), tiny=cifar_ddpm.tiny))

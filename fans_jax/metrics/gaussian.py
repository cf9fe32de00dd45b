"""Ground truth for Gaussian data: the Bayes-optimal denoiser of any schedule, and how far
a trained network is from it, per frequency band and per noise level.

For data that is Gaussian and stationary (diagonal in the orthonormal Fourier basis,
per-frequency variance ``v_k``; a PLTB field without per-sample normalisation) every
frequency of the forward process ``Y_t = a_t X + sigma_{t,k} E`` is a scalar Gaussian
channel. The network predicts the white ``E`` from ``Y_t``; the best possible
predictor is ``E_hat = sigma_{t,k} / (a_t^2 v_k + sigma_{t,k}^2) Y_t`` and its error is

    MMSE_k(t) = a_t^2 v_k / (a_t^2 v_k + sigma_{t,k}^2)       (per coefficient)

so a trained network's per-frequency eps error minus ``MMSE_k(t)`` is its excess loss:
what it has not learned, at each frequency and noise level, for *its own* schedule.
This is independent of how the schedule weights frequencies, which makes it a fair
measure of "trained" across noise schedules.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from fans_jax import diffusion, spectra
from fans_jax.schedules import Schedule


def _sigma2(schedule: Schedule, t) -> np.ndarray:
  """``sigma2_{t,k} = (1 - abar_t) S_t(k)``, ``[len(t), H, Wr]`` float64."""
  t = np.asarray(t)
  abar = np.asarray(schedule.alphas_cumprod, np.float64)[t]
  spec = np.asarray(schedule.spectrum, np.float64)
  spec = spec[np.minimum(t, spec.shape[0] - 1)]
  if schedule.is_white:
    spec = np.ones((len(t), schedule.height, spectra.rfft_width(schedule.width)))
  return (1.0 - abar)[:, None, None] * spec


def optimal_eps_mse(schedule: Schedule, variance, t) -> np.ndarray:
  """``MMSE_k(t) = a^2 v / (a^2 v + sigma^2)``, ``[len(t), H, Wr]`` float64.

  Args:
    schedule: a Gaussian schedule (``schedule.gaussian``).
    variance: ``[H, Wr]`` per-frequency data variance ``v_k`` (model units, orthonormal
      DFT; ``DatasetSpectrum.variance``).
    t: ``[n]`` timesteps.
  """
  if not schedule.gaussian:
    raise ValueError(f"schedule {schedule.name!r} is not Gaussian (per-sample standardised"
                     " noise): its optimal denoiser has no closed form.")
  t = np.asarray(t)
  abar = np.asarray(schedule.alphas_cumprod, np.float64)[t][:, None, None]
  v = np.asarray(variance, np.float64)[None]
  return abar * v / (abar * v + _sigma2(schedule, t))


def optimal_eps_model(schedule: Schedule, variance) -> Callable:
  """``model_fn(params, x [B, H, W, C], t [B]) -> eps_hat``: the Bayes-optimal eps
  predictor for Gaussian data of per-frequency variance ``variance [H, Wr]`` (same
  for every channel); ``params`` is ignored. Use it with
  :func:`fans_jax.samplers.sample` to draw the best samples a schedule can give."""
  v = jnp.asarray(variance, jnp.float32)[None, :, :, None]
  height, width = schedule.height, schedule.width

  def model_fn(params, x, t):
    del params
    a2 = schedule.alphas_cumprod[t][:, None, None, None]
    spec = 1.0 if schedule.is_white else schedule.spectrum_at(t)[..., None]
    sig2 = (1.0 - a2) * spec
    return spectra.irfft2(jnp.sqrt(sig2) / (a2 * v + sig2) * spectra.rfft2(x), height, width)
  return model_fn


def model_eps_mse(model_fn: Callable, params: Any, schedule: Schedule, images, t,
                  key: jax.Array, batch_size: int = 64) -> np.ndarray:
  """A network's per-frequency eps error ``E |F(eps - eps_hat)|^2``, ``[len(t), H, Wr]``.

  Every image is noised at every ``t`` with fresh white noise (one key); the mean is
  over images and channels (per coefficient, orthonormal DFT, so a perfect predictor
  of white noise has error 0 and predicting 0 has error 1).

  Args:
    model_fn: ``(params, x_t, t) -> eps_hat`` (an eps-objective network).
    images: ``[N, H, W, C]`` float data in model units.
    t: ``[n]`` timesteps.
  """
  images = jnp.asarray(images, jnp.float32)
  t = np.asarray(t, np.int32)

  @jax.jit
  def one(params, x0, tt, k):
    eps = jax.random.normal(k, x0.shape, x0.dtype)
    steps = jnp.full((x0.shape[0],), tt, jnp.int32)
    x_t = diffusion.q_sample(schedule, x0, steps, eps)
    err = model_fn(params, x_t, steps) - diffusion.training_target(schedule, x0, steps, eps)
    return jnp.sum(jnp.abs(spectra.rfft2(err)) ** 2, axis=(0, 3))

  out = np.zeros((len(t),) + tuple(spectra.rfft2(images[:1]).shape[1:3]), np.float64)
  n = images.shape[0]
  for i, tt in enumerate(t):
    for start in range(0, n, batch_size):
      k = jax.random.fold_in(jax.random.fold_in(key, i), start)
      out[i] += np.asarray(one(params, images[start:start + batch_size], int(tt), k))
  return out / (n * images.shape[-1])


@dataclasses.dataclass(frozen=True)
class ExcessLoss:
  """Per band and noise-level bucket: model error, optimum, and their difference.

  Arrays are ``[num_buckets, num_bands]``; ``t_edges`` ``[num_buckets + 1]`` bound the
  buckets (``t`` in ``[t_edges[i], t_edges[i + 1])``); ``band_edges`` in cycles/px.
  ``model`` and ``optimal`` are mean per-coefficient eps errors (0..1).
  """
  model: np.ndarray
  optimal: np.ndarray
  t_edges: np.ndarray
  band_edges: np.ndarray

  @property
  def excess(self) -> np.ndarray:
    return self.model - self.optimal

  def to_json(self) -> dict:
    return {"model": self.model.tolist(), "optimal": self.optimal.tolist(),
            "excess": self.excess.tolist(), "t_edges": self.t_edges.tolist(),
            "band_edges": self.band_edges.tolist()}


def reduce_to_bands(per_freq: np.ndarray, t, t_edges, spec: spectra.BandSpec) -> np.ndarray:
  """``[len(t), H, Wr]`` -> ``[buckets, bands]``: the mean over the band's full-grid
  coefficients and over the ``t`` inside each bucket."""
  height = per_freq.shape[1]
  width = spectra.infer_width(height, per_freq.shape[2])
  band = np.asarray(spectra.band_average(jnp.asarray(per_freq), spec, width), np.float64)
  t = np.asarray(t)
  out = np.full((len(t_edges) - 1, band.shape[1]), np.nan)
  for i in range(len(t_edges) - 1):
    inside = (t >= t_edges[i]) & (t < t_edges[i + 1])
    if inside.any():
      out[i] = band[inside].mean(axis=0)
  return out


def excess_loss(model_fn: Callable, params: Any, schedule: Schedule, images, variance, *,
                key: jax.Array, num_buckets: int = 5, t_per_bucket: int = 4,
                spec: spectra.BandSpec | None = None, batch_size: int = 64) -> ExcessLoss:
  """The network's per-band, per-noise-level eps error against the Bayes optimum.

  ``t`` is drawn evenly inside ``num_buckets`` equal buckets of ``[0, T)``
  (``t_per_bucket`` values each); bands are ``spec`` (default 8 linear bands, DC out).
  """
  spec = spec or spectra.BandSpec(num_bands=8)
  T = schedule.num_timesteps
  t_edges = np.linspace(0, T, num_buckets + 1).round().astype(int)
  t = np.concatenate([np.linspace(t_edges[i], t_edges[i + 1] - 1, t_per_bucket).round()
                      for i in range(num_buckets)]).astype(np.int32)
  model = model_eps_mse(model_fn, params, schedule, images, t, key, batch_size)
  optimal = optimal_eps_mse(schedule, variance, t)
  height, width = schedule.height, schedule.width
  return ExcessLoss(model=reduce_to_bands(model, t, t_edges, spec),
                    optimal=reduce_to_bands(optimal, t, t_edges, spec), t_edges=t_edges,
                    band_edges=spec.edges(height, width))


__all__ = ["ExcessLoss", "excess_loss", "model_eps_mse", "optimal_eps_model",
           "optimal_eps_mse", "reduce_to_bands"]

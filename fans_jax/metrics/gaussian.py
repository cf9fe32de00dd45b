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

Two estimators of the excess (:class:`ExcessLoss`):

* ``excess``: the network's Monte Carlo eps error minus the closed-form ``MMSE_k(t)``.
  Unbiased, but it carries the Monte Carlo error of the whole loss (``O(MMSE)`` per
  draw), which at small ``t`` is larger than the excess itself.
* ``direct``: ``E |F(eps_hat - eps_opt)|^2_k`` on the same noised images, the
  squared distance to the exact denoiser. The optimal error ``eps - eps_opt`` is
  orthogonal to every function of ``Y_t`` (it is the conditional mean's error, and the
  Gaussian channels are independent across frequencies), so the cross term of
  ``|eps - eps_hat|^2 = |eps - eps_opt|^2 + |eps_opt - eps_hat|^2 + 2 Re(...)``
  vanishes in expectation: the same excess, never negative, with a Monte Carlo error
  that scales with the excess, not with the loss. ``optimal_mc`` (the exact
  denoiser's Monte Carlo error on the same draws) against ``optimal`` checks the
  Gaussian assumption on the images used.
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


def eps_errors(model_fn: Callable, params: Any, schedule: Schedule, images, t,
               key: jax.Array, batch_size: int = 64, reference_fn: Callable | None = None
               ) -> dict[str, np.ndarray]:
  """Per-frequency eps errors of a network (and of a reference) on the same draws.

  Every image is noised at every ``t`` with fresh white noise (one key); means are over
  images and channels (per coefficient, orthonormal DFT, so a perfect predictor of
  white noise has error 0 and predicting 0 has error 1).

  Args:
    model_fn: ``(params, x_t, t) -> eps_hat`` (an eps-objective network).
    images: ``[N, H, W, C]`` float data in model units.
    t: ``[n]`` timesteps.
    reference_fn: optional ``(params, x_t, t) -> eps_ref`` (``params`` ignored), e.g.
      :func:`optimal_eps_model`, run on the same ``x_t``.
  Returns:
    ``{"model": E|F(eps - eps_hat)|^2}``, with a reference also ``"reference":
    E|F(eps - eps_ref)|^2`` and ``"distance": E|F(eps_hat - eps_ref)|^2``; each
    ``[len(t), H, Wr]`` float64.
  """
  images = jnp.asarray(images, jnp.float32)
  t = np.asarray(t, np.int32)

  def power(x):  # [B, H, W, C] -> [H, Wr]: summed |rfft2|^2 over images and channels
    return jnp.sum(jnp.abs(spectra.rfft2(x)) ** 2, axis=(0, 3))

  @jax.jit
  def one(params, x0, tt, k):
    eps = jax.random.normal(k, x0.shape, x0.dtype)
    steps = jnp.full((x0.shape[0],), tt, jnp.int32)
    x_t = diffusion.q_sample(schedule, x0, steps, eps)
    out = model_fn(params, x_t, steps)
    target = diffusion.training_target(schedule, x0, steps, eps)
    sums = {"model": power(out - target)}
    if reference_fn is not None:
      ref = reference_fn(None, x_t, steps)
      sums["reference"] = power(ref - target)
      sums["distance"] = power(out - ref)
    return sums

  grid = (len(t),) + tuple(spectra.rfft2(images[:1]).shape[1:3])
  names = ("model",) if reference_fn is None else ("model", "reference", "distance")
  out = {name: np.zeros(grid, np.float64) for name in names}
  n = images.shape[0]
  for i, tt in enumerate(t):
    for start in range(0, n, batch_size):
      k = jax.random.fold_in(jax.random.fold_in(key, i), start)
      sums = one(params, images[start:start + batch_size], int(tt), k)
      for name in names:
        out[name][i] += np.asarray(sums[name])
  return {name: value / (n * images.shape[-1]) for name, value in out.items()}


def model_eps_mse(model_fn: Callable, params: Any, schedule: Schedule, images, t,
                  key: jax.Array, batch_size: int = 64) -> np.ndarray:
  """A network's per-frequency eps error ``E |F(eps - eps_hat)|^2``, ``[len(t), H, Wr]``
  (:func:`eps_errors` without a reference)."""
  return eps_errors(model_fn, params, schedule, images, t, key, batch_size)["model"]


@dataclasses.dataclass(frozen=True)
class ExcessLoss:
  """Per band and noise-level bucket: model error, optimum, and their difference.

  Arrays are ``[num_buckets, num_bands]``; ``t_edges`` ``[num_buckets + 1]`` bound the
  buckets (``t`` in ``[t_edges[i], t_edges[i + 1])``); ``band_edges`` in cycles/px.
  ``model`` and ``optimal`` are mean per-coefficient eps errors (0..1): the network's
  Monte Carlo error and the closed-form optimum. ``optimal_mc`` (the exact denoiser's
  Monte Carlo error on the same draws) and ``direct`` (the mean squared distance
  between the network's and the exact denoiser's predictions, the low-variance
  estimator of the excess; see the module docstring) are None where not computed.
  """
  model: np.ndarray
  optimal: np.ndarray
  t_edges: np.ndarray
  band_edges: np.ndarray
  optimal_mc: np.ndarray | None = None
  direct: np.ndarray | None = None

  @property
  def excess(self) -> np.ndarray:
    """The closed-form estimator: ``model - optimal`` (can be negative by noise)."""
    return self.model - self.optimal

  def to_json(self) -> dict:
    out = {"model": self.model.tolist(), "optimal": self.optimal.tolist(),
           "excess": self.excess.tolist(), "t_edges": self.t_edges.tolist(),
           "band_edges": self.band_edges.tolist()}
    if self.optimal_mc is not None:
      out["optimal_mc"] = self.optimal_mc.tolist()
    if self.direct is not None:
      out["direct"] = self.direct.tolist()
    return out


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
  """The network's per-band, per-noise-level eps error against the Bayes optimum, with
  both estimators of the excess (:class:`ExcessLoss`).

  ``t`` is drawn evenly inside ``num_buckets`` equal buckets of ``[0, T)``
  (``t_per_bucket`` values each); bands are ``spec`` (default 8 linear bands, DC out).
  """
  spec = spec or spectra.BandSpec(num_bands=8)
  T = schedule.num_timesteps
  t_edges = np.linspace(0, T, num_buckets + 1).round().astype(int)
  t = np.concatenate([np.linspace(t_edges[i], t_edges[i + 1] - 1, t_per_bucket).round()
                      for i in range(num_buckets)]).astype(np.int32)
  optimal = optimal_eps_mse(schedule, variance, t)  # raises for a non-Gaussian schedule
  errors = eps_errors(model_fn, params, schedule, images, t, key, batch_size,
                      reference_fn=optimal_eps_model(schedule, variance))
  bands = {name: reduce_to_bands(value, t, t_edges, spec) for name, value in errors.items()}
  height, width = schedule.height, schedule.width
  return ExcessLoss(model=bands["model"], optimal=reduce_to_bands(optimal, t, t_edges, spec),
                    t_edges=t_edges, band_edges=spec.edges(height, width),
                    optimal_mc=bands["reference"], direct=bands["distance"])


__all__ = ["ExcessLoss", "eps_errors", "excess_loss", "model_eps_mse", "optimal_eps_model",
           "optimal_eps_mse", "reduce_to_bands"]

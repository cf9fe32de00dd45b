"""Spectral fidelity of generated samples against a reference set.

Both sets are ``[N, H, W, C]`` float arrays in the same units (the evaluation brings
samples and data to ``[-1, 1]``). Each set is summarised once
(:func:`spectral_summary`, streamed in batches through
:class:`fans_jax.spectra.SpectrumAccumulator`), then compared
(:func:`compare_summaries`). The metrics (docs/method.md §7, and the published post's, §9):

* ``slope_*``: ``alpha`` of ``P(f) = A f^-alpha`` fitted by least squares in log-log
  space to the dataset-mean, channel-mean radially averaged PSD over
  ``[fit_f_lo, fit_f_hi]`` (default: first non-DC bin to 0.5 cycles/px);
  ``slope_error = alpha_gen - alpha_ref`` (positive: samples too smooth).
* ``lsd``: log-spectral distance ``mean_f |log10 P_gen(f) - log10 P_ref(f)|`` over the
  non-DC radial bins (DC measures the mean brightness, not structure), in decades.
* ``band_powers_*``: ``pi_b = mean_i sum_{k in b} P_i(k) / sum_{k in any band} P_i(k)``
  over ``B`` radial bands (DC excluded, corners beyond ``f_max`` in the last band;
  :class:`fans_jax.spectra.BandSpec`). Per image, so excluding DC is the same as
  removing each image's mean, as the post does.
* ``band_jsd``: Jensen-Shannon divergence between ``pi_ref`` and ``pi_gen``, natural
  log (nats, in ``[0, ln 2]``; divide by ``ln 2`` for bits). The post does not state
  its base.
* ``band_kl``: ``KL(pi_ref || pi_gen)`` in nats.
* ``band_corr``: Pearson correlation between the vectors ``pi_ref`` and ``pi_gen``
  (our reading of the post's "per-band correlation": it does not define it). With a
  steep spectrum the lowest bands dominate it, so also see the per-band errors:
* ``band_rel_error``: ``(pi_gen_b - pi_ref_b) / pi_ref_b`` per band, and
  ``band_log10_psd_ratio``: ``log10`` of the band-mean PSD of samples over data per
  band (absolute power, not a fraction: blurring makes the high bands negative).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from fans_jax import spectra

LOG_BASE = "e (nats)"


@dataclasses.dataclass(frozen=True)
class SpectralSettings:
  """How spectra are summarised and compared.

  Attributes:
    num_bands: radial bands ``B`` for band powers.
    band_spacing: ``"linear"`` (the post) or ``"log"`` edges in ``|k|``.
    band_f_min: lower edge of the first band (cycles/px; default the first non-DC
      frequency).
    band_f_max: upper edge of the last band (default 0.5, Nyquist).
    fit_f_lo: lowest frequency of the power-law fit (default the first non-DC bin).
    fit_f_hi: highest frequency of the fit (default 0.5).
    batch_size: images per batch when streaming a set.
  """
  num_bands: int = 8
  band_spacing: str = "linear"
  band_f_min: float | None = None
  band_f_max: float = 0.5
  fit_f_lo: float | None = None
  fit_f_hi: float = 0.5
  batch_size: int = 500

  def __post_init__(self):
    self.band_spec()  # validates the band fields
    if int(self.batch_size) < 1:
      raise ValueError(f"batch_size={self.batch_size} must be >= 1.")

  def band_spec(self) -> spectra.BandSpec:
    return spectra.BandSpec(num_bands=int(self.num_bands), spacing=self.band_spacing,
                            include_dc=False, f_min=self.band_f_min, f_max=self.band_f_max)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


class SpectralSummary(NamedTuple):
  """Spectral statistics of one image set (NumPy float64).

  freqs: ``[nbins]`` radial bin frequencies (cycles/px; bin 0 is DC).
  profile: ``[nbins]`` radially averaged dataset-mean PSD (channel mean).
  band_powers: ``[B]`` mean per-image band fractions ``pi_b`` (sum to 1).
  band_psd: ``[B]`` mean PSD per coefficient inside each band.
  band_edges: ``[B + 1]`` cycles/px.
  alpha, amplitude, r2: power-law fit ``P = A f^-alpha``; fit_range: ``(f_lo, f_hi)``.
  count: number of images; image_shape: ``(H, W, C)``; settings: the settings used.
  """
  freqs: np.ndarray
  profile: np.ndarray
  band_powers: np.ndarray
  band_psd: np.ndarray
  band_edges: np.ndarray
  alpha: float
  amplitude: float
  r2: float
  fit_range: tuple[float, float]
  count: int
  image_shape: tuple[int, int, int]
  settings: SpectralSettings


def _check_image_set(images, name: str) -> None:
  spectra.check_images(images, name)
  if not np.issubdtype(np.asarray(images[:1]).dtype, np.floating):
    raise ValueError(
        f"{name} has dtype {np.asarray(images[:1]).dtype}; spectral metrics need float images"
        " in the same units for both sets (e.g. fans_jax.metrics.images_to_float(x) for"
        " uint8, which maps to [-1, 1]).")
  if int(images.shape[0]) < 2:
    raise ValueError(f"{name} holds {images.shape[0]} image(s); spectral statistics need >= 2.")


def summary_from_dataset_spectrum(stats: spectra.DatasetSpectrum, image_shape,
                                  settings: SpectralSettings | None = None) -> SpectralSummary:
  """A :class:`SpectralSummary` from already accumulated :class:`DatasetSpectrum`.

  Raises:
    ValueError: the statistics' band spec differs from ``settings``'.
  """
  settings = settings or SpectralSettings()
  spec = settings.band_spec()
  if stats.band_spec != spec:
    raise ValueError(f"the dataset spectrum was accumulated with {stats.band_spec}, but the"
                     f" metric settings ask for {spec}; recompute it with the same bands.")
  height, width = int(image_shape[0]), int(image_shape[1])
  freqs, profile = stats.radial_profile()
  fit = stats.fit(settings.fit_f_lo, settings.fit_f_hi)
  band_psd = np.asarray(spectra.band_average(jnp.asarray(stats.psd), spec, width), np.float64)
  return SpectralSummary(
      freqs=np.asarray(freqs, np.float64), profile=np.asarray(profile, np.float64),
      band_powers=np.asarray(stats.band_powers, np.float64), band_psd=band_psd,
      band_edges=spec.edges(height, width), alpha=float(fit.alpha),
      amplitude=float(fit.amplitude), r2=float(fit.r2), fit_range=(fit.f_lo, fit.f_hi),
      count=int(stats.count), image_shape=tuple(int(s) for s in image_shape),
      settings=settings)


def spectral_summary(images, settings: SpectralSettings | None = None) -> SpectralSummary:
  """Summarises ``images [N, H, W, C]`` (float), streamed in batches.

  Args:
    images: ``[N, H, W, C]`` float array (NumPy or JAX; any units, but compare only
      sets in the same units).
    settings: :class:`SpectralSettings`.
  """
  settings = settings or SpectralSettings()
  _check_image_set(images, "images")
  n, bs = int(images.shape[0]), int(settings.batch_size)
  batches = (np.asarray(images[i:i + bs], np.float32) for i in range(0, n, bs))
  stats = spectra.accumulate_spectrum(batches, settings.band_spec())
  return summary_from_dataset_spectrum(stats, images.shape[1:], settings)


def _safe_distribution(p: np.ndarray, eps: float = 1e-12) -> np.ndarray:
  p = np.clip(np.asarray(p, np.float64), eps, None)
  return p / p.sum()


def kl_divergence(p, q) -> float:
  """``KL(p || q) = sum_b p_b ln(p_b / q_b)`` in nats (both renormalised, floored at 1e-12)."""
  p, q = _safe_distribution(p), _safe_distribution(q)
  return float(np.sum(p * (np.log(p) - np.log(q))))


def js_divergence(p, q) -> float:
  """Jensen-Shannon divergence in nats: ``(KL(p || m) + KL(q || m)) / 2``, ``m = (p + q) / 2``."""
  p, q = _safe_distribution(p), _safe_distribution(q)
  m = 0.5 * (p + q)
  return float(0.5 * np.sum(p * np.log(p / m)) + 0.5 * np.sum(q * np.log(q / m)))


def pearson_correlation(x, y) -> float:
  """Pearson correlation of two vectors (NaN when either is constant)."""
  x = np.asarray(x, np.float64) - np.mean(x)
  y = np.asarray(y, np.float64) - np.mean(y)
  denom = math.sqrt(float(np.sum(x * x) * np.sum(y * y)))
  return float(np.sum(x * y) / denom) if denom > 0 else float("nan")


def log_spectral_distance(freqs, gen_profile, ref_profile) -> float:
  """``mean_f |log10 P_gen(f) - log10 P_ref(f)|`` over the non-DC radial bins
  (decades), profiles ``[F]`` on the same frequencies ``freqs [F]``; zero bins are
  floored at 1e-300. The one LSD of the project (metrics, training logs)."""
  freqs, gen_profile, ref_profile = (np.asarray(a, np.float64)
                                     for a in (freqs, gen_profile, ref_profile))
  non_dc = freqs > 0
  return float(np.mean(np.abs(np.log10(np.maximum(gen_profile[non_dc], 1e-300))
                              - np.log10(np.maximum(ref_profile[non_dc], 1e-300)))))


def compare_summaries(gen: SpectralSummary, ref: SpectralSummary) -> dict[str, Any]:
  """All spectral metrics of ``gen`` against ``ref`` (see the module docstring).

  Returns:
    A JSON-serialisable dict: scalars, per-band lists, and ``settings`` (band spec,
    fit range, log base, image counts).
  Raises:
    ValueError: the summaries differ in image shape or settings.
  """
  if tuple(gen.image_shape) != tuple(ref.image_shape):
    raise ValueError(f"sample images are {tuple(gen.image_shape)} but reference images are"
                     f" {tuple(ref.image_shape)}; spectral metrics need the same shape.")
  if gen.settings != ref.settings:
    raise ValueError(f"summaries were computed with different settings: {gen.settings} vs"
                     f" {ref.settings}.")
  lsd = log_spectral_distance(gen.freqs, gen.profile, ref.profile)
  pi_gen, pi_ref = gen.band_powers, ref.band_powers
  rel = (pi_gen - pi_ref) / np.maximum(pi_ref, 1e-300)
  psd_ratio = np.log10(np.maximum(gen.band_psd, 1e-300) / np.maximum(ref.band_psd, 1e-300))
  return {
      "slope_gen": gen.alpha,
      "slope_ref": ref.alpha,
      "slope_error": gen.alpha - ref.alpha,
      "slope_abs_error": abs(gen.alpha - ref.alpha),
      "slope_r2_gen": gen.r2,
      "slope_r2_ref": ref.r2,
      "lsd": lsd,
      "band_jsd": js_divergence(pi_ref, pi_gen),
      "band_kl": kl_divergence(pi_ref, pi_gen),
      "band_corr": pearson_correlation(pi_ref, pi_gen),
      "band_rel_error": rel.tolist(),
      "band_mean_abs_rel_error": float(np.mean(np.abs(rel))),
      "band_log10_psd_ratio": psd_ratio.tolist(),
      "band_powers_gen": pi_gen.tolist(),
      "band_powers_ref": pi_ref.tolist(),
      "settings": {
          **gen.settings.to_dict(),
          "band_edges": np.asarray(gen.band_edges).tolist(),
          "fit_range": [float(gen.fit_range[0]), float(gen.fit_range[1])],
          "log_base": LOG_BASE,
          "lsd_units": "decades (log10), mean over non-DC radial bins",
          "band_corr": "Pearson correlation between band-power vectors pi_ref and pi_gen",
          "num_gen": int(gen.count),
          "num_ref": int(ref.count),
          "image_shape": list(gen.image_shape),
      },
  }


def spectral_metrics(samples, reference, settings: SpectralSettings | None = None,
                     **kwargs) -> dict[str, Any]:
  """Spectral fidelity of ``samples`` against ``reference``, one dict.

  Args:
    samples: ``[N, H, W, C]`` float images.
    reference: ``[M, H, W, C]`` float images in the same units, or a
      :class:`SpectralSummary` computed with the same settings (to reuse it across runs).
    settings: :class:`SpectralSettings`; or pass its fields as keyword arguments.
  Returns:
    See :func:`compare_summaries`.
  """
  if settings is not None and kwargs:
    raise ValueError("pass either settings=... or its fields as keyword arguments, not both.")
  if settings is None and kwargs:
    settings = SpectralSettings(**kwargs)
  spectra.check_images(samples, "samples")
  if isinstance(reference, SpectralSummary):
    ref = reference
    if settings is not None and settings != ref.settings:
      raise ValueError(f"settings {settings} differ from those of the reference summary"
                       f" {ref.settings}.")
    if tuple(samples.shape[1:]) != tuple(ref.image_shape):
      raise ValueError(f"samples are {tuple(samples.shape[1:])} images but the reference summary"
                       f" is of {tuple(ref.image_shape)} images.")
  else:
    spectra.check_images(reference, "reference")
    if tuple(samples.shape[1:]) != tuple(reference.shape[1:]):
      raise ValueError(f"samples are {tuple(samples.shape[1:])} images but reference images are"
                       f" {tuple(reference.shape[1:])}; spectral metrics need the same shape.")
    ref = spectral_summary(reference, settings or SpectralSettings())
  return compare_summaries(spectral_summary(samples, ref.settings), ref)


__all__ = [
    "LOG_BASE", "SpectralSettings", "SpectralSummary", "compare_summaries", "js_divergence",
    "kl_divergence", "log_spectral_distance", "pearson_correlation", "spectral_metrics",
    "spectral_summary",
    "summary_from_dataset_spectrum",
]

"""Spectral statistics of image batches on the orthonormal ``rfft2`` grid.

Conventions (docs/method.md §1):

* Images are ``[B, H, W, C]`` arrays (float). Fourier transforms are
  ``jnp.fft.rfft2(x, axes=(1, 2), norm="ortho")``, so the coefficient grid is
  ``[H, Wr]`` with ``Wr = W // 2 + 1`` (the half plane ``fv >= 0``).
* Frequencies are in cycles per pixel: ``fu = fftfreq(H)``, ``fv = rfftfreq(W)``.
* The rfft grid holds every coefficient of the full ``H x W`` grid once, except the
  interior columns ``0 < j < W/2``, each of which also stands for its mirror image
  ``-k``. Every sum "over all frequencies" therefore weights a coefficient by its
  :func:`rfft_multiplicity` (1 or 2). Forgetting this halves the high-frequency power.

Everything that depends only on the grid (bins, band masks, multiplicities) is built
once in NumPy from static shapes; everything that touches images is jittable JAX.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

ORDERINGS = ("euclidean", "manhattan")
SPACINGS = ("linear", "log")


# ----------------------------------------------------------------------------------
# Grid helpers (NumPy, static shapes)
# ----------------------------------------------------------------------------------


def rfft_width(width: int) -> int:
  """Number of rfft columns ``W // 2 + 1`` for an image of ``width`` pixels."""
  return width // 2 + 1


def infer_width(height: int, rfft_cols: int, width: int | None = None) -> int:
  """The image width behind an ``[H, Wr]`` rfft grid.

  ``Wr`` is ambiguous (``W = 2 (Wr - 1)`` or ``2 Wr - 1``), so it is taken to be
  square (``W = H``) when that fits, and otherwise must be given.
  """
  if width is not None:
    if rfft_width(width) != rfft_cols:
      raise ValueError(
          f"width={width} gives {rfft_width(width)} rfft columns, but the spectrum has"
          f" {rfft_cols}.")
    return int(width)
  if rfft_width(height) == rfft_cols:
    return int(height)
  raise ValueError(
      f"cannot tell the image width from an rfft grid of shape [{height}, {rfft_cols}]"
      " (it is not square); pass width=... explicitly.")


def frequency_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
  """Frequencies of the rfft grid in cycles per pixel.

  Returns:
    ``fu [H, 1]`` (``fftfreq(H)``, signed) and ``fv [1, Wr]`` (``rfftfreq(W)``, >= 0).
  """
  _check_size(height, width)
  fu = np.fft.fftfreq(height)[:, None]
  fv = np.fft.rfftfreq(width)[None, :]
  return fu, fv


def radial_frequency(height: int, width: int, ordering: str = "euclidean") -> np.ndarray:
  """Distance of every rfft coefficient from DC, ``[H, Wr]``, cycles per pixel.

  ``euclidean``: ``sqrt(fu^2 + fv^2)``; ``manhattan``: ``|fu| + |fv|`` (the ordering
  of the draft's "walk in spirals" figure).
  """
  fu, fv = frequency_grid(height, width)
  if ordering == "euclidean":
    return np.sqrt(fu**2 + fv**2)
  if ordering == "manhattan":
    return np.abs(fu) + np.abs(fv)
  raise ValueError(f"ordering={ordering!r} is not one of {ORDERINGS}.")


def rfft_multiplicity(height: int, width: int) -> np.ndarray:
  """How many full-grid coefficients each rfft coefficient stands for, ``[H, Wr]``.

  1 for column 0 and (even ``W``) the Nyquist column ``W/2``, 2 for the others. The
  multiplicities sum to ``H * W``.
  """
  _check_size(height, width)
  mult = np.full((height, rfft_width(width)), 2.0)
  mult[:, 0] = 1.0
  if width % 2 == 0:
    mult[:, -1] = 1.0
  return mult


def grid_mean(spectrum: jax.Array, width: int) -> jax.Array:
  """Mean of an rfft-grid array over the *full* ``H x W`` grid.

  Args:
    spectrum: ``[..., H, Wr]``.
    width: image width ``W``.
  Returns:
    ``[...]``.
  """
  height = spectrum.shape[-2]
  mult = rfft_multiplicity(height, width)
  xp = np if isinstance(spectrum, np.ndarray) else jnp  # NumPy in, float64 NumPy out
  return xp.sum(spectrum * mult, axis=(-2, -1)) / (height * width)


def _check_size(height: int, width: int) -> None:
  if int(height) < 2 or int(width) < 2:
    raise ValueError(f"images must be at least 2x2 pixels, got {height}x{width}.")


def check_images(images, name: str = "images") -> None:
  """Raises a ValueError unless ``images`` is a ``[B, H, W, C]`` array."""
  shape = getattr(images, "shape", None)
  if shape is None or len(shape) != 4:
    raise ValueError(
        f"{name} must be a batch [B, H, W, C]; got shape {shape}. Add a batch axis"
        " with x[None] or a channel axis with x[..., None].")
  _check_size(shape[1], shape[2])


# ----------------------------------------------------------------------------------
# Power spectra
# ----------------------------------------------------------------------------------


def rfft2(images: jax.Array) -> jax.Array:
  """Orthonormal rfft2 over the spatial axes: ``[B, H, W, C] -> [B, H, Wr, C]``."""
  return jnp.fft.rfft2(images, axes=(1, 2), norm="ortho")


def irfft2(coeffs: jax.Array, height: int, width: int) -> jax.Array:
  """Inverse of :func:`rfft2`: ``[B, H, Wr, C] -> [B, H, W, C]`` (real)."""
  return jnp.fft.irfft2(coeffs, s=(height, width), axes=(1, 2), norm="ortho")


def power_spectrum(images: jax.Array, channel_mean: bool = True) -> jax.Array:
  """Per-image power spectra ``P_i(k) = |F x_i(k)|^2`` on the rfft grid.

  Args:
    images: ``[B, H, W, C]`` real images.
    channel_mean: average over channels (default) or keep them.
  Returns:
    ``[B, H, Wr]`` (channel mean) or ``[B, H, Wr, C]``.
  """
  check_images(images)
  coeffs = rfft2(jnp.asarray(images, dtype=jnp.result_type(images, jnp.float32)))
  power = jnp.real(coeffs) ** 2 + jnp.imag(coeffs) ** 2
  return jnp.mean(power, axis=-1) if channel_mean else power


# ----------------------------------------------------------------------------------
# Radial profiles and power-law fits
# ----------------------------------------------------------------------------------


class RadialProfile(NamedTuple):
  """A radially averaged spectrum. Unpacks as ``freqs, profile``.

  freqs: ``[nbins]`` mean distance from DC of the coefficients in each bin
    (cycles per pixel; bin 0 is DC alone).
  profile: ``[..., nbins]`` mean power per coefficient in each bin.
  """
  freqs: jax.Array
  profile: jax.Array


@functools.lru_cache(maxsize=64)
def _radial_bins(height: int, width: int, ordering: str):
  """Static binning: ``(matrix [H*Wr, nbins], freqs [nbins])``.

  Bins are annuli ``[i df, (i + 1) df)`` with ``df = 1 / max(H, W)``, so bin 0 holds DC
  alone; empty bins are dropped. The matrix averages the (multiplicity-weighted)
  coefficients of each bin.
  """
  radius = radial_frequency(height, width, ordering)
  mult = rfft_multiplicity(height, width)
  df = 1.0 / max(height, width)
  index = np.floor(radius / df + 1e-9).astype(np.int64).ravel()
  counts = np.bincount(index, weights=mult.ravel())
  used = np.nonzero(counts > 0)[0]
  remap = -np.ones(index.max() + 1, np.int64)
  remap[used] = np.arange(used.size)
  bins = remap[index]
  matrix = np.zeros((height * rfft_width(width), used.size))
  matrix[np.arange(bins.size), bins] = mult.ravel()
  matrix /= matrix.sum(axis=0, keepdims=True)
  freqs = radius.ravel() @ matrix
  return matrix, freqs


def radial_profile(power: jax.Array, ordering: str = "euclidean",
                   width: int | None = None) -> RadialProfile:
  """Radially averaged PSD: mean power over annuli ``f <= |k| < f + df``.

  Args:
    power: ``[..., H, Wr]`` power on the rfft grid (for example the output of
      :func:`power_spectrum`, or its batch mean).
    ordering: ``"euclidean"`` (``|k|``) or ``"manhattan"`` (``|fu| + |fv|``).
    width: image width; needed only for non-square images.
  Returns:
    :class:`RadialProfile` with ``freqs [nbins]`` and ``profile [..., nbins]``.
  """
  if power.ndim < 2:
    raise ValueError(f"power must be [..., H, Wr]; got shape {power.shape}.")
  if ordering not in ORDERINGS:
    raise ValueError(f"ordering={ordering!r} is not one of {ORDERINGS}.")
  height, cols = power.shape[-2:]
  width = infer_width(height, cols, width)
  matrix, freqs = _radial_bins(height, width, ordering)
  flat = jnp.reshape(power, power.shape[:-2] + (height * cols,))
  profile = flat @ jnp.asarray(matrix, dtype=flat.dtype)
  return RadialProfile(jnp.asarray(freqs, dtype=flat.dtype), profile)


class PowerLawFit(NamedTuple):
  """``P(f) = amplitude * f^-alpha`` fitted by least squares in log-log space.

  alpha, amplitude, r2: ``[...]`` (one per profile); f_lo, f_hi: fit range (cycles/px).
  """
  alpha: jax.Array
  amplitude: jax.Array
  r2: jax.Array
  f_lo: float
  f_hi: float


def fit_power_law(freqs, profile, f_lo: float | None = None,
                  f_hi: float = 0.5) -> PowerLawFit:
  """Fits ``log P = log A - alpha log f`` over ``f_lo <= f <= f_hi`` (DC excluded).

  Args:
    freqs: ``[nbins]`` frequencies, cycles per pixel (as from :func:`radial_profile`).
    profile: ``[..., nbins]`` positive powers.
    f_lo: lowest frequency used; default the first non-DC bin.
    f_hi: highest frequency used (default 0.5, the Nyquist frequency).
  Returns:
    :class:`PowerLawFit`; ``alpha`` is positive for a decaying spectrum.
  """
  freqs_np = np.asarray(freqs, dtype=np.float64)
  positive = freqs_np[freqs_np > 0]
  if positive.size == 0:
    raise ValueError("freqs has no positive frequency to fit.")
  lo = float(positive.min()) if f_lo is None else float(f_lo)
  if not 0 < lo < f_hi:
    raise ValueError(f"need 0 < f_lo < f_hi, got f_lo={lo}, f_hi={f_hi}.")
  mask = (freqs_np >= lo * (1 - 1e-9)) & (freqs_np <= f_hi * (1 + 1e-9))
  if mask.sum() < 2:
    raise ValueError(
        f"only {int(mask.sum())} bin(s) between f_lo={lo:.4g} and f_hi={f_hi:.4g};"
        " a power-law fit needs at least 2.")
  profile = jnp.asarray(profile)
  if not isinstance(profile, jax.core.Tracer):
    fitted = np.asarray(profile)[..., mask]
    bad = ~(np.isfinite(fitted) & (fitted > 0))
    if np.any(bad):
      j = int(np.argwhere(bad)[0][-1])
      raise ValueError(
          f"the power-law fit needs positive, finite power in every bin it uses; the bin at"
          f" f={freqs_np[mask][j]:.4g} cycles/px holds {fitted.reshape(-1, fitted.shape[-1])[:, j].min():.4g}"
          " (constant or degenerate images?). Narrow the fit range (f_lo, f_hi) or check the"
          " data.")
  x = jnp.asarray(np.log(freqs_np[mask]), dtype=jnp.result_type(profile, jnp.float32))
  y = jnp.log(profile[..., mask])
  xc = x - jnp.mean(x)
  yc = y - jnp.mean(y, axis=-1, keepdims=True)
  slope = jnp.sum(xc * yc, axis=-1) / jnp.sum(xc * xc)
  intercept = jnp.mean(y, axis=-1) - slope * jnp.mean(x)
  resid = yc - slope[..., None] * xc
  ss_tot = jnp.sum(yc * yc, axis=-1)
  r2 = 1.0 - jnp.sum(resid * resid, axis=-1) / jnp.where(ss_tot > 0, ss_tot, 1.0)
  return PowerLawFit(-slope, jnp.exp(intercept), r2, lo, float(f_hi))


# ----------------------------------------------------------------------------------
# Bands
# ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BandSpec:
  """Radial frequency bands on the rfft grid.

  Attributes:
    num_bands: number of bands ``B >= 1``.
    spacing: ``"linear"`` or ``"log"`` edges in ``|k|``.
    include_dc: put DC in the first band (default: DC belongs to no band).
    f_min: lower edge of the first band (cycles/px); default the first non-DC
      frequency ``1 / max(H, W)`` (0 for linear bands that include DC). Non-DC
      frequencies below it join the first band.
    f_max: upper edge of the last band (default 0.5); the corners beyond it
      (``|k|`` up to ``0.5 sqrt(2)``) join the last band, so the bands partition
      every non-DC coefficient and band powers sum to 1.
    ordering: distance from DC, ``"euclidean"`` or ``"manhattan"``.
  """
  num_bands: int = 8
  spacing: str = "linear"
  include_dc: bool = False
  f_min: float | None = None
  f_max: float = 0.5
  ordering: str = "euclidean"

  def __post_init__(self):
    if int(self.num_bands) < 1:
      raise ValueError(f"num_bands must be >= 1, got {self.num_bands}.")
    if self.spacing not in SPACINGS:
      raise ValueError(f"spacing={self.spacing!r} is not one of {SPACINGS}.")
    if self.ordering not in ORDERINGS:
      raise ValueError(f"ordering={self.ordering!r} is not one of {ORDERINGS}.")
    if self.f_min is not None and not 0 <= self.f_min < self.f_max:
      raise ValueError(f"need 0 <= f_min < f_max, got f_min={self.f_min}, f_max={self.f_max}.")
    if self.spacing == "log" and self.f_min is not None and self.f_min <= 0:
      raise ValueError(f"log-spaced bands need f_min > 0, got {self.f_min}.")

  def edges(self, height: int, width: int) -> np.ndarray:
    """Band edges ``[B + 1]`` in cycles per pixel."""
    lo = self.f_min
    if lo is None:
      lo = 0.0 if (self.include_dc and self.spacing == "linear") else 1.0 / max(height, width)
    if self.spacing == "linear":
      return np.linspace(lo, self.f_max, self.num_bands + 1)
    return np.geomspace(lo, self.f_max, self.num_bands + 1)

  def masks(self, height: int, width: int) -> np.ndarray:
    """0/1 band masks ``[B, H, Wr]`` (float); see :func:`band_masks`."""
    return band_masks(height, width, self)


@functools.lru_cache(maxsize=64)
def _band_masks_cached(height: int, width: int, spec: BandSpec) -> np.ndarray:
  _check_size(height, width)
  radius = radial_frequency(height, width, spec.ordering)
  edges = spec.edges(height, width)
  index = np.clip(np.searchsorted(edges, radius, side="right") - 1, 0, spec.num_bands - 1)
  masks = (index[None] == np.arange(spec.num_bands)[:, None, None]).astype(np.float64)
  if not spec.include_dc:
    masks[:, 0, 0] = 0.0
  empty = np.nonzero((masks * rfft_multiplicity(height, width)).sum(axis=(1, 2)) == 0)[0]
  if empty.size:
    raise ValueError(
        f"bands {empty.tolist()} of {spec} hold no frequency of a {height}x{width} grid;"
        " use fewer bands or other edges.")
  masks.setflags(write=False)
  return masks


def band_masks(height: int, width: int, spec: BandSpec | None = None,
               **kwargs) -> np.ndarray:
  """0/1 band masks ``[B, H, Wr]``: coefficient ``k`` is in band ``b`` when
  ``edges[b] <= |k| < edges[b + 1]`` (see :class:`BandSpec` for the ends).

  Pass a :class:`BandSpec` or its fields as keyword arguments.
  """
  spec = spec if spec is not None else BandSpec(**kwargs)
  return _band_masks_cached(int(height), int(width), spec)


def band_sizes(height: int, width: int, spec: BandSpec) -> np.ndarray:
  """Number of full-grid coefficients ``|B_b|`` in each band, ``[B]``."""
  return (band_masks(height, width, spec) * rfft_multiplicity(height, width)).sum(axis=(1, 2))


def image_band_powers(images: jax.Array, num_bands: int = 8, spec: BandSpec | None = None,
                      **kwargs) -> jax.Array:
  """Per-image band power fractions ``pi_{i,b}``, ``[B_images, num_bands]``.

  ``pi_{i,b} = sum_{k in b} P_i(k) / sum_{k in any band} P_i(k)``, each sum over the
  full grid (interior rfft columns counted twice), channel-mean power. With DC
  excluded (the default) the mean of the image does not matter.

  An image with no power in any band (a constant image, DC excluded) has no band
  distribution: concrete input raises a ValueError naming it; inside ``jit`` its row
  is NaN.
  """
  spec = spec if spec is not None else BandSpec(num_bands=num_bands, **kwargs)
  power = power_spectrum(images)
  height, width = images.shape[1:3]
  weights = band_masks(height, width, spec) * rfft_multiplicity(height, width)
  per_band = jnp.einsum("nhw,bhw->nb", power, jnp.asarray(weights, power.dtype))
  total = jnp.sum(per_band, axis=-1, keepdims=True)
  if not isinstance(total, jax.core.Tracer):
    empty = np.nonzero(np.asarray(total)[:, 0] <= 0)[0]
    if empty.size:
      raise ValueError(f"image {int(empty[0])} (of {empty.size} such) has no power in any band"
                       f" of {spec}: a constant image has no band-power distribution.")
  return per_band / jnp.where(total > 0, total, jnp.nan)


def band_powers(images: jax.Array, num_bands: int = 8, spec: BandSpec | None = None,
                **kwargs) -> jax.Array:
  """Dataset band powers ``pi_b = mean_i pi_{i,b}``, ``[num_bands]``, summing to 1.

  Args:
    images: ``[B, H, W, C]``.
    num_bands: number of radial bands (ignored when ``spec`` is given).
    spec: a :class:`BandSpec`; or pass its fields (spacing, include_dc, f_min, f_max,
      ordering) as keyword arguments.
  """
  return jnp.mean(image_band_powers(images, num_bands, spec, **kwargs), axis=0)


def band_average(spectrum: jax.Array, spec: BandSpec, width: int | None = None) -> jax.Array:
  """Mean of a ``[..., H, Wr]`` grid array inside each band, ``[..., B]``."""
  height, cols = spectrum.shape[-2:]
  width = infer_width(height, cols, width)
  weights = band_masks(height, width, spec) * rfft_multiplicity(height, width)
  weights = weights / weights.sum(axis=(1, 2), keepdims=True)
  return jnp.einsum("...hw,bhw->...b", spectrum, jnp.asarray(weights, spectrum.dtype))


def profile_to_grid(freqs, profile, height: int, width: int,
                    ordering: str = "euclidean") -> np.ndarray:
  """Maps a radial profile back onto the 2-D rfft grid, ``[H, Wr]`` (NumPy).

  Linear interpolation of ``log P`` in ``|k|`` between bin centres, constant beyond
  the ends. DC takes the profile's DC value.
  """
  freqs = np.asarray(freqs, np.float64)
  profile = np.asarray(profile, np.float64)
  if np.any(profile <= 0) or not np.all(np.isfinite(profile)):
    raise ValueError("profile must be positive and finite to map onto the grid.")
  radius = radial_frequency(height, width, ordering)
  out = np.exp(np.interp(radius, freqs, np.log(profile)))
  return out


def running_average_by_frequency(grid_values, ordering: str = "manhattan",
                                 width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Running average of a per-frequency quantity with frequencies sorted low to high.

  This is the draft's figure 2 (signal variance sorted by distance from DC).
  Args:
    grid_values: ``[H, Wr]`` (e.g. per-frequency signal variance).
  Returns:
    ``(sorted_freqs [n], running_mean [n])`` over the ``n = H * W`` full-grid
    coefficients (interior rfft columns repeated for their mirror images).
  """
  values = np.asarray(grid_values, np.float64)
  height, cols = values.shape
  width = infer_width(height, cols, width)
  radius = radial_frequency(height, width, ordering)
  mult = rfft_multiplicity(height, width).astype(np.int64)
  r = np.repeat(radius.ravel(), mult.ravel())
  v = np.repeat(values.ravel(), mult.ravel())
  order = np.argsort(r, kind="stable")
  return r[order], np.cumsum(v[order]) / np.arange(1, v.size + 1)


# ----------------------------------------------------------------------------------
# Streaming dataset statistics
# ----------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("spec",))
def _batch_sums(images: jax.Array, spec: BandSpec):
  """Sums over one batch: power ``[H, Wr, C]``, coefficients (complex) ``[H, Wr, C]``,
  per-image band fractions ``[B_bands]``."""
  images = images.astype(jnp.float32)
  coeffs = rfft2(images)
  power = jnp.real(coeffs) ** 2 + jnp.imag(coeffs) ** 2
  # an image with no power outside DC (constant) has no band distribution (NaN row):
  # it adds zeros here, as it did before that became NaN
  fractions = jnp.nan_to_num(image_band_powers(images, spec=spec), nan=0.0)
  return jnp.sum(power, axis=0), jnp.sum(coeffs, axis=0), jnp.sum(fractions, axis=0)


class DatasetSpectrum(NamedTuple):
  """Finalised spectral statistics of a dataset (NumPy, float64).

  psd: ``[H, Wr]`` mean per-image power, channel mean (``Pbar``).
  psd_channels: ``[H, Wr, C]``.
  variance: ``[H, Wr]`` per-frequency signal variance ``Var_i[F x_i(k)]``, channel
    mean (equals ``psd`` except at DC, which loses the squared mean).
  band_powers: ``[B]`` mean per-image band fractions ``pi_b`` for ``band_spec``.
  band_spec: the :class:`BandSpec` used.
  count: number of images.
  width: image width.
  """
  psd: np.ndarray
  psd_channels: np.ndarray
  variance: np.ndarray
  band_powers: np.ndarray
  band_spec: BandSpec
  count: int
  width: int

  def radial_profile(self, ordering: str = "euclidean") -> RadialProfile:
    f, p = radial_profile(jnp.asarray(self.psd), ordering, self.width)
    return RadialProfile(np.asarray(f, np.float64), np.asarray(p, np.float64))

  def fit(self, f_lo: float | None = None, f_hi: float = 0.5) -> PowerLawFit:
    freqs, profile = self.radial_profile()
    res = fit_power_law(freqs, profile, f_lo, f_hi)
    return res._replace(alpha=float(res.alpha), amplitude=float(res.amplitude),
                        r2=float(res.r2))

  def to_json(self) -> dict:
    """A JSON-serialisable dict (arrays as nested lists)."""
    return {
        "psd_channels": self.psd_channels.tolist(),
        "variance": self.variance.tolist(),
        "band_powers": self.band_powers.tolist(),
        "band_spec": dataclasses.asdict(self.band_spec),
        "count": int(self.count),
        "width": int(self.width),
    }

  @classmethod
  def from_json(cls, data: dict) -> "DatasetSpectrum":
    psd_channels = np.asarray(data["psd_channels"], np.float64)
    return cls(psd=psd_channels.mean(axis=-1), psd_channels=psd_channels,
               variance=np.asarray(data["variance"], np.float64),
               band_powers=np.asarray(data["band_powers"], np.float64),
               band_spec=BandSpec(**data["band_spec"]), count=int(data["count"]),
               width=int(data["width"]))


class SpectrumAccumulator:
  """Streams a dataset batch by batch and accumulates its spectral statistics.

  The per-batch work is one jitted call; sums are kept on the host in float64, so a
  dataset never has to fit in memory and the accumulation is exact to float64 over
  any number of batches. Accumulators merge by addition (:meth:`merge`), across
  workers or hosts (:meth:`allgather` under ``jax.distributed``).

  Example::

    acc = SpectrumAccumulator(BandSpec(num_bands=8))
    for batch in batches:          # [B, H, W, C] floats
      acc.update(batch)
    stats = acc.finalize()         # DatasetSpectrum
  """

  def __init__(self, band_spec: BandSpec | None = None):
    self.band_spec = band_spec if band_spec is not None else BandSpec()
    self.count = 0
    self.shape: tuple[int, int, int] | None = None
    self.power_sum = self.coeff_sum = self.fraction_sum = None

  def update(self, images) -> "SpectrumAccumulator":
    """Adds a batch ``[B, H, W, C]`` (any real dtype; not rescaled)."""
    check_images(images)
    shape = tuple(int(s) for s in images.shape[1:])
    if self.shape is None:
      self.shape = shape
    elif shape != self.shape:
      raise ValueError(f"batch of images {shape} does not match earlier ones {self.shape}.")
    power, coeffs, fractions = jax.device_get(_batch_sums(jnp.asarray(images), self.band_spec))
    power, coeffs, fractions = (np.asarray(power, np.float64),
                                np.asarray(coeffs, np.complex128),
                                np.asarray(fractions, np.float64))
    if self.power_sum is None:
      self.power_sum, self.coeff_sum, self.fraction_sum = power, coeffs, fractions
    else:
      self.power_sum = self.power_sum + power
      self.coeff_sum = self.coeff_sum + coeffs
      self.fraction_sum = self.fraction_sum + fractions
    self.count += int(images.shape[0])
    return self

  def merge(self, other: "SpectrumAccumulator") -> "SpectrumAccumulator":
    """Adds another accumulator's sums (same band spec and image shape)."""
    if other.count == 0:
      return self
    if self.count == 0:
      self.__dict__.update({k: v for k, v in other.__dict__.items()})
      return self
    if other.band_spec != self.band_spec or other.shape != self.shape:
      raise ValueError("cannot merge accumulators of different band specs or image shapes.")
    self.power_sum = self.power_sum + other.power_sum
    self.coeff_sum = self.coeff_sum + other.coeff_sum
    self.fraction_sum = self.fraction_sum + other.fraction_sum
    self.count += other.count
    return self

  def state(self) -> dict:
    """The raw sums as a dict of NumPy arrays (for checkpoints or transport)."""
    return {"count": np.asarray(self.count), "power_sum": self.power_sum,
            "coeff_sum": self.coeff_sum, "fraction_sum": self.fraction_sum}

  def allgather(self) -> "SpectrumAccumulator":
    """Sums the accumulators of all JAX processes (every process gets the total)."""
    if jax.process_count() == 1:
      return self
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    if self.count == 0:
      raise ValueError("every process must add at least one batch before allgather().")
    gathered = multihost_utils.process_allgather(
        {"count": np.asarray([self.count], np.float64),
         "power_sum": self.power_sum,
         "coeff_re": self.coeff_sum.real, "coeff_im": self.coeff_sum.imag,
         "fraction_sum": self.fraction_sum})
    self.count = int(np.sum(gathered["count"]))
    self.power_sum = np.sum(np.asarray(gathered["power_sum"], np.float64), axis=0)
    self.coeff_sum = (np.sum(np.asarray(gathered["coeff_re"], np.float64), axis=0)
                      + 1j * np.sum(np.asarray(gathered["coeff_im"], np.float64), axis=0))
    self.fraction_sum = np.sum(np.asarray(gathered["fraction_sum"], np.float64), axis=0)
    return self

  def finalize(self) -> DatasetSpectrum:
    if self.count < 2:
      raise ValueError(f"need at least 2 images for spectral statistics, got {self.count}.")
    n = float(self.count)
    psd_channels = self.power_sum / n
    mean_coeff = self.coeff_sum / n
    variance = (psd_channels - np.abs(mean_coeff) ** 2) * n / (n - 1)
    return DatasetSpectrum(
        psd=psd_channels.mean(axis=-1), psd_channels=psd_channels,
        variance=np.maximum(variance, 0.0).mean(axis=-1),
        band_powers=self.fraction_sum / n, band_spec=self.band_spec, count=self.count,
        width=self.shape[1])


def accumulate_spectrum(batches, band_spec: BandSpec | None = None) -> DatasetSpectrum:
  """Streams an iterable of ``[B, H, W, C]`` batches into a :class:`DatasetSpectrum`
  (no files, no cache: the cached spectrum of a dataset config is
  :func:`fans_jax.data.dataset_spectrum`)."""
  acc = SpectrumAccumulator(band_spec)
  for batch in batches:
    acc.update(batch)
  return acc.finalize()


def save_dataset_spectrum(path, stats: DatasetSpectrum, extra: dict | None = None) -> None:
  """Writes ``stats`` (and any extra JSON fields) to ``path``."""
  data = stats.to_json()
  data.update(extra or {})
  with open(path, "w") as f:
    json.dump(data, f)


def load_dataset_spectrum(path) -> DatasetSpectrum:
  with open(path) as f:
    return DatasetSpectrum.from_json(json.load(f))


def power_law_grid(height: int, width: int, alpha: float, dc: str = "nearest") -> np.ndarray:
  """The exact power law ``|k|^-alpha`` on the rfft grid, ``[H, Wr]`` (NumPy).

  ``dc``: value at DC, ``"nearest"`` (that of the lowest non-DC frequency) or
  ``"zero"``.
  """
  radius = radial_frequency(height, width)
  safe = np.where(radius > 0, radius, 1.0)
  grid = safe ** (-float(alpha))
  if dc == "nearest":
    grid[0, 0] = (1.0 / max(height, width)) ** (-float(alpha))
  elif dc == "zero":
    grid[0, 0] = 0.0
  else:
    raise ValueError(f"dc={dc!r} is not 'nearest' or 'zero'.")
  return grid


def band_decompose(images, spec: BandSpec) -> np.ndarray:
  """Splits images into band-pass components with the band masks on the rfft grid.

  Args:
    images: ``[N, H, W, C]`` float.
    spec: bands; with ``include_dc=True`` (and bands starting at 0) the masks
      partition the grid, so the components sum to the images exactly.
  Returns:
    ``[B, N, H, W, C]`` float32.
  """
  x = jnp.asarray(np.asarray(images, np.float32))
  height, width = x.shape[1:3]
  masks = jnp.asarray(band_masks(height, width, spec), jnp.float32)
  coeffs = rfft2(x)
  parts = [irfft2(coeffs * m[None, :, :, None], height, width) for m in masks]
  return np.asarray(jnp.stack(parts))


__all__ = [
    "BandSpec", "DatasetSpectrum", "PowerLawFit", "RadialProfile", "SpectrumAccumulator",
    "accumulate_spectrum", "band_average", "band_decompose", "band_masks", "band_powers",
    "band_sizes", "check_images", "fit_power_law", "frequency_grid", "grid_mean", "image_band_powers",
    "infer_width", "irfft2", "load_dataset_spectrum", "power_law_grid", "power_spectrum",
    "profile_to_grid", "radial_frequency", "radial_profile", "rfft2", "rfft_multiplicity",
    "rfft_width", "running_average_by_frequency", "save_dataset_spectrum",
]

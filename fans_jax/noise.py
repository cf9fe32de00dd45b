"""Coloured Gaussian noise with a prescribed power spectrum.

A noise spectrum ``S`` is a positive array on the rfft grid (``[H, Wr]``, or
``[H, Wr, C]`` for one spectrum per channel) with ``S(k) = S(-k)``. Coloured noise is

    eta = F^-1( sqrt(S) * F eps ),   eps ~ N(0, I),

with ``F`` the orthonormal 2-D DFT: exactly Gaussian, stationary, real, with
covariance ``F^-1 diag(S) F`` (its autocovariance is the inverse DFT of ``S``). It is
never re-standardised per sample. ``S = 1`` returns ``eps`` itself up to float
rounding. Schedules use mean-1 spectra (:func:`normalize_spectrum`) so that the total
noise power equals white noise's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fans_jax import spectra


def is_concrete(x) -> bool:
  """True when ``x`` holds values (not a tracer inside jit)."""
  return not isinstance(x, jax.core.Tracer)


def check_spectrum(spectrum, height: int, width: int, name: str = "spectrum",
                   rtol: float = 1e-5, channels: bool | None = None) -> None:
  """Raises a ValueError unless ``spectrum`` is a valid noise spectrum.

  Valid: shape ``[..., H, Wr]`` or ``[..., H, Wr, C]`` matching the image, finite,
  strictly positive, and symmetric ``S(k) = S(-k)`` on the self-conjugate rfft columns
  (column 0 and, for even ``W``, the Nyquist column), so that the noise is real with
  covariance exactly ``F^-1 diag(S) F``. Traced values are checked for shape only.
  ``channels``: True for a ``[H, Wr, C]`` layout, False for ``[..., H, Wr]``, None to
  infer it (``[..., H, Wr]`` first; pass it when ``H = W // 2 + 1 = C`` makes the
  layouts look alike).

  The image width cannot be recovered from the rfft grid (``W = 8`` and ``W = 9`` both
  give 5 columns); only the symmetry of the Nyquist column, required for even ``W``,
  can betray a wrong width.
  """
  shape = tuple(getattr(spectrum, "shape", ()))
  cols = spectra.rfft_width(width)
  grid_ok = len(shape) >= 2 and shape[-2:] == (height, cols) and channels is not True
  chan_ok = (len(shape) >= 3 and shape[-3:-1] == (height, cols) and channels is not False
             and not grid_ok)
  if not (grid_ok or chan_ok):
    raise ValueError(
        f"{name} must live on the rfft grid [H, W//2+1] = [{height}, {cols}] (optionally"
        f" with a trailing channel axis) for {height}x{width} images; got shape {shape}.")
  if not is_concrete(spectrum):
    return
  s = np.asarray(spectrum, np.float64)
  if not np.all(np.isfinite(s)):
    bad = np.argwhere(~np.isfinite(s))[0].tolist()
    raise ValueError(f"{name} must be finite; index {bad} holds {s[tuple(bad)]}.")
  if np.any(s <= 0):
    bad = np.argwhere(s <= 0)[0].tolist()
    raise ValueError(f"{name} must be strictly positive; index {bad} holds {s[tuple(bad)]:.4g}.")
  grid = s if grid_ok else np.moveaxis(s, -1, 0)
  flip = np.roll(grid[..., ::-1, :], 1, axis=-2)  # S(-u) for every u
  self_conj = [0] + ([cols - 1] if width % 2 == 0 else [])
  for col in self_conj:
    a, b = grid[..., :, col], flip[..., :, col]
    if not np.allclose(a, b, rtol=rtol, atol=0):
      row = int(np.argmax(np.abs(a - b).reshape(-1, height).max(axis=0)))
      raise ValueError(
          f"{name} is not symmetric, S(k) != S(-k), in rfft column {col} (row {row}); the"
          " noise would not have the covariance F^-1 diag(S) F. Build it from |fu|, |fv|"
          " (e.g. spectra.radial_frequency) or call noise.symmetrize().")


def symmetrize(spectrum: np.ndarray, width: int) -> np.ndarray:
  """Averages ``S(k)`` and ``S(-k)`` on the self-conjugate columns (NumPy)."""
  s = np.array(spectrum, np.float64, copy=True)
  chan = s.ndim >= 3 and s.shape[-2] != spectra.rfft_width(width)
  grid = np.moveaxis(s, -1, 0) if chan else s
  cols = [0] + ([grid.shape[-1] - 1] if width % 2 == 0 else [])
  for col in cols:
    column = grid[..., :, col]
    grid[..., :, col] = 0.5 * (column + np.roll(column[..., ::-1], 1, axis=-1))
  return np.moveaxis(grid, 0, -1) if chan else grid


def normalize_spectrum(spectrum, width: int):
  """Rescales ``[..., H, Wr]`` so that its mean over the full ``H x W`` grid is 1.

  ``width`` is the image width ``W`` (not the rfft width): it decides whether the last
  rfft column is counted once (even ``W``, the Nyquist column) or twice. Concrete
  spectra are checked with :func:`check_spectrum` first (shape, positivity, symmetry).
  """
  shape = tuple(np.shape(spectrum))
  if len(shape) < 2:
    raise ValueError(f"spectrum must be [..., H, W//2+1]; got shape {shape}.")
  if shape[-1] != spectra.rfft_width(width):
    raise ValueError(f"spectrum has {shape[-1]} rfft columns, but width={width} gives"
                     f" {spectra.rfft_width(width)}: pass the image width W.")
  check_spectrum(spectrum, shape[-2], width, channels=False)
  return spectrum / spectra.grid_mean(spectrum, width)[..., None, None]


def apply_sqrt_spectrum(x: jax.Array, sqrt_spectrum: jax.Array) -> jax.Array:
  """The operator ``A = F^-1 diag(sqrt S) F`` applied to images.

  Args:
    x: ``[B, H, W, C]`` real images.
    sqrt_spectrum: ``sqrt(S)`` broadcastable to ``[B, H, Wr, C]``: ``[H, Wr, 1]``,
      ``[H, Wr, C]`` or ``[B, H, Wr, 1]`` (one spectrum per image). Any factor works
      here, e.g. ``1 / sqrt(S)`` gives ``A^-1``.
  Returns:
    ``[B, H, W, C]`` in the dtype of ``x``.
  """
  height, width = x.shape[1:3]
  coeffs = spectra.rfft2(x) * sqrt_spectrum.astype(x.dtype)
  return spectra.irfft2(coeffs, height, width).astype(x.dtype)


def _as_channel_grid(spectrum: jax.Array, height: int, cols: int) -> jax.Array:
  """``[H, Wr]`` -> ``[H, Wr, 1]``; ``[H, Wr, C]`` unchanged (decided by ``ndim``, so
  that ``H = W // 2 + 1 = C`` is not ambiguous)."""
  if spectrum.ndim == 2:
    return spectrum[..., None]
  if spectrum.ndim == 3 and spectrum.shape[:2] == (height, cols):
    return spectrum
  raise ValueError(f"spectrum must be [H, Wr] = [{height}, {cols}] or [H, Wr, C]; got shape"
                   f" {tuple(spectrum.shape)}.")


def colored_noise(key: jax.Array, shape, spectrum, dtype=jnp.float32) -> jax.Array:
  """Samples Gaussian noise with covariance ``F^-1 diag(S) F``.

  Args:
    key: a JAX PRNG key.
    shape: ``(B, H, W, C)``.
    spectrum: ``S`` on the rfft grid, ``[H, Wr]`` (shared by the channels) or
      ``[H, Wr, C]``; positive, symmetric. Used as given (normalise it first with
      :func:`normalize_spectrum` for unit mean power). Concrete spectra are checked;
      a traced (inside ``jit``) spectrum that is not symmetric on the self-conjugate
      columns is *not* caught, and the real part of the irfft then gives those
      frequencies the variance ``((sqrt S(k) + sqrt S(-k)) / 2)^2``, not ``S(k)``.
    dtype: float dtype of the result.
  Returns:
    ``[B, H, W, C]`` real noise; per coefficient ``E|F eta(k)|^2 = S(k)``.
  """
  if len(shape) != 4:
    raise ValueError(f"shape must be (B, H, W, C), got {tuple(shape)}.")
  height, width = int(shape[1]), int(shape[2])
  ndim = len(np.shape(spectrum))
  if ndim == 3 and np.shape(spectrum)[-1] != int(shape[3]):
    raise ValueError(f"a per-channel spectrum [H, Wr, C] has C = {np.shape(spectrum)[-1]}, but"
                     f" shape has {shape[3]} channels.")
  check_spectrum(spectrum, height, width, channels=ndim == 3)
  eps = jax.random.normal(key, shape, dtype)
  s = _as_channel_grid(jnp.asarray(spectrum), height, spectra.rfft_width(width))
  return apply_sqrt_spectrum(eps, jnp.sqrt(s))


def fourier_white_noise(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """White noise drawn directly on the rfft grid: distributed exactly as
  ``spectra.rfft2(N(0, I))`` for ``shape = (B, H, W, C)``, without the FFT.

  Interior columns ``0 < j < W/2`` hold iid circular complex ``CN(0, 1)``; the
  self-conjugate columns (0 and, for even ``W``, ``W/2``) are the orthonormal 1-D FFT
  over ``H`` of real ``N(0, 1)`` vectors, so they have the Hermitian symmetry
  ``Z(-u) = conj Z(u)`` of a real image's transform.
  Returns:
    ``[B, H, W // 2 + 1, C]`` complex.
  """
  b, h, w, c = (int(s) for s in shape)
  cols = spectra.rfft_width(w)
  k_interior, k_columns = jax.random.split(key)
  re_im = jax.random.normal(k_interior, (2, b, h, cols, c), dtype) * np.sqrt(0.5).astype(dtype)
  z = jax.lax.complex(re_im[0], re_im[1])
  special = [0] + ([cols - 1] if w % 2 == 0 else [])
  real_cols = jax.random.normal(k_columns, (b, h, len(special), c), dtype)
  hermitian = jnp.fft.fft(real_cols, axis=1, norm="ortho").astype(z.dtype)
  for i, col in enumerate(special):
    z = z.at[:, :, col].set(hermitian[:, :, i])
  return z


def white_noise(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """``N(0, I)`` noise, the ``S = 1`` special case."""
  return jax.random.normal(key, shape, dtype)


def spatial_autocovariance(spectrum, width: int) -> np.ndarray:
  """The stationary autocovariance ``C(dx) = F^-1 S`` implied by a spectrum (NumPy).

  Args:
    spectrum: ``[H, Wr]``.
  Returns:
    ``[H, W]``: ``C[dy, dx] = E[eta(y, x) eta(y + dy, x + dx)]`` (periodic).
  """
  s = np.asarray(spectrum, np.float64)
  # With orthonormal F, Cov = F^-1 diag(S) F, so C(d) = (1 / HW) sum_k S(k) e^{2 pi i k.d}:
  # NumPy's backward-normalised inverse transform of S.
  return np.fft.irfft2(s, s=(s.shape[0], width))


__all__ = ["apply_sqrt_spectrum", "check_spectrum", "colored_noise", "fourier_white_noise",
           "normalize_spectrum",
           "spatial_autocovariance", "symmetrize", "white_noise"]

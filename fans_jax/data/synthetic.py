"""Synthetic datasets with known spectra, generated on the fly (method doc §8-§9).

Every image is a pure function of ``(seed, index)`` and the options, so any image can
be produced alone, at any resolution and channel count, on any process.

PLTB (power-law texture bank)
  1. White Gaussian noise ``e ~ N(0, I)`` of shape ``[H, W]`` per channel, its
     orthonormal ``rfft2`` ``Z = F e`` (a complex Gaussian field on the half spectrum
     with the Hermitian symmetry a real field needs: drawing the real and imaginary
     parts of the half spectrum independently instead would halve the power of the
     self-conjugate columns ``fv = 0`` and ``fv = 1/2``).
  2. Amplitude ``A(k) = (|k| + eps)^(-alpha/2)``, ``|k|`` in cycles per pixel; with
     ``eps = 0`` (default) ``A(0) = 0``: DC carries no power (the normalisation below
     removes the mean anyway).
  3. ``x = F^-1(A Z)``: exactly Gaussian with ``E|F x(k)|^2 = A(k)^2``.
  4. Brightness and contrast: ``normalize='sample'`` (default, as published) sets each
     image and channel to spatial mean 0 and (population) variance 1;
     ``normalize='dataset'`` divides by the expected standard deviation
     ``sqrt(mean_k A(k)^2)`` instead, which keeps the field exactly Gaussian with the
     known spectrum :func:`pltb_spectrum`. Measured at 64x64 (512 images, 1 channel),
     fitted alpha for alpha = 1, 2, 3: 1.006, 2.009, 3.011 (per sample), 1.008, 2.019,
     3.034 ('dataset'); per-sample standardisation makes the field non-Gaussian
     (images with much low-frequency power are scaled down more).

EGM (edges-gratings mixture), each channel (see ``channel_mode``):
  * 1-4 sinusoidal gratings ``a cos(2 pi f (x cos t + y sin t) + p)``,
    ``f ~ U(0.04, 0.22)`` cycles/px, ``t ~ U(0, pi)``, ``a ~ U(0.5, 1)``, ``p ~ U(0, 2 pi)``;
  * with probability 1/2 an axis-aligned checkerboard, cell ``c`` in {2, ..., 8} px
    (fundamental ``1/(2c)`` cycles/px along each axis, odd harmonics above), random
    offset, amplitude ``U(0.5, 1)``, random sign;
  * with probability 1/2, 1-3 straight line segments, 1 px wide, length
    ``U(0.25, 0.75) * size``, random centre and orientation, intensity ``±U(1, 2)``;
  summed, then each image and channel normalised to mean 0 and variance 1.
  ``egm_components`` keeps a subset (e.g. 'gratings' alone for tests); without
  gratings, at least one of the remaining components is always drawn. The fitted
  slope is not a good summary of EGM (its PSD has peaks): 2.00 at 64x64 (R^2 0.58),
  2.28 at 32x32 (R^2 0.76), 2000 images; the blog's 0.989 came from an unpublished
  mixture at 512x512.

Channels: ``channel_mode='independent'`` (default) draws each channel independently
(the channel-mean spectrum is the single-channel one); ``'replicate'`` copies one draw
to every channel (gray images in C channels).

Memory: a set of at most ``synthetic_cache_mb`` (default 2048 MiB of uint8) keeps
each image once generated, so only the first epoch pays for generation.

uint8: ``u = clip(floor(127.5 (1 + x / clip_sigma) + 0.5), 0, 255)`` with
``clip_sigma = 3`` by default: model inputs ``u / 127.5 - 1`` are ``x / clip_sigma``
quantised in steps of ``2 / 255`` (``0.024 sigma``); 0.27% of the pixels of a Gaussian
field are clipped. Measured at 64x64 (512 images): the uint8 images give alpha 1.006,
2.008, 3.010 for alpha = 1, 2, 3, within 0.001 of the float fields they come from.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import ml_collections
import numpy as np
import scipy.fft

from fans_jax import spectra
from fans_jax.data import base
from fans_jax.data import registry

NORMALIZATIONS = ("sample", "dataset")
CHANNEL_MODES = ("independent", "replicate")
EGM_COMPONENTS = ("gratings", "checkerboards", "lines")
EGM_GRATING_FREQS = (0.04, 0.22)  # cycles per pixel
EGM_CHECKER_CELLS = (2, 8)  # pixels, inclusive
_TAGS = {"pltb": 1, "egm": 2}


def sample_rng(dataset: str, seed: int, index: int) -> np.random.Generator:
  """The generator of image ``index`` of a synthetic set: from ``(seed, index)``."""
  return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), _TAGS[dataset]]))


def to_uint8(fields: np.ndarray, clip_sigma: float) -> np.ndarray:
  """Unit-variance floats -> uint8: ``[-clip_sigma, clip_sigma]`` onto [0, 255]."""
  u = np.floor(127.5 * (1.0 + fields / clip_sigma) + 0.5)
  return np.clip(u, 0, 255).astype(np.uint8)


def _standardize(x: np.ndarray) -> np.ndarray:
  """Each image and channel of ``[B, H, W, C]`` to mean 0, population variance 1."""
  x = x - x.mean(axis=(1, 2), keepdims=True)
  std = x.std(axis=(1, 2), keepdims=True)
  return x / np.where(std > 0, std, 1.0)


# ----------------------------------------------------------------------------------
# PLTB
# ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=32)
def pltb_amplitude(height: int, width: int, alpha: float, eps: float = 0.0) -> np.ndarray:
  """``A(k) = (|k| + eps)^(-alpha/2)`` on the rfft grid ``[H, Wr]``; ``A(0) = 0`` if
  ``eps = 0``."""
  if eps < 0:
    raise ValueError(f"pltb_eps must be >= 0, got {eps}.")
  radius = spectra.radial_frequency(height, width)
  safe = np.where(radius + eps > 0, radius + eps, 1.0)
  amp = safe ** (-float(alpha) / 2)
  if eps == 0:
    amp[0, 0] = 0.0
  amp.setflags(write=False)
  return amp


def pltb_spectrum(size: int, alpha: float, eps: float = 0.0,
                  width: int | None = None) -> np.ndarray:
  """Expected power spectrum of a PLTB field scaled to unit pixel variance, ``[H, Wr]``.

  ``E|F x(k)|^2 = A(k)^2 / mean_k A(k)^2`` (mean over the full grid), exact for
  ``normalize='dataset'`` fields; the model input ``x / clip_sigma`` has this divided
  by ``clip_sigma^2``. Its radial profile follows ``f^-alpha`` (with ``eps = 0``).
  """
  width = size if width is None else width
  power = pltb_amplitude(int(size), int(width), float(alpha), float(eps)) ** 2
  return power / spectra.grid_mean(power, width)


def pltb_fields(seed: int, indices: Sequence[int], size: int, channels: int,
                alpha: float = 1.0, eps: float = 0.0, normalize: str = "sample",
                channel_mode: str = "independent") -> np.ndarray:
  """PLTB fields ``float32 [B, size, size, channels]`` of unit variance (module doc).

  Computed in float32 with ``scipy.fft`` (2-3x faster than NumPy's float64 FFTs; the
  images end up as uint8 anyway).
  """
  draws = channels if channel_mode == "independent" else 1
  white = np.empty((len(indices), draws, size, size), np.float32)
  for j, i in enumerate(indices):
    white[j] = sample_rng("pltb", seed, i).standard_normal((draws, size, size), np.float32)
  amp = pltb_amplitude(size, size, float(alpha), float(eps)).astype(np.float32)
  x = scipy.fft.irfft2(scipy.fft.rfft2(white, norm="ortho") * amp, s=(size, size),
                       norm="ortho")
  x = np.moveaxis(x, 1, -1)
  if normalize == "sample":
    x = _standardize(x)
  else:
    x = x / np.float32(np.sqrt(spectra.grid_mean(amp.astype(np.float64)**2, size)))
  return np.repeat(x, channels, axis=-1) if draws == 1 else np.ascontiguousarray(x)


# ----------------------------------------------------------------------------------
# EGM
# ----------------------------------------------------------------------------------


def parse_components(components: str) -> tuple[str, ...]:
  names = tuple(c.strip() for c in str(components).split(",") if c.strip())
  bad = [c for c in names if c not in EGM_COMPONENTS]
  if not names or bad:
    raise ValueError(f"egm_components={components!r} must be a comma-separated non-empty"
                     f" subset of {EGM_COMPONENTS}.")
  return names


def egm_params(rng: np.random.Generator, size: int,
               components: Sequence[str] = EGM_COMPONENTS) -> dict[str, Any]:
  """Draws the parameters of one EGM channel (see the module docstring).

  Returns:
    ``{'gratings': [(f, theta, amplitude, phase)], 'checkerboard': (cell, off_y,
    off_x, amplitude) or None, 'lines': [(y0, x0, y1, x1, intensity)]}``; frequencies
    in cycles per pixel, positions in pixels.
  """
  comps = set(components)
  params = {"gratings": [], "checkerboard": None, "lines": []}
  if "gratings" in comps:
    for _ in range(int(rng.integers(1, 5))):
      params["gratings"].append((float(rng.uniform(*EGM_GRATING_FREQS)),
                                 float(rng.uniform(0, np.pi)), float(rng.uniform(0.5, 1.0)),
                                 float(rng.uniform(0, 2 * np.pi))))
  alone = comps == {"checkerboards"} or comps == {"lines"}
  want_checker = "checkerboards" in comps and (rng.uniform() < 0.5 or alone)
  want_lines = "lines" in comps and (rng.uniform() < 0.5 or alone)
  if comps == {"checkerboards", "lines"} and not (want_checker or want_lines):
    want_checker = True
  if want_checker:
    cell = int(rng.integers(EGM_CHECKER_CELLS[0], EGM_CHECKER_CELLS[1] + 1))
    params["checkerboard"] = (cell, int(rng.integers(0, 2 * cell)), int(rng.integers(0, 2 * cell)),
                              float(rng.uniform(0.5, 1.0) * rng.choice([-1.0, 1.0])))
  if want_lines:
    for _ in range(int(rng.integers(1, 4))):
      length = rng.uniform(0.25, 0.75) * size
      cy, cx = rng.uniform(0, size, 2)
      theta = rng.uniform(0, np.pi)
      dy, dx = 0.5 * length * np.sin(theta), 0.5 * length * np.cos(theta)
      params["lines"].append((float(cy - dy), float(cx - dx), float(cy + dy), float(cx + dx),
                              float(rng.uniform(1.0, 2.0) * rng.choice([-1.0, 1.0]))))
  return params


def render_egm(params: dict[str, Any], size: int) -> np.ndarray:
  """Renders :func:`egm_params` to ``float64 [size, size]`` (not normalised).

  Gratings and checkerboards are separable, so each is an outer product of two
  vectors: ``cos(a x + b y + p) = Re(e^{i(a x + p)} e^{i b y})`` and
  ``(-1)^(floor(x'/c) + floor(y'/c))`` = a product of two 1-D square waves.
  """
  coords = np.arange(size, dtype=np.float64)
  img = np.zeros((size, size))
  for f, theta, amp, phase in params["gratings"]:
    wx = np.exp(1j * (2 * np.pi * f * np.cos(theta) * coords + phase))
    wy = np.exp(1j * 2 * np.pi * f * np.sin(theta) * coords)
    img += amp * np.real(wy[:, None] * wx[None, :])
  if params["checkerboard"] is not None:
    cell, oy, ox, amp = params["checkerboard"]
    sy = 1.0 - 2.0 * (np.floor((coords + oy) / cell) % 2)
    sx = 1.0 - 2.0 * (np.floor((coords + ox) / cell) % 2)
    img += -amp * (sy[:, None] * sx[None, :])
  for y0, x0, y1, x1, value in params["lines"]:
    steps = int(2 * np.hypot(y1 - y0, x1 - x0)) + 2
    t = np.linspace(0, 1, steps)
    py = np.round(y0 + t * (y1 - y0)).astype(int)
    px = np.round(x0 + t * (x1 - x0)).astype(int)
    keep = (py >= 0) & (py < size) & (px >= 0) & (px < size)
    mask = np.zeros((size, size), bool)
    mask[py[keep], px[keep]] = True  # each pixel of the segment once
    img[mask] += value
  return img


def egm_image_params(seed: int, index: int, size: int, channels: int,
                     components: Sequence[str] = EGM_COMPONENTS,
                     channel_mode: str = "independent") -> list[dict[str, Any]]:
  """Parameters of every channel of EGM image ``index`` (one dict per drawn channel)."""
  rng = sample_rng("egm", seed, index)
  draws = channels if channel_mode == "independent" else 1
  return [egm_params(rng, size, components) for _ in range(draws)]


def egm_fields(seed: int, indices: Sequence[int], size: int, channels: int,
               components: Sequence[str] = EGM_COMPONENTS,
               channel_mode: str = "independent") -> np.ndarray:
  """EGM images ``float64 [B, size, size, channels]``, unit variance per channel."""
  out = np.zeros((len(indices), size, size, channels))
  for j, i in enumerate(indices):
    chans = [render_egm(p, size) for p in
             egm_image_params(seed, i, size, channels, components, channel_mode)]
    out[j] = np.stack(chans if len(chans) == channels else chans * channels, axis=-1)
  return _standardize(out)


# ----------------------------------------------------------------------------------
# Sources
# ----------------------------------------------------------------------------------


class SyntheticSource(base.ImageSource):
  """A synthetic set of ``cfg.num_examples`` images generated on demand."""

  def __init__(self, name: str, cfg: ml_collections.ConfigDict):
    self.name = name
    self.size, self.channels = int(cfg.image_size), int(cfg.channels)
    self.image_shape = (self.size, self.size, self.channels)
    self.num_examples, self.seed = int(cfg.num_examples), int(cfg.seed)
    self.clip_sigma = float(cfg.clip_sigma)
    self.channel_mode = cfg.channel_mode
    if self.num_examples < 1:
      raise ValueError(f"num_examples must be >= 1 for {name}, got {cfg.num_examples}.")
    if not self.clip_sigma > 0:
      raise ValueError(f"clip_sigma must be > 0, got {cfg.clip_sigma}.")
    if self.channel_mode not in CHANNEL_MODES:
      raise ValueError(f"channel_mode={cfg.channel_mode!r} is not one of {CHANNEL_MODES}.")
    if cfg.normalize not in NORMALIZATIONS:
      raise ValueError(f"normalize={cfg.normalize!r} is not one of {NORMALIZATIONS}.")
    self._options: dict[str, Any] = {}
    nbytes = self.num_examples * self.size * self.size * self.channels
    if nbytes <= float(cfg.synthetic_cache_mb) * 2**20:
      # Memo of generated images: zeros() reserves address space only; pages are
      # touched as images are generated, so memory grows with the images seen.
      self._memo = np.zeros((self.num_examples,) + self.image_shape, np.uint8)
      self._done = np.zeros(self.num_examples, bool)
    else:
      self._memo = self._done = None

  def __len__(self) -> int:
    return self.num_examples

  def float_batch(self, indices: Sequence[int]) -> np.ndarray:
    """The unit-variance fields before quantisation, ``float64 [B, H, W, C]``."""
    raise NotImplementedError

  def get_batch(self, indices: Sequence[int], epoch: int = 0) -> np.ndarray:
    """``uint8 [B, H, W, C]``; generated once and then served from memory when the
    set fits in ``synthetic_cache_mb`` (images are pure functions of their index, so
    two threads generating the same image concurrently write the same bytes)."""
    del epoch  # synthetic images do not change between epochs
    idx = self._check_indices(indices)
    if self._memo is None:
      return to_uint8(self.float_batch(idx), self.clip_sigma)
    missing = np.unique(idx[~self._done[idx]])
    if missing.size:
      self._memo[missing] = to_uint8(self.float_batch(missing), self.clip_sigma)
      self._done[missing] = True
    return self._memo[idx]

  def fingerprint(self) -> dict[str, Any]:
    return dict(name=self.name, image_size=self.size, channels=self.channels,
                num_examples=self.num_examples, seed=self.seed, clip_sigma=self.clip_sigma,
                channel_mode=self.channel_mode, **self._options)


class PLTBSource(SyntheticSource):
  """Power-law Gaussian fields, ``E P(f) ∝ f^-alpha`` (see the module docstring)."""

  def __init__(self, cfg: ml_collections.ConfigDict):
    super().__init__("pltb", cfg)
    self.alpha, self.eps, self.normalize = float(cfg.alpha), float(cfg.pltb_eps), cfg.normalize
    if self.eps < 0:
      raise ValueError(f"pltb_eps must be >= 0, got {cfg.pltb_eps}.")
    self._options = dict(alpha=self.alpha, pltb_eps=self.eps, normalize=self.normalize)

  def float_batch(self, indices: Sequence[int]) -> np.ndarray:
    return pltb_fields(self.seed, indices, self.size, self.channels, self.alpha, self.eps,
                       self.normalize, self.channel_mode)

  def spectrum(self) -> np.ndarray:
    """Expected PSD of the float fields (:func:`pltb_spectrum`), ``[H, Wr]``."""
    return pltb_spectrum(self.size, self.alpha, self.eps)


class EGMSource(SyntheticSource):
  """Edges, gratings and checkerboards (see the module docstring)."""

  def __init__(self, cfg: ml_collections.ConfigDict):
    super().__init__("egm", cfg)
    self.components = parse_components(cfg.egm_components)
    if cfg.normalize != "sample":
      raise ValueError(f"egm images are always normalised per sample; normalize="
                       f"{cfg.normalize!r} is only valid for pltb (use 'sample').")
    self._options = dict(egm_components=",".join(self.components))

  def float_batch(self, indices: Sequence[int]) -> np.ndarray:
    return egm_fields(self.seed, indices, self.size, self.channels, self.components,
                      self.channel_mode)

  def image_params(self, index: int) -> list[dict[str, Any]]:
    """The drawn parameters of image ``index`` (one dict per independent channel)."""
    return egm_image_params(self.seed, index, self.size, self.channels, self.components,
                            self.channel_mode)


@registry.register("pltb", "power-law Gaussian fields, P ∝ f^-alpha (synthetic)")
def _pltb(cfg):
  return PLTBSource(cfg)


@registry.register("egm", "edges, gratings and checkerboards (synthetic)")
def _egm(cfg):
  return EGMSource(cfg)

"""Noise schedules: a beta schedule times a (possibly time-varying) noise spectrum.

A :class:`Schedule` is a pytree of arrays precomputed once, in float64, then cast:

* ``betas``, ``alphas_cumprod``: ``[T]``; integer ``t`` in ``[0, T)`` indexes them,
  ``t = 0`` least noisy (as in diffusers and score_sde; Ho et al.'s ``t = 1``).
* ``spectrum``: ``[Ts, H, Wr]`` mean-1 noise spectra ``S_t`` on the rfft grid
  (``Ts = 1`` when the spectrum does not change with ``t``).
* ``post_coef_xt``, ``post_coef_x0``, ``post_std``: ``[T, H, Wr]`` per-frequency
  coefficients of the ancestral posterior ``q(x_{t-1} | x_t, x_0)`` (docs/method.md §5).
  For ``white`` they are ``[T, 1, 1]`` and the maths runs in pixel space, so it *is*
  textbook DDPM.

Every frequency ``k`` is an independent scalar diffusion with ``a_t = sqrt(abar_t)``
and ``sigma2_{t,k} = (1 - abar_t) S_t(k)``. With a time-varying spectrum the forward
chain exists only if ``logSNR_k(t) = log(abar_t / (1 - abar_t)) - log S_t(k)``
strictly decreases in ``t`` for every ``k``; :func:`make_schedule` checks this on the
whole grid and raises a ValueError naming the first offending ``t`` and frequency.

Spectrum families are registered by name with a frozen options dataclass
(:func:`register_spectrum`, :func:`family_options`): ``white``, ``matched``,
``annealed``, ``band_annealed``, ``blog`` (the published recipe) and ``blog_corrected``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from fans_jax import noise as noise_lib
from fans_jax import spectra

# ----------------------------------------------------------------------------------
# Beta schedules
# ----------------------------------------------------------------------------------

_BETA_SCHEDULES: dict[str, Callable[..., np.ndarray]] = {}


def register_beta_schedule(name: str):
  def wrap(fn):
    _BETA_SCHEDULES[name] = fn
    return fn
  return wrap


@register_beta_schedule("linear")
def linear_betas(num_timesteps: int, beta_start: float | None = None,
                 beta_end: float | None = None) -> np.ndarray:
  """Ho et al. (2020): linear from 1e-4 to 0.02 at T = 1000, scaled by 1000 / T
  for other T (Nichol & Dhariwal 2021). ``[T]`` float64."""
  scale = 1000.0 / num_timesteps
  start = 1e-4 * scale if beta_start is None else beta_start
  end = 0.02 * scale if beta_end is None else beta_end
  return np.linspace(start, end, num_timesteps, dtype=np.float64)


@register_beta_schedule("cosine")
def cosine_betas(num_timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
  """Nichol & Dhariwal (2021): ``abar(u) = cos^2((u + s) / (1 + s) pi / 2)``, betas
  clipped at ``max_beta``. ``[T]`` float64."""
  u = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
  f = np.cos((u + s) / (1 + s) * np.pi / 2) ** 2
  return np.minimum(1 - f[1:] / f[:-1], max_beta)


def beta_schedule_names() -> list[str]:
  return sorted(_BETA_SCHEDULES)


def make_betas(name: str, num_timesteps: int, **kwargs) -> np.ndarray:
  if name not in _BETA_SCHEDULES:
    raise ValueError(f"beta_schedule={name!r} is not one of {beta_schedule_names()}.")
  betas = _BETA_SCHEDULES[name](num_timesteps, **kwargs)
  if not (np.all(betas > 0) and np.all(betas < 1)):
    raise ValueError(
        f"betas must lie in (0, 1); {name} with T={num_timesteps} gave [{betas.min():.4g},"
        f" {betas.max():.4g}] (the linear schedule scales 1e-4..0.02 by 1000/T); use more"
        " steps, the cosine schedule, or beta_kwargs=dict(beta_end=...).")
  return betas


# ----------------------------------------------------------------------------------
# Spectrum families
# ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpectrumContext:
  """What a spectrum family may use.

  height, width: image size. num_timesteps: T.
  data_psd: ``[H, Wr]`` dataset PSD ``Pbar`` (channel mean), or None.
  data_band_powers: ``[B]`` dataset band powers ``pi_b``, or None.
  """
  height: int
  width: int
  num_timesteps: int
  data_psd: np.ndarray | None = None
  data_band_powers: np.ndarray | None = None

  @property
  def time(self) -> np.ndarray:
    """``u = t / (T - 1)`` in [0, 1], ``[T]``; 0 is the least noisy step."""
    return np.arange(self.num_timesteps, dtype=np.float64) / (self.num_timesteps - 1)

  def require_psd(self, family: str) -> np.ndarray:
    if self.data_psd is None:
      raise ValueError(
          f"noise family {family!r} needs the dataset spectrum: pass data_psd=[H, Wr]"
          " (spectra.DatasetSpectrum.psd, as written by launch/analyze_spectra.py).")
    return self.data_psd


@dataclasses.dataclass(frozen=True)
class SpectrumFamilyOutput:
  """spectrum: ``[Ts, H, Wr]`` positive (normalised afterwards). gaussian: False when
  the family post-processes the noise (per-sample standardisation)."""
  spectrum: np.ndarray
  gaussian: bool = True
  standardize: bool = False


@dataclasses.dataclass(frozen=True)
class FamilyOptions:
  """The options of a spectrum family: each family declares a frozen subclass (as
  models declare ``UNetConfig``), the one place its option names, types and defaults
  live. Configs, the run layer and reports read them from here."""

  def band_spec(self) -> spectra.BandSpec | None:
    """The bands whose dataset band powers ``pi_b`` the family reads (None: none)."""
    return None

  @classmethod
  def optional_fields(cls) -> tuple[str, ...]:
    """Options that take ``None`` (annotated ``... | None``)."""
    return tuple(f.name for f in dataclasses.fields(cls) if "None" in str(f.type))

  def overrides(self) -> dict[str, Any]:
    """The options that differ from the defaults, in declaration order."""
    default = type(self)()
    return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)}


_SPECTRUM_FAMILIES: dict[str, Callable[..., SpectrumFamilyOutput]] = {}
_FAMILY_OPTIONS: dict[str, type[FamilyOptions]] = {}


def register_spectrum(name: str, options: type[FamilyOptions]):
  """Registers ``fn(ctx: SpectrumContext, opts: options) -> SpectrumFamilyOutput``
  under ``name``, with its frozen options dataclass."""
  if not (isinstance(options, type) and issubclass(options, FamilyOptions)
          and dataclasses.is_dataclass(options)):
    raise TypeError(f"options of family {name!r} must be a FamilyOptions dataclass.")

  def wrap(fn):
    _SPECTRUM_FAMILIES[name] = fn
    _FAMILY_OPTIONS[name] = options
    return fn
  return wrap


def spectrum_family_names() -> list[str]:
  return sorted(_SPECTRUM_FAMILIES)


def family_options_class(name: str) -> type[FamilyOptions]:
  """The options dataclass of the spectrum family ``name``.

  Raises:
    ValueError: an unknown family (naming the registered ones).
  """
  if name not in _FAMILY_OPTIONS:
    raise ValueError(f"noise family {name!r} is not one of {spectrum_family_names()}.")
  return _FAMILY_OPTIONS[name]


def family_options(name: str, options: Mapping[str, Any] | None = None, /,
                   **overrides) -> FamilyOptions:
  """The family's options: its defaults with ``options`` and ``overrides`` applied.

  Raises:
    ValueError: an unknown family, or option names the family does not have (naming
      its options).
  """
  cls = family_options_class(name)
  given = {**dict(options or {}), **overrides}
  names = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(given) - set(names))
  if unknown:
    raise ValueError(f"noise family {name!r} has no option(s) {unknown}; its options are"
                     f" {sorted(names)}.")
  return cls(**given)


def _check_gamma(name: str, value: float, limit: float = 4.0) -> float:
  value = float(value)
  if not (math.isfinite(value) and -limit <= value <= limit):
    raise ValueError(f"{name}={value} is out of range; use a finite value in [-{limit}, {limit}].")
  return value


def _check_positive(name: str, value: float) -> float:
  value = float(value)
  if not (math.isfinite(value) and value > 0):
    raise ValueError(f"{name}={value} must be a positive finite number.")
  return value


def base_spectrum(ctx: SpectrumContext, family: str, mode: str = "radial",
                  floor: float = 1e-6, num_bands: int = 8, dc: str = "nearest") -> np.ndarray:
  """The dataset spectrum the FANS families shape noise with, ``[H, Wr]`` (NumPy).

  Args:
    mode: ``"radial"``: the radial profile of ``Pbar`` mapped back onto the grid
      (isotropic, smooth); ``"band"``: ``pi_b / |B_b|`` inside band ``b`` (linear
      bands with DC out, as the band powers of ``docs/method.md`` are defined; DC
      then follows ``dc``); ``"grid"``: ``Pbar`` itself (symmetrised).
    floor: added as ``floor * mean(P)`` before anything else.
    dc: ``"nearest"`` gives DC the value of the lowest non-DC frequency (radial,
      grid) or band 0's density (band): the PSD at DC measures the mean brightness,
      not structure; ``"psd"`` keeps the PSD's own DC value (in band mode on the
      scale of the band densities).
  The dynamic-range cap is applied by the families to the final ``S`` (see
  :func:`cap_dynamic_range`), not here.
  """
  height, width = ctx.height, ctx.width
  if dc not in ("nearest", "psd"):
    raise ValueError(f"dc={dc!r} is not 'nearest' or 'psd'.")
  psd = _checked_psd(ctx.require_psd(family), height, width)
  freqs, profile = spectra.radial_profile(jnp.asarray(psd), width=width)
  profile = np.asarray(profile, np.float64)
  if mode == "radial":
    grid = spectra.profile_to_grid(np.asarray(freqs, np.float64),
                                   np.maximum(profile, profile.max() * 1e-30),
                                   height, width)
    if dc == "nearest":
      grid[0, 0] = profile[1]
  elif mode == "band":
    spec = band_mode_spec(num_bands)
    masks = spectra.band_masks(height, width, spec)
    sizes = spectra.band_sizes(height, width, spec)
    mult = spectra.rfft_multiplicity(height, width)
    total = float(np.sum(psd * mult * masks.sum(axis=0)))  # non-DC power
    if ctx.data_band_powers is not None and len(ctx.data_band_powers) == num_bands:
      pi = np.asarray(ctx.data_band_powers, np.float64)
    else:
      pi = np.einsum("hw,bhw->b", psd * mult, masks) / total
    grid = np.einsum("b,bhw->hw", pi / sizes, masks)
    grid[0, 0] = pi[0] / sizes[0] if dc == "nearest" else psd[0, 0] / total
  elif mode == "grid":
    grid = noise_lib.symmetrize(psd, width)
    if dc == "nearest":
      grid[0, 0] = profile[1]
  else:
    raise ValueError(f"mode={mode!r} is not 'radial', 'band' or 'grid'.")
  floor = float(floor)
  if not (math.isfinite(floor) and floor >= 0):
    raise ValueError(f"floor={floor} must be >= 0.")
  grid = grid + floor * grid.mean()
  if not (np.all(np.isfinite(grid)) and np.all(grid > 0)):
    raise ValueError(f"the dataset spectrum for {family!r} has zero or non-finite values;"
                     " raise floor.")
  return grid


def band_mode_spec(num_bands: int) -> spectra.BandSpec:
  """The bands of ``mode="band"``: ``num_bands`` linear bands, DC in none of them."""
  return spectra.BandSpec(num_bands=int(num_bands), include_dc=False)


def cap_dynamic_range(spectrum: np.ndarray, max_ratio: float | None) -> np.ndarray:
  """Raises the smallest values of each ``S_t`` so that ``max S_t / min S_t <= max_ratio``.

  The cap is on the noise spectrum ``S`` itself (after any exponent ``gamma``), per
  timestep; ``None`` means no cap. ``spectrum``: ``[Ts, H, Wr]``.
  """
  if max_ratio is None:
    return spectrum
  ratio = _check_positive("max_ratio", max_ratio)
  if ratio < 1:
    raise ValueError(f"max_ratio={ratio} must be >= 1 (or None for no cap).")
  top = spectrum.max(axis=(-2, -1), keepdims=True)
  return np.maximum(spectrum, top / ratio)


def _checked_psd(psd, height: int, width: int) -> np.ndarray:
  """The dataset PSD as float64 ``[H, Wr]``, after checking shape and values."""
  psd = np.asarray(psd, np.float64)
  cols = spectra.rfft_width(width)
  if psd.shape != (height, cols):
    raise ValueError(f"data_psd must have shape [H, W//2+1] = [{height}, {cols}] for"
                     f" {height}x{width} images; got {psd.shape}.")
  if not np.all(np.isfinite(psd)) or np.any(psd < 0) or not np.any(psd > 0):
    raise ValueError("data_psd must be finite, non-negative and not all zero.")
  return psd


@dataclasses.dataclass(frozen=True)
class WhiteOptions(FamilyOptions):
  """``white`` has no options."""


@dataclasses.dataclass(frozen=True)
class _DatasetSpectrumOptions(FamilyOptions):
  """How :func:`base_spectrum` turns the dataset PSD into the shape of ``S``.

  mode: ``radial`` / ``band`` / ``grid``; floor: relative PSD floor; num_bands: the
  linear bands (DC out) of ``mode="band"``; dc: ``nearest`` / ``psd``;
  max_ratio: cap on ``max S_t / min S_t`` after the exponent (None: no cap).
  """
  mode: str = "radial"
  floor: float = 1e-6
  max_ratio: float | None = 1e3
  num_bands: int = 8
  dc: str = "nearest"

  def band_spec(self) -> spectra.BandSpec | None:
    return band_mode_spec(int(self.num_bands)) if self.mode == "band" else None


@dataclasses.dataclass(frozen=True)
class MatchedOptions(_DatasetSpectrumOptions):
  """gamma: the exponent of ``Pbar`` (1: EqualSNR, 0: white)."""
  gamma: float = 1.0


@dataclasses.dataclass(frozen=True)
class AnnealedOptions(_DatasetSpectrumOptions):
  """gamma_T, gamma_0: the exponent at the noisiest and least noisy step; path,
  sharpness: :func:`gamma_path`."""
  gamma_T: float = 0.0
  gamma_0: float = 1.0
  path: str = "linear"
  sharpness: float = 10.0


@dataclasses.dataclass(frozen=True)
class BandAnnealedOptions(FamilyOptions):
  """gamma: exponent of the band densities; num_bands: linear bands (DC out);
  window_width, window_floor: the moving window; floor, max_ratio: as
  :class:`MatchedOptions`."""
  gamma: float = 1.0
  num_bands: int = 8
  window_width: float = 2.0
  window_floor: float = 0.2
  floor: float = 1e-6
  max_ratio: float | None = 1e3

  def band_spec(self) -> spectra.BandSpec | None:
    return band_mode_spec(int(self.num_bands))


@dataclasses.dataclass(frozen=True)
class _BlogBandOptions(FamilyOptions):
  """The published recipe's bands and softmax (see :func:`blog_band_weights`):
  num_bands linear bands from f_min (None: the lowest non-DC frequency) to 0.5."""
  num_bands: int = 8
  f_min: float | None = None
  importance_exponent: float = 0.5
  importance_eps: float = 1e-6
  beta: float = 1.0
  gamma: float = 1.0
  phi: str = "linear"
  t_knee: float = 0.15

  def band_spec(self) -> spectra.BandSpec | None:
    return spectra.BandSpec(num_bands=int(self.num_bands), f_min=self.f_min, f_max=0.5)


@dataclasses.dataclass(frozen=True)
class BlogOptions(_BlogBandOptions):
  """standardize: per-sample standardisation as published (not Gaussian);
  time_convention: ``flow`` / ``ddpm``; guardrail: ``uniform`` (published) /
  ``white``; direction: ``formula`` / ``text``."""
  standardize: bool = False
  time_convention: str = "flow"
  guardrail: str = "uniform"
  direction: str = "formula"


@dataclasses.dataclass(frozen=True)
class BlogCorrectedOptions(_BlogBandOptions):
  """max_ratio: cap on ``max S_t / min S_t`` (None: no cap)."""
  max_ratio: float | None = 1e3


@register_spectrum("white", WhiteOptions)
def white_spectrum(ctx: SpectrumContext, opts: WhiteOptions = WhiteOptions()
                   ) -> SpectrumFamilyOutput:
  """``S = 1``: DDPM."""
  del opts
  return SpectrumFamilyOutput(np.ones((1, ctx.height, spectra.rfft_width(ctx.width))))


@register_spectrum("matched", MatchedOptions)
def matched_spectrum(ctx: SpectrumContext, opts: MatchedOptions = MatchedOptions()
                     ) -> SpectrumFamilyOutput:
  """``S ∝ (Pbar + floor)^gamma``, constant in time. gamma = 1 is EqualSNR (every
  frequency the same SNR), gamma = 0 is white. ``max_ratio`` caps ``max S / min S``
  (of ``S``, after the exponent; ``None``: no cap)."""
  gamma = _check_gamma("gamma", opts.gamma)
  base = base_spectrum(ctx, "matched", opts.mode, opts.floor, opts.num_bands, opts.dc)
  return SpectrumFamilyOutput(cap_dynamic_range((base ** gamma)[None], opts.max_ratio))


def gamma_path(u: np.ndarray, gamma_0: float, gamma_T: float, path: str = "linear",
               sharpness: float = 10.0) -> np.ndarray:
  """``gamma(u)`` from ``gamma_0`` at ``u = 0`` (t = 0) to ``gamma_T`` at ``u = 1``.

  ``path``: ``linear``; ``cosine`` (``(1 - cos(pi u)) / 2``); ``sigmoid`` (a logistic
  in ``u`` of the given sharpness, rescaled to hit both ends exactly).
  """
  if path == "linear":
    p = u
  elif path == "cosine":
    p = 0.5 * (1 - np.cos(np.pi * u))
  elif path == "sigmoid":
    k = _check_positive("sharpness", sharpness)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    p = (sig(k * (u - 0.5)) - sig(-k / 2)) / (sig(k / 2) - sig(-k / 2))
  else:
    raise ValueError(f"path={path!r} is not 'linear', 'cosine' or 'sigmoid'.")
  return gamma_0 + (gamma_T - gamma_0) * p


@register_spectrum("annealed", AnnealedOptions)
def annealed_spectrum(ctx: SpectrumContext, opts: AnnealedOptions = AnnealedOptions()
                      ) -> SpectrumFamilyOutput:
  """``S_t ∝ Pbar^gamma(t)``, gamma moving from ``gamma_T`` (most noisy step) to
  ``gamma_0`` (least noisy).

  Default 0 -> 1: white noise at ``t = T - 1`` (the prior is DDPM's), so generation
  starts coarse-to-fine as in DDPM, and EqualSNR at ``t = 0``, so the high
  frequencies catch up with the low ones at the end of sampling instead of being
  generated last and least. ``SNR_k(t) ∝ var_k^(1 - gamma(t))``: the path sets the
  speed of the low-to-high sweep. ``max_ratio`` caps ``max S_t / min S_t`` at every
  ``t`` (on ``S_t``, after the exponent; ``None``: no cap).
  """
  gamma_T = _check_gamma("gamma_T", opts.gamma_T)
  gamma_0 = _check_gamma("gamma_0", opts.gamma_0)
  base = base_spectrum(ctx, "annealed", opts.mode, opts.floor, opts.num_bands, opts.dc)
  gammas = gamma_path(ctx.time, gamma_0, gamma_T, opts.path, opts.sharpness)
  log_base = np.log(base / np.exp(np.mean(np.log(base))))
  spectrum = np.exp(gammas[:, None, None] * log_base[None])
  return SpectrumFamilyOutput(cap_dynamic_range(spectrum, opts.max_ratio))


@register_spectrum("band_annealed", BandAnnealedOptions)
def band_annealed_spectrum(ctx: SpectrumContext,
                           opts: BandAnnealedOptions = BandAnnealedOptions()
                           ) -> SpectrumFamilyOutput:
  """``S_t(k) ∝ (pi_b / |B_b|)^gamma * w(b, t)`` for ``k`` in band ``b``.

  ``w(b, t) = window_floor + exp(-(b - c(t))^2 / (2 window_width^2))`` with centre
  ``c(t) = (B - 1)(1 - t / (T - 1))``: the lowest band at the most noisy step, the
  highest at ``t = 0``. ``pi_b / |B_b|`` is the per-coefficient power density of
  band ``b`` (linear bands without DC, corners in the last band; DC takes band 0's
  density and window). ``max_ratio`` caps ``max S_t / min S_t`` of the product.
  """
  gamma = _check_gamma("gamma", opts.gamma)
  num_bands = int(opts.num_bands)
  if num_bands < 2:
    raise ValueError(f"num_bands={num_bands} must be >= 2 for band_annealed.")
  width_b = _check_positive("window_width", opts.window_width)
  w_floor = float(opts.window_floor)
  if not (math.isfinite(w_floor) and w_floor >= 0):
    raise ValueError(f"window_floor={opts.window_floor} must be >= 0.")
  base = base_spectrum(ctx, "band_annealed", "band", opts.floor, num_bands, "nearest")
  masks = spectra.band_masks(ctx.height, ctx.width, band_mode_spec(num_bands)).copy()
  masks[0, 0, 0] = 1.0  # DC takes band 0's window (and has band 0's density in base)
  centre = (num_bands - 1) * (1.0 - ctx.time)
  bands = np.arange(num_bands, dtype=np.float64)
  window = w_floor + np.exp(-((bands[None] - centre[:, None]) ** 2) / (2 * width_b**2))
  window_grid = np.einsum("tb,bhw->thw", window, masks)
  return SpectrumFamilyOutput(cap_dynamic_range((base ** gamma)[None] * window_grid,
                                                opts.max_ratio))


def _blog_band_power(ctx: SpectrumContext, spec: spectra.BandSpec, family: str) -> np.ndarray:
  """Dataset band powers ``pibar_b`` on ``spec`` (given, or from the PSD), ``[B]``."""
  num_bands = spec.num_bands
  if ctx.data_band_powers is not None:
    pibar = np.asarray(ctx.data_band_powers, np.float64)
    if pibar.shape != (num_bands,):
      raise ValueError(f"data_band_powers has shape {pibar.shape}; {family} needs ({num_bands},)"
                       " for its bands (compute them with the same BandSpec).")
    return pibar
  psd = _checked_psd(ctx.require_psd(family), ctx.height, ctx.width)
  masks = spectra.band_masks(ctx.height, ctx.width, spec)
  per_band = np.einsum("hw,bhw->b", psd * spectra.rfft_multiplicity(ctx.height, ctx.width),
                       masks)
  return per_band / per_band.sum()


def blog_band_weights(pibar: np.ndarray, u: np.ndarray, *, importance_exponent: float = 0.5,
                      importance_eps: float = 1e-6, beta: float = 1.0, gamma: float = 1.0,
                      phi: str = "linear", t_knee: float = 0.15, direction: str = "formula",
                      time_convention: str = "flow", flat: np.ndarray | None = None
                      ) -> np.ndarray:
  """The published recipe's band weights ``w_b(t)``, ``[T, B]`` (rows sum to 1).

  Args:
    pibar: ``[B]`` dataset band powers.
    u: ``[T]`` ``t / (T - 1)`` (0: least noisy step).
    importance_exponent, importance_eps: ``g_b = (pibar_b + eps)^-a / mean(...)``.
    beta, gamma: ``w_b = softmax_b(beta g_b - gamma r(tau) b / (B - 1))``.
    phi: the ramp: ``linear`` (``phi(tau) = tau``) or ``sigmoid``
      (``sigmoid(6 (tau - 0.5))``).
    t_knee: the guardrail: for ``tau < t_knee`` the weights are blended towards
      ``flat``, ``(1 - m) flat + m w`` with ``m = tau / t_knee`` (all ``flat`` at
      ``tau = 0``, pure softmax from ``tau = t_knee`` on), as in the method's
      description ("mixes in 1/B below t_knee"). 0 turns it off.
    direction: ``"formula"``: ``r = phi(tau)`` as the post's formula is written,
      which penalises the high bands most at the clean end, so the noise favours
      high bands near pure noise and low bands near the data; ``"text"``:
      ``r = 1 - phi(tau)``, what the post's text says (low bands favoured early in
      generation, i.e. near pure noise, high bands late).
    time_convention: ``"flow"``: ``tau = 1 - u`` (``tau = 0`` is pure noise, the
      post's convention); ``"ddpm"``: ``tau = u``. This only relabels time; it moves
      the guardrail and the ramp together.
    flat: ``[B]`` the guardrail's weights (default ``1 / B``).
  """
  num_bands = int(pibar.shape[0])
  a = _check_gamma("importance_exponent", importance_exponent)
  g = (np.asarray(pibar, np.float64) + float(importance_eps)) ** (-a)
  g = g / g.mean()
  if time_convention == "flow":
    tau = 1.0 - u
  elif time_convention == "ddpm":
    tau = u
  else:
    raise ValueError(f"time_convention={time_convention!r} is not 'flow' or 'ddpm'.")
  if phi == "linear":
    ramp = tau
  elif phi == "sigmoid":
    ramp = 1 / (1 + np.exp(-6 * (tau - 0.5)))
  else:
    raise ValueError(f"phi={phi!r} is not 'linear' or 'sigmoid'.")
  if direction == "text":
    ramp = 1.0 - ramp
  elif direction != "formula":
    raise ValueError(f"direction={direction!r} is not 'formula' (as the post's formula is"
                     " written) or 'text' (as its text describes).")
  if not 0 <= float(t_knee) < 1:
    raise ValueError(f"t_knee={t_knee} must lie in [0, 1).")
  lam = np.arange(num_bands) / (num_bands - 1)
  logits = float(beta) * g[None] - float(gamma) * ramp[:, None] * lam[None]
  w = np.exp(logits - logits.max(axis=1, keepdims=True))
  w = w / w.sum(axis=1, keepdims=True)
  flat = np.full(num_bands, 1.0 / num_bands) if flat is None else np.asarray(flat, np.float64)
  if float(t_knee) > 0:
    mix = np.clip(tau / float(t_knee), 0.0, 1.0)[:, None]
    w = (1 - mix) * flat[None] + mix * w
  return w


def _blog_bands(ctx: SpectrumContext, num_bands: int, f_min: float | None, family: str):
  """``(pibar [B], masks [B, H, Wr] with DC in band 0, full-grid sizes [B])`` of the
  published recipe's B linear bands from ``f_min`` to 0.5."""
  num_bands = int(num_bands)
  if num_bands < 2:
    raise ValueError(f"num_bands={num_bands} must be >= 2 for {family}.")
  spec = spectra.BandSpec(num_bands=num_bands, f_min=f_min, f_max=0.5)
  return (_blog_band_power(ctx, spec, family),) + _blog_masks(ctx, spec)


def _blog_masks(ctx: SpectrumContext, spec: spectra.BandSpec):
  """Band masks with DC joined to band 0 ``[B, H, Wr]`` and full-grid band sizes ``[B]``."""
  masks = spectra.band_masks(ctx.height, ctx.width, spec).copy()
  masks[0, 0, 0] = 1.0
  sizes = (masks * spectra.rfft_multiplicity(ctx.height, ctx.width)).sum(axis=(1, 2))
  return masks, sizes


@register_spectrum("blog", BlogOptions)
def blog_spectrum(ctx: SpectrumContext, opts: BlogOptions = BlogOptions()
                  ) -> SpectrumFamilyOutput:
  """The published FANS recipe (ICLR 2026 blog post; ``docs/method.md``, "The published
  variant").

  * B linear bands from ``f_min`` (default: the lowest non-DC frequency) to 0.5;
    dataset band powers ``pibar_b`` of mean-removed images.
  * Band weights ``w_b(t)`` of :func:`blog_band_weights`: importance
    ``g_b = (pibar_b + eps)^-a / mean``, ``softmax_b(beta g_b - gamma phi(tau) b/(B-1))``,
    the guardrail blended in below ``t_knee`` (``guardrail="uniform"``: ``1/B`` as
    published, which is *not* white since bands hold different numbers of
    coefficients; ``"white"``: ``|B_b| / HW``, which is), ``direction`` as the
    formula is written (default) or as the text describes.
  * Per-coefficient variance ``w_b H W / |B_b|``.
  * ``standardize=False`` (default): exactly Gaussian noise with covariance
    ``F^-1 diag(S_t) F``, DC included (it joins band 0), so the forward process
    noises every frequency and the sampler's posterior is exact.
    ``standardize=True``: as published, each noise draw is rescaled per sample and
    channel to mean 0, variance 1. That noise is *not* Gaussian (the schedule is
    marked ``gaussian=False``) and never reaches DC: the forward process leaves
    each image's mean untouched, so the samplers add no noise at DC either
    (:func:`fans_jax.diffusion.ancestral_update`), and every sample then has
    the prior's per-channel mean 0: this variant cannot generate the images' mean
    brightness.

  Differences from the post, deliberate: ``|B_b|`` counts full-grid coefficients (the
  post's rfft count halves the interior columns); DC joins the first band and the
  corners beyond 0.5 the last one (the post leaves them at zero variance), so the
  spectrum is positive with mean 1.
  """
  pibar, masks, sizes = _blog_bands(ctx, opts.num_bands, opts.f_min, "blog")
  num_bands = len(pibar)
  if opts.guardrail == "uniform":
    flat = np.full(num_bands, 1.0 / num_bands)
  elif opts.guardrail == "white":
    flat = sizes / sizes.sum()
  else:
    raise ValueError(f"guardrail={opts.guardrail!r} is not 'uniform' (published) or 'white'.")
  w = blog_band_weights(pibar, ctx.time, importance_exponent=opts.importance_exponent,
                        importance_eps=opts.importance_eps, beta=opts.beta, gamma=opts.gamma,
                        phi=opts.phi, t_knee=opts.t_knee, direction=opts.direction,
                        time_convention=opts.time_convention, flat=flat)
  density = w * (ctx.height * ctx.width) / sizes[None]
  spectrum = np.einsum("tb,bhw->thw", density, masks)
  standardize = bool(opts.standardize)
  return SpectrumFamilyOutput(spectrum, gaussian=not standardize, standardize=standardize)


@register_spectrum("blog_corrected", BlogCorrectedOptions)
def blog_corrected_spectrum(ctx: SpectrumContext,
                            opts: BlogCorrectedOptions = BlogCorrectedOptions()
                            ) -> SpectrumFamilyOutput:
  """The published recipe with its known flaws fixed (``docs/method.md``).

  The same bands, importance and softmax as :func:`blog_spectrum`, but

  * the guardrail is white noise (weights ``|B_b| / HW``, i.e. ``S = 1``), not ``1/B``;
  * the direction is what the post's text describes (``direction="text"``): low bands
    favoured near pure noise, high bands near the data;
  * no per-sample standardisation: exactly Gaussian noise, DC included, so the
    per-frequency posterior of the samplers is exact;
  * ``max S_t / min S_t`` capped at ``max_ratio`` (``None``: no cap); the forward-chain
    validity is checked by :func:`make_schedule` like every family's.
  """
  pibar, masks, sizes = _blog_bands(ctx, opts.num_bands, opts.f_min, "blog_corrected")
  w = blog_band_weights(pibar, ctx.time, importance_exponent=opts.importance_exponent,
                        importance_eps=opts.importance_eps, beta=opts.beta, gamma=opts.gamma,
                        phi=opts.phi, t_knee=0.0, direction="text", time_convention="flow")
  density = w * (ctx.height * ctx.width) / sizes[None]
  spectrum = cap_dynamic_range(np.einsum("tb,bhw->thw", density, masks), opts.max_ratio)
  spectrum = spectrum / np.asarray(spectra.grid_mean(spectrum, ctx.width))[:, None, None]
  # The white guardrail, blended geometrically: S_t^m with m = min(tau / t_knee, 1), so
  # log S_t moves at a bounded rate (a linear blend of the weights moves log S fastest
  # where S is smallest, which breaks the forward chain right next to pure noise).
  t_knee = opts.t_knee
  if not 0 <= float(t_knee) < 1:
    raise ValueError(f"t_knee={t_knee} must lie in [0, 1).")
  if float(t_knee) > 0:
    mix = np.clip((1.0 - ctx.time) / float(t_knee), 0.0, 1.0)[:, None, None]
    spectrum = spectrum ** mix
  return SpectrumFamilyOutput(spectrum)


# ----------------------------------------------------------------------------------
# The schedule pytree
# ----------------------------------------------------------------------------------


@flax.struct.dataclass
class Schedule:
  """Precomputed per-timestep, per-frequency arrays (see the module docstring)."""
  betas: jax.Array            # [T]
  alphas_cumprod: jax.Array   # [T]
  spectrum: jax.Array         # [Ts, H, Wr], Ts in {1, T}; mean 1 over the full grid
  post_coef_xt: jax.Array     # [T, h, w]: (H, Wr), or (1, 1) for white
  post_coef_x0: jax.Array     # [T, h, w]
  post_std: jax.Array         # [T, h, w]
  name: str = flax.struct.field(pytree_node=False, default="white")
  image_shape: tuple = flax.struct.field(pytree_node=False, default=(32, 32, 3))
  is_white: bool = flax.struct.field(pytree_node=False, default=True)
  gaussian: bool = flax.struct.field(pytree_node=False, default=True)
  standardize: bool = flax.struct.field(pytree_node=False, default=False)
  ddim_only: bool = flax.struct.field(pytree_node=False, default=False)
  min_margin: float = flax.struct.field(pytree_node=False, default=1.0)
  options: tuple = flax.struct.field(pytree_node=False, default=())

  @property
  def num_timesteps(self) -> int:
    return int(self.betas.shape[0])

  @property
  def time_varying(self) -> bool:
    return int(self.spectrum.shape[0]) > 1

  @property
  def height(self) -> int:
    return int(self.image_shape[0])

  @property
  def width(self) -> int:
    return int(self.image_shape[1])

  def spectrum_at(self, t: jax.Array) -> jax.Array:
    """``S_t``: ``[H, Wr]`` for scalar ``t``, ``[B, H, Wr]`` for ``t`` of shape ``[B]``."""
    index = jnp.minimum(jnp.asarray(t), self.spectrum.shape[0] - 1)
    return self.spectrum[index]

  def describe(self) -> dict:
    """A JSON-friendly description (name, options, flags)."""
    return {"name": self.name, "num_timesteps": self.num_timesteps,
            "image_shape": list(self.image_shape), "options": dict(self.options),
            "gaussian": self.gaussian, "ddim_only": self.ddim_only,
            "min_margin": self.min_margin}


def noise_log_snr(alphas_cumprod, spectrum) -> np.ndarray:
  """Per-frequency log-SNR of the noise, ``logSNR_k(t) = lambda(t) - log S_t(k)``.

  This is GUD's per-component schedule view: the forward chain exists iff every curve
  strictly decreases in ``t``. (Add ``log var_k`` for the SNR of a dataset.)
  Args:
    alphas_cumprod: ``[T]``; spectrum: ``[Ts, H, Wr]``.
  Returns:
    ``[T, H, Wr]`` float64.
  """
  abar = np.asarray(alphas_cumprod, np.float64)
  lam = np.log(abar) - np.log1p(-abar)
  return lam[:, None, None] - np.log(np.asarray(spectrum, np.float64))


def log_snr(schedule: Schedule, data_variance) -> np.ndarray:
  """``log SNR_k(t) = log(abar_t var_k / ((1 - abar_t) S_t(k)))``, ``[T, H, Wr]``.

  Args:
    data_variance: ``[H, Wr]`` per-frequency signal variance (``DatasetSpectrum.variance``).
  """
  var = np.asarray(data_variance, np.float64)
  spectrum = np.broadcast_to(np.asarray(schedule.spectrum, np.float64),
                             (schedule.spectrum.shape[0],) + var.shape)
  return noise_log_snr(schedule.alphas_cumprod, spectrum) + np.log(np.maximum(var, 1e-300))


def band_log_snr(schedule: Schedule, data_variance, spec: spectra.BandSpec
                 ) -> np.ndarray:
  """Mean of ``log SNR_k(t)`` over the coefficients of each band, ``[T, B]`` (nats)."""
  grid = log_snr(schedule, data_variance)
  return np.asarray(spectra.band_average(jnp.asarray(grid, jnp.float32), spec,
                                         schedule.width), np.float64)


def _posterior(betas: np.ndarray, abar: np.ndarray, spectrum: np.ndarray):
  """Per-frequency ancestral posterior (docs/method.md §5), float64.

  Returns ``(coef_xt, coef_x0, var, cond_var)``, each ``[T, h, w]``; ``cond_var`` is
  ``sigma2_{t|t-1}`` (its sign is the forward-chain validity condition).
  """
  T = betas.shape[0]
  spec = np.broadcast_to(spectrum, (T,) + spectrum.shape[1:])
  spec_prev = np.concatenate([spec[:1], spec[:-1]], axis=0)
  abar_prev = np.concatenate([[1.0], abar[:-1]])[:, None, None]
  alphas = (1.0 - betas)[:, None, None]
  b = betas[:, None, None]
  sigma2_t = (1.0 - abar)[:, None, None] * spec
  sigma2_s = (1.0 - abar_prev) * spec_prev
  # sigma2_{t|s} = sigma2_t - alpha_t sigma2_s, rewritten without cancellation:
  # (1 - abar_t) = beta_t + alpha_t (1 - abar_{t-1}).
  cond_var = b * spec + alphas * (1.0 - abar_prev) * (spec - spec_prev)
  coef_xt = np.sqrt(alphas) * sigma2_s / sigma2_t
  coef_x0 = np.sqrt(abar_prev) * cond_var / sigma2_t
  var = cond_var * sigma2_s / sigma2_t
  return coef_xt, coef_x0, var, cond_var


class ForwardChainError(ValueError):
  """A time-varying noise spectrum without a valid forward chain.

  Attributes:
    t: the first timestep whose per-frequency log-SNR does not decrease from ``t - 1``.
    frequency: ``(fu, fv)`` in cycles per pixel of the worst frequency at ``t``.
    index: its rfft-grid index ``(row, column)``.
    failing_steps: how many timesteps fail.
  """

  def __init__(self, message: str, t: int, frequency: tuple[float, float],
               index: tuple[int, int], failing_steps: int):
    super().__init__(message)
    self.t = t
    self.frequency = frequency
    self.index = index
    self.failing_steps = failing_steps


def _validity_error(name: str, cond_var: np.ndarray, sigma2_t: np.ndarray, height: int,
                    width: int) -> ForwardChainError | None:
  margin = cond_var / sigma2_t
  bad = margin[1:] <= 0
  if not bad.any():
    return None
  t_bad = int(np.argmax(bad.any(axis=(1, 2)))) + 1
  row = margin[t_bad]
  i, j = np.unravel_index(int(np.argmin(row)), row.shape)
  fu, fv = spectra.frequency_grid(height, width)
  failing = int(bad.any(axis=(1, 2)).sum())
  return ForwardChainError((
      f"noise schedule {name!r} breaks the forward chain: at t={t_bad} (first of"
      f" {int(bad.any(axis=(1, 2)).sum())} failing steps), frequency (fu={fu[i, 0]:+.4f},"
      f" fv={fv[0, j]:.4f}) cycles/px [rfft index ({i}, {j})], the per-frequency"
      f" log-SNR does not decrease from t-1 to t (sigma2_(t|t-1) / sigma2_t ="
      f" {row[i, j]:.3g}; {int(bad.sum())} (t, k) pairs fail). Lower the spectrum's dynamic"
      " range (max_ratio), soften the gamma path, or pass ddim_only=True to sample with"
      " DDIM (eta = 0) only."), t=t_bad, frequency=(float(fu[i, 0]), float(fv[0, j])),
      index=(int(i), int(j)), failing_steps=failing)


def make_schedule(name: str = "white", num_timesteps: int = 1000,
                  beta_schedule: str = "linear", image_shape=(32, 32, 3), *,
                  data_psd=None, data_band_powers=None, ddim_only: bool = False,
                  dtype=jnp.float32, beta_kwargs: dict | None = None,
                  **options) -> Schedule:
  """Builds a :class:`Schedule` once (NumPy float64), checking the forward chain.

  Args:
    name: a registered spectrum family (``white``, ``matched``, ``annealed``,
      ``band_annealed``, ``blog``).
    num_timesteps: T >= 2.
    beta_schedule: ``linear`` or ``cosine``.
    image_shape: ``(H, W, C)`` (or ``(H, W)``).
    data_psd: ``[H, Wr]`` dataset PSD (needed by every family but ``white``).
    data_band_powers: ``[B]`` dataset band powers (``blog``, ``band`` modes).
    ddim_only: skip the forward-chain check; such a schedule samples with DDIM
      (eta = 0) only.
    dtype: dtype of the stored arrays.
    beta_kwargs: extra arguments of the beta schedule (``beta_start``, ``beta_end``,
      ``s``, ``max_beta``).
    **options: the family's options (the fields of its options dataclass,
      :func:`family_options_class`; unknown names raise).
  Raises:
    ValueError: unknown names or bad values.
    ForwardChainError: (a ValueError) the schedule breaks the forward chain; it names
      the first offending ``t`` and frequency, also as attributes.
  """
  if name not in _SPECTRUM_FAMILIES:
    raise ValueError(f"noise schedule {name!r} is not one of {spectrum_family_names()}.")
  if int(num_timesteps) != num_timesteps or num_timesteps < 2:
    raise ValueError(f"num_timesteps={num_timesteps} must be an integer >= 2.")
  image_shape = tuple(int(s) for s in image_shape)
  if len(image_shape) not in (2, 3):
    raise ValueError(f"image_shape must be (H, W, C) or (H, W), got {image_shape}.")
  height, width = image_shape[:2]
  spectra._check_size(height, width)  # pylint: disable=protected-access
  T = int(num_timesteps)
  betas = make_betas(beta_schedule, T, **(beta_kwargs or {}))
  abar = np.cumprod(1.0 - betas)
  ctx = SpectrumContext(height, width, T,
                        None if data_psd is None else np.asarray(data_psd, np.float64),
                        None if data_band_powers is None else np.asarray(data_band_powers,
                                                                         np.float64))
  out = _SPECTRUM_FAMILIES[name](ctx, family_options(name, options))
  spectrum = np.asarray(out.spectrum, np.float64)
  if spectrum.shape[0] not in (1, T) or spectrum.shape[1:] != (height, spectra.rfft_width(width)):
    raise ValueError(f"family {name!r} returned a spectrum of shape {spectrum.shape}.")
  noise_lib.check_spectrum(spectrum, height, width, name=f"{name} spectrum")
  spectrum = spectrum / np.asarray(spectra.grid_mean(spectrum, width))[:, None, None]
  is_white = name == "white"
  post_spec = spectrum[:, :1, :1] if is_white else spectrum
  coef_xt, coef_x0, var, cond_var = _posterior(betas, abar, post_spec)
  sigma2_t = (1.0 - abar)[:, None, None] * np.broadcast_to(post_spec, cond_var.shape)
  error = _validity_error(name, cond_var, sigma2_t, height, width)
  if error is not None and not ddim_only:
    raise error
  margin = float(np.min(cond_var[1:] / sigma2_t[1:]))
  as_arr = lambda x: jnp.asarray(x, dtype=dtype)  # noqa: E731
  return Schedule(
      betas=as_arr(betas), alphas_cumprod=as_arr(abar), spectrum=as_arr(spectrum),
      post_coef_xt=as_arr(coef_xt), post_coef_x0=as_arr(coef_x0),
      post_std=as_arr(np.sqrt(np.maximum(var, 0.0))), name=name,
      image_shape=image_shape, is_white=is_white, gaussian=out.gaussian,
      standardize=out.standardize, ddim_only=bool(ddim_only and error is not None),
      min_margin=margin,
      options=tuple(sorted((k, v if np.isscalar(v) or v is None else str(v))
                           for k, v in options.items())))


__all__ = [
    "AnnealedOptions", "BandAnnealedOptions", "BlogCorrectedOptions", "BlogOptions",
    "FamilyOptions", "ForwardChainError", "MatchedOptions", "Schedule", "SpectrumContext",
    "SpectrumFamilyOutput", "WhiteOptions", "band_log_snr", "band_mode_spec", "base_spectrum",
    "beta_schedule_names", "blog_band_weights", "cap_dynamic_range", "family_options",
    "family_options_class", "gamma_path", "log_snr", "make_betas", "make_schedule",
    "noise_log_snr", "register_beta_schedule", "register_spectrum", "spectrum_family_names",
]

"""The figures of docs/method.md §6: one function per figure.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no
global state, no GUI; PNGs are rendered by Agg), sized for a paper (single column
3.4 in, double column 7 in, 7-9 pt fonts), and saves it as PNG and PDF when given
``path`` (a file name; its suffix is replaced). In a notebook, ``display(fig)`` or
ending a cell with the figure shows it.

1. :func:`plot_dataset_psds`: dataset PSDs on log-log axes with fitted slopes.
2. :func:`plot_running_variance`: running average of per-frequency variance, low to
   high frequencies.
3. :func:`plot_snr_heatmaps`: per-band log SNR over time, DDPM beside FANS schedules.
4. :func:`plot_forward_bands`: the forward process of one image, band by band.
5. :func:`plot_sample_grid`, :func:`plot_closeups`, :func:`plot_sample_bands`.
6. :func:`plot_spectra_comparison`, :func:`plot_band_powers`: spectra and band powers
   of samples against data (the published post's bar plot: data green, FANS blue,
   DDPM red).

Images are ``[N, H, W, C]`` (or ``[H, W, C]`` for one), ``uint8`` or floats in
``[-1, 1]``. Frequencies are in cycles per pixel.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import textwrap
from typing import Any, Mapping, Sequence

import jax.numpy as jnp
import matplotlib
import matplotlib.colors as mcolors
import matplotlib.patches as mpatches
import matplotlib.ticker as mticker
import numpy as np
from matplotlib.figure import Figure

from fans_jax import diffusion, schedules as schedules_lib, spectra
from fans_jax.utils import images as image_utils

SINGLE_COLUMN = 3.4  # inches
DOUBLE_COLUMN = 7.0
PAPER_RC = {
    "font.size": 8,
    "axes.titlesize": 8.5,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "axes.linewidth": 0.6,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.4,
    "legend.frameon": False,
    "figure.dpi": 150,
    "savefig.dpi": 300,
    "pdf.fonttype": 42,  # embed TrueType: editable text in the PDF
    "ps.fonttype": 42,
    "image.interpolation": "nearest",
}
DATA_COLOR = "#2ca02c"  # the post's colours: data green, FANS blue, DDPM red
MODEL_COLORS = ("#1f77b4", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2")
FREQ_LABEL = "spatial frequency $|k|$ (cycles / pixel)"


# ----------------------------------------------------------------------------------
# Common helpers
# ----------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_font_subsetting():
  """Raises the ``fontTools`` logger to WARNING while a figure is saved: embedding a
  font in a PDF logs one INFO line per subsetted table ("glyf subsetted in 0.001s"),
  which under absl's INFO logging buried every other line of launch/evaluate.py."""
  logger = logging.getLogger("fontTools")
  level = logger.level
  logger.setLevel(max(level, logging.WARNING))
  try:
    yield
  finally:
    logger.setLevel(level)


def save_figure(fig: Figure, path: str | os.PathLike, formats: Sequence[str] = ("png", "pdf")
                ) -> list[str]:
  """Writes ``fig`` as ``<path without suffix>.<fmt>`` for each format; returns the paths."""
  base, _ = os.path.splitext(os.fspath(path))
  os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
  written = []
  with matplotlib.rc_context(PAPER_RC), _quiet_font_subsetting():
    for fmt in formats:
      out = f"{base}.{fmt}"
      fig.savefig(out, format=fmt, bbox_inches="tight", pad_inches=0.02)
      written.append(out)
  return written


def _figure_function(fn):
  """Runs ``fn`` under the paper style and saves its figure when ``path`` is given."""
  @functools.wraps(fn)
  def wrapper(*args, path: str | os.PathLike | None = None, **kwargs) -> Figure:
    with matplotlib.rc_context(PAPER_RC):
      fig = fn(*args, **kwargs)
    if path is not None:
      save_figure(fig, path)
    return fig
  wrapper.__doc__ = (fn.__doc__ or "") + (
      "\n    path: if given, the figure is also saved as PNG and PDF there.\n")
  return wrapper


def _figure(width: float, height: float) -> Figure:
  return Figure(figsize=(width, height), layout="constrained")


def log_frequency_axis(ax) -> None:
  """Readable ticks on a logarithmic frequency axis (0.01, 0.02, 0.05, ... cycles/px)."""
  ax.xaxis.set_major_locator(mticker.FixedLocator([0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5]))
  ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
  ax.xaxis.set_minor_formatter(mticker.NullFormatter())


def _color(i: int) -> str:
  return MODEL_COLORS[i % len(MODEL_COLORS)]


def _as_image_batch(images) -> np.ndarray:
  x = np.asarray(images)
  if x.ndim == 3:
    x = x[None]
  if x.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C] or [H, W, C]; got shape {x.shape}.")
  if x.shape[-1] not in (1, 3):
    raise ValueError(f"images must have 1 or 3 channels to be shown; got {x.shape[-1]}.")
  return x


def to_display(images) -> np.ndarray:
  """``uint8`` or ``[-1, 1]`` float images -> float ``[0, 1]`` ``[N, H, W, C]``."""
  x = _as_image_batch(images)
  if x.dtype == np.uint8:
    return x.astype(np.float32) / 255.0
  return np.clip((x.astype(np.float32) + 1.0) / 2.0, 0.0, 1.0)


def _show(ax, image01: np.ndarray) -> None:
  """Shows one ``[H, W, C]`` image in [0, 1] without axes."""
  if image01.shape[-1] == 1:
    ax.imshow(image01[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
  else:
    ax.imshow(image01, interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])
  for spine in ax.spines.values():
    spine.set_visible(False)


def _signed_to_display(component: np.ndarray, scale: float | None = None) -> np.ndarray:
  """A signed band-pass image -> [0, 1] around grey 0.5, scaled by its 99.5th
  percentile of ``|x|`` (or ``scale``)."""
  if scale is None:
    scale = float(np.percentile(np.abs(component), 99.5))
  scale = scale if scale > 0 else 1.0
  return np.clip(0.5 + 0.5 * component / scale, 0.0, 1.0)


def _spectral_curve(obj, fit_range=None) -> dict[str, Any]:
  """Radial profile and power-law fit of a DatasetSpectrum or SpectralSummary."""
  if isinstance(obj, spectra.DatasetSpectrum):
    freqs, profile = obj.radial_profile()
    lo, hi = fit_range if fit_range is not None else (None, 0.5)
    fit = obj.fit(lo, hi)
    return dict(freqs=np.asarray(freqs), profile=np.asarray(profile), alpha=float(fit.alpha),
                amplitude=float(fit.amplitude), r2=float(fit.r2), fit_range=(fit.f_lo, fit.f_hi))
  if hasattr(obj, "profile") and hasattr(obj, "alpha") and hasattr(obj, "fit_range"):
    if fit_range is not None:
      fit = spectra.fit_power_law(obj.freqs, obj.profile, *fit_range)
      return dict(freqs=np.asarray(obj.freqs), profile=np.asarray(obj.profile),
                  alpha=float(fit.alpha), amplitude=float(fit.amplitude), r2=float(fit.r2),
                  fit_range=(fit.f_lo, fit.f_hi))
    return dict(freqs=np.asarray(obj.freqs), profile=np.asarray(obj.profile),
                alpha=float(obj.alpha), amplitude=float(obj.amplitude), r2=float(obj.r2),
                fit_range=tuple(obj.fit_range))
  raise ValueError(f"expected a spectra.DatasetSpectrum or metrics.spectral.SpectralSummary;"
                   f" got {type(obj).__name__}.")


def _display_bands(num_bands: int) -> spectra.BandSpec:
  """Linear bands from 0 (DC in the first band) to 0.5: they partition the grid."""
  return spectra.BandSpec(num_bands=int(num_bands), spacing="linear", include_dc=True, f_min=0.0)


def _band_label(edges: np.ndarray, b: int) -> str:
  return f"band {b + 1}: {edges[b]:.2g}–{edges[b + 1]:.2g}"


# ----------------------------------------------------------------------------------
# Figure 1: dataset PSDs
# ----------------------------------------------------------------------------------


@_figure_function
def plot_dataset_psds(datasets: Mapping[str, Any], fit_range: tuple | None = None,
                      normalize: bool = False, width: float = SINGLE_COLUMN,
                      height: float = 2.6) -> Figure:
  """Radially averaged dataset PSDs on log-log axes with fitted power laws.

  Args:
    datasets: name -> :class:`fans_jax.spectra.DatasetSpectrum` or
      :class:`fans_jax.metrics.spectral.SpectralSummary`.
    fit_range: ``(f_lo, f_hi)`` of the fits (default: each object's own).
    normalize: divide each profile by its value at the first non-DC bin, so that
      slopes of sets with different power compare on one scale.
  """
  if not datasets:
    raise ValueError("datasets is empty; pass name -> DatasetSpectrum.")
  fig = _figure(width, height)
  ax = fig.add_subplot()
  for i, (name, obj) in enumerate(datasets.items()):
    c = _spectral_curve(obj, fit_range)
    f, p = c["freqs"], c["profile"]
    keep = f > 0
    scale = p[keep][0] if normalize else 1.0
    color = _color(i)
    ax.loglog(f[keep], p[keep] / scale, color=color,
              label=fr"{name} ($\alpha$ = {c['alpha']:.2f}, $R^2$ = {c['r2']:.2f})")
    lo, hi = c["fit_range"]
    ff = np.geomspace(lo, hi, 50)
    ax.loglog(ff, c["amplitude"] * ff ** (-c["alpha"]) / scale, color=color, ls="--", lw=0.9)
  ax.set_xlabel(FREQ_LABEL)
  log_frequency_axis(ax)
  ax.set_ylabel("PSD / PSD at lowest $|k|$" if normalize
                else "PSD (data units$^2$ per coefficient)")
  ax.grid(True, which="major")
  ax.legend(loc="lower left", handlelength=1.8)
  ax.set_title("Dataset power spectra (dashed: fit $P \\propto |k|^{-\\alpha}$)")
  return fig


# ----------------------------------------------------------------------------------
# Figure 2: running average of per-frequency variance
# ----------------------------------------------------------------------------------


@_figure_function
def plot_running_variance(variances: Mapping[str, Any], ordering: str = "manhattan",
                          normalize: bool = True, width: float = SINGLE_COLUMN,
                          height: float = 2.4) -> Figure:
  """Running average of per-frequency signal variance, frequencies sorted low to high.

  Args:
    variances: name -> ``[H, Wr]`` per-frequency variance or a
      :class:`fans_jax.spectra.DatasetSpectrum` (its ``variance``).
    ordering: ``"manhattan"`` (``|fu| + |fv|``, the draft's spiral walk) or
      ``"euclidean"``.
    normalize: divide by the mean variance over all frequencies (the curve then ends
      at 1; white noise is 1 everywhere).
  """
  if not variances:
    raise ValueError("variances is empty.")
  fig = _figure(width, height)
  ax = fig.add_subplot()
  for i, (name, v) in enumerate(variances.items()):
    grid = v.variance if isinstance(v, spectra.DatasetSpectrum) else np.asarray(v)
    width_px = v.width if isinstance(v, spectra.DatasetSpectrum) else None
    _, running = spectra.running_average_by_frequency(grid, ordering, width_px)
    frac = np.arange(1, running.size + 1) / running.size
    y = running / running[-1] if normalize else running
    ax.loglog(frac, y, color=_color(i), label=name)
  if normalize:
    ax.axhline(1.0, color="0.4", ls=":", lw=0.9, label="white noise")
  ax.set_xlabel(f"fraction of frequencies, sorted by {ordering} $|k|$")
  ax.set_ylabel("running mean of variance\n/ mean variance" if normalize
                else "running mean of variance")
  ax.grid(True, which="major")
  ax.legend(loc="best")
  return fig


# ----------------------------------------------------------------------------------
# Figure 3: per-band log SNR heatmaps
# ----------------------------------------------------------------------------------


@_figure_function
def plot_snr_heatmaps(schedules: Mapping[str, schedules_lib.Schedule], data_variance,
                      num_bands: int = 8, spec: spectra.BandSpec | None = None,
                      width: float | None = None, height: float = 2.2) -> Figure:
  """Heatmaps of per-band ``log SNR_k(t)`` over time, one panel per schedule.

  ``SNR_k(t) = abar_t var_k / ((1 - abar_t) S_t(k))`` (docs/method.md §2), averaged
  in log within each radial band. One colour scale for all panels, centred at 0
  (signal power = noise power, the black contour).
  Args:
    schedules: name -> :class:`fans_jax.schedules.Schedule` (e.g. ``{"DDPM": white,
      "FANS (matched)": ...}``), all of the same image size.
    data_variance: ``[H, Wr]`` per-frequency signal variance
      (``DatasetSpectrum.variance``).
    num_bands / spec: the bands (default: ``num_bands`` linear bands, DC excluded).
    width: figure width (default: 7 in, the double column, for up to 3 panels; 2.2 in
      per panel beyond).
  """
  if not schedules:
    raise ValueError("schedules is empty.")
  if width is None:
    width = max(DOUBLE_COLUMN, 2.2 * len(schedules) + 0.6)
  var = np.asarray(data_variance, np.float64)
  spec = spec or spectra.BandSpec(num_bands=int(num_bands))
  grids = {}
  for name, sched in schedules.items():
    if tuple(var.shape) != (sched.height, spectra.rfft_width(sched.width)):
      raise ValueError(f"data_variance has shape {var.shape} but schedule {name!r} is for"
                       f" {sched.height}x{sched.width} images.")
    grids[name] = schedules_lib.band_log_snr(sched, var, spec)
  vmax = max(float(np.max(np.abs(g))) for g in grids.values())
  vmax = min(vmax, 15.0)
  norm = mcolors.TwoSlopeNorm(vmin=-vmax, vcenter=0.0, vmax=vmax)
  edges = spec.edges(next(iter(schedules.values())).height,
                     next(iter(schedules.values())).width)
  fig = _figure(width, height)
  axes = fig.subplots(1, len(grids), sharey=True, squeeze=False)[0]
  image = None
  for ax, (name, grid) in zip(axes, grids.items()):
    T = grid.shape[0]
    image = ax.imshow(grid.T, origin="lower", aspect="auto", cmap="RdBu_r", norm=norm,
                      extent=(0, T, 0, grid.shape[1]), interpolation="nearest")
    ax.contour(np.arange(T) + 0.5, np.arange(grid.shape[1]) + 0.5, grid.T, levels=[0.0],
               colors="k", linewidths=0.8)
    ax.set_title(textwrap.fill(name, 24))
  fig.supxlabel("diffusion step $t$ (0 = data)", fontsize=PAPER_RC["axes.labelsize"])
  centres = 0.5 * (edges[:-1] + edges[1:])
  axes[0].set_yticks(np.arange(len(centres)) + 0.5)
  axes[0].set_yticklabels([f"{c:.2f}" for c in centres])
  axes[0].set_ylabel("band centre $|k|$ (cycles / pixel)")
  cbar = fig.colorbar(image, ax=list(axes), shrink=0.95, pad=0.01)
  cbar.set_label("log SNR (nats)")
  return fig


# ----------------------------------------------------------------------------------
# Figure 4: forward process band by band
# ----------------------------------------------------------------------------------


@_figure_function
def plot_forward_bands(image, schedules: Mapping[str, schedules_lib.Schedule] | Any,
                       timesteps: Sequence[int], num_bands: int = 4, seed: int = 0,
                       panel_size: float = 0.9) -> Figure:
  """The forward process of one image shown band by band at several ``t``.

  Rows: (schedule, t); columns: ``x_t`` then its band-pass components (linear bands
  from DC to 0.5, the corners in the last; they sum to ``x_t``). Each band panel is
  scaled on its own, so its title gives the band's signal-to-noise ratio
  ``||band(sqrt(abar_t) x_0)||^2 / ||band(x_t - sqrt(abar_t) x_0)||^2``. One white
  noise draw (``seed``) is shared by all rows, so schedules differ only by their
  noise spectra.
  Args:
    image: ``[H, W, C]`` (uint8 or float in [-1, 1]).
    schedules: a :class:`Schedule` or name -> Schedule.
    timesteps: integer steps in ``[0, T)``.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if isinstance(schedules, schedules_lib.Schedule):
    schedules = {schedules.name: schedules}
  x0 = to_display(image)[:1] * 2.0 - 1.0  # [1, H, W, C] in [-1, 1]
  height, width = x0.shape[1:3]
  spec = _display_bands(num_bands)
  edges = spec.edges(height, width)
  eps = np.asarray(jax.random.normal(jax.random.key(seed), x0.shape, np.float32))
  rows = [(name, int(t)) for name in schedules for t in timesteps]
  ncols = 1 + spec.num_bands
  fig = _figure(panel_size * ncols + 0.6, panel_size * len(rows) + 0.4)
  axes = fig.subplots(len(rows), ncols, squeeze=False)
  for r, (name, t) in enumerate(rows):
    sched = schedules[name]
    if not 0 <= t < sched.num_timesteps:
      raise ValueError(f"timestep {t} is outside [0, {sched.num_timesteps}) for {name!r}.")
    if tuple(sched.image_shape[:2]) != (height, width):
      raise ValueError(f"schedule {name!r} is for {sched.image_shape[:2]} images, the image"
                       f" is {(height, width)}.")
    x_t = np.asarray(diffusion.q_sample(sched, jnp.asarray(x0), jnp.asarray([t]),
                                        jnp.asarray(eps)))
    signal = float(np.sqrt(sched.alphas_cumprod[t])) * x0
    bands_x = spectra.band_decompose(x_t, spec)[:, 0]
    bands_s = spectra.band_decompose(signal, spec)[:, 0]
    _show(axes[r, 0], np.clip((x_t[0] + 1) / 2, 0, 1))
    axes[r, 0].set_ylabel(f"{name}\n$t$ = {t}", fontsize=7)
    for b in range(spec.num_bands):
      noise_power = float(np.sum((bands_x[b] - bands_s[b]) ** 2))
      snr = float(np.sum(bands_s[b] ** 2)) / max(noise_power, 1e-30)
      _show(axes[r, 1 + b], _signed_to_display(bands_x[b]))
      axes[r, 1 + b].set_title(f"SNR {snr:.2g}", fontsize=6.5, pad=1.5)
  axes[0, 0].set_title("$x_t$\n", fontsize=7)
  for b in range(spec.num_bands):
    axes[0, 1 + b].set_title(f"{edges[b]:.2g}–{edges[b + 1]:.2g} c/px\n"
                             + axes[0, 1 + b].get_title(), fontsize=6.5, pad=1.5)
  return fig


# ----------------------------------------------------------------------------------
# Figure 5: samples
# ----------------------------------------------------------------------------------


def image_mosaic(images, ncols: int = 8, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
  """Tiles ``[N, H, W, C]`` images into one ``[rows (H + pad), cols (W + pad), C]``
  array in [0, 1]."""
  return image_utils.tile(to_display(images).astype(np.float32), ncols, pad, pad_value,
                          outer=False)


@_figure_function
def plot_sample_grid(images, ncols: int = 8, title: str | None = None,
                     width: float = SINGLE_COLUMN) -> Figure:
  """A grid of samples (one image, pixels shown without interpolation)."""
  mosaic = image_mosaic(images, ncols)
  height = width * mosaic.shape[0] / mosaic.shape[1] + (0.25 if title else 0.05)
  fig = _figure(width, height)
  ax = fig.add_subplot()
  _show(ax, mosaic)
  if title:
    ax.set_title(title)
  return fig


@_figure_function
def plot_closeups(images, crops: Sequence[tuple[int, int, int, int]] | None = None,
                  num: int = 4, crop_size: int | None = None, titles: Sequence[str] | None = None,
                  panel_size: float = 1.1) -> Figure:
  """Samples (top row) with a marked region and its zoomed close-up (bottom row).

  Args:
    images: ``[N, H, W, C]``.
    crops: ``(index, top, left, size)`` per column; default the centre
      ``crop_size`` square (``H // 4``) of the first ``num`` images.
    titles: one title per column.
  """
  x = to_display(images)
  n, h, w, _ = x.shape
  if crops is None:
    size = int(crop_size or max(2, h // 4))
    crops = [(i, (h - size) // 2, (w - size) // 2, size) for i in range(min(num, n))]
  fig = _figure(panel_size * len(crops), panel_size * 2 + 0.1)
  axes = fig.subplots(2, len(crops), squeeze=False)
  for j, (index, top, left, size) in enumerate(crops):
    if not (0 <= index < n and 0 <= top and top + size <= h and 0 <= left and left + size <= w):
      raise ValueError(f"crop {(index, top, left, size)} does not fit {n} images of {h}x{w}.")
    _show(axes[0, j], x[index])
    axes[0, j].add_patch(mpatches.Rectangle((left - 0.5, top - 0.5), size, size, fill=False,
                                            edgecolor="#ff7f0e", lw=1.0))
    _show(axes[1, j], x[index, top:top + size, left:left + size])
    for spine in axes[1, j].spines.values():
      spine.set_visible(True)
      spine.set_edgecolor("#ff7f0e")
    if titles is not None:
      axes[0, j].set_title(titles[j])
  axes[1, 0].set_ylabel(f"zoom x{h / crops[0][3]:.0f}")
  return fig


@_figure_function
def plot_sample_bands(images, num_bands: int = 4, num: int = 4,
                      panel_size: float = 0.85) -> Figure:
  """Samples split into frequency bands: rows are images, columns the image then its
  band-pass components (bands from DC to 0.5; they sum to the image).

  Args:
    images: ``[N, H, W, C]``, or name -> images to compare sets (e.g. data, FANS,
      DDPM); ``num`` images of each.
  """
  sets = images if isinstance(images, Mapping) else {"": images}
  rows = []
  for name, imgs in sets.items():
    x = to_display(imgs)[:num] * 2.0 - 1.0
    rows += [(name, x[i]) for i in range(x.shape[0])]
  height, width = rows[0][1].shape[:2]
  spec = _display_bands(num_bands)
  edges = spec.edges(height, width)
  ncols = 1 + spec.num_bands
  fig = _figure(panel_size * ncols + 0.4, panel_size * len(rows) + 0.3)
  axes = fig.subplots(len(rows), ncols, squeeze=False)
  for r, (name, img) in enumerate(rows):
    parts = spectra.band_decompose(img[None], spec)[:, 0]
    _show(axes[r, 0], np.clip((img + 1) / 2, 0, 1))
    if name:
      axes[r, 0].set_ylabel(name, fontsize=7)
    for b in range(spec.num_bands):
      _show(axes[r, 1 + b], _signed_to_display(parts[b]))
  axes[0, 0].set_title("image", fontsize=7)
  for b in range(spec.num_bands):
    axes[0, 1 + b].set_title(f"{edges[b]:.2g}–{edges[b + 1]:.2g} c/px", fontsize=6.5)
  return fig


# ----------------------------------------------------------------------------------
# Figure 6: spectra and band powers of samples against data
# ----------------------------------------------------------------------------------


def _draw_band_bars(ax, reference, samples: Mapping[str, Any], reference_name: str,
                    log: bool) -> None:
  sets = {reference_name: reference, **samples}
  n = len(sets)
  bands = np.arange(len(reference.band_powers))
  bar = 0.8 / n
  for i, (name, s) in enumerate(sets.items()):
    if len(s.band_powers) != len(bands):
      raise ValueError(f"{name!r} has {len(s.band_powers)} bands, the reference"
                       f" {len(bands)}; summarise both with the same settings.")
    color = DATA_COLOR if i == 0 else _color(i - 1)
    ax.bar(bands + (i - (n - 1) / 2) * bar, s.band_powers, width=bar, color=color, label=name,
           edgecolor="none")
  edges = reference.band_edges
  ax.set_xticks(bands)
  ax.set_xticklabels([str(b + 1) for b in bands])
  ax.set_xlabel(f"band $b$\n({len(bands)} {reference.settings.band_spacing} bands in $|k|$,"
                f" {edges[0]:.2g}–{edges[-1]:.2g} c/px)")
  ax.set_ylabel(r"band power fraction $\pi_b$")
  if log:
    ax.set_yscale("log")
  ax.grid(True, axis="y", which="major")
  if n > 3:  # many sets: the legend goes beside the axes, not over the bars
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
  else:
    ax.legend(loc="upper right")


@_figure_function
def plot_band_powers(reference, samples: Mapping[str, Any], reference_name: str = "data",
                     log: bool = True, width: float = SINGLE_COLUMN,
                     height: float = 2.3) -> Figure:
  """The published post's bar plot: band power fractions ``pi_b`` of data (green) and
  of each sample set (FANS blue, DDPM red, in the order given).

  Args:
    reference, samples: :class:`fans_jax.metrics.spectral.SpectralSummary` objects
      computed with the same settings.
  """
  fig = _figure(width, height)
  _draw_band_bars(fig.add_subplot(), reference, samples, reference_name, log)
  return fig


@_figure_function
def plot_spectra_comparison(reference, samples: Mapping[str, Any], reference_name: str = "data",
                            log_bars: bool = True, width: float = DOUBLE_COLUMN,
                            height: float = 2.3) -> Figure:
  """Spectra of samples against the data's: (a) radially averaged PSDs with fitted
  slopes, (b) their ratio to the data's PSD, (c) band power fractions.

  Args:
    reference: :class:`SpectralSummary` of the data.
    samples: name -> :class:`SpectralSummary` of each sample set (same settings).
  """
  if not samples:
    raise ValueError("samples is empty; pass name -> SpectralSummary.")
  fig = _figure(width, height)
  ax_psd, ax_ratio, ax_bar = fig.subplots(1, 3)
  ref = _spectral_curve(reference)
  keep = ref["freqs"] > 0
  ax_psd.loglog(ref["freqs"][keep], ref["profile"][keep], color=DATA_COLOR, lw=1.8,
                label=fr"{reference_name} ($\alpha$ = {ref['alpha']:.2f})")
  ax_ratio.axhline(1.0, color=DATA_COLOR, lw=1.8, label=reference_name)
  for i, (name, s) in enumerate(samples.items()):
    c = _spectral_curve(s)
    if c["freqs"].shape != ref["freqs"].shape:
      raise ValueError(f"{name!r} has another frequency grid than the reference (image sizes"
                       " differ).")
    ax_psd.loglog(c["freqs"][keep], c["profile"][keep], color=_color(i),
                  label=fr"{name} ($\alpha$ = {c['alpha']:.2f})")
    ax_ratio.semilogx(c["freqs"][keep], c["profile"][keep] / ref["profile"][keep],
                      color=_color(i), label=name)
  ax_ratio.set_yscale("log")
  short_label = "$|k|$ (cycles / pixel)"  # three panels side by side: keep labels short
  ax_psd.set_xlabel(short_label)
  log_frequency_axis(ax_psd)
  log_frequency_axis(ax_ratio)
  ax_psd.set_ylabel("PSD (data units$^2$ per coefficient)")
  if len(samples) > 3:  # many sets: the legend (with each slope) goes below, off the curves
    ax_psd.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=6,
                  handlelength=1.2, columnspacing=0.8)
  else:
    ax_psd.legend(loc="lower left")
  ax_psd.grid(True, which="major")
  ax_psd.set_title("(a) radially averaged PSD")
  ax_ratio.set_xlabel(short_label)
  ax_ratio.set_ylabel(f"PSD / PSD of {reference_name}")
  ax_ratio.grid(True, which="major")
  ax_ratio.set_title("(b) ratio to data")
  _draw_band_bars(ax_bar, reference, samples, reference_name, log_bars)
  ax_bar.set_title(r"(c) band powers $\pi_b$")
  return fig


__all__ = [
    "DOUBLE_COLUMN", "PAPER_RC", "SINGLE_COLUMN",
    "image_mosaic", "log_frequency_axis", "plot_band_powers", "plot_closeups", "plot_dataset_psds",
    "plot_forward_bands", "plot_running_variance", "plot_sample_bands", "plot_sample_grid",
    "plot_snr_heatmaps", "plot_spectra_comparison", "save_figure", "to_display",
]

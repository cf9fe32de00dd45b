"""Spectral reports of datasets: the library behind ``launch/analyze_spectra.py``.

``analyze(cfg, datasets=[...])`` streams each dataset once (through the cached
:func:`fans_jax.data.dataset_spectrum`), writes ``<output_dir>/<name>/spectra.json``
and two figures per dataset (log-log PSD with the power-law fit; running average of
the per-frequency variance with frequencies sorted low to high), and one PSD plot
comparing every dataset. All spectra are of model inputs (``u / 127.5 - 1``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Sequence

import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from fans_jax import spectra
from fans_jax.data import config as config_lib
from fans_jax.data import registry
from fans_jax.data import spectra_cache


# Non-DC power below this fraction of the total: no structure (constant images).
DEGENERATE_FRACTION = 1e-9


def degenerate_reason(stats: spectra.DatasetSpectrum) -> str | None:
  """Why a dataset spectrum is degenerate (non-finite values, or no power outside DC:
  constant or all-zero images), or None if it is not."""
  psd = np.asarray(stats.psd, np.float64)
  if not np.all(np.isfinite(psd)):
    return f"{int((~np.isfinite(psd)).sum())} of its {psd.size} spectrum values are not finite"
  total = float(psd.sum())
  outside = total - float(psd[0, 0])
  if total <= 0 or outside <= DEGENERATE_FRACTION * total:
    return (f"no power outside DC (non-DC power {outside:.3g} of {total:.3g}): the images are"
            " constant (or all zero)")
  return None


def spectrum_report(stats: spectra.DatasetSpectrum, cfg: ml_collections.ConfigDict,
                    f_lo: float | None = None, f_hi: float = 0.5) -> dict[str, Any]:
  """Everything ``spectra.json`` holds for one dataset (JSON-serialisable).

  Keys: dataset, config, image_shape, num_images, scale, alpha, amplitude, r2,
  fit_range ``[f_lo, f_hi]`` (cycles/px), band_spec, band_edges, band_powers,
  radial_profile ``{freqs, psd, variance}`` (per-coefficient means over annuli),
  variance (the ``[H, Wr]`` per-frequency signal variance, channel mean), psd
  (``[H, Wr]``), warning (None, or why the data is degenerate). Degenerate data
  (constant images: no power outside DC) has no power law: alpha, amplitude and r2
  are then None (JSON null, never NaN), with a logged warning.
  """
  reason = degenerate_reason(stats)
  values = (None, None, None)
  fit_range = [f_lo, f_hi]
  if reason is None:
    try:
      fit = stats.fit(f_lo, f_hi)
      values = (float(fit.alpha), float(fit.amplitude), float(fit.r2))
      fit_range = [float(fit.f_lo), float(fit.f_hi)]
      if not all(np.isfinite(values)):
        reason, values = "a power-law fit that is not finite", (None, None, None)
    except ValueError as e:  # e.g. a radial bin without power
      reason = f"no power-law fit ({e})"
  if reason is not None:
    logging.warning("degenerate data: %s has %s; no power law is fitted (alpha, amplitude and"
                    " R^2 are null).", cfg.name, reason)
  freqs, psd_profile = stats.radial_profile()
  _, var_profile = spectra.radial_profile(jnp.asarray(stats.variance), width=stats.width)
  height = stats.psd.shape[0]
  return {
      "dataset": cfg.name,
      "config": cfg.to_dict(),
      "image_shape": [height, stats.width, int(stats.psd_channels.shape[-1])],
      "num_images": int(stats.count),
      "scale": "model inputs u/127.5 - 1 in [-1, 1]; orthonormal rfft2; channel mean",
      "alpha": values[0], "amplitude": values[1], "r2": values[2], "warning": reason,
      "fit_range": fit_range,
      "band_spec": dataclasses.asdict(stats.band_spec),
      "band_edges": stats.band_spec.edges(height, stats.width).tolist(),
      "band_powers": np.asarray(stats.band_powers).tolist(),
      "radial_profile": {"freqs": np.asarray(freqs).tolist(),
                         "psd": np.asarray(psd_profile).tolist(),
                         "variance": np.asarray(var_profile, np.float64).tolist()},
      "variance": np.asarray(stats.variance).tolist(),
      "psd": np.asarray(stats.psd).tolist(),
  }


# ----------------------------------------------------------------------------------
# Figures (matplotlib, Agg; kept minimal here: fans_jax.plotting draws paper figures)
# ----------------------------------------------------------------------------------


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _plain_log_ticks(axis) -> None:
  """Labels a log axis at 1, 2 and 5 x 10^k in plain decimals ("0.05", "0.1") and
  leaves the minor ticks unlabelled: over the ~1.2 decades of a 32x32 frequency axis
  matplotlib otherwise labels minor ticks as "2 x 10^-1" ... which overlap."""
  import matplotlib.ticker as mticker  # pylint: disable=g-import-not-at-top
  axis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
  axis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
  axis.set_minor_formatter(mticker.NullFormatter())


def save_psd_plot(reports: Sequence[dict], path, title: str = "") -> None:
  """Log-log radial PSDs (DC left out) with each power-law fit dashed over its range."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 4.2))
  for rep in reports:
    f = np.asarray(rep["radial_profile"]["freqs"])
    p = np.asarray(rep["radial_profile"]["psd"])
    if rep["alpha"] is None:  # degenerate data (see analyze): nothing to draw
      continue
    line, = ax.loglog(f[1:], p[1:], label=f"{rep['dataset']}  alpha={rep['alpha']:.2f}"
                      f" (R²={rep['r2']:.3f})")
    lo, hi = rep["fit_range"]
    ff = np.geomspace(lo, hi, 50)
    ax.loglog(ff, rep["amplitude"] * ff ** (-rep["alpha"]), "--", color=line.get_color(),
              lw=1)
  ax.axvline(0.5, color="gray", lw=0.8, ls=":")  # Nyquist; the corners lie beyond
  _plain_log_ticks(ax.xaxis)
  ax.set_xlabel("|k| (cycles / pixel)")
  ax.set_ylabel("mean power per coefficient")
  ax.set_title(title or "radially averaged PSD (dashed: fit P = A f^-alpha)")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def save_running_variance_plot(reports: Sequence[dict], path, ordering: str = "manhattan") -> None:
  """Running average of per-frequency variance, frequencies sorted low to high."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 4.2))
  for rep in reports:
    var = np.asarray(rep["variance"])
    width = rep["image_shape"][1]
    _, running = spectra.running_average_by_frequency(var, ordering=ordering, width=width)
    ax.loglog(np.arange(1, running.size + 1) / running.size, running, label=rep["dataset"])
  ax.set_xlabel(f"fraction of frequencies (sorted by {ordering} distance from DC)")
  ax.set_ylabel("running mean of Var[F x(k)]")
  ax.set_title("per-frequency variance, running average")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


# ----------------------------------------------------------------------------------
# The analysis run
# ----------------------------------------------------------------------------------


def data_config_of(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The data config inside an experiment config (``config.data``) or ``config`` itself."""
  if "data" in config and isinstance(config.data, ml_collections.ConfigDict):
    return config.data
  return config


def analyze(cfg: ml_collections.ConfigDict, datasets: Sequence[str] = (),
            num_images: int | None = None, band_spec: spectra.BandSpec | None = None,
            output_dir=None, cache_dir=None, use_cache: bool = True,
            f_lo: float | None = None, f_hi: float = 0.5,
            figures: bool = True) -> list[dict[str, Any]]:
  """Spectral reports of ``cfg`` (or of each dataset name in ``datasets``, others as in
  ``cfg``); writes JSON and figures under ``output_dir`` when given.

  Args:
    cfg: data config (or an experiment config with ``.data``).
    datasets: names overriding ``cfg.name`` one by one; empty -> ``[cfg.name]``.
    num_images: images per dataset (clipped to the dataset's size); None -> all.
    band_spec: bands for the band powers (default 8 linear bands).
    output_dir: where ``<name>/spectra.json``, ``<name>/psd.png``,
      ``<name>/running_variance.png`` and ``comparison_psd.png`` go (None: nothing
      written).
    cache_dir, use_cache: see :func:`fans_jax.data.dataset_spectrum`.
    f_lo, f_hi: fit range, cycles per pixel (default first non-DC bin to 0.5).
    figures: draw figures.
  Returns:
    One :func:`spectrum_report` dict per dataset.
  """
  base_cfg = config_lib.with_overrides(data_config_of(cfg))
  names = list(datasets) or [base_cfg.name]
  reports = []
  out = pathlib.Path(output_dir) if output_dir else None
  for name in names:
    dcfg = config_lib.with_overrides(base_cfg, name=name)
    source = registry.get_source(dcfg)  # built once (a folder is decoded once)
    size = len(source)
    n = size if num_images is None else min(int(num_images), size)
    if num_images is not None and n < num_images:
      logging.info("%s has %d images (< num_images=%d): using all.", name, size, num_images)
    stats = spectra_cache.dataset_spectrum(dcfg, n, band_spec, cache_dir, use_cache,
                                           source=source)
    rep = spectrum_report(stats, dcfg, f_lo, f_hi)
    reports.append(rep)
    if rep["alpha"] is not None:
      logging.info("%s: alpha=%.3f (R^2=%.4f, fit %.4g-%.4g cycles/px) over %d images",
                   name, rep["alpha"], rep["r2"], *rep["fit_range"], rep["num_images"])
    if out is not None:
      d = out / name
      d.mkdir(parents=True, exist_ok=True)
      with open(d / "spectra.json", "w") as f:
        json.dump(rep, f)
      if figures and rep["alpha"] is not None:  # degenerate data: no power to plot
        save_psd_plot([rep], d / "psd.png", title=f"{name}: radially averaged PSD")
        save_running_variance_plot([rep], d / "running_variance.png")
  if out is not None and len(reports) > 1:
    summary = [{k: r[k] for k in ("dataset", "alpha", "r2", "fit_range", "num_images",
                                  "image_shape", "band_powers")} for r in reports]
    with open(out / "comparison.json", "w") as f:
      json.dump(summary, f, indent=1)
    drawn = [r for r in reports if r["alpha"] is not None]
    if figures and drawn:
      save_psd_plot(drawn, out / "comparison_psd.png", title="dataset PSDs")
      save_running_variance_plot(drawn, out / "comparison_running_variance.png")
  return reports


def markdown_table(reports: Sequence[dict]) -> str:
  rows = ["| dataset | images | shape | alpha | R^2 | fit range (cycles/px) |",
          "|---|---|---|---|---|---|"]
  for r in reports:
    alpha = "n/a" if r["alpha"] is None else f"{r['alpha']:.3f}"
    r2 = "n/a (degenerate data)" if r["r2"] is None else f"{r['r2']:.4f}"
    fit_range = ("n/a" if r["alpha"] is None
                 else f"{r['fit_range'][0]:.4g}-{r['fit_range'][1]:.4g}")
    rows.append(f"| {r['dataset']} | {r['num_images']} | {'x'.join(map(str, r['image_shape']))}"
                f" | {alpha} | {r2} | {fit_range} |")
  return "\n".join(rows)

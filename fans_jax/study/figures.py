"""The study's figures: spectra of each variant's samples against the data's,
band powers, sample grids."""

from __future__ import annotations

import json
import pathlib

import numpy as np

import fans_jax.data as data
from fans_jax.data import base as data_base
from fans_jax import evaluation, sample_files
from fans_jax.metrics import spectral as spectral_lib
from fans_jax.study import curves as study_curves
from fans_jax.study.planning import (FIGURES_DIR, RESULTS_JSON, SAMPLES_FILE, RunSpec,
                                     num_reference, read_record, reference_data_config,
                                     run_config, spectral_settings)


def spread_indices(num_images: int, n: int) -> np.ndarray:
  """The ``min(n, num_images)`` images of the data grid, :func:`fans_jax.data.base.spread_indices`
  (the offline sets are sorted by class: the first 64 CIFAR-10 images are airplanes)."""
  if n < 1:
    raise ValueError(f"need n >= 1 images in the grid, got {n}.")
  return data_base.spread_indices(num_images, min(n, num_images))


def _load_samples(spec: RunSpec, outdir) -> np.ndarray | None:
  """The run's saved samples, uint8 ``[N, H, W, C]`` (None: none saved)."""
  path = spec.workdir(outdir) / SAMPLES_FILE
  if not path.exists():
    return None
  return sample_files.read_samples(path).images


def write_figures(study, outdir: pathlib.Path, datasets, variants, seeds) -> dict[str, str]:
  """Per dataset: radially averaged PSDs of each variant's samples (pooled over seeds)
  against the data's (with ratio and band bars), the band-power bar plot, a grid of data
  and of each variant's samples (first finished seed). Runs without ``samples.npz`` on
  disk (imported ones, :func:`~fans_jax.study.runner.import_runs`) are left out of
  every figure. Returns name -> PNG path."""
  from fans_jax import plotting  # pylint: disable=g-import-not-at-top
  figdir = outdir / FIGURES_DIR
  settings = spectral_settings(study)
  written = {}
  references = {}
  for d in datasets:
    config = run_config(study, RunSpec(d, variants[0], seeds[0]))
    ref_cfg = reference_data_config(config, study)
    n_ref = num_reference(config, study)
    stats = data.dataset_spectrum(ref_cfg, num_images=n_ref, band_spec=settings.band_spec())
    shape = tuple(int(s) for s in data.get_source(ref_cfg).image_shape)
    ref = spectral_lib.summary_from_dataset_spectrum(stats, shape, settings)
    references[study.datasets[d].label] = ref
    summaries, grids = {}, {}
    for v in variants:
      pooled = []
      for s in seeds:
        spec = RunSpec(d, v, s)
        record = read_record(spec, outdir)
        images = _load_samples(spec, outdir) if record and record["status"] == "done" else None
        if images is not None:
          pooled.append(images)
          grids.setdefault(v, (s, images))
      if pooled:
        summaries[v] = spectral_lib.spectral_summary(
            evaluation.quantize(np.concatenate(pooled)), settings)
    if summaries:
      base = figdir / f"{d}_spectra"
      plotting.plot_spectra_comparison(ref, summaries, reference_name=d, path=base)
      written[f"{d}: spectra of samples vs data"] = f"{base}.png"
      base = figdir / f"{d}_band_powers"
      plotting.plot_band_powers(ref, summaries, reference_name=d, path=base)
      written[f"{d}: band powers"] = f"{base}.png"
    n = int(study.grid_size)
    source = data.get_source(ref_cfg)
    base = figdir / f"{d}_samples_data"
    shown = spread_indices(len(source), n)
    plotting.plot_sample_grid(source.get_batch(shown), title=f"{d}: data, {len(shown)} of"
                              f" {len(source)} images, evenly spaced", path=base)
    written[f"{d}: data"] = f"{base}.png"
    for v, (s, images) in grids.items():
      base = figdir / f"{d}_samples_{v}"
      plotting.plot_sample_grid(images[:n], title=f"{d}: {v}, seed {s}", path=base)
      written[f"{d}: samples {v}"] = f"{base}.png"
  results_path = outdir / RESULTS_JSON
  if results_path.exists():
    curves = json.loads(results_path.read_text()).get("curves", {})
    for d, summary in curves.items():
      written[f"{d}: learning curves"] = study_curves.plot_curves(
          summary, d, figdir / f"{d}_learning_curves")
      path = study_curves.plot_excess(summary, d, figdir / f"{d}_excess_eps_loss")
      if path:
        written[f"{d}: excess eps loss"] = path
  if references:
    base = figdir / "datasets_psd"
    plotting.plot_dataset_psds(references, normalize=True, path=base)
    written["dataset PSDs"] = f"{base}.png"
  return written

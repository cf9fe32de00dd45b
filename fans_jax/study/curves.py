"""Learning curves and Gaussian ground truth for the study (:mod:`fans_jax.study`).

A study run trains with a constant learning rate after warm-up, so one training run
passes through the same states as shorter ones: its checkpoints at
``evaluation.curve_steps`` (doubling step counts) give the learning curve. At each
curve step the run is sampled with the curve sampler (``evaluation.curve_sampler``:
DDIM, fewer steps, so that curves stay affordable; the final step is also evaluated
with the main sampler, and the two rankings are compared in the report) and evaluated:
spectral metrics, the feature metrics where they apply, the network's eps loss on held
data, and, on a dataset marked ``gaussian`` (PLTB without per-sample normalisation,
whose optimal denoiser is known per frequency), the excess of that loss over the
schedule's own Bayes optimum per band and noise level
(:mod:`fans_jax.metrics.gaussian`).

:func:`gaussian_ceiling` draws samples with the exact optimal denoiser of each
variant's schedule: the best spectral metrics that schedule and sampler can reach.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

import fans_jax.data as data
from fans_jax.data import spectra_cache
from fans_jax import sample_files, samplers, sampling, spectra
from fans_jax import evaluation
from fans_jax.metrics import gaussian as gaussian_lib
from fans_jax.metrics import spectral as spectral_lib
from fans_jax.study.stats import stat


# (key, label) of the curve panels; the excess only on Gaussian datasets: "excess_loss"
# the closed-form estimator (model loss - MMSE), "excess_direct" the distance to the
# exact denoiser (same expectation, far less Monte Carlo error; fans_jax.metrics.gaussian)
CURVE_METRICS = (("slope_abs_error", "|slope error|"), ("band_jsd", "band JSD (nats)"),
                 ("lsd", "LSD"), ("eps_loss", "eps loss (held data)"),
                 ("excess_loss", "excess eps loss (loss - optimum)"),
                 ("excess_direct", "excess eps loss (distance to optimum)"),
                 ("fd_resnet20", "FD-ResNet20"), ("fid", "FID"))
# metrics kept at the top level of a curve point (the others are spectral)
POINT_KEYS = ("eps_loss", "excess_loss", "excess_direct", "fd_resnet20", "fid")


def parse_steps(value, num_train_steps: int) -> tuple[int, ...]:
  """``"250,500,1000"`` -> sorted steps <= ``num_train_steps``, always ending with it."""
  if isinstance(value, str):
    steps = [int(s) for s in value.split(",") if s.strip()]
  else:
    steps = [int(s) for s in (value or ())]
  bad = [s for s in steps if not 0 < s <= num_train_steps]
  if bad:
    raise ValueError(f"evaluation.curve_steps {bad} must lie in (0, num_train_steps ="
                     f" {num_train_steps}].")
  return tuple(sorted(set(steps) | {int(num_train_steps)}))


def curve_settings(study: ml_collections.ConfigDict, seed: int) -> sample_files.SamplerSettings:
  ev = study.evaluation
  return sample_files.SamplerSettings(sampler=str(ev.curve_sampler),
                                      num_steps=int(ev.curve_num_steps) or None,
                                      eta=float(ev.curve_eta), clip_x0=bool(ev.clip_x0),
                                      seed=int(seed))


def held_images(config: ml_collections.ConfigDict, count: int) -> np.ndarray:
  """``count`` images spread evenly over the run's dataset, model units ``[-1, 1]``."""
  cfg = data.with_overrides(config.data)
  source = data.get_source(cfg)
  idx = spectra_cache.spread_indices(len(source), min(int(count), len(source)))
  return evaluation.quantize(source.get_batch(idx))


def data_variance(config: ml_collections.ConfigDict) -> np.ndarray:
  """The per-frequency variance ``[H, Wr]`` of the run's whole dataset (cached)."""
  cfg = data.with_overrides(config.data)
  return np.asarray(data.dataset_spectrum(cfg).variance, np.float64)


def _scalar(row: dict, key: str):
  if key in ("fd_resnet20", "fid"):
    value = row.get(key)
    return float(value) if isinstance(value, (int, float)) else None
  spectral = row.get("spectral")
  return float(spectral[key]) if isinstance(spectral, dict) and key in spectral else None


def evaluate_point(study, config, workdir: pathlib.Path, step: int, seed: int,
                   options: evaluation.EvalOptions, held: np.ndarray,
                   variance: np.ndarray | None) -> dict[str, Any]:
  """One point of a learning curve: samples of the checkpoint at ``step`` with the curve
  sampler, their metrics, the eps loss on held data and (Gaussian data) the excess."""
  run = sampling.load_run(workdir, step=step)
  settings = curve_settings(study, seed).resolved(run.schedule.num_timesteps)
  num = int(study.evaluation.curve_num_samples)
  images = sampling.generate_with(run, num, settings, progress=False)
  samples = evaluation.SampleSet(evaluation.quantize(images), settings, "curve")
  row = evaluation.evaluate_run(str(workdir), options=options, run=run,
                                sample_set=samples).row
  point = {"step": int(step), "sampler_settings": settings.to_json(),
           "num_samples": num,
           "spectral": {k: row["spectral"][k] for k in
                        ("slope_gen", "slope_ref", "slope_error", "slope_abs_error", "lsd",
                         "band_jsd", "band_corr")} if isinstance(row["spectral"], dict)
           else row["spectral"],
           "fd_resnet20": row.get("fd_resnet20"), "fid": row.get("fid"),
           "kid": row.get("kid")}
  key = jax.random.key(1234)  # the same noise for every run and step
  if run.objective == "eps":
    eps = gaussian_lib.model_eps_mse(run.model_fn, run.params, run.schedule, held,
                                     np.linspace(0, run.schedule.num_timesteps - 1, 10)
                                     .round().astype(np.int32), key)
    point["eps_loss"] = float(np.mean(eps))
  if variance is not None and run.schedule.gaussian and run.objective == "eps":
    ex = gaussian_lib.excess_loss(run.model_fn, run.params, run.schedule, held, variance,
                                  key=key, num_buckets=int(study.evaluation.gaussian_buckets),
                                  t_per_bucket=2,
                                  spec=spectra.BandSpec(num_bands=int(study.evaluation.num_bands)))
    point["excess"] = ex.to_json()
    point["excess_loss"] = float(np.nanmean(ex.excess))
    point["excess_direct"] = float(np.nanmean(ex.direct))
  return point


def evaluate_curve(study, spec, config, workdir: pathlib.Path, seed: int,
                   options: evaluation.EvalOptions) -> list[dict[str, Any]]:
  """Every point of a run's learning curve (``evaluation.curve_steps`` and the last)."""
  steps = parse_steps(study.evaluation.curve_steps, int(config.train.num_train_steps))
  held = held_images(config, int(study.evaluation.held_images))
  gaussian = bool(study.datasets[spec.dataset].get("gaussian", False))
  variance = data_variance(config) if gaussian else None
  points = []
  for step in steps:
    points.append(evaluate_point(study, config, workdir, step, seed, options, held, variance))
    logging.info("%s: curve step %d: slope %.3f (data %.3f), band JSD %.4f%s", spec.name, step,
                 points[-1]["spectral"]["slope_gen"], points[-1]["spectral"]["slope_ref"],
                 points[-1]["spectral"]["band_jsd"],
                 f", excess {points[-1]['excess_loss']:.4f} (direct"
                 f" {points[-1]['excess_direct']:.4f})" if "excess_direct" in points[-1]
                 else "")
  return points


def gaussian_ceiling(study, config, schedule, options: evaluation.EvalOptions,
                     seed: int = 0) -> dict[str, Any]:
  """Spectral metrics of samples drawn with the exact optimal denoiser of ``schedule``
  (main sampler and curve sampler): the ceiling of that schedule on Gaussian data."""
  variance = data_variance(config)
  model_fn = gaussian_lib.optimal_eps_model(schedule, variance)
  cfg = data.with_overrides(config.data)
  source = data.get_source(cfg)
  n_ref = int(options.num_reference or len(source))
  stats = data.dataset_spectrum(cfg, num_images=min(n_ref, len(source)),
                                band_spec=options.spectral.band_spec(),
                                cache_dir=options.data_cache_dir)
  shape = tuple(int(s) for s in source.image_shape)
  ref = spectral_lib.summary_from_dataset_spectrum(stats, shape, options.spectral)
  out = {}
  num = int(study.evaluation.num_samples)
  ev = study.evaluation
  for name, settings in (("main", sample_files.SamplerSettings(
      str(ev.sampler), int(ev.num_steps) or None, float(ev.eta), bool(ev.clip_x0), seed)),
                         ("curve", curve_settings(study, seed))):
    s = settings.resolved(schedule.num_timesteps)
    fn = jax.jit(lambda key, s=s: samplers.sample(
        model_fn, None, key, schedule=schedule, shape=(num,) + shape, sampler=s.sampler,
        num_steps=s.num_steps if s.sampler == "ddim" else None, eta=s.eta, clip_x0=s.clip_x0))
    images = np.asarray(fn(jax.random.key(seed)))
    gen = spectral_lib.spectral_summary(evaluation.quantize(images), options.spectral)
    cmp = spectral_lib.compare_summaries(gen, ref)
    out[name] = {"sampler_settings": s.to_json(),
                 **{k: cmp[k] for k in ("slope_gen", "slope_ref", "slope_abs_error", "lsd",
                                        "band_jsd", "band_corr")}}
  return out


# ----------------------------------------------------------------------------------
# Aggregation and figures
# ----------------------------------------------------------------------------------


def _point_value(point: dict, key: str):
  if key in ("eps_loss", "excess_loss", "excess_direct"):
    return point.get(key)
  return _scalar(point, key)


def aggregate_curves(curves: dict) -> dict:
  """``curves[(dataset, variant, seed)] = [points]`` -> per dataset, variant, metric:
  ``{"steps": [...], "stats": [stat per step]}`` and the mean final excess matrices
  (``excess_final``: ``mean`` the closed-form estimator over ``n`` seeds, ``direct``
  the distance to the exact denoiser over the ``direct_n`` seeds whose records have it,
  ``optimal`` and ``optimal_mc``)."""
  out: dict = {}
  for (d, v, _), points in curves.items():
    out.setdefault(d, {}).setdefault(v, {"points": {}})
    for p in points:
      out[d][v]["points"].setdefault(p["step"], []).append(p)
  for d, by_variant in out.items():
    for v, entry in by_variant.items():
      steps = sorted(entry["points"])
      entry["steps"] = steps
      entry["metrics"] = {}
      for key, _ in CURVE_METRICS:
        stats = [stat([_point_value(p, key) for p in entry["points"][s]]) for s in steps]
        if any(stats):
          entry["metrics"][key] = stats
      last = entry["points"][steps[-1]]
      mats = [np.asarray(p["excess"]["excess"], np.float64) for p in last if "excess" in p]
      if mats:
        entry["excess_final"] = {
            "mean": np.nanmean(mats, axis=0).tolist(),
            "t_edges": last[0]["excess"]["t_edges"],
            "band_edges": last[0]["excess"]["band_edges"],
            "optimal": np.nanmean([p["excess"]["optimal"] for p in last if "excess" in p],
                                  axis=0).tolist()}
        entry["excess_final"]["n"] = len(mats)
        for key in ("direct", "optimal_mc"):  # over the seeds that have it (newer records)
          parts = [p["excess"][key] for p in last if key in p.get("excess", {})]
          if parts:
            entry["excess_final"][key] = np.nanmean(np.asarray(parts, np.float64),
                                                    axis=0).tolist()
            entry["excess_final"][f"{key}_n"] = len(parts)
      del entry["points"]
  return out


def curves_from_summary(results: dict) -> dict:
  """Each run's learning curve rebuilt from a ``results.json`` that holds only the
  summary (:func:`aggregate_curves`), for a study continued from committed results.

  A summary stat keeps its per-seed ``values`` in run order (the plan's seed order over
  the variant's finished runs), so the scalar metrics of every point are exact; the
  per-band, per-t excess matrix of the last point is not kept per run, so each rebuilt
  run carries the mean over the summarised runs (re-aggregating gives the same mean).
  A metric whose ``n`` is not the number of finished runs (a seed without it) is left
  out rather than guessed.

  Returns:
    ``{(dataset, variant, seed): [points]}``, each point marked ``"rebuilt"``; only
    for variants whose runs are all in the summary.
  """
  done = {}
  for r in results.get("runs", []):
    if r.get("status") == "done":
      done.setdefault((r["dataset"], r["variant"]), []).append(int(r["seed"]))
  out = {}
  for d, by_variant in results.get("curves", {}).items():
    for v, entry in by_variant.items():
      seeds = done.get((d, v), [])
      if not seeds:
        continue
      points = {s: [{"step": int(step), "spectral": {}, "rebuilt": True}
                    for step in entry["steps"]] for s in seeds}
      for key, stats in entry["metrics"].items():
        for j, st in enumerate(stats):
          if st is None or st["n"] != len(seeds):
            continue
          for s, value in zip(seeds, st["values"]):
            p = points[s][j]
            if key in POINT_KEYS:
              p[key] = value  # top-level keys of a point (_point_value)
            else:
              p["spectral"][key] = value
      final = entry.get("excess_final")
      excess = None if final is None else {
          "excess": final["mean"], "optimal": final["optimal"],
          "model": (np.asarray(final["mean"]) + np.asarray(final["optimal"])).tolist(),
          "t_edges": final["t_edges"], "band_edges": final["band_edges"],
          **{k: final[k] for k in ("direct", "optimal_mc")  # only if every seed had it
             if k in final and final.get(f"{k}_n") == len(seeds)}}
      for s in seeds:
        if excess is not None:
          points[s][-1]["excess"] = excess
        out[(d, v, s)] = points[s]
  return out


def ceilings_from_summary(results: dict) -> dict:
  """Each ceiling of a ``results.json`` (computed once per variant, by the run of the
  study's first seed) as that run's record: ``{(dataset, variant, seed): ceiling}``."""
  seeds = results.get("seeds") or []
  out = {}
  for d, by_variant in results.get("ceiling", {}).items():
    for v, by_name in by_variant.items():
      if not seeds or any(st is None or st["n"] != 1 for c in by_name.values()
                          for st in c.values()):
        continue
      out[(d, v, int(seeds[0]))] = {name: {k: st["values"][0] for k, st in c.items()}
                                    for name, c in by_name.items()}
  return out


def join_summaries(summaries: list[dict]) -> dict:
  """Joins the curve summaries of studies that ran the same runs for longer (e.g.
  ``:curves`` and ``:plateau``, whose rate is constant, so a longer run passes through
  the shorter one's states) into one curve per variant.

  Args:
    summaries: ``[{variant: {"steps": [...], "metrics": {key: [stat per step]}}}]``
      (one dataset of :func:`aggregate_curves` each), shortest budget first.
  Returns:
    The same layout; at a step present in several summaries the later one's point is
    kept (its run went on from there), and ``"sources"`` gives each step's index into
    ``summaries``.
  """
  out: dict = {}
  for i, summary in enumerate(summaries):
    for variant, entry in summary.items():
      points = out.setdefault(variant, {})
      for j, step in enumerate(entry["steps"]):
        points[int(step)] = (i, {k: v[j] for k, v in entry["metrics"].items()})
  joined = {}
  for variant, points in out.items():
    steps = sorted(points)
    keys = sorted({k for _, m in points.values() for k in m})
    joined[variant] = {
        "steps": steps, "sources": [points[s][0] for s in steps],
        "metrics": {k: [points[s][1].get(k) for s in steps] for k in keys}}
  return joined


def plateau_check(stats: list, steps: list) -> dict[str, Any] | None:
  """Issue criterion: the change between the last two points against the spread over
  seeds (the larger std of the two points). ``plateaued`` when smaller; None (and
  ``seed_std`` None) for a single seed, which has no spread to test against."""
  if len(stats) < 2 or stats[-1] is None or stats[-2] is None:
    return None
  change = abs(stats[-1]["mean"] - stats[-2]["mean"])
  if all(s["std"] is None for s in stats[-2:]):  # one seed: no spread to test against
    return {"from_step": steps[-2], "to_step": steps[-1], "change": change,
            "seed_std": None, "plateaued": None}
  spread = max(s["std"] or 0.0 for s in stats[-2:])
  return {"from_step": steps[-2], "to_step": steps[-1], "change": change, "seed_std": spread,
          "plateaued": bool(spread > 0 and change < spread)}


def plot_curves(summary: dict, dataset: str, path, log_y: bool = False,
                title: str | None = None) -> str:
  """One panel per metric: mean over seeds vs training step (log2 axis), +- std band;
  ``log_y`` puts the metrics on a log axis too (curves over decades of steps)."""
  from fans_jax import plotting  # pylint: disable=import-outside-toplevel
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  keys = [(k, label) for k, label in CURVE_METRICS
          if any(k in e["metrics"] for e in summary.values())]
  cols = min(3, len(keys))
  rows = -(-len(keys) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  for ax, (key, label) in zip(axes.flat, keys):
    for variant, entry in summary.items():
      stats = entry["metrics"].get(key)
      if not stats:
        continue
      steps = [s for s, st in zip(entry["steps"], stats) if st]
      mean = np.array([st["mean"] for st in stats if st])
      std = np.array([st["std"] or 0.0 for st in stats if st])
      line, = ax.plot(steps, mean, marker="o", ms=3, label=variant)
      lower = mean - std
      if log_y:  # a band reaching zero or below has no place on a log axis: leave it open
        lower = np.where(lower > 0, lower, np.nan)
      ax.fill_between(steps, lower, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    if log_y:
      ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(keys):]:
    ax.axis("off")
  axes.flat[0].legend(fontsize=8)
  fig.suptitle(title or f"{dataset}: learning curves (mean ± std over seeds)", fontsize=11)
  fig.tight_layout()
  written = plotting.save_figure(fig, path, formats=("png",))
  plt.close(fig)
  return written[0]


def plot_excess(summary: dict, dataset: str, path) -> str | None:
  """Heatmaps of the final excess eps loss, noise level x band, one column per variant:
  the closed-form estimator (model loss - optimum) and, where every variant has it, the
  direct one (distance to the exact denoiser) in a second row; one colour scale a row."""
  from fans_jax import plotting  # pylint: disable=import-outside-toplevel
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  items = [(v, e["excess_final"]) for v, e in summary.items() if "excess_final" in e]
  if not items:
    return None
  estimators = [("mean", "model loss - optimum")]
  if all("direct" in x for _, x in items):
    estimators.append(("direct", "distance to optimum"))
  rows = len(estimators)
  fig, axes = plt.subplots(rows, len(items), figsize=(3.0 * len(items) + 1.5, 3.0 * rows + 0.3),
                           squeeze=False, layout="constrained")
  for i, (key, label) in enumerate(estimators):
    mats = [np.asarray(x[key], np.float64) for _, x in items]
    vmax = max(np.nanmax(m) for m in mats)
    vmin = min(0.0, min(np.nanmin(m) for m in mats))
    im = None
    for j, ((v, x), m) in enumerate(zip(items, mats)):
      ax = axes[i][j]
      im = ax.imshow(m, origin="lower", aspect="auto", cmap="magma", vmin=vmin, vmax=vmax)
      if i == 0:
        ax.set_title(v, fontsize=10)
      elif x.get(f"{key}_n", x.get("n")) != x.get("n"):  # fewer seeds than the row above
        ax.set_title(f"{x[f'{key}_n']} of {x['n']} seeds", fontsize=8)
      if i == rows - 1:
        ax.set_xlabel("band (low -> high frequency)", fontsize=8)
      t_edges = x["t_edges"]
      ax.set_yticks(range(len(t_edges) - 1))
      labels = [f"{t_edges[k]}-{t_edges[k + 1] - 1}" for k in range(len(t_edges) - 1)]
      ax.set_yticklabels(labels if j == 0 else [""] * len(labels), fontsize=7)
    axes[i][0].set_ylabel(f"{label}\nt bucket (0: least noisy)", fontsize=9)
    fig.colorbar(im, ax=list(axes[i]), shrink=0.9, label="excess eps loss")
  fig.suptitle(f"{dataset}: trained network minus Bayes-optimal eps loss, final step"
               " (mean over seeds)", fontsize=11)
  written = plotting.save_figure(fig, path, formats=("png",))
  plt.close(fig)
  return written[0]


__all__ = ["CURVE_METRICS", "POINT_KEYS", "aggregate_curves", "curve_settings",
           "data_variance", "evaluate_curve", "evaluate_point", "gaussian_ceiling", "held_images",
           "join_summaries", "parse_steps", "plateau_check", "plot_curves", "plot_excess"]

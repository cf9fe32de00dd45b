"""From the runs on disk to ``results.json``, ``results.md`` and the figures."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from fans_jax import train
from fans_jax.utils import config as config_utils
from fans_jax.study import curves as study_curves
from fans_jax.study.figures import write_figures
from fans_jax.study.planning import (FRECHET_METRICS, RECORD_FILE, RESULTS_JSON, RESULTS_MD,
                                     TABLE_METRICS, datasets_of, parse_seeds, plan, read_record,
                                     variants_of, write_json)
from fans_jax.study.published import (PUBLISHED, PUBLISHED_SLOPE_MAE, PUBLISHED_SOURCE,
                                      PUBLISHED_T_TEST, published_slope_errors)
from fans_jax.study.report import results_markdown
from fans_jax.study.stats import paired_t_test, stat


def _metric(row: dict, key: str):
  """A metric of a row: spectral ones from ``row["spectral"]``; FD-ResNet20 and FID a
  float, KID its mean over subsets; None when it was not computed (its note then says
  why)."""
  if key in ("fd_resnet20", "fid", "kid"):
    value = row.get(key)
    if key == "kid" and isinstance(value, dict):
      value = value.get("mean")
    return float(value) if isinstance(value, (int, float)) else None
  spectral = row.get("spectral")
  return float(spectral[key]) if isinstance(spectral, dict) else None


def aggregate(study: ml_collections.ConfigDict, outdir) -> dict:
  """Reads every run's record and writes ``results.json``, ``results.md`` and
  ``figures/`` (figures only when ``study.figures``).

  Returns:
    The results dict written to ``results.json``.
  """
  outdir = pathlib.Path(outdir).absolute()
  datasets, variants = datasets_of(study), variants_of(study)
  seeds = parse_seeds(study.seeds)
  runs = []
  for spec in plan(study):
    record = read_record(spec, outdir)
    entry = {"dataset": spec.dataset, "variant": spec.variant, "seed": spec.seed,
             "status": record["status"] if record else "missing"}
    if record and record["status"] == "done":
      entry["row"] = record["row"]
      for key in ("curve", "ceiling"):  # per run, so that a continued study imports them
        if key in record:
          entry[key] = record[key]
    elif record:
      entry["error"] = record["error"]
      entry["phase"] = record["phase"]
    runs.append(entry)
  done = {(r["dataset"], r["variant"], r["seed"]): r["row"] for r in runs if "row" in r}
  curves, ceilings = {}, {}
  for spec in plan(study):
    record = read_record(spec, outdir)
    if record and record.get("status") == "done":
      if "curve" in record:
        curves[(spec.dataset, spec.variant, spec.seed)] = record["curve"]
      if "ceiling" in record:
        ceilings.setdefault(spec.dataset, {}).setdefault(spec.variant, []).append(
            record["ceiling"])

  table = {}
  for d in datasets:
    rows = [done[(d, v, s)] for v in variants for s in seeds if (d, v, s) in done]
    entry = {"label": study.datasets[d].label, "published": study.datasets[d].published,
             "resolution": rows[0]["resolution"] if rows else None,
             "num_reference": rows[0]["num_reference"] if rows else None,
             "data_slope": stat([rows[0]["spectral"]["slope_ref"]]) if rows else None,
             "variants": {}}
    for v in variants:
      vrows = [done[(d, v, s)] for s in seeds if (d, v, s) in done]
      entry["variants"][v] = {key: stat([_metric(r, key) for r in vrows])
                              for key, _, _ in TABLE_METRICS}
      for key, _, _ in FRECHET_METRICS:
        entry["variants"][v][key] = stat([_metric(r, key) for r in vrows])
      entry["variants"][v]["slope_abs_error"] = stat(
          [_metric(r, "slope_abs_error") for r in vrows])
      entry["variants"][v]["notes"] = sorted({
          str(r[k]) for r in vrows for k in ("fd_resnet20", "fid", "kid")
          if isinstance(r.get(k), str)})
    table[d] = entry

  results = {
      "study": config_utils.to_dict(study),
      "datasets": list(datasets), "variants": list(variants), "seeds": list(seeds),
      "environment": _numeric_environment(),
      "table": table,
      "slope_mae": _slope_mae(done, datasets, variants, seeds),
      "paired_tests": _paired_tests(table, datasets, variants, study.baseline),
      "paired_over_seeds": _paired_over_seeds(done, datasets, variants, seeds,
                                              study.baseline),
      "published": {"source": PUBLISHED_SOURCE, "rows": PUBLISHED,
                    "slope_mae": PUBLISHED_SLOPE_MAE, "t_test_reported": PUBLISHED_T_TEST,
                    "t_test_recomputed": paired_t_test(*published_slope_errors().values())},
      "runs": runs,
  }
  if curves:
    summary = study_curves.aggregate_curves(curves)
    results["curves"] = summary
    results["plateau"] = {
        d: {v: {k: study_curves.plateau_check(stats, e["steps"])
                for k, stats in e["metrics"].items()} for v, e in by_v.items()}
        for d, by_v in summary.items()}
    results["sampler_check"] = _sampler_check(done, curves, datasets, variants, seeds)
  if ceilings:
    results["ceiling"] = {d: {v: {name: {k: stat([c[name][k] for c in cs])
                                         for k in ("slope_abs_error", "lsd", "band_jsd",
                                                   "band_corr")}
                                  for name in ("main", "curve")}
                              for v, cs in by_v.items()}
                          for d, by_v in ceilings.items()}
  write_json(outdir / RESULTS_JSON, results)
  figures = write_figures(study, outdir, datasets, variants, seeds) if study.figures else {}
  record_path = outdir / RECORD_FILE
  record = json.loads(record_path.read_text()) if record_path.exists() else {"invocations": []}
  (outdir / RESULTS_MD).write_text(results_markdown(study, results, record, figures, outdir))
  logging.info("wrote %s and %s", outdir / RESULTS_JSON, outdir / RESULTS_MD)
  return results


def _sampler_check(done: dict, curves: dict, datasets, variants, seeds) -> dict[str, Any]:
  """Does the cheaper curve sampler rank the variants as the main sampler does? Per
  dataset and metric: the variant order (mean over seeds, final step) under each."""
  out = {}
  for d in datasets:
    out[d] = {}
    for key in ("band_jsd", "lsd", "slope_abs_error"):
      main, cheap = {}, {}
      for v in variants:
        m = [_metric(done[(d, v, s)], key) for s in seeds if (d, v, s) in done]
        c = [study_curves._point_value(curves[(d, v, s)][-1], key)  # pylint: disable=protected-access
             for s in seeds if (d, v, s) in curves]
        if m and c:
          main[v], cheap[v] = float(np.mean(m)), float(np.mean(c))
      if len(main) >= 2:
        order_main = sorted(main, key=main.get)
        order_cheap = sorted(cheap, key=cheap.get)
        out[d][key] = {"main": order_main, "curve": order_cheap,
                       "same_ranking": order_main == order_cheap,
                       "main_values": main, "curve_values": cheap}
  return out


def _numeric_environment() -> dict[str, Any]:
  """What the numbers depend on besides the config: library versions and devices."""
  devices = jax.devices()
  return {"versions": train.versions(), "device_count": len(devices),
          "backend": devices[0].platform}


def _slope_mae(done: dict, datasets, variants, seeds) -> dict[str, Any]:
  """Per variant: the mean over datasets of ``|slope_gen - slope_ref|``, per seed (only
  seeds with every dataset finished), then mean +- std over those seeds."""
  out = {}
  for v in variants:
    per_seed = []
    for s in seeds:
      if all((d, v, s) in done for d in datasets):
        per_seed.append(float(np.mean([_metric(done[(d, v, s)], "slope_abs_error")
                                       for d in datasets])))
    out[v] = stat(per_seed)
  return out


# Metrics of the paired tests over seeds: (key, lower is better).
PAIRED_METRICS = (("slope_abs_error", True), ("band_jsd", True), ("band_corr", False),
                  ("lsd", True), ("fd_resnet20", True), ("fid", True), ("kid", True))


def _paired_over_seeds(done: dict, datasets, variants, seeds, baseline: str
                       ) -> dict[str, Any]:
  """Within each dataset, each variant against the baseline over the seeds both
  finished (seed s of both: the same training-data order and sampling seed), per
  metric: ``{"diff": mean(variant - baseline), "t", "p", "n"}`` (two-sided paired
  t-test; ``t``/``p`` None below two seeds or for identical pairs)."""
  out: dict[str, Any] = {}
  if baseline not in variants:
    return out
  for d in datasets:
    for v in variants:
      if v == baseline:
        continue
      both = [s for s in seeds if (d, v, s) in done and (d, baseline, s) in done]
      for key, _ in PAIRED_METRICS:
        a = [_metric(done[(d, v, s)], key) for s in both]
        b = [_metric(done[(d, baseline, s)], key) for s in both]
        pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
        if not pairs:
          continue
        test = paired_t_test([x for x, _ in pairs], [y for _, y in pairs]) or {}
        out.setdefault(d, {}).setdefault(v, {})[key] = {
            "diff": float(np.mean([x - y for x, y in pairs])), "n": len(pairs),
            "t": test.get("t"), "p": test.get("p")}
  return out


def _paired_tests(table: dict, datasets, variants, baseline: str) -> dict[str, Any]:
  """Each variant against the baseline: the post's paired t-test on per-dataset absolute
  slope errors (means over seeds), over the datasets both finished."""
  out = {}
  if baseline not in variants:
    return out
  for v in variants:
    if v == baseline:
      continue
    pairs = [(table[d]["variants"][v]["slope_abs_error"],
              table[d]["variants"][baseline]["slope_abs_error"]) for d in datasets]
    pairs = [(a["mean"], b["mean"]) for a, b in pairs if a and b]
    out[v] = paired_t_test([a for a, _ in pairs], [b for _, b in pairs]) if pairs else None
  return out

"""Runs the plan: each run trained, sampled and evaluated into its directory,
resumably; then :func:`fans_jax.study.aggregation.aggregate`."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import sys
import time
import traceback
from typing import Any, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from fans_jax import checkpointing, evaluation, sample_files, sampling, train
from fans_jax.metrics import features as features_lib
from fans_jax.study import curves as study_curves
from fans_jax.study.aggregation import aggregate
from fans_jax.study.planning import (FAILED_FILE, METRICS_FILE, RECORD_FILE, SAMPLES_FILE,
                                     RunSpec, check_outdir, evaluation_options,
                                     num_reference, parse_seeds, plan, read_record,
                                     planned_metrics, run_config, run_key, sample_seed,
                                     sample_size_warnings,
                                     sampler_settings, select_metrics, write_json)
from fans_jax.study.stats import hms
from fans_jax.utils import config as config_utils
from fans_jax.utils import host


class StudyInterrupted(RuntimeError):
  """Training stopped early (SIGTERM / preemption); rerun the study to resume."""


def _checkpoint_steps(workdir: pathlib.Path) -> set[int]:
  """The checkpoint steps saved in ``workdir`` (empty: none)."""
  path = workdir / sampling.CHECKPOINT_DIR
  if not path.exists():
    return set()
  ckpt = checkpointing.Checkpointer(path, read_only=True)
  try:
    return {int(s) for s in ckpt.steps()}
  finally:
    ckpt.close()


def _checkpoint_step(workdir: pathlib.Path) -> int:
  """The newest checkpoint step in ``workdir`` (0: none)."""
  return max(_checkpoint_steps(workdir), default=0)


def draw_samples(study, spec: RunSpec, run, workdir: pathlib.Path
                 ) -> tuple[evaluation.SampleSet, bool]:
  """The run's evaluation samples: read from ``samples.npz`` when it was drawn with
  the same settings from the same checkpoint step, else drawn (and saved).

  Returns:
    ``(SampleSet with images float32 [N, H, W, C] in [-1, 1] after uint8
    quantisation, reused)``.
  """
  settings = sampler_settings(study, spec).resolved(run.schedule.num_timesteps)
  num = int(study.evaluation.num_samples)
  path = workdir / SAMPLES_FILE
  if path.exists():
    try:
      saved = sample_files.read_samples(path)
    except ValueError as e:
      logging.warning("%s: cannot read %s (%s); sampling again", spec.name, path, e)
    else:
      if (saved.settings == settings and saved.info.get("step") == int(run.step)
          and len(saved.images) == num):
        logging.info("%s: reusing %d samples from %s", spec.name, num, path)
        return evaluation.SampleSet(evaluation.quantize(saved.images), settings,
                                    SAMPLES_FILE), True
  images = sampling.generate_with(run, num, settings,
                                  batch_size=int(study.evaluation.batch_size) or None,
                                  progress=False)
  images = features_lib.images_to_uint8(images)
  if study.save_samples:
    sample_files.write_samples(path, images, settings, step=int(run.step), run=spec.name)
  return evaluation.SampleSet(evaluation.quantize(images), settings, SAMPLES_FILE), False


def _public_row(row: dict, outdir, spec: RunSpec) -> dict:
  out = dict(row)
  out["run"] = spec.name
  out["workdir"] = os.path.relpath(spec.workdir(outdir), outdir)
  return out


def execute_run(study: ml_collections.ConfigDict, spec: RunSpec, outdir) -> dict:
  """Trains, samples and evaluates one run; writes ``metrics.json`` or ``failed.json``.

  Returns:
    The run's record: ``status`` (``done`` / ``failed``), ``timing`` (seconds), and
    ``row`` or ``error``.
  Raises:
    StudyInterrupted: training stopped before its last step (SIGTERM).
  """
  workdir = spec.workdir(outdir)
  workdir.mkdir(parents=True, exist_ok=True)
  timing: dict[str, Any] = {}
  phase = "config"
  start = time.perf_counter()
  try:
    config = run_config(study, spec)
    n_ref = num_reference(config, study)
    phase = "train"
    timing["resumed_from_step"] = _checkpoint_step(workdir)
    t0 = time.perf_counter()
    state = train.train_and_evaluate(config, workdir)
    timing["train_s"] = time.perf_counter() - t0
    timing["trained_steps"] = int(config.train.num_train_steps) - timing["resumed_from_step"]
    final = int(jax.device_get(state.step))
    if final < int(config.train.num_train_steps):
      raise StudyInterrupted(f"{spec.name} stopped at step {final} of"
                             f" {config.train.num_train_steps} (SIGTERM); rerun to resume.")
    phase = "sample"
    t0 = time.perf_counter()
    run = sampling.load_run(workdir)
    samples, reused = draw_samples(study, spec, run, workdir)
    timing["sample_s"] = time.perf_counter() - t0
    timing["samples_reused"] = reused
    phase = "evaluate"
    t0 = time.perf_counter()
    metrics, note = select_metrics(study, config, n_ref)
    row = evaluation.evaluate_run(str(workdir),
                                  options=evaluation_options(study, spec, n_ref, metrics),
                                  run=run, sample_set=samples).row
    if note:
      row["fid"] = row["kid"] = note
    timing["evaluate_s"] = time.perf_counter() - t0
    curve, ceiling = None, None
    if str(study.evaluation.curve_steps).strip():
      phase = "curve"
      t0 = time.perf_counter()
      options = evaluation_options(study, spec, n_ref, metrics)
      curve = study_curves.evaluate_curve(study, spec, config, workdir, sample_seed(study, spec),
                                          options)
      first_seed = parse_seeds(study.seeds)[0]
      if (study.datasets[spec.dataset].get("gaussian", False) and run.schedule.gaussian
          and spec.seed == first_seed):  # the ceiling needs no training: once per variant
        ceiling = study_curves.gaussian_ceiling(study, config, run.schedule, options,
                                                seed=sample_seed(study, spec))
      timing["curve_s"] = time.perf_counter() - t0
  except StudyInterrupted:
    raise
  except Exception as e:  # pylint: disable=broad-except  (recorded; the study goes on)
    timing["total_s"] = time.perf_counter() - start
    record = {"status": "failed", "run": spec.name, "phase": phase,
              "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(),
              "timing": timing}
    write_json(workdir / FAILED_FILE, record)
    logging.error("%s failed while %s: %s: %s", spec.name,
                  {"config": "building its config", "train": "training",
                   "sample": "sampling", "evaluate": "evaluating",
                   "curve": "evaluating its learning curve"}[phase], type(e).__name__, e)
    return record
  timing["total_s"] = time.perf_counter() - start
  record = {"status": "done", "run": spec.name, "key": run_key(config, study),
            "row": _public_row(row, outdir, spec), "timing": timing}
  if curve is not None:
    record["curve"] = curve
  if ceiling is not None:
    record["ceiling"] = ceiling
  write_json(workdir / METRICS_FILE, record)
  (workdir / FAILED_FILE).unlink(missing_ok=True)
  return record


def machine_info() -> dict[str, Any]:
  """CPU, core count, platform, library versions and JAX devices of this process."""
  devices = jax.devices()
  return {"cpu": host.cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "versions": train.versions(), "device_count": len(devices),
          "device_kind": devices[0].device_kind, "backend": devices[0].platform,
          "xla_flags": os.environ.get("XLA_FLAGS", "")}


def run_study(study: ml_collections.ConfigDict, outdir, argv: Sequence[str] | None = None
              ) -> dict:
  """Runs every run of the study not yet finished, then :func:`aggregate`.

  Args:
    study: the study config (``configs/study.py``).
    outdir: where runs, results and figures go (created).
    argv: the command line, recorded in ``record.json``.
  Returns:
    The results (as written to ``results.json``).
  Raises:
    ValueError: a bad study config, or ``outdir`` holding runs of another config.
    StudyInterrupted: a run was stopped by SIGTERM (its checkpoint is saved; the
      results so far are aggregated first).
  """
  outdir = pathlib.Path(outdir).absolute()
  outdir.mkdir(parents=True, exist_ok=True)
  specs = plan(study)
  check_outdir(study, outdir)
  for warning in sample_size_warnings(int(study.evaluation.num_samples),
                                      planned_metrics(study)):
    logging.warning("TOO FEW SAMPLES TO RANK: %s.", warning)
  invocation = {"argv": list(argv) if argv is not None else list(sys.argv),
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "machine": machine_info(), "runs": []}
  todo = []
  for spec in specs:
    saved = read_record(spec, outdir)
    if saved and (saved["status"] == "done" or not study.retry_failed):
      logging.info("%s: %s earlier, skipped", spec.name,
                   "finished" if saved["status"] == "done" else "failed")
      continue
    todo.append(spec)
  logging.info("study: %d run(s) planned, %d to do, into %s", len(specs), len(todo), outdir)
  start = time.perf_counter()
  done_times = []
  interrupted = None
  try:
    for i, spec in enumerate(todo):
      eta = (f", ETA {hms(np.mean(done_times) * (len(todo) - i))} for the rest"
             if done_times else "")
      logging.info("[%d/%d] %s: starting (elapsed %s%s)", i + 1, len(todo), spec.name,
                   hms(time.perf_counter() - start), eta)
      record = execute_run(study, spec, outdir)
      invocation["runs"].append({"run": spec.name, "status": record["status"],
                                 "timing": record["timing"]})
      if record["status"] == "done":
        done_times.append(record["timing"]["total_s"])
        spectral = record["row"]["spectral"]
        logging.info("[%d/%d] %s: done in %s (slope %.3f vs data %.3f, band JSD %.4f)",
                     i + 1, len(todo), spec.name, hms(record["timing"]["total_s"]),
                     spectral["slope_gen"], spectral["slope_ref"], spectral["band_jsd"])
  except StudyInterrupted as e:
    interrupted = e
    logging.warning("%s", e)
  except train.Terminated as e:  # SIGTERM while a run was starting: nothing half-written
    interrupted = StudyInterrupted(f"SIGTERM during the start of a run ({e}); rerun to"
                                   " resume.")
    logging.warning("%s", interrupted)
  invocation["wall_s"] = time.perf_counter() - start
  invocation["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  _append_invocation(outdir, invocation)
  results = aggregate(study, outdir)
  if interrupted is not None:
    raise interrupted
  return results


def import_runs(study: ml_collections.ConfigDict, outdir, results_path) -> list[str]:
  """Continues a study from another study directory's ``results.json`` whose run
  directories are gone (a study split over sessions or machines, its results
  committed): writes ``metrics.json`` for each finished run there that belongs to this
  plan and is not in ``outdir`` yet, so that :func:`run_study` skips it and
  :func:`aggregate` counts it.

  A run is imported only when its key (config, step count, evaluation settings),
  rebuilt from the study config saved in ``results.json``, equals the current one, the
  check :func:`check_outdir` makes. Its timing comes from the ``record.json`` beside
  ``results.json`` (the last invocation that ran it), its record says
  ``imported_from``. Its samples are not on disk, so the figures leave it out.

  With learning curves in the plan, each run's curve (and Gaussian ceiling) comes from
  its entry in ``runs`` (written since curves were kept per run) or, for an older
  ``results.json`` that holds only the summary, is rebuilt from the summary's per-seed
  values (:func:`fans_jax.study.curves.curves_from_summary`: exact scalar metrics, the
  final excess matrix as the mean over the imported seeds).

  Returns:
    The names of the imported runs.
  Raises:
    ValueError: a run of another config, or one without a learning curve when the
      plan has curves (nothing is imported then).
  """
  outdir = pathlib.Path(outdir).absolute()
  results_path = pathlib.Path(results_path)
  results = json.loads(results_path.read_text())
  saved_study = ml_collections.ConfigDict(results["study"])
  with_curves = bool(str(study.evaluation.curve_steps).strip())
  rebuilt = study_curves.curves_from_summary(results) if with_curves else {}
  ceilings = study_curves.ceilings_from_summary(results) if with_curves else {}
  record_path = results_path.parent / RECORD_FILE
  timings = {}
  if record_path.exists():
    for invocation in json.loads(record_path.read_text()).get("invocations", []):
      for r in invocation.get("runs", []):
        if r.get("status") == "done":
          timings[r["run"]] = r.get("timing", {})
  planned = {spec.name: spec for spec in plan(study)}
  todo, problems, no_curve = [], [], []
  for entry in results.get("runs", []):
    spec = RunSpec(entry["dataset"], entry["variant"], int(entry["seed"]))
    if entry.get("status") != "done" or spec.name not in planned or read_record(spec, outdir):
      continue
    key = run_key(run_config(study, spec), study)
    diffs = config_utils.diff(run_key(run_config(saved_study, spec), saved_study), key)
    if diffs:
      problems.append(f"{spec.name}: {'; '.join(diffs[:4])}{' ...' if len(diffs) > 4 else ''}")
    extra = {}
    if with_curves:
      run_id = (spec.dataset, spec.variant, spec.seed)
      curve = entry.get("curve", rebuilt.get(run_id))
      if curve is None:
        no_curve.append(spec.name)
      else:
        extra["curve"] = curve
      ceiling = entry.get("ceiling", ceilings.get(run_id))
      if ceiling is not None:
        extra["ceiling"] = ceiling
    todo.append((spec, key, entry["row"], extra))
  if problems:
    raise ValueError(f"{results_path} holds {len(problems)} run(s) of another study config"
                     " (saved != now):\n  " + "\n  ".join(problems[:10])
                     + "\nNothing was imported.")
  if no_curve:
    raise ValueError(f"{results_path} holds no learning curve for {len(no_curve)} run(s)"
                     f" ({', '.join(no_curve[:5])}{' ...' if len(no_curve) > 5 else ''}),"
                     " and this plan has curves (evaluation.curve_steps). Nothing was"
                     " imported.")
  for spec, key, row, extra in todo:
    write_json(spec.workdir(outdir) / METRICS_FILE,
               {"status": "done", "run": spec.name, "key": key, "row": row,
                "timing": timings.get(spec.name, {}), "imported_from": str(results_path),
                **extra})
    logging.info("%s: imported from %s", spec.name, results_path)
  return [spec.name for spec, _, _, _ in todo]


def recompute_curves(study: ml_collections.ConfigDict, outdir, lacking: str | None = None,
                     argv: Sequence[str] | None = None) -> dict[str, list[str]]:
  """Evaluates the learning curve of every finished run again from its checkpoints
  (after the curve evaluation gained a measure, e.g. the direct excess estimator) and
  rewrites its ``metrics.json`` with the new curve; nothing is trained or sampled for
  the main table, and the Gaussian ceiling (no network in it) is kept. Curve points
  are deterministic (fixed sampling seeds and noise), so a recomputed point repeats the
  old one's values and adds the new ones.

  Runs imported from committed results (no checkpoints here) and runs missing a curve
  checkpoint are left as they are and listed; with ``lacking`` (a curve point key, e.g.
  ``"excess_direct"``) so is every run whose curve already has it at its last point.
  The invocation (``argv``, times, the runs recomputed) is appended to ``record.json``.

  Returns:
    ``{"recomputed": [names], "kept": [names]}``.
  """
  outdir = pathlib.Path(outdir).absolute()
  if not str(study.evaluation.curve_steps).strip():
    raise ValueError("this study has no learning curves (evaluation.curve_steps is empty):"
                     " nothing to recompute.")
  if lacking is not None and lacking not in study_curves.POINT_KEYS:
    raise ValueError(f"lacking={lacking!r} is not a curve point measure; one of"
                     f" {study_curves.POINT_KEYS} (or 'all' on the command line).")
  check_outdir(study, outdir)
  invocation = {"argv": list(argv) if argv is not None else list(sys.argv),
                "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                "machine": machine_info(), "runs": []}
  start = time.perf_counter()
  done: dict[str, list[str]] = {"recomputed": [], "kept": []}
  for spec in plan(study):
    saved = read_record(spec, outdir)
    if not saved or saved["status"] != "done":
      continue
    if lacking and saved.get("curve") and lacking in saved["curve"][-1]:
      logging.info("%s: curve kept as it is (it has %s)", spec.name, lacking)
      done["kept"].append(spec.name)
      continue
    workdir = spec.workdir(outdir)
    config = run_config(study, spec)
    steps = study_curves.parse_steps(study.evaluation.curve_steps,
                                     int(config.train.num_train_steps))
    have = _checkpoint_steps(workdir)
    missing = [s for s in steps if s not in have]
    if saved.get("imported_from") or missing:
      why = ("imported from " + str(saved["imported_from"]) if saved.get("imported_from")
             else f"no checkpoint at step(s) {missing}")
      logging.info("%s: curve kept as it is (%s)", spec.name, why)
      done["kept"].append(spec.name)
      continue
    t0 = time.perf_counter()
    n_ref = num_reference(config, study)
    metrics, _ = select_metrics(study, config, n_ref)
    curve = study_curves.evaluate_curve(study, spec, config, workdir, sample_seed(study, spec),
                                        evaluation_options(study, spec, n_ref, metrics))
    record = dict(saved, curve=curve)
    record["curve_recomputed"] = {
        "at": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - t0}
    write_json(workdir / METRICS_FILE, record)
    logging.info("%s: curve recomputed in %s", spec.name, hms(time.perf_counter() - t0))
    done["recomputed"].append(spec.name)
  invocation["recomputed_curves"] = done["recomputed"]
  invocation["wall_s"] = time.perf_counter() - start
  invocation["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  _append_invocation(outdir, invocation)
  return done


def _append_invocation(outdir: pathlib.Path, invocation: dict) -> None:
  path = outdir / RECORD_FILE
  record = json.loads(path.read_text()) if path.exists() else {"invocations": []}
  record["invocations"].append(invocation)
  write_json(path, record)

"""The FANS study: every dataset x noise variant x seed trained, sampled, evaluated.

One study config (``configs/study.py``) names the datasets, the noise variants (DDPM's
``white``, the published ``blog`` recipe, ``matched``, ``annealed``...), the seeds and
one shared budget (model, optimiser, steps, sampler, sample count). Every run of a
dataset differs from the others only by its noise variant and seed.

:func:`run_study` runs the plan, run by run, into ``<outdir>/runs/<dataset>/<variant>/
seed<k>/``:

1. ``train.train_and_evaluate`` (checkpoints, ``config.json``; a partly trained run
   resumes from its newest checkpoint);
2. ``samples.npz``: ``evaluation.num_samples`` uint8 samples of the EMA weights
   (reused if present and drawn with the same settings from the same step);
3. ``metrics.json``: the row of :func:`fans_jax.metrics.evaluation.evaluate_run`
   (spectral metrics; FD-ResNet20 on CIFAR-10; FID/KID only with Inception weights),
   the run's key (its config and evaluation settings) and its timings.

A run with a ``metrics.json`` is finished and skipped on a rerun. A run that raises
(a schedule that breaks the forward chain, a NaN loss, ...) writes ``failed.json``
(phase, error, traceback) and the study goes on; ``retry_failed`` retries it on the
next invocation. A run whose saved config differs from the current study's stops the
study before anything runs (one ValueError listing them): change the budget with a
new ``outdir``.

:func:`aggregate` then writes ``<outdir>/results.json`` (metrics only, so that a
rerun with the same seeds on the same machine reproduces it byte for byte),
``results.md`` (the table in the published post's format with the post's numbers
beside ours, slope MAE per variant, every run, failures, machine and times),
``record.json`` (machine, command lines, wall-clock times of every invocation) and
``figures/``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import sys
import time
import traceback
from typing import Any, Iterable, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

import fans_jax.data as data
from fans_jax import checkpointing, sample_files, samplers, sampling, study_curves, train
from fans_jax.metrics import evaluation
from fans_jax.metrics import features as features_lib
from fans_jax.metrics import frechet
from fans_jax.metrics import inception as inception_lib
from fans_jax.metrics import spectral as spectral_lib
from fans_jax.utils import config as config_utils

RUNS_DIR = "runs"
FIGURES_DIR = "figures"
METRICS_FILE = "metrics.json"
FAILED_FILE = "failed.json"
SAMPLES_FILE = "samples.npz"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
RECORD_FILE = "record.json"

# The metrics of the main table, in the published post's order: (key, header, digits).
TABLE_METRICS = (("slope_gen", "slope", 3), ("band_jsd", "band JSD", 4),
                 ("band_corr", "band corr.", 3), ("lsd", "LSD", 3),
                 ("fd_resnet20", "FD-ResNet20", 2))

# ----------------------------------------------------------------------------------
# The published numbers
# ----------------------------------------------------------------------------------

PUBLISHED_SOURCE = (
    "FANS - Frequency-Adaptive Noise Shaping for Diffusion Models, ICLR 2026 blog post"
    " track, https://iclr-blogposts.github.io/2026/blog/2026/fans/ (tables 'Slope"
    " estimation', 'JSD of the band-PSD distribution', 'Per-band correlation'; FID in the"
    " text and the CIFAR10/CelebA table). T = 1000 sampling steps; data, resolution,"
    " model, budget, band count, JSD log base and correlation definition not stated.")

# Row name -> metric -> {"FANS": x, "DDPM": y}, and the data slope. Numbers verbatim from
# the post (its PLTB FANS correlation is printed "0..968").
PUBLISHED: dict[str, dict[str, Any]] = {
    "PLTB": {"slope_ref": 1.002, "slope_gen": {"FANS": 1.394, "DDPM": 3.566},
             "band_jsd": {"FANS": 0.0103, "DDPM": 0.0804},
             "band_corr": {"FANS": 0.968, "DDPM": 0.522}},
    "EGM": {"slope_ref": 0.989, "slope_gen": {"FANS": 1.121, "DDPM": 2.566},
            "band_jsd": {"FANS": 0.0308, "DDPM": 0.1276},
            "band_corr": {"FANS": 0.911, "DDPM": 0.672}},
    "Multimodal Universe": {"slope_ref": 1.229, "slope_gen": {"FANS": 1.454, "DDPM": 3.515},
                            "band_jsd": {"FANS": 0.0088, "DDPM": 0.1041},
                            "band_corr": {"FANS": 0.877, "DDPM": 0.532},
                            "fid": {"FANS": 10.003, "DDPM": 24.012}},
    "Texture": {"slope_ref": 1.121, "slope_gen": {"FANS": 1.618, "DDPM": 2.178}},
    "CIFAR-10": {"slope_ref": 2.848, "slope_gen": {"FANS": 2.512, "DDPM": 2.733},
                 "fid": {"FANS": 14.19, "DDPM": 16.07}},  # FID at 1000 steps
}
# As printed in the post (its paired t-test: t = -4.92, p < 0.01).
PUBLISHED_SLOPE_MAE = {"FANS": 0.3165, "DDPM": 1.5197}
PUBLISHED_T_TEST = {"t": -4.92, "p": "< 0.01"}


def published_slope_errors() -> dict[str, list[float]]:
  """``{"FANS": [...], "DDPM": [...]}``: the post's absolute slope errors, one per row
  of its slope table (from :data:`PUBLISHED`)."""
  out = {"FANS": [], "DDPM": []}
  for row in PUBLISHED.values():
    for name in out:
      out[name].append(abs(row["slope_gen"][name] - row["slope_ref"]))
  return out


# ----------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class RunSpec:
  """One run of the study: a dataset, a noise variant and a training seed."""
  dataset: str
  variant: str
  seed: int

  @property
  def name(self) -> str:
    return f"{self.dataset}/{self.variant}/seed{self.seed}"

  def workdir(self, outdir) -> pathlib.Path:
    return pathlib.Path(outdir) / RUNS_DIR / self.dataset / self.variant / f"seed{self.seed}"


def parse_names(value: str | Sequence[str], valid: Iterable[str], what: str) -> tuple[str, ...]:
  """``"a,b"`` (or a sequence) -> ``("a", "b")``, each checked against ``valid``.

  Raises:
    ValueError: an empty list, a repeated name or an unknown one (naming the valid ones).
  """
  names = tuple(s.strip() for s in (value.split(",") if isinstance(value, str) else value)
                if s.strip())
  valid = sorted(valid)
  if not names:
    raise ValueError(f"config.{what} is empty; give a comma-separated subset of {valid}.")
  bad = [n for n in names if n not in valid]
  if bad:
    raise ValueError(f"config.{what}={value!r}: unknown {bad}; valid names are {valid}.")
  if len(set(names)) != len(names):
    raise ValueError(f"config.{what}={value!r} repeats a name.")
  return names


def parse_seeds(value: str | int | Sequence[int]) -> tuple[int, ...]:
  """``"0,1,2"`` (or an int, or a sequence of ints) -> ``(0, 1, 2)``.

  Raises:
    ValueError: empty, repeated, negative or non-integer seeds.
  """
  items = value.split(",") if isinstance(value, str) else (
      [value] if isinstance(value, int) else list(value))
  try:
    seeds = tuple(int(str(s).strip()) for s in items if str(s).strip())
  except ValueError:
    raise ValueError(f"config.seeds={value!r} must be comma-separated integers, e.g."
                     " '0,1,2'.") from None
  if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
    raise ValueError(f"config.seeds={value!r} must be distinct non-negative integers, e.g."
                     " '0,1,2'.")
  return seeds


def datasets_of(study: ml_collections.ConfigDict) -> tuple[str, ...]:
  return parse_names(study.dataset_names, study.datasets.keys(), "dataset_names")


def variants_of(study: ml_collections.ConfigDict) -> tuple[str, ...]:
  return parse_names(study.variant_names, study.variants.keys(), "variant_names")


def plan(study: ml_collections.ConfigDict) -> list[RunSpec]:
  """Every run, seed by seed, then dataset by dataset, then variant by variant: a
  study cut short holds a whole table for its first seeds (and every variant of a
  dataset for a seed before the next dataset)."""
  seeds = parse_seeds(study.seeds)
  return [RunSpec(d, v, s) for s in seeds for d in datasets_of(study)
          for v in variants_of(study)]


def _unlocked_copy(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(cfg.to_dict())


def run_config(study: ml_collections.ConfigDict, spec: RunSpec) -> ml_collections.ConfigDict:
  """The (locked) training config of one run: ``study.run`` plus the dataset's data
  section, the variant's noise family and options, the seed and ``eval`` (the study's
  evaluation sampler, so that the run's ``config.json`` records it)."""
  dataset, variant = study.datasets[spec.dataset], study.variants[spec.variant]
  config = _unlocked_copy(study.run)
  config.data = _unlocked_copy(dataset.data)
  config.noise.name = variant.family
  config.noise.options = _unlocked_copy(variant.options)
  config.noise.spectrum_images = int(dataset.spectrum_images)
  config.train.seed = int(spec.seed)
  ev = study.evaluation
  config.eval = ml_collections.ConfigDict(dict(
      num_samples=int(ev.num_samples), sampler=str(ev.sampler), num_steps=int(ev.num_steps),
      eta=float(ev.eta), batch_size=int(ev.batch_size), seed=sample_seed(study, spec),
      clip_x0=bool(ev.clip_x0)))
  train.parse_config(config)  # a bad study config fails here, naming the field
  samplers.check_sampler(config.eval.sampler)
  evaluation.EvalOptions(metrics=str(ev.metrics)).requested()  # a bad metrics list
  config.lock()
  return config


def sample_seed(study: ml_collections.ConfigDict, spec: RunSpec) -> int:
  """Run ``s`` samples with seed ``evaluation.seed + s`` (the same for every variant)."""
  return int(study.evaluation.seed) + int(spec.seed)


def spectral_settings(study: ml_collections.ConfigDict) -> spectral_lib.SpectralSettings:
  ev = study.evaluation
  return spectral_lib.SpectralSettings(
      num_bands=int(ev.num_bands), band_spacing=str(ev.band_spacing),
      fit_f_lo=None if ev.fit_f_lo is None else float(ev.fit_f_lo), fit_f_hi=float(ev.fit_f_hi))


def reference_data_config(config: ml_collections.ConfigDict,
                          study: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The data config of a run's reference images (its own split unless
  ``evaluation.reference_split`` names another)."""
  cfg = data.with_overrides(config.data)
  if study.evaluation.reference_split:
    cfg.split = str(study.evaluation.reference_split)
  return cfg


def num_reference(config: ml_collections.ConfigDict, study: ml_collections.ConfigDict) -> int:
  """``evaluation.num_reference`` (0: all) capped at the dataset's size."""
  size = len(data.get_source(reference_data_config(config, study)))
  wanted = int(study.evaluation.num_reference)
  return size if wanted <= 0 else min(wanted, size)


def select_metrics(study: ml_collections.ConfigDict, config: ml_collections.ConfigDict,
                   n_ref: int) -> tuple[str, str | None]:
  """``(metrics for EvalOptions, note)``: ``evaluation.metrics``; but when it is
  ``"auto"`` and the Inception weights exist while the samples or reference images are
  too few for a 2048-d Frechet distance, FID/KID are left out (``note`` says why)
  instead of failing every run of a small budget."""
  requested = str(study.evaluation.metrics)
  needed = frechet.min_samples_for_frechet(inception_lib.FEATURE_DIM)
  count = min(int(study.evaluation.num_samples), n_ref)
  if requested != "auto" or not os.path.exists(inception_lib.default_weights_path()) or (
      count >= needed):
    return requested, None
  shape = (int(config.data.image_size),) * 2 + (int(config.data.channels),)
  names = ["spectral"]
  if config.data.name in evaluation.CIFAR10_DATASETS and shape == (32, 32, 3):
    names.append("fd_resnet20")
  return ",".join(names), (f"not computed: {count} samples / reference images, a"
                           f" {inception_lib.FEATURE_DIM}-d Frechet distance needs {needed}")


def evaluation_options(study: ml_collections.ConfigDict, spec: RunSpec, n_ref: int,
                       metrics: str = "auto") -> evaluation.EvalOptions:
  """The :class:`EvalOptions` of a run (``metrics`` from :func:`select_metrics`)."""
  ev = study.evaluation
  return evaluation.EvalOptions(
      num_samples=int(ev.num_samples), sampler=str(ev.sampler),
      num_steps=int(ev.num_steps) or None, eta=float(ev.eta), seed=sample_seed(study, spec),
      clip_x0=bool(ev.clip_x0), batch_size=int(ev.batch_size) or None, num_reference=n_ref,
      reference_split=str(ev.reference_split), spectral=spectral_settings(study),
      metrics=metrics)


def run_key(config: ml_collections.ConfigDict, study: ml_collections.ConfigDict) -> dict:
  """What a finished run's results depend on: its run identity, its step count and the
  evaluation settings. A saved key that differs from the current one is an error."""
  return json.loads(json.dumps({
      "run": train.run_identity(config),
      "num_train_steps": int(config.train.num_train_steps),
      "eval": config_utils.to_dict(config.eval),
      "evaluation": config_utils.to_dict(study.evaluation),
  }))


def check_outdir(study: ml_collections.ConfigDict, outdir) -> None:
  """Raises one ValueError if any run directory under ``outdir`` holds a run of another
  config (a finished run's ``metrics.json`` key, or a partly trained run's
  ``config.json``), before anything is run."""
  problems = []
  for spec in plan(study):
    wd = spec.workdir(outdir)
    config = run_config(study, spec)
    metrics_path = wd / METRICS_FILE
    if metrics_path.exists():
      saved = json.loads(metrics_path.read_text()).get("key")
      diffs = config_utils.diff(saved or {}, run_key(config, study))
    elif (wd / sampling.CONFIG_FILE).exists():
      saved = json.loads((wd / sampling.CONFIG_FILE).read_text())
      diffs = config_utils.diff(
          json.loads(json.dumps(train.run_identity(ml_collections.ConfigDict(saved)))),
          json.loads(json.dumps(train.run_identity(config))))
      if int(saved["train"]["num_train_steps"]) != int(config.train.num_train_steps):
        diffs.append(f"train.num_train_steps: {saved['train']['num_train_steps']} !="
                     f" {config.train.num_train_steps}")
    else:
      continue
    if diffs:
      problems.append(f"{spec.name}: {'; '.join(diffs[:4])}{' ...' if len(diffs) > 4 else ''}")
  if problems:
    raise ValueError(
        f"{outdir} holds {len(problems)} run(s) of another study config (saved != now):\n  "
        + "\n  ".join(problems[:10]) + ("\n  ..." if len(problems) > 10 else "")
        + "\nUse another --outdir for another budget, or rerun with the config that made"
        " them. Nothing was run.")


# ----------------------------------------------------------------------------------
# One run
# ----------------------------------------------------------------------------------


class StudyInterrupted(RuntimeError):
  """Training stopped early (SIGTERM / preemption); rerun the study to resume."""


def _write_json(path: pathlib.Path, obj: Any) -> None:
  """Writes ``obj`` atomically (a reader never sees a partial file)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")
  os.replace(tmp, path)


def _json_default(obj):
  if isinstance(obj, (np.floating, np.integer)):
    return obj.item()
  if isinstance(obj, np.ndarray):
    return obj.tolist()
  return str(obj)


def _checkpoint_step(workdir: pathlib.Path) -> int:
  """The newest checkpoint step in ``workdir`` (0: none)."""
  path = workdir / sampling.CHECKPOINT_DIR
  if not path.exists():
    return 0
  ckpt = checkpointing.Checkpointer(path, read_only=True)
  try:
    steps = ckpt.steps()
  finally:
    ckpt.close()
  return int(max(steps)) if steps else 0


def sampler_settings(study, spec: RunSpec) -> sample_files.SamplerSettings:
  """The study's sampler for run ``spec`` (seed ``evaluation.seed + training seed``)."""
  ev = study.evaluation
  return sample_files.SamplerSettings(sampler=str(ev.sampler), num_steps=int(ev.num_steps) or None,
                                      eta=float(ev.eta), clip_x0=bool(ev.clip_x0),
                                      seed=sample_seed(study, spec))


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
    _write_json(workdir / FAILED_FILE, record)
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
  _write_json(workdir / METRICS_FILE, record)
  (workdir / FAILED_FILE).unlink(missing_ok=True)
  return record


def read_record(spec: RunSpec, outdir) -> dict | None:
  """The saved record of a run (``metrics.json``, else ``failed.json``), or None."""
  for name in (METRICS_FILE, FAILED_FILE):
    path = spec.workdir(outdir) / name
    if path.exists():
      return json.loads(path.read_text())
  return None


# ----------------------------------------------------------------------------------
# The whole study
# ----------------------------------------------------------------------------------


def _hms(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def machine_info() -> dict[str, Any]:
  """CPU, core count, platform, library versions and JAX devices of this process."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else cpu
  except OSError:
    pass
  devices = jax.devices()
  return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
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
      eta = (f", ETA {_hms(np.mean(done_times) * (len(todo) - i))} for the rest"
             if done_times else "")
      logging.info("[%d/%d] %s: starting (elapsed %s%s)", i + 1, len(todo), spec.name,
                   _hms(time.perf_counter() - start), eta)
      record = execute_run(study, spec, outdir)
      invocation["runs"].append({"run": spec.name, "status": record["status"],
                                 "timing": record["timing"]})
      if record["status"] == "done":
        done_times.append(record["timing"]["total_s"])
        spectral = record["row"]["spectral"]
        logging.info("[%d/%d] %s: done in %s (slope %.3f vs data %.3f, band JSD %.4f)",
                     i + 1, len(todo), spec.name, _hms(record["timing"]["total_s"]),
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


def _append_invocation(outdir: pathlib.Path, invocation: dict) -> None:
  path = outdir / RECORD_FILE
  record = json.loads(path.read_text()) if path.exists() else {"invocations": []}
  record["invocations"].append(invocation)
  _write_json(path, record)


# ----------------------------------------------------------------------------------
# Aggregation
# ----------------------------------------------------------------------------------


def _stat(values: Sequence[float]) -> dict[str, Any] | None:
  """``{"mean", "std" (sample, ddof 1; None for n = 1), "n", "values"}``, or None."""
  values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
  if not values:
    return None
  std = float(np.std(values, ddof=1)) if len(values) > 1 else None
  return {"mean": float(np.mean(values)), "std": std, "n": len(values), "values": values}


def _metric(row: dict, key: str):
  """A metric of a row: spectral ones from ``row["spectral"]``; FD-ResNet20 a float, or
  None when it was not computed (its note then says why)."""
  if key == "fd_resnet20":
    value = row.get("fd_resnet20")
    return float(value) if isinstance(value, (int, float)) else None
  spectral = row.get("spectral")
  return float(spectral[key]) if isinstance(spectral, dict) else None


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
  """Two-sided paired t-test of ``a - b`` (scipy ``ttest_rel``); None for n < 2 or
  identical pairs."""
  if len(a) < 2 or len(a) != len(b) or np.allclose(np.asarray(a) - np.asarray(b), 0.0):
    return None
  from scipy import stats  # pylint: disable=g-import-not-at-top
  result = stats.ttest_rel(a, b)
  return {"t": float(result.statistic), "p": float(result.pvalue), "n": len(a)}


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
             "data_slope": _stat([rows[0]["spectral"]["slope_ref"]]) if rows else None,
             "variants": {}}
    for v in variants:
      vrows = [done[(d, v, s)] for s in seeds if (d, v, s) in done]
      entry["variants"][v] = {key: _stat([_metric(r, key) for r in vrows])
                              for key, _, _ in TABLE_METRICS}
      entry["variants"][v]["slope_abs_error"] = _stat(
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
    results["ceiling"] = {d: {v: {name: {k: _stat([c[name][k] for c in cs])
                                         for k in ("slope_abs_error", "lsd", "band_jsd",
                                                   "band_corr")}
                                  for name in ("main", "curve")}
                              for v, cs in by_v.items()}
                          for d, by_v in ceilings.items()}
  _write_json(outdir / RESULTS_JSON, results)
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
    out[v] = _stat(per_seed)
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


# ----------------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------------


def _fmt_stat(stat: dict | None, digits: int, show_n: int | None = None) -> str:
  if stat is None:
    return "—"
  text = f"{stat['mean']:.{digits}f}"
  if stat["std"] is not None:
    text += f" ± {stat['std']:.{digits}f}"
  if show_n is not None and stat["n"] != show_n:
    text += f" (n={stat['n']})"
  return text


def _published_value(published: str, key: str, variant_cfg) -> str:
  row = PUBLISHED.get(published, {})
  column = variant_cfg.published_as
  value = row.get(key, {}).get(column) if column else None
  return "" if value is None else f"{value:g}"


def main_table(study: ml_collections.ConfigDict, results: dict) -> str:
  """The post's table: dataset | data slope | each metric for each variant; under each
  dataset, the post's numbers in the columns of the variants that stand for its FANS and
  DDPM (``published_as``)."""
  variants, seeds = results["variants"], results["seeds"]
  header = ["dataset", "data slope"]
  for _, label, _ in TABLE_METRICS:
    header += [f"{label} {v}" for v in variants]
  lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
  for d in results["datasets"]:
    entry = results["table"][d]
    cells = [f"{entry['label']} {entry['resolution'] or ''}".strip(),
             _fmt_stat(entry["data_slope"], 3)]
    for key, _, digits in TABLE_METRICS:
      for v in variants:
        stat = entry["variants"][v][key]
        if stat is None and key == "fd_resnet20" and entry["variants"][v]["notes"]:
          cells.append("n/a")
        else:
          cells.append(_fmt_stat(stat, digits, show_n=len(seeds)))
    lines.append("| " + " | ".join(cells) + " |")
    published = entry["published"]
    if published in PUBLISHED:
      row = PUBLISHED[published]
      cells = [f"↳ post: {published}", f"{row['slope_ref']:g}"]
      for key, _, _ in TABLE_METRICS:
        cells += [_published_value(published, key, study.variants[v]) for v in variants]
      lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def _mae_table(study, results: dict) -> str:
  lines = ["| variant | stands for (post) | slope MAE (ours) | slope MAE (post) |"
           " paired t-test vs " + str(study.baseline) + " (ours) |", "|---|---|---|---|---|"]
  for v in results["variants"]:
    column = study.variants[v].published_as
    post = PUBLISHED_SLOPE_MAE.get(column)
    test = results["paired_tests"].get(v)
    test_text = (f"t = {test['t']:.2f}, p = {test['p']:.3g} (n = {test['n']} datasets)"
                 if test else ("—" if v == study.baseline else "n/a (fewer than 2 datasets)"))
    lines.append(f"| {v} | {column or '—'} | {_fmt_stat(results['slope_mae'][v], 4)} |"
                 f" {'' if post is None else post} | {test_text} |")
  return "\n".join(lines) + "\n"


def _timing_table(results: dict, outdir: pathlib.Path) -> tuple[str, float]:
  lines = ["| run | status | train (s) | steps trained | s / step | sample (s) |"
           " ms / (image x step) | evaluate (s) | total (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
  total = 0.0
  for r in results["runs"]:
    spec = RunSpec(r["dataset"], r["variant"], r["seed"])
    record = read_record(spec, outdir) or {}
    t = dict(record.get("timing", {}))
    total += float(t.get("total_s", 0.0))
    if t.get("trained_steps"):
      t["per_step"] = t["train_s"] / t["trained_steps"]
    row = r.get("row")
    if row and "sample_s" in t and not t.get("samples_reused"):
      t["per_image_step"] = 1e3 * t["sample_s"] / (row["num_samples"] * int(row["steps"]))
    cells = [spec.name, r["status"]] + [
        f"{t[k]:.{3 if k.startswith('per') else 1}f}" if isinstance(t.get(k), float)
        else str(t.get(k, "—"))
        for k in ("train_s", "trained_steps", "per_step", "sample_s", "per_image_step",
                  "evaluate_s", "total_s")]
    lines.append("| " + " | ".join(cells) + " |")
  notes = ("\nTimes include start-up and compilation (s / step and ms / (image x step) are"
           " upper bounds of the steady-state costs; docs/study_design.md).\n")
  return "\n".join(lines) + "\n" + notes, total


def results_markdown(study, results: dict, record: dict, figures: dict,
                     outdir: pathlib.Path) -> str:
  """``results.md``: the main table, slope MAE, notes, every run, failures, figures,
  machine and times."""
  seeds, variants = results["seeds"], results["variants"]
  run = study.run
  ev = study.evaluation
  steps = "all T" if str(ev.sampler) == "ddpm" or not int(ev.num_steps) else str(ev.num_steps)
  done = [r for r in results["runs"] if r["status"] == "done"]
  failed = [r for r in results["runs"] if r["status"] == "failed"]
  missing = [r for r in results["runs"] if r["status"] == "missing"]
  notes = sorted({n for d in results["table"].values() for v in d["variants"].values()
                  for n in v["notes"]})
  ref_counts = ", ".join(f"{d} {results['table'][d]['num_reference'] or '—'}"
                         for d in results["datasets"])
  out = [
      "# FANS study results", "",
      f"{len(results['datasets'])} dataset(s) x {len(variants)} variant(s) x {len(seeds)}"
      f" seed(s) ({', '.join(map(str, seeds))}): {len(done)} run(s) finished,"
      f" {len(failed)} failed, {len(missing)} not run.", "",
      "Budget, identical for every run: model"
      f" `{run.model.name}` channels {run.model.channels} x {tuple(run.model.channel_mult)},"
      f" {run.model.num_res_blocks} res block(s); {run.train.num_train_steps} steps of batch"
      f" {run.train.batch_size}, {run.optim.name} lr {run.optim.learning_rate:g}"
      f" ({run.optim.warmup_steps} warm-up, {run.optim.decay} decay), EMA"
      f" {run.train.ema_decay:g}; T = {run.noise.num_timesteps}, {run.noise.beta_schedule}"
      f" betas, {run.noise.objective} objective. Evaluation: {ev.num_samples} samples per run,"
      f" {ev.sampler} sampler ({steps} steps"
      f"{', eta ' + format(float(ev.eta), 'g') if str(ev.sampler) == 'ddim' else ''}),"
      + (" against every image of each dataset." if not int(ev.num_reference) else
         f" against {ev.num_reference} images spread evenly over each dataset (at most all).")
      + f" Reference images per dataset: {ref_counts}.", "",
      "Variants: " + "; ".join(
          f"`{v}` = {study.variants[v].family} ({study.variants[v].description})"
          for v in variants) + ".", "",
      "## Main table (the published post's format)", "",
      main_table(study, results),
      f"Cells: mean ± sample standard deviation over the {len(seeds)} seed(s) (n shown when"
      " fewer runs finished); a single seed shows its value. Slopes: alpha of"
      " P(f) ∝ f^-alpha fitted to the radially averaged PSD; band JSD in nats over"
      f" {ev.num_bands} {ev.band_spacing} bands (DC excluded); band corr.: Pearson"
      " correlation of the band-power vectors; LSD: mean |log10 P_gen - log10 P_data| over"
      " radial bins (decades). FD-ResNet20 is a Fréchet distance on CIFAR-10 ResNet-20"
      " features, not FID (n/a: not CIFAR-10).",
      "",
      "Rows \"↳ post\" are the published numbers (" + PUBLISHED_SOURCE + "), placed in the"
      " columns of the variant that stands for the post's DDPM ("
      + ", ".join(v for v in variants if study.variants[v].published_as == "DDPM")
      + ") and FANS (" + ", ".join(v for v in variants if study.variants[v].published_as
                                   == "FANS") + ")."
      " They are not like-for-like: the post used 512x512 synthetic images, Multimodal"
      " Universe cutouts (not Galaxy Zoo), an unnamed texture set, its own band count and"
      " log base; here images are 32x32 (or 16x16) and CIFAR-10 is a JPEG re-encoded 10k"
      " subset.", "",
  ]
  if notes:
    out += ["Not computed: " + "; ".join(f"`{n}`" for n in notes) + ".", ""]
  fids = [f"{name}: DDPM {row['fid']['DDPM']:g}, FANS {row['fid']['FANS']:g}"
          for name, row in PUBLISHED.items() if "fid" in row]
  out += ["The post's FID (Inception, sample count not stated; CIFAR-10 at 1000 steps),"
          " not comparable with FD-ResNet20: " + "; ".join(fids) + ".", ""]
  published_test = results["published"]["t_test_recomputed"]
  out += [
      "## Slope MAE over datasets", "",
      _mae_table(study, results),
      "Ours: per seed, the mean over datasets of |slope samples - slope data| (seeds with"
      " every dataset finished), then mean ± std over seeds. The post reports FANS 0.3165 vs"
      " DDPM 1.5197 and a paired t-test t = -4.92, p < 0.01; the same test on the post's own"
      " five rows gives "
      + (f"t = {published_test['t']:.2f}, p = {published_test['p']:.3f}"
         if published_test else "nothing") + ".", "",
  ]
  out += _curves_markdown(study, results, figures, outdir)
  out += [
      "## Every run", "",
      evaluation.markdown_table([r["row"] for r in done]) if done else "(none finished)\n",
  ]
  if failed or missing:
    out += ["## Failed and missing runs", ""]
    out += [f"- `{RunSpec(r['dataset'], r['variant'], r['seed']).name}`: failed while"
            f" {r['phase']}: {r['error']}" for r in failed]
    out += [f"- `{RunSpec(r['dataset'], r['variant'], r['seed']).name}`: not run yet"
            for r in missing]
    out += [""]
  if figures:
    out += ["## Figures", ""]
    for name, path in figures.items():
      out.append(f"- {name}: [{os.path.relpath(path, outdir)}]({os.path.relpath(path, outdir)})")
    out += [""]
  timing, total = _timing_table(results, outdir)
  invocations = record.get("invocations", [])
  out += ["## Machine and time", ""]
  if invocations:
    m = invocations[-1]["machine"]
    out += [f"- Machine: {m['cpu']}, {m['cpu_count']} CPU core(s), {m['platform']};"
            f" JAX {m['versions']['jax']} on {m['device_count']} {m['backend']} device(s)"
            f" ({m['device_kind']}); XLA_FLAGS `{m['xla_flags']}`."]
    for inv in invocations:
      out.append(f"- `{' '.join(inv['argv'])}`: started {inv['started']}, wall clock"
                 f" {_hms(inv['wall_s'])}, {len(inv['runs'])} run(s) executed.")
  out += [f"- Compute time of the runs (sum of their last execution): {_hms(total)}.", "",
          timing]
  return "\n".join(out)


def _curves_markdown(study, results: dict, figures: dict, outdir: pathlib.Path) -> list[str]:
  """Learning curves (plateau check), Gaussian ground truth, ceiling, sampler check."""
  out: list[str] = []
  curves = results.get("curves")
  if not curves:
    return out
  ev = study.evaluation
  out += ["## Learning curves", "",
          f"Every run trains with a constant learning rate after warm-up; its checkpoints at"
          f" steps {', '.join(str(s) for s in next(iter(next(iter(curves.values())).values()))['steps'])}"
          f" are sampled with the curve sampler ({ev.curve_sampler}, {ev.curve_num_steps} steps,"
          f" eta {float(ev.curve_eta):g}, x0 clipped: {bool(ev.clip_x0)}; {ev.curve_num_samples}"
          " samples) and evaluated. eps loss: the network's mean per-coefficient eps error on"
          f" {ev.held_images} held data images at 10 noise levels (not comparable across"
          " schedules: each schedule poses a different regression problem; the excess over"
          " the optimum below is).", ""]
  for d, by_v in curves.items():
    fig = figures.get(f"{d}: learning curves")
    if fig:
      rel = os.path.relpath(fig, outdir)
      out += [f"![{d} learning curves]({rel})", ""]
    out += [f"Plateau check, {d} (change between the last two curve points against the"
            " larger seed std of the two; plateaued when smaller):", "",
            "| variant | metric | steps | change | seed std | plateaued |", "|---|---|---|---|---|---|"]
    for v, checks in results["plateau"][d].items():
      for key, c in checks.items():
        if c:
          out.append(f"| {v} | {key} | {c['from_step']} -> {c['to_step']} |"
                     f" {c['change']:.4g} | {c['seed_std']:.4g} | {'yes' if c['plateaued'] else 'no'} |")
    out.append("")
    excess = [(v, e["excess_final"]) for v, e in by_v.items() if "excess_final" in e]
    if excess:
      out += [f"### Gaussian ground truth: {d}", "",
              "The data is exactly Gaussian and stationary, so each variant's Bayes-optimal eps"
              " predictor is known per frequency. Excess eps loss of the trained network over"
              " its own schedule's optimum at the final step (mean over seeds), per noise-level"
              " bucket (rows, t) and band (columns, low to high frequency):", ""]
      fig = figures.get(f"{d}: excess eps loss")
      if fig:
        out += [f"![{d} excess eps loss]({os.path.relpath(fig, outdir)})", ""]
      t_edges = excess[0][1]["t_edges"]
      out += ["| variant | " + " | ".join(f"t {t_edges[i]}-{t_edges[i + 1] - 1}"
                                          for i in range(len(t_edges) - 1))
              + " | all |", "|---" * (len(t_edges) + 1) + "|"]
      for v, x in excess:
        m = np.asarray(x["mean"])
        out.append(f"| {v} | " + " | ".join(f"{np.nanmean(row):.4f}" for row in m)
                   + f" | {np.nanmean(m):.4f} |")
      out.append("")
    ceiling = results.get("ceiling", {}).get(d)
    if ceiling:
      out += [f"Ceiling, {d}: spectral metrics of samples drawn with each schedule's exact"
              " optimal denoiser (no training), main and curve sampler:", "",
              "| variant | sampler | \|slope error\| | band JSD | LSD | band corr. |",
              "|---|---|---|---|---|---|"]
      for v, by_s in ceiling.items():
        for name, stats in by_s.items():
          out.append(f"| {v} | {name} | " + " | ".join(
              _fmt_stat(stats[k], 4) for k in ("slope_abs_error", "band_jsd", "lsd",
                                               "band_corr")) + " |")
      out.append("")
  check = results.get("sampler_check", {})
  if check:
    out += ["### Does the curve sampler rank like the main sampler?", "",
            f"Final step, variants ordered best first by each metric (main: {ev.sampler},"
            f" curve: {ev.curve_sampler} {ev.curve_num_steps}):", "",
            "| dataset | metric | main sampler | curve sampler | same ranking |",
            "|---|---|---|---|---|"]
    for d, by_k in check.items():
      for key, c in by_k.items():
        out.append(f"| {d} | {key} | {' < '.join(c['main'])} | {' < '.join(c['curve'])} |"
                   f" {'yes' if c['same_ranking'] else 'no'} |")
    out.append("")
  return out


# ----------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------


def _load_samples(spec: RunSpec, outdir) -> np.ndarray | None:
  path = spec.workdir(outdir) / SAMPLES_FILE
  if not path.exists():
    return None
  with np.load(path, allow_pickle=False) as f:
    return np.asarray(f["images"])


def write_figures(study, outdir: pathlib.Path, datasets, variants, seeds) -> dict[str, str]:
  """Per dataset: radially averaged PSDs of each variant's samples (pooled over seeds)
  against the data's (with ratio and band bars), the band-power bar plot, a grid of data
  and of each variant's samples (first finished seed). Returns name -> PNG path."""
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
          grids.setdefault(v, images)
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
    plotting.plot_sample_grid(source.get_batch(np.arange(min(n, len(source)))),
                              title=f"{d}: data", path=base)
    written[f"{d}: data"] = f"{base}.png"
    for v, images in grids.items():
      base = figdir / f"{d}_samples_{v}"
      plotting.plot_sample_grid(images[:n], title=f"{d}: {v}", path=base)
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


__all__ = [
    "PUBLISHED", "PUBLISHED_SLOPE_MAE", "PUBLISHED_SOURCE", "RunSpec", "StudyInterrupted",
    "aggregate", "check_outdir", "draw_samples", "evaluation_options", "execute_run",
    "select_metrics",
    "machine_info", "main_table", "paired_t_test", "parse_names", "parse_seeds", "plan",
    "published_slope_errors", "read_record", "results_markdown", "run_config", "run_key",
    "run_study", "sample_seed", "spectral_settings", "write_figures",
]

"""The study's plan: its runs (dataset x variant x seed), each run's config and
evaluation settings, and the files of a study directory."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Iterable, Sequence

import ml_collections
import numpy as np

import fans_jax.data as data
from fans_jax import evaluation, sample_files, samplers, sampling, train
from fans_jax.metrics import frechet
from fans_jax.metrics import inception as inception_lib
from fans_jax.metrics import spectral as spectral_lib
from fans_jax.utils import config as config_utils


# Files of a study directory.
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
# FID and KID (Inception-v3 pool features), in a table of their own where computed.
FRECHET_METRICS = (("fid", "FID", 1), ("kid", "KID", 4))

# Samples per run from which one draw ranked two checkpoints apart (gap of the means >
# twice the larger std over sampling seeds, at that N and every larger one measured):
# docs/evaluation.md, "How many samples a metric needs", measured by
# scripts/sample_size.py on two pairs of checkpoints, the Gaussian PLTB field and
# CIFAR-10 (RANKING_TABLES). A metric measured on both takes the larger N;
# tests/test_study.py recomputes every entry from the JSON files.
# metric key -> (label, N, table).
RANKING_TABLES = {"pltb_gauss16": "docs/evaluation/sample_size_pltb_gauss16.json",
                  "cifar10": "docs/evaluation/sample_size_cifar10.json"}
RANKING_SAMPLES = {"slope_abs_error": ("|slope error|", 2048, "pltb_gauss16"),
                   "band_jsd": ("band JSD", 512, "pltb_gauss16"),
                   "lsd": ("LSD", 512, "cifar10"),
                   "fid": ("FID", 2100, "cifar10"),
                   "kid": ("KID", 128, "cifar10"),
                   "fd_resnet20": ("FD-ResNet20", 512, "cifar10")}
SAMPLE_SIZE_TABLE = "docs/evaluation.md, 'How many samples a metric needs'"


def sample_size_warnings(num_samples: int, metrics: Iterable[str] | None = None) -> list[str]:
  """One sentence per metric whose sample-size row says ``num_samples`` per run is too
  few for a single draw to rank two models (:data:`RANKING_SAMPLES`); [] when none.
  ``metrics``: the metric keys the study computes (:func:`planned_metrics`); None: all."""
  keys = set(RANKING_SAMPLES) if metrics is None else set(metrics)
  return [f"{int(num_samples)} samples per run is below the {n} from which one draw ranked"
          f" two models by {label} ({SAMPLE_SIZE_TABLE}): differences in {label} smaller"
          " than its sampling spread mean nothing; rely on paired tests over seeds or raise"
          " evaluation.num_samples"
          for key, (label, n, _) in RANKING_SAMPLES.items()
          if key in keys and int(num_samples) < n]


def planned_metrics(study: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The :data:`RANKING_SAMPLES` keys the study computes on at least one dataset, as
  ``evaluation.plan_metrics`` decides for each dataset's first run (with
  :func:`select_metrics`); a dataset whose plan is an error (its runs fail and say why)
  adds nothing."""
  computed: set[str] = set()
  variant, seed = variants_of(study)[0], parse_seeds(study.seeds)[0]
  for dataset in datasets_of(study):
    spec = RunSpec(dataset, variant, seed)
    config = run_config(study, spec)
    n_ref = num_reference(config, study)
    options = evaluation_options(study, spec, n_ref, select_metrics(study, config, n_ref)[0])
    shape = (int(config.data.image_size),) * 2 + (int(config.data.channels),)
    try:
      plan_ = evaluation.plan_metrics(config.data.name, shape, int(study.evaluation.num_samples),
                                      n_ref, options)
    except (ValueError, FileNotFoundError):
      continue
    computed.update(name for name, why in plan_.items() if why is None)
  spectral = ("slope_abs_error", "band_jsd", "lsd") if "spectral" in computed else ()
  return spectral + tuple(k for k in ("fd_resnet20", "fid", "kid") if k in computed)


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


def sampler_settings(study, spec: RunSpec) -> sample_files.SamplerSettings:
  """The study's sampler for run ``spec`` (seed ``evaluation.seed + training seed``)."""
  ev = study.evaluation
  return sample_files.SamplerSettings(sampler=str(ev.sampler), num_steps=int(ev.num_steps) or None,
                                      eta=float(ev.eta), clip_x0=bool(ev.clip_x0),
                                      seed=sample_seed(study, spec))


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


def write_json(path: pathlib.Path, obj: Any) -> None:
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


def read_record(spec: RunSpec, outdir) -> dict | None:
  """The saved record of a run (``metrics.json``, else ``failed.json``), or None."""
  for name in (METRICS_FILE, FAILED_FILE):
    path = spec.workdir(outdir) / name
    if path.exists():
      return json.loads(path.read_text())
  return None

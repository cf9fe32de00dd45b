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
a NaN/Inf loss stops training before anything is saved after it, metric writers
(:mod:`fans_jax.utils.metric_writers`: the console, and TensorBoard event files
through tensorboardX on process 0, no TensorFlow), periodic sample grids with the
samples' spectral slope. The library reads no flags: ``launch/train.py`` parses them and
calls :func:`train_and_evaluate`.

Around the run: a start validates everything (every config section, the workdir's
files, the data, the schedule and the samplers against it) before it writes anything,
then takes the workdir's lock (:mod:`fans_jax.utils.lock`); SIGTERM is handled from the
first line to the last (:class:`_Termination`); a checkpoint that cannot be written
ends the run with one :class:`fans_jax.checkpointing.CheckpointSaveError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import numbers
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
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from fans_jax import (checkpointing, data, diffusion, models, samplers, sampling, schedules,
                      spectra)
from fans_jax.metrics import spectral as spectral_lib
from fans_jax.utils import config as config_utils
from fans_jax import experiment
from fans_jax.utils import images as image_utils
from fans_jax.utils import lock as lock_lib
from fans_jax.utils import metric_writers

# The schedule of a config (re-exported: it lives in fans_jax.experiment, shared with
# sampling).
schedule_from_config = experiment.schedule_from_config

CONFIG_SECTIONS = ("data", "model", "noise", "optim", "train", "sample", "eval", "debug")
# Data options that may differ between machines without changing the data.
_DATA_LOCAL_KEYS = experiment.DATA_LOCAL_KEYS
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
  clip_x0: bool = True


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """``config.eval``: the defaults of evaluation (``fans_jax.evaluation``):
  samples, sampler, steps (0: T), DDIM eta, batch size (0: automatic), seed, and
  whether the predicted x0 is clipped to [-1, 1] at every step (default)."""
  num_samples: int = 10_000
  sampler: str = "ddpm"
  num_steps: int = 0
  eta: float = 0.0
  batch_size: int = 0
  seed: int = 1
  clip_x0: bool = True


class Sections(NamedTuple):
  optim: OptimConfig
  train: TrainConfig
  sample: SampleConfig
  noise: experiment.NoiseConfig
  eval: EvalConfig


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


_INT, _REAL, _BOOL = (_is_int, "an integer"), (_is_real, "a finite number"), (
    lambda v: isinstance(v, bool), "True or False")
_AT_LEAST_1 = (lambda v: v >= 1, ">= 1")
_AT_LEAST_0 = (lambda v: v >= 0, ">= 0")
_UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
_UNIT_OPEN = (lambda v: 0 <= v < 1, "in [0, 1)")
_POSITIVE = (lambda v: v > 0, "> 0")

# (section, key): (type, range, what the value means). Names and cross-field rules
# are checked in parse_config.
_VALUE_RULES: dict[tuple[str, str], tuple] = {
    ("optim", "learning_rate"): (_REAL, _POSITIVE, "Ho et al.: 2e-4"),
    ("optim", "warmup_steps"): (_INT, _AT_LEAST_0, "0: no warm-up"),
    ("optim", "end_lr_factor"): (_REAL, _UNIT,
                                 "the cosine decay ends at end_lr_factor * learning_rate"),
    ("optim", "b1"): (_REAL, _UNIT_OPEN, "Adam's first-moment decay, 0.9"),
    ("optim", "b2"): (_REAL, _UNIT_OPEN, "Adam's second-moment decay, 0.999"),
    ("optim", "eps"): (_REAL, _POSITIVE, "Adam's epsilon, 1e-8"),
    ("optim", "weight_decay"): (_REAL, _AT_LEAST_0, "AdamW's decoupled weight decay"),
    ("optim", "grad_clip"): (_REAL, _AT_LEAST_0, "global-norm clipping; 0: none"),
    ("train", "seed"): (_INT, _AT_LEAST_0, ""),
    ("train", "batch_size"): (_INT, _AT_LEAST_1, "the global batch"),
    ("train", "num_train_steps"): (_INT, _AT_LEAST_1, ""),
    ("train", "ema_decay"): (_REAL, _UNIT_OPEN, "DDPM: 0.9999"),
    ("train", "log_every_steps"): (_INT, _AT_LEAST_1, ""),
    ("train", "checkpoint_every_steps"): (_INT, _AT_LEAST_1, ""),
    ("train", "keep_checkpoints"): (_INT, _AT_LEAST_1, ""),
    ("train", "async_checkpoints"): (_BOOL, None, ""),
    ("train", "data_threads"): (_INT, _AT_LEAST_0, "0: read in the main thread"),
    ("sample", "every_steps"): (_INT, _AT_LEAST_0, "0: no sample grids"),
    ("sample", "num_samples"): (_INT, _AT_LEAST_1, ""),
    ("sample", "num_steps"): (_INT, _AT_LEAST_0, "DDIM steps; 0: all T"),
    ("sample", "eta"): (_REAL, _UNIT, "DDIM eta: 0 deterministic, 1 ancestral-like"),
    ("sample", "seed"): (_INT, _AT_LEAST_0, ""),
    ("sample", "clip_x0"): (_BOOL, None, ""),
    ("eval", "num_samples"): (_INT, _AT_LEAST_1, ""),
    ("eval", "num_steps"): (_INT, _AT_LEAST_0, "DDIM steps; 0: all T"),
    ("eval", "eta"): (_REAL, _UNIT, "DDIM eta"),
    ("eval", "batch_size"): (_INT, _AT_LEAST_0, "0: automatic"),
    ("eval", "seed"): (_INT, _AT_LEAST_0, ""),
    ("eval", "clip_x0"): (_BOOL, None, ""),
    ("noise", "num_timesteps"): (_INT, (lambda v: v >= 2, ">= 2"), "T; DDPM: 1000"),
    ("noise", "spectrum_images"): (_INT, _AT_LEAST_0, "0: every image"),
    ("noise", "ddim_only"): (_BOOL, None, ""),
}


def _check_values(sections: "Sections", debug) -> None:
  """One ValueError naming the first field whose value has the wrong type or range."""
  for (section, key), ((is_type, type_name), bounds, note) in _VALUE_RULES.items():
    value = getattr(getattr(sections, section), key)
    note = f" ({note})" if note else ""
    if not is_type(value):
      raise ValueError(f"config.{section}.{key}={value!r} must be {type_name}{note}.")
    if bounds is not None and not bounds[0](value):
      raise ValueError(f"config.{section}.{key}={value!r} must be {bounds[1]}{note}.")
  if not isinstance(debug, bool):
    raise ValueError(f"config.debug={debug!r} must be True or False.")


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
  try:
    data.base.check_common_options(data.with_overrides(config.data))
  except ValueError as e:
    raise ValueError(f"config.data: {e}") from None
  model_cfg = models.model_config(config.model)  # checks the model section's keys
  sections = Sections(
      optim=config_utils.from_config(OptimConfig, config.optim, "optim"),
      train=config_utils.from_config(TrainConfig, config.train, "train"),
      sample=config_utils.from_config(SampleConfig, config.sample, "sample"),
      noise=experiment.noise_config(config),
      eval=config_utils.from_config(EvalConfig, config.eval, "eval"))
  if sections.optim.name not in _OPTIMIZERS:
    raise ValueError(f"config.optim.name={sections.optim.name!r} is not one of"
                     f" {sorted(_OPTIMIZERS)}.")
  if sections.optim.decay not in _DECAYS:
    raise ValueError(f"config.optim.decay={sections.optim.decay!r} is not one of"
                     f" {sorted(_DECAYS)}.")
  _check_values(sections, config.debug)
  if sections.optim.name == "adam" and sections.optim.weight_decay:
    raise ValueError(f"config.optim.weight_decay={sections.optim.weight_decay} has no effect"
                     " with config.optim.name='adam'; use --config.optim.name=adamw (or"
                     " weight_decay=0).")
  for section in ("sample", "eval"):
    name = getattr(sections, section).sampler
    if name not in samplers.SAMPLERS:
      raise ValueError(f"config.{section}.sampler={name!r} is not one of"
                       f" {sorted(samplers.SAMPLERS)}.")
    steps = getattr(sections, section).num_steps
    if steps > sections.noise.num_timesteps:
      raise ValueError(f"config.{section}.num_steps={steps} exceeds the"
                       f" config.noise.num_timesteps={sections.noise.num_timesteps} steps of"
                       " the diffusion (0: all of them).")
  shape = experiment.image_shape(config)
  check = getattr(model_cfg, "check", None)
  if check is not None:
    try:
      check(shape)
    except ValueError as e:
      raise ValueError(f"config.model does not fit config.data.image_size={shape[0]}"
                       f" (channels={shape[2]}): {e}") from None
  if experiment.needs_spectrum(sections.noise) or sections.sample.every_steps:
    experiment.check_spectrum_bands(config)
  return sections


def check_sampling(sections: Sections, schedule: schedules.Schedule) -> None:
  """The samplers of ``config.sample`` (training grids, when on) and ``config.eval``
  against the schedule: one that breaks the forward chain (built with
  ``noise.ddim_only=True``) samples with DDIM at eta = 0 only.

  Raises:
    ValueError: naming the field to change.
  """
  if not schedule.ddim_only:
    return
  why = (f"config.noise.ddim_only=True and the {schedule.name!r} schedule breaks the forward"
         " chain, so it can only be sampled with DDIM at eta=0")
  for section in ("sample", "eval"):
    s = getattr(sections, section)
    if section == "sample" and not s.every_steps:
      continue
    extra = (" (or --config.sample.every_steps=0: no grids during training)"
             if section == "sample" else "")
    if s.sampler != "ddim":
      raise ValueError(f"config.{section}.sampler={s.sampler!r} cannot be used: {why}; set"
                       f" --config.{section}.sampler=ddim --config.{section}.eta=0{extra}.")
    if s.eta > 0:
      raise ValueError(f"config.{section}.eta={s.eta} cannot be used: {why}; set"
                       f" --config.{section}.eta=0{extra}.")


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
    graphdef, params = models.split_model(model_cfg, image_shape, k_init)
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
                               config: ml_collections.ConfigDict) -> dict | None:
  """Compares the config with the run identity stored in the newest checkpoint whose
  metadata can be read (before any array is restored); returns that metadata."""
  for step in reversed(ckpt.steps()):
    try:
      meta = ckpt.read_json(step, "meta")
    except Exception:  # pylint: disable=broad-except  (an unreadable step: restore says so)
      continue
    if not isinstance(meta, dict) or "run" not in meta:
      continue
    check_same_run(meta["run"], config, f"checkpoint step {step} in {ckpt.directory}")
    return meta
  return None


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


class Terminated(BaseException):
  """SIGTERM arrived while training was starting up: nothing of this start was saved
  and the workdir's checkpoints are as they were (rerun to resume).

  A BaseException, like KeyboardInterrupt, so that no ``except Exception`` takes it
  for a failure of what it interrupted (a checkpoint being read, for instance).
  """


class _Termination:
  """SIGTERM from the first line of :func:`train_and_evaluate` to its last.

  * ``start-up`` (until the loop): the handler raises :class:`Terminated`, so a start
    stops at once; every workdir file is written to a temporary name and renamed,
    so nothing is left half-written, and the lock is released.
  * ``loop``: the handler sets a flag read between steps: the step finishes, a
    checkpoint is saved and training stops. Several processes (``jax.distributed``):
    JAX's preemption sync manager picks the step
    (``multihost_utils.reached_preemption_sync_point``), so all save the same one
    (there a SIGTERM during start-up stops at the first step).
  * ``final`` (the last save and the shutdown): the handler says that the save in
    flight is being finished, and it is. A SIGKILL then still leaves the previous
    checkpoint valid (Orbax renames a step directory only once it is complete).
  """

  START, STOPPING, LOOP, FINAL = "start-up", "stopping", "loop", "final"

  def __init__(self):
    self.phase = self.START
    self.received_in: str | None = None
    self._flag = threading.Event()
    self._previous = None
    self._installed = False
    self._multi = jax.process_count() > 1

  def __enter__(self):
    if not self._multi and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handler)
      self._installed = True
    return self

  def __exit__(self, *exc):
    if self._installed:
      signal.signal(signal.SIGTERM,
                    self._previous if self._previous is not None else signal.SIG_DFL)
    return False

  def _handler(self, signum, frame):  # pylint: disable=unused-argument
    first = not self._flag.is_set()
    self._flag.set()
    self.received_in = self.received_in or self.phase
    if self.phase == self.START:
      self.phase = self.STOPPING  # a second SIGTERM must not interrupt the clean-up
      raise Terminated("SIGTERM during start-up")
    if self.phase == self.STOPPING:
      logging.warning("SIGTERM received again: already stopping.")
    elif self.phase == self.LOOP:
      if first:
        logging.warning("SIGTERM received: saving a checkpoint after this step and stopping.")
    else:
      logging.warning("SIGTERM received while the final checkpoint is being written:"
                      " finishing it before exiting.")

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
  out = {}
  alpha = _fitted_alpha(gen)
  if alpha is not None:
    out["samples/alpha"] = alpha
  if reference is not None:
    _, ref = reference.radial_profile()
    alpha_data = _fitted_alpha(reference)
    if alpha_data is not None:
      out["samples/alpha_data"] = alpha_data
    if np.any(np.asarray(freqs) > 0):
      out["samples/lsd"] = spectral_lib.log_spectral_distance(freqs, profile, ref)
  return out


def _fitted_alpha(stats: spectra.DatasetSpectrum) -> float | None:
  """The spectral slope, or None where there is no power law to fit (constant images:
  a warning about the data was logged at start)."""
  try:
    return float(stats.fit().alpha)
  except ValueError:
    return None


# ----------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------

# Errors a user can cause and fix (a bad config value, a busy, damaged or foreign
# workdir, a read-only or full disk, a NaN loss): the message says what happened and
# what to do, so launchers print it alone, without a traceback.
USER_ERRORS = (ValueError, OSError, lock_lib.WorkdirBusyError, checkpointing.CheckpointError,
               NonFiniteLossError)



def train_and_evaluate(config: ml_collections.ConfigDict, workdir) -> TrainState:
  """Trains (or resumes) the run described by ``config`` in ``workdir``.

  ``workdir`` receives ``config.json``, ``data_spectrum.json`` (the spectrum the
  schedule was built from), ``checkpoints/``, TensorBoard event files and
  ``samples/``. Every process of a multi-host job calls this with the same
  arguments. "Evaluation" during training is the periodic sample grid with the
  samples' spectral slope and log-spectral distance to the data; full evaluation
  (FID, spectral metrics on many samples) runs from the checkpoints.

  A start first checks everything it can without writing (the whole config, the
  workdir's files, the data, the schedule and the samplers against it), so a failed
  start leaves the workdir as it was; then it takes the workdir's lock
  (:mod:`fans_jax.utils.lock`), writes ``config.json`` and the spectrum, and trains.
  SIGTERM is handled from the first line to the last (see :class:`_Termination`).

  Returns:
    The final :class:`TrainState` (after the last step, or after a preemption).
  Raises:
    ValueError: bad config, batch size not divisible by the device count, a workdir
      holding a run of another config, a workdir file that cannot be read or was
      computed from other data.
    lock.WorkdirBusyError: another training runs in ``workdir``.
    NonFiniteLossError: the loss became NaN/Inf (nothing after it was saved).
    checkpointing.CheckpointSaveError: a checkpoint could not be written (the
      previous one is intact).
    checkpointing.CheckpointError: checkpoints exist but none can be read.
    Terminated: SIGTERM during start-up (nothing of this start saved).
  """
  with _Termination() as termination:
    try:
      start = _prepare(config, experiment.as_path(workdir))
      return _train(config, start, termination)
    except Terminated:
      logging.warning("SIGTERM during start-up: stopped before the first step; nothing of"
                      " this start was saved (%s). Rerun the same command to continue.",
                      _checkpoint_summary(experiment.as_path(workdir)))
      raise


@dataclasses.dataclass
class _Existing:
  """What a workdir holds before a start (read without writing anything)."""
  config: dict | None   # config.json
  steps: list[int]      # committed checkpoint steps
  meta: dict | None     # the newest readable checkpoint's metadata

  @property
  def trusted(self) -> bool:
    """A config.json or checkpoint of this very run is there."""
    return self.config is not None or self.meta is not None

  @property
  def num_train_steps(self) -> int | None:
    """The run length the newest checkpoint was trained for (else config.json's)."""
    if self.meta and "num_train_steps" in self.meta:
      return int(self.meta["num_train_steps"])
    train_cfg = (self.config or {}).get("train") or {}
    return int(train_cfg["num_train_steps"]) if "num_train_steps" in train_cfg else None


@dataclasses.dataclass
class _Start:
  """What a start has checked and built before it writes anything."""
  cfg: Sections
  workdir: Any
  mesh: Mesh
  source: Any
  image_shape: tuple[int, int, int]
  spectrum: spectra.DatasetSpectrum | None
  provenance: dict | None
  new_spectrum: bool
  schedule: schedules.Schedule
  existing: _Existing


def _inspect_workdir(config: ml_collections.ConfigDict, workdir,
                     checkpoints: bool = True) -> _Existing:
  """Checks, without writing, that ``workdir`` holds this run or nothing: config.json
  (readable, the same run identity), then (``checkpoints``) the newest readable
  checkpoint's metadata."""
  config_path = workdir / sampling.CONFIG_FILE
  saved = None
  if config_path.exists():
    saved = experiment.read_json(config_path, "the config of the run")
    try:
      if not isinstance(saved, dict):
        raise TypeError(f"a JSON {type(saved).__name__}, not an object")
      identity = run_identity(ml_collections.ConfigDict(saved))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
      raise ValueError(f"{config_path} is not a config written by fans_jax ({type(e).__name__}:"
                       f" {e}); move it away (or restore it) and rerun.") from None
    check_same_run(identity, config, f"workdir {workdir}")
  steps, meta = [], None
  ckpt_dir = workdir / sampling.CHECKPOINT_DIR
  if checkpoints and ckpt_dir.exists():
    ckpt = checkpointing.Checkpointer(ckpt_dir, read_only=True)
    try:
      steps = ckpt.steps()
      meta = _check_checkpoint_identity(ckpt, config) if steps else None
    finally:
      ckpt.close()
  return _Existing(config=saved, steps=steps, meta=meta)


def _checkpoint_summary(workdir) -> str:
  directory = workdir / sampling.CHECKPOINT_DIR
  try:
    steps = sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())
  except OSError:
    steps = []
  if not steps:
    return f"no checkpoint in {directory}"
  return f"the newest checkpoint, step {steps[-1]}, in {directory} is as it was"


def _prepare(config: ml_collections.ConfigDict, workdir) -> _Start:
  """Every check of a start, in order, writing nothing (the spectra cache outside
  the workdir excepted): the config, the devices, the workdir's lock and files, the
  data, the spectrum, the schedule, the samplers against it."""
  cfg = parse_config(config)
  mesh = make_mesh()
  check_batch_size(cfg.train.batch_size, mesh)
  if jax.process_count() == 1:
    lock_lib.WorkdirLock(workdir).check_free()  # fail fast; taken for good in _train
  existing = _inspect_workdir(config, workdir)
  # The data first: missing data (its error names the fix) stops before any log of the
  # config and before anything is written to the workdir.
  source = data.get_source(config.data)
  image_shape = tuple(int(s) for s in source.image_shape)
  if image_shape != experiment.image_shape(config):
    raise ValueError(f"dataset {source.name} gives images {image_shape}, the config says"
                     f" {experiment.image_shape(config)}.")
  if cfg.train.batch_size > len(source):
    raise ValueError(f"config.train.batch_size={cfg.train.batch_size} is larger than the"
                     f" {len(source)} images of dataset {source.name}; use a smaller batch (or"
                     " more data, e.g. config.data.num_examples for a synthetic set).")
  _log_start(config, mesh)
  experiment.check_images(source)
  spectrum, provenance, new_spectrum = None, None, False
  if experiment.needs_spectrum(cfg.noise) or cfg.sample.every_steps:
    spectrum, provenance, new_spectrum = experiment.prepare_spectrum(
        config, workdir, source, trusted=existing.trusted)
    experiment.check_spectrum(spectrum, source.name)
  schedule = experiment.schedule_from_config(config, image_shape, spectrum)
  check_sampling(cfg, schedule)
  _warn_if_decay_changes(cfg, existing)
  return _Start(cfg=cfg, workdir=workdir, mesh=mesh, source=source, image_shape=image_shape,
                spectrum=spectrum, provenance=provenance, new_spectrum=new_spectrum,
                schedule=schedule, existing=existing)


def _warn_if_decay_changes(cfg: Sections, existing: _Existing) -> None:
  """A decaying learning rate is laid out over ``num_train_steps``: changing it on
  resume re-bends the schedule under the steps already taken."""
  before, now = existing.num_train_steps, cfg.train.num_train_steps
  if existing.meta is None or before is None or before == now or cfg.optim.decay == "constant":
    return
  at = int(existing.meta.get("step", 0))
  old = float(learning_rate_fn(cfg.optim, before)(at))
  new = float(learning_rate_fn(cfg.optim, now)(at))
  logging.warning(
      "config.train.num_train_steps changed from %d to %d on a run with optim.decay=%r: the"
      " decay is laid out over the new length, so the schedule re-bends: at the resumed step"
      " %d the learning rate jumps from %.3g to %.3g. To keep the run's schedule, resume with"
      " --config.train.num_train_steps=%d.", before, now, cfg.optim.decay, at, old, new, before)


def _acquire(lock: lock_lib.WorkdirLock) -> None:
  """Process 0 takes the workdir lock; every process raises if it could not."""
  error = None
  if jax.process_index() == 0:
    try:
      lock.acquire()
    except (lock_lib.WorkdirBusyError, OSError) as e:
      error = e
  if jax.process_count() > 1:
    ok = bool(multihost_utils.broadcast_one_to_all(np.int32(error is None)))
    if not ok and error is None:
      error = lock_lib.WorkdirBusyError(f"process 0 could not lock the workdir {lock.directory}"
                                        " (see its log).")
  if error is not None:
    raise error


def _train(config: ml_collections.ConfigDict, start: _Start,
           termination: _Termination) -> TrainState:
  """Takes the lock, writes the workdir's files and trains."""
  workdir = start.workdir
  lock = lock_lib.WorkdirLock(workdir)
  _acquire(lock)
  try:
    # Again, under the lock: a run started meanwhile has written its config.json.
    _inspect_workdir(config, workdir, checkpoints=False)
    if jax.process_index() == 0:
      experiment.write_text_atomic(workdir / sampling.CONFIG_FILE, json.dumps(
          config_utils.to_dict(config), indent=2, sort_keys=True))
    if start.new_spectrum:
      experiment.write_spectrum(workdir, start.spectrum, start.provenance)
    return _loop(config, start, termination)
  finally:
    if jax.process_index() == 0:
      lock.release()


def _loop(config: ml_collections.ConfigDict, start: _Start,
          termination: _Termination) -> TrainState:
  cfg, workdir, mesh, image_shape = start.cfg, start.workdir, start.mesh, start.image_shape
  spectrum = start.spectrum
  if config.debug:
    jax.config.update("jax_debug_nans", True)
  replicated = NamedSharding(mesh, P())
  schedule = jax.device_put(start.schedule, replicated)
  logging.info("noise schedule: %s", schedule.describe())

  ckpt = checkpointing.Checkpointer(workdir / sampling.CHECKPOINT_DIR,
                                    max_to_keep=cfg.train.keep_checkpoints,
                                    async_save=cfg.train.async_checkpoints)
  tx, lr_fn = make_optimizer(cfg.optim, cfg.train.num_train_steps)
  key_impl = str(jax.random.key_impl(jax.random.key(0)))
  iterator = data.make_iterator(start.source, global_batch_size=cfg.train.batch_size,
                                seed=cfg.train.seed, num_threads=cfg.train.data_threads)
  writer = None
  try:
    graphdef, state = _restore_or_init(ckpt, iterator, config.model, image_shape, tx,
                                       cfg.train.seed, mesh, key_impl)
    logging.info("model: %s, %d parameters", config.model.name,
                 models.count_params(state.params))
    step = int(jax.device_get(state.step))
    last_saved = step if ckpt.steps() else None

    step_fn = make_train_step(graphdef, tx, lr_fn, mesh, objective=cfg.noise.objective,
                              ema_decay=cfg.train.ema_decay)
    writer = metric_writers.create_default_writer(workdir,
                                                  just_logging=jax.process_index() > 0)
    if step == 0:
      writer.write_hparams({k: str(v)
                            for k, v in _flatten(config_utils.to_dict(config)).items()})
    progress = metric_writers.ReportProgress(num_train_steps=cfg.train.num_train_steps,
                                             writer=writer,
                                             every_steps=cfg.train.log_every_steps)
    metrics = _Metrics()
    meta = {"run": run_identity(config), "key_impl": key_impl, "versions": versions(),
            "num_train_steps": cfg.train.num_train_steps}

    def save(at_step: int) -> None:
      nonlocal last_saved
      metrics.check()  # never save a state that followed a non-finite loss
      ckpt.save(at_step, _to_items(state),
                {"data": iterator.get_state(), "meta": dict(meta, step=at_step)})
      last_saved = at_step

    guard = (lambda: jax.transfer_guard("disallow")) if config.debug else contextlib.nullcontext
    stopped = False
    termination.phase = termination.LOOP
    try:
      while step < cfg.train.num_train_steps:
        batch = global_batch(next(iterator), mesh, cfg.train.batch_size)
        with guard():
          state, step_metrics = step_fn(state, batch, schedule)
        step += 1
        metrics.add(step, step_metrics)
        progress(step)
        stopped = termination.reached(step)
        last = step == cfg.train.num_train_steps
        if step % cfg.train.log_every_steps == 0 or last:
          writer.write_scalars(step, metrics.summary())
        if step % cfg.train.checkpoint_every_steps == 0 or last or stopped:
          save(step)
        if cfg.sample.every_steps and (step % cfg.sample.every_steps == 0 or last):
          _write_samples(step, state, schedule, graphdef, cfg, image_shape, mesh, spectrum,
                         writer, workdir)
        if stopped:
          break
    except NonFiniteLossError as e:
      termination.phase = termination.FINAL
      try:
        ckpt.wait()
      except checkpointing.CheckpointSaveError as save_error:
        logging.error("%s", save_error)
      raise NonFiniteLossError(
          f"training stopped: {e} The last good checkpoint"
          f" ({'step ' + str(last_saved) if last_saved is not None else 'none'}) in"
          f" {ckpt.directory} is untouched; nothing after the first non-finite step was"
          " saved. Lower optim.learning_rate or set optim.grad_clip, or run with"
          " config.debug=True (jax_debug_nans) to find the first NaN.") from None
  except BaseException:
    _shutdown(ckpt, iterator, writer, termination, raising=False)
    raise
  _shutdown(ckpt, iterator, writer, termination, raising=True)
  if stopped:
    logging.warning("stopped at step %d after SIGTERM; checkpoint step %d saved. Run the same"
                    " command to resume.", step, last_saved)
  elif termination.received_in == termination.FINAL:
    logging.warning("SIGTERM arrived during the final save; checkpoint step %d was completed"
                    " before exiting.", last_saved)
  return state


def _shutdown(ckpt: checkpointing.Checkpointer, iterator, writer, termination: _Termination,
              raising: bool) -> None:
  """Finishes the checkpoint in flight (SIGTERM now lets it finish), then closes the
  iterator and the writer. ``raising``: a failed final save raises; otherwise (another
  error is on its way) it is only logged, so that the first error is the one reported."""
  if termination.phase != termination.STOPPING:
    termination.phase = termination.FINAL
  error = None
  try:
    ckpt.close()
  except checkpointing.CheckpointSaveError as e:
    error = e
  finally:
    iterator.close()
    if writer is not None:
      try:
        writer.flush()
        writer.close()
      except OSError as e:  # e.g. a full disk: the checkpoint's fate matters more
        logging.error("could not finish the TensorBoard/metric files: %s", e)
  if error is not None:
    if raising:
      raise error
    logging.error("%s", error)


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
    "EvalConfig", "NonFiniteLossError", "OptimConfig", "SampleConfig", "Terminated",
    "TrainConfig", "TrainState", "USER_ERRORS", "check_batch_size", "check_same_run",
    "check_sampling", "global_batch", "init_train_state",
    "learning_rate_fn", "make_mesh", "make_noising_fn", "make_optimizer", "make_train_step",
    "parse_config",
    "run_identity", "schedule_from_config", "train_and_evaluate", "train_step", "versions",
]

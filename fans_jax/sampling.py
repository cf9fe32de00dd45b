"""Loading a trained run and drawing samples from it.

Example::

    from fans_jax import sampling
    run = sampling.load_run("workdirs/pltb_fans_tiny")      # latest step, EMA weights
    images = sampling.generate(run, 64, sampler="ddim", num_steps=50, seed=0)
    # float32 [64, H, W, C] in model units ([-1, 1] is the data range); the predicted
    # x0 is clipped to [-1, 1] at every step (DDPM's default; clip_x0=False turns it off)

Reproducibility: sample ``i`` is drawn with the key ``fold_in(key(seed), i)``, so
the same seed gives the same images whatever the batch size or the number of
devices (up to float rounding, which can differ between batch shapes). A batch is
sharded over the local devices (a ``'data'`` mesh axis) and the whole reverse
process of a batch is one jitted ``lax.scan`` (:func:`fans_jax.samplers.sample`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from tqdm import auto as tqdm

from fans_jax import checkpointing, models, sample_files, samplers, schedules
from fans_jax import experiment

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


def local_mesh() -> Mesh:
  """A 1-D ``'data'`` mesh over this process's devices."""
  return Mesh(np.array(jax.local_devices()), ("data",))


def make_model_fn(graphdef: nnx.GraphDef) -> Callable[[Any, jax.Array, jax.Array], jax.Array]:
  """``model_fn(params, x [B, H, W, C], t [B]) -> [B, H, W, C]`` (eval mode, pure)."""
  def model_fn(params, x, t):
    return nnx.merge(graphdef, params)(x, t, train=False)
  return model_fn


@functools.lru_cache(maxsize=32)
def make_sample_fn(model_fn: Callable, *, image_shape: tuple[int, int, int], batch_size: int,
                   sampler: str, num_steps: int | None, eta: float, objective: str,
                   clip_x0: bool, mesh: Mesh, replicate_output: bool = False) -> Callable:
  """A jitted ``fn(params, schedule, key, offset) -> [batch_size, H, W, C]``.

  Sample ``offset + i`` uses ``fold_in(key, offset + i)``: images depend on the seed
  and their index only. Each device of ``mesh`` samples its share of the batch
  (``shard_map`` over ``'data'``: sampling needs no communication, and XLA's
  partitioner would otherwise gather the batch for every FFT of a coloured
  schedule). The output stays sharded, or is replicated with ``replicate_output``
  (so every process of a multi-host mesh holds all of it).
  """
  samplers.check_sampler(sampler)
  if batch_size % mesh.size:
    raise ValueError(f"batch_size={batch_size} must be a multiple of the {mesh.size} devices"
                     " it is sharded over.")
  shape = (1,) + tuple(image_shape)

  def one(params, schedule, key):
    return samplers.sample(model_fn, params, key, schedule=schedule, shape=shape,
                           sampler=sampler, num_steps=num_steps, eta=eta, objective=objective,
                           clip_x0=clip_x0)[0]

  def local(params, schedule, keys):  # this device's keys [B / devices]
    return jax.vmap(one, in_axes=(None, None, 0))(params, schedule, keys)

  sharded = jax.shard_map(local, mesh=mesh, in_specs=(P(), P(), P("data")),
                          out_specs=P("data"))

  def fn(params, schedule, key, offset):
    index = offset + jnp.arange(batch_size, dtype=jnp.int32)
    return sharded(params, schedule, jax.vmap(lambda i: jax.random.fold_in(key, i))(index))

  out = NamedSharding(mesh, P()) if replicate_output else NamedSharding(mesh, P("data"))
  return jax.jit(fn, out_shardings=out)


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained run, ready to sample.

  Attributes:
    config: the config it was trained with (``ConfigDict``).
    schedule: its noise schedule (replicated on the local devices).
    params: EMA parameters (replicated on the local devices).
    model_fn: ``(params, x [B, H, W, C], t [B]) -> output`` in ``objective`` units.
    step: the checkpoint's training step.
    objective: ``eps``, ``x0``, ``v`` or ``flow``.
    image_shape: ``(H, W, C)``.
    workdir: where it was loaded from.
  """
  config: ml_collections.ConfigDict
  schedule: schedules.Schedule
  params: Any
  model_fn: Callable
  step: int
  objective: str
  image_shape: tuple[int, int, int]
  workdir: str


def read_config(workdir) -> ml_collections.ConfigDict:
  """The config a run in ``workdir`` was trained with (``config.json``)."""
  path = experiment.as_path(workdir) / CONFIG_FILE
  if not path.exists():
    raise FileNotFoundError(f"{path} not found: {workdir} is not a training workdir (train"
                            " with launch/train.py --workdir=... first).")
  return ml_collections.ConfigDict(experiment.read_json(path, "the config of the run"))


def load_run(workdir, step: int | None = None) -> Run:
  """Loads the EMA weights of a training run.

  Args:
    workdir: the training workdir (holds ``config.json``, ``checkpoints/`` and, for
      FANS schedules, ``data_spectrum.json``).
    step: a checkpoint step; ``None`` takes the newest readable one (an unreadable
      newest checkpoint is skipped with a warning naming it).
  Returns:
    :class:`Run`.
  Raises:
    FileNotFoundError: not a workdir, no checkpoint, or the chosen step is missing.
  """
  workdir = experiment.as_path(workdir)
  config = read_config(workdir)
  shape = experiment.image_shape(config)
  noise = experiment.noise_config(config)
  schedule = experiment.schedule_from_config(config, shape, experiment.load_spectrum(workdir))
  mesh = local_mesh()
  replicated = NamedSharding(mesh, P())
  graphdef, abstract = models.abstract_params(config.model, shape, replicated)
  ckpt = checkpointing.Checkpointer(workdir / CHECKPOINT_DIR, read_only=True)
  try:
    restored = ckpt.restore({"ema": abstract}, step=step)
  except checkpointing.CheckpointError as e:
    raise FileNotFoundError(str(e)) from e
  finally:
    ckpt.close()
  if restored.skipped:
    logging.warning("using checkpoint step %d; newer step(s) %s could not be read.",
                    restored.step, restored.skipped)
  return Run(config=config, schedule=jax.device_put(schedule, replicated),
             params=restored.arrays["ema"], model_fn=make_model_fn(graphdef),
             step=restored.step, objective=noise.objective, image_shape=shape,
             workdir=str(workdir))


def default_batch_size(num_samples: int, num_devices: int, max_batch: int = 256) -> int:
  """``min(num_samples, max_batch)`` rounded up to a multiple of ``num_devices``."""
  size = min(int(num_samples), max_batch)
  return -(-size // num_devices) * num_devices


def generate(run: Run, num_samples: int, *, sampler: str = "ddpm", num_steps: int | None = None,
             eta: float = 0.0, seed: int = 0, batch_size: int | None = None,
             progress: bool = True, clip_x0: bool = True) -> np.ndarray:
  """Draws ``num_samples`` images from ``run``'s EMA model.

  Args:
    run: from :func:`load_run`.
    num_samples: N.
    sampler: ``ddpm`` (ancestral, all T steps) or ``ddim``.
    num_steps: DDIM steps (default T); ignored by ``ddpm``.
    eta: DDIM stochasticity in [0, 1].
    seed: sample ``i`` uses ``fold_in(key(seed), i)``.
    batch_size: images per jitted call, a multiple of the local device count
      (default: up to 256).
    progress: a progress bar over batches (tqdm, stderr).
    clip_x0: clip the predicted ``x0`` to [-1, 1] at every step (default, as Ho et
      al.'s sampler; False for research on the unclipped reverse process).
  Returns:
    ``float32 [N, H, W, C]`` in model units (the final samples are not clipped).
  """
  samplers.check_sampler(sampler)
  if int(num_samples) < 1:
    raise ValueError(f"num_samples={num_samples} must be >= 1.")
  mesh = local_mesh()
  batch_size = int(batch_size or default_batch_size(num_samples, mesh.size))
  fn = make_sample_fn(run.model_fn, image_shape=tuple(run.image_shape), batch_size=batch_size,
                      sampler=sampler, num_steps=num_steps, eta=float(eta),
                      objective=run.objective, clip_x0=bool(clip_x0), mesh=mesh)
  key = jax.random.key(int(seed))
  out = np.empty((int(num_samples),) + tuple(run.image_shape), np.float32)
  starts = range(0, int(num_samples), batch_size)
  if progress:
    starts = tqdm.tqdm(starts, desc=f"{sampler} sampling, {batch_size} per batch",
                       unit="batch")
  for start in starts:
    images = np.asarray(fn(run.params, run.schedule, key, jnp.int32(start)))
    stop = min(start + batch_size, int(num_samples))
    out[start:stop] = images[:stop - start]
    if not progress:
      logging.info("sampled %d / %d images", stop, num_samples)
  return out


def generate_with(run: Run, num_samples: int, settings: sample_files.SamplerSettings,
                  batch_size: int | None = None, progress: bool = True) -> np.ndarray:
  """:func:`generate` with a :class:`fans_jax.sample_files.SamplerSettings`."""
  s = settings.resolved(run.schedule.num_timesteps)
  return generate(run, num_samples, sampler=s.sampler,
                  num_steps=s.num_steps if s.sampler == "ddim" else None, eta=s.eta,
                  seed=s.seed, batch_size=batch_size, progress=progress, clip_x0=s.clip_x0)


__all__ = ["Run", "default_batch_size", "generate", "generate_with", "load_run", "local_mesh",
           "make_model_fn", "make_sample_fn", "read_config"]

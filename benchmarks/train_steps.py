"""The train step every benchmark times, built one way (``bench_train``, ``bench_gpu``).

A step is what ``launch/train.py`` runs: draw t and the noise, noise the batch, forward,
MSE loss on eps, backward, clip the gradient norm at 1, Adam (lr 2e-4, no warm-up), EMA
update, on a fixed uint8 batch placed with ``train.global_batch``. ``noise="fans"`` is
the annealed schedule (white at t = T to EqualSNR at t = 0) on a 1/f^2 power-law PSD,
capped at 1e3: the most expensive FANS noise (time-dependent spectral colouring).
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from fans_jax import models, schedules, spectra, train

NOISES = ("white", "fans")


def schedule_for(noise: str, size: int, mesh):
  """The replicated ``white`` or ``fans`` (annealed) schedule for ``size x size x 3``."""
  if noise not in NOISES:
    raise ValueError(f"noise {noise!r} is not one of {NOISES}.")
  shape = (size, size, 3)
  if noise == "fans":
    schedule = schedules.make_schedule("annealed", 1000, "linear", shape, max_ratio=1e3,
                                       data_psd=spectra.power_law_grid(size, size, 2.0))
  else:
    schedule = schedules.make_schedule("white", 1000, "linear", shape)
  return jax.device_put(schedule, NamedSharding(mesh, P()))


def build_step(arch: dict, *, batch: int, size: int, noise: str = "white",
               dtype: str = "float32", mesh=None, cost: bool = False
               ) -> tuple[Callable[[int], float], dict]:
  """A compiled, warmed-up train step of the UNet ``arch`` on ``mesh`` (default: every
  local device).

  Args:
    arch: UNet architecture fields (``benchmarks/model_configs.architecture``).
    batch: global batch; size: image side (images ``[batch, size, size, 3]``).
    noise: ``white`` or ``fans``; dtype: the model's compute dtype.
    cost: also compile the forward pass alone for XLA's cost analysis.
  Returns:
    ``(run, info)``: ``run(n)`` runs n steps, blocks, and returns the last loss; info:
    ``params`` (count), ``compile_s`` (first step, compile included) and, with ``cost``,
    ``flops`` (3 x XLA's forward FLOPs: forward + backward, the usual MFU convention).
  """
  shape = (size, size, 3)
  mesh = mesh or train.make_mesh()
  model_cfg = ml_collections.ConfigDict(dict(name="unet", dtype=dtype, **arch))
  schedule = schedule_for(noise, size, mesh)
  tx, lr_fn = train.make_optimizer(train.OptimConfig(warmup_steps=0), 1000)
  graphdef, state = train.init_train_state(model_cfg, shape, tx, 0, mesh)
  step = train.make_train_step(graphdef, tx, lr_fn, mesh, objective="eps", ema_decay=0.9999)
  images = np.random.default_rng(0).integers(0, 256, (batch,) + shape, dtype=np.uint8)
  data = train.global_batch(images, mesh, batch)
  info = {"params": models.count_params(state.params)}
  if cost:
    x = jax.ShapeDtypeStruct((batch,) + shape, jax.numpy.float32)
    t = jax.ShapeDtypeStruct((batch,), jax.numpy.int32)
    analysis = jax.jit(lambda p, x, t: nnx.merge(graphdef, p)(x, t)).lower(
        state.params, x, t).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    info["flops"] = 3.0 * float(analysis["flops"])
  holder = {"state": state}

  def run(n: int) -> float:
    metrics = None
    for _ in range(n):
      holder["state"], metrics = step(holder["state"], data, schedule)
    jax.block_until_ready(metrics)
    return float(metrics["loss"])

  start = time.perf_counter()
  run(1)
  info["compile_s"] = time.perf_counter() - start
  run(2)  # warm-up
  return run, info

"""Sampling overhead (issue 3): T-step ancestral sampling inside one jitted scan against
T forward passes of the same UNet on the same batch (target: <= 1.05x).

    python benchmarks/bench_sampling.py                 # T = 1000, tiny UNet, batch 32 (~25 min)
    python benchmarks/bench_sampling.py --quick         # T = 50, 16x16: seconds
    python benchmarks/bench_sampling.py --devices=2     # batch sharded over 2 host devices

Candidates, alternating, median of ``--repeats``:

* ``forward x T (scan)``: one jitted ``lax.scan`` of T UNet forward passes, each
  feeding the next (no diffusion maths): the floor.
* ``forward x T (calls)``: T separate jitted forward calls (what a Python loop costs).
* ``ddpm white`` / ``ddpm FANS``: :func:`fans_jax.sampling.make_sample_fn` as used by
  ``sampling.generate`` (per-sample keys, ``shard_map`` over the devices).
* ``core sampler, white``: :func:`fans_jax.samplers.sample` jitted directly (one key
  for the batch), to show what the per-sample keys cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time


def parse_args():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true")
  p.add_argument("--devices", type=int, default=1)
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--steps", type=int, default=None, help="T (default 1000; quick 50)")
  p.add_argument("--repeats", type=int, default=None)
  return p.parse_args()


ARGS = parse_args()
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           f" --xla_force_host_platform_device_count={ARGS.devices}").strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402  (after XLA_FLAGS)
import jax.numpy as jnp  # noqa: E402
import ml_collections  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from fans_jax import models, samplers, sampling, schedules, spectra  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_configs  # noqa: E402


def median_alternating(fns, repeats):
  for fn in fns.values():
    fn()
  times = {k: [] for k in fns}
  for _ in range(repeats):
    for k, fn in fns.items():
      start = time.perf_counter()
      fn()
      times[k].append(time.perf_counter() - start)
  return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main():
  quick = ARGS.quick
  size = 16 if quick else 32
  T = ARGS.steps or (50 if quick else 1000)
  batch = ARGS.batch or (8 if quick else 32)
  repeats = ARGS.repeats or (3 if quick else 2)
  shape = (size, size, 3)
  model_cfg = ml_collections.ConfigDict(dict(name="unet", **model_configs.architecture("tiny")))
  graphdef, params = models.init(model_cfg, shape, jax.random.key(0))
  # Perturb the zero-initialised output layers: a real network, not a constant 0.
  params = jax.jit(lambda p: jax.tree.map(lambda x: x + 0.01, p))(params)
  mesh = sampling.local_mesh()
  params = jax.device_put(params, NamedSharding(mesh, P()))
  model_fn = sampling.make_model_fn(graphdef)
  white = schedules.make_schedule("white", T, "cosine", shape)
  fans = schedules.make_schedule("annealed", T, "cosine", shape,
                                 data_psd=spectra.power_law_grid(size, size, 2.0), max_ratio=1e3)
  white, fans = (jax.device_put(s, NamedSharding(mesh, P())) for s in (white, fans))
  x = jax.device_put(jax.random.normal(jax.random.key(1), (batch,) + shape),
                     NamedSharding(mesh, P("data")))
  t = jnp.zeros((batch,), jnp.int32)

  forward = jax.jit(model_fn)

  @jax.jit
  def forward_scan(params, x):
    return jax.lax.scan(lambda h, _: (model_fn(params, h, t), None), x, None, length=T)[0]

  sample = sampling.make_sample_fn(model_fn, image_shape=shape, batch_size=batch,
                                   sampler="ddpm", num_steps=None, eta=0.0, objective="eps",
                                   clip_x0=False, mesh=mesh)
  core = jax.jit(lambda p, s, k: samplers.sample(model_fn, p, k, schedule=s,
                                                 shape=(batch,) + shape, sampler="ddpm"))
  key = jax.random.key(2)

  def calls():
    h = x
    for _ in range(T):
      h = forward(params, h, t)
    jax.block_until_ready(h)

  fns = {
      "forward x T (scan)": lambda: jax.block_until_ready(forward_scan(params, x)),
      "forward x T (calls)": calls,
      "ddpm white (sampling.generate path)": lambda: jax.block_until_ready(
          sample(params, white, key, jnp.int32(0))),
      "ddpm FANS (sampling.generate path)": lambda: jax.block_until_ready(
          sample(params, fans, key, jnp.int32(0))),
      "core sampler, white (one key)": lambda: jax.block_until_ready(core(params, white, key)),
  }
  times = median_alternating(fns, repeats)
  floor = times["forward x T (scan)"]
  print(f"# bench_sampling: T={T}, batch {batch}, {size}x{size}x3, tiny UNet"
        f" ({models.count_params(params):,} params), {ARGS.devices} device(s),"
        f" {platform.machine()} {os.cpu_count()} CPUs\n")
  print("| candidate | seconds | vs forward x T (scan) |\n|---|---|---|")
  for name, sec in times.items():
    print(f"| {name} | {sec:.2f} | {sec / floor:.3f}x |")


if __name__ == "__main__":
  main()

"""Sampling overhead: T-step ancestral sampling inside one jitted scan against T forward
passes of the same UNet on the same batch (target: <= 1.05x).

    python benchmarks/bench_sampling.py                  # T = 1000, tiny UNet, 16x16, batch 64
    python benchmarks/bench_sampling.py --quick          # T = 50, batch 8: a smoke run
    python benchmarks/bench_sampling.py --size=32 --batch=32 --rounds=3

Each candidate runs in its own process (``benchmarks/harness.py``), the candidates
alternating over ``--rounds`` rounds; each process compiles its function, runs it once
to warm up and times ``--repeats`` calls (median). Candidates:

* ``forward x T (scan)``: one jitted ``lax.scan`` of T UNet forward passes, each
  feeding the next (no diffusion maths): the floor.
* ``forward x T (calls)``: T separate jitted forward calls (what a Python loop costs).
* ``ddpm white`` / ``ddpm FANS``: :func:`fans_jax.sampling.make_sample_fn` as used by
  ``sampling.generate`` (per-sample keys, ``shard_map`` over the devices), x0 not
  clipped.
* ``ddpm white clip`` / ``ddpm FANS clip``: the same with x0 clipped to [-1, 1] at
  every step, as the study and ``launch/sample.py`` sample (a coloured schedule then
  pays two more FFTs per step: x0 back to pixels and the clipped x0 forward again).
* ``core sampler white``: :func:`fans_jax.samplers.sample` jitted directly (one key
  for the batch), to show what the per-sample keys cost.
* ``... (unrolled threefry)``: the clipped samplers with JAX's threefry hash lowered
  unrolled on the CPU (:func:`use_unrolled_threefry`). JAX lowers it on the CPU as a
  rolled 5-iteration ``while`` loop, one per random call (a FANS step makes four: the
  fold-in, a split and two normal draws; a white step two); the unrolled lowering,
  JAX's own for GPU and TPU, computes the same bits without the loop.

The study samples PLTB at 16x16 (``configs/study.py:curves``, training batch 64), hence
the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

UNROLLED = " (unrolled threefry)"
CANDIDATES = ("forward x T (scan)", "forward x T (calls)", "ddpm white", "ddpm FANS",
              "ddpm white clip", "ddpm FANS clip", "core sampler white",
              "ddpm white clip" + UNROLLED, "ddpm FANS clip" + UNROLLED)


def use_unrolled_threefry() -> None:
  """Lowers ``threefry2x32`` on the CPU as JAX lowers it for GPU and TPU: unrolled.

  Same bits (the hash is integer arithmetic; tests/test_bench_sampling.py checks
  equality), and no ``while`` loop per random call. Affects what is
  lowered afterwards in this process; uses JAX internals (jax 0.10.2), so it stays a
  benchmark candidate.
  """
  # pylint: disable=import-outside-toplevel
  from jax._src.interpreters import mlir
  from jax._src.random import threefry2x32
  mlir.register_lowering(threefry2x32.threefry2x32_p,
                         threefry2x32._threefry2x32_lowering_rule,  # pylint: disable=protected-access
                         platform="cpu")


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true")
  p.add_argument("--devices", type=int, default=1)
  p.add_argument("--size", type=int, default=16)
  p.add_argument("--batch", type=int, default=None, help="default 64; quick 8")
  p.add_argument("--steps", type=int, default=None, help="T (default 1000; quick 50)")
  p.add_argument("--repeats", type=int, default=1, help="timed calls per process")
  p.add_argument("--rounds", type=int, default=None, help="harness rounds (default 2; quick 1)")
  p.add_argument("--candidates", default=",".join(CANDIDATES),
                 help="comma-separated, from: " + ", ".join(CANDIDATES))
  p.add_argument("--output", default=None, help="write the harness record to this JSON file")
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  args.steps = args.steps or (50 if args.quick else 1000)
  args.batch = args.batch or (8 if args.quick else 64)
  args.rounds = args.rounds or (1 if args.quick else 2)
  return args


def worker(args) -> dict:
  """Times one candidate in this process; returns ``{"seconds", "per_step_ms"}``."""
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={args.devices}").strip()
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  # pylint: disable=import-outside-toplevel
  import jax  # after XLA_FLAGS
  import jax.numpy as jnp
  import ml_collections
  from jax.sharding import NamedSharding, PartitionSpec as P
  from fans_jax import models, samplers, sampling, schedules, spectra
  import model_configs
  # pylint: enable=import-outside-toplevel
  if args.worker.endswith(UNROLLED):
    use_unrolled_threefry()

  size, T, batch = args.size, args.steps, args.batch
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
  sample_clip = sampling.make_sample_fn(model_fn, image_shape=shape, batch_size=batch,
                                        sampler="ddpm", num_steps=None, eta=0.0,
                                        objective="eps", clip_x0=True, mesh=mesh)
  core = jax.jit(lambda p, s, k: samplers.sample(model_fn, p, k, schedule=s,
                                                 shape=(batch,) + shape, sampler="ddpm"))
  key = jax.random.key(2)

  def calls():
    h = x
    for _ in range(T):
      h = forward(params, h, t)
    jax.block_until_ready(h)

  # Compiled ahead of time, so the one timed call of a T = 1000 scan is not doubled by a
  # warm-up call; the Python loop of calls warms up with one forward pass.
  jitted = {"forward x T (scan)": (forward_scan, (params, x)),
            "ddpm white": (sample, (params, white, key, jnp.int32(0))),
            "ddpm FANS": (sample, (params, fans, key, jnp.int32(0))),
            "ddpm white clip": (sample_clip, (params, white, key, jnp.int32(0))),
            "ddpm FANS clip": (sample_clip, (params, fans, key, jnp.int32(0))),
            "core sampler white": (core, (params, white, key))}
  for name in ("ddpm white clip", "ddpm FANS clip"):
    jitted[name + UNROLLED] = jitted[name]
  if args.worker in jitted:
    fun, fun_args = jitted[args.worker]
    compiled = fun.lower(*fun_args).compile()
    fn = lambda: jax.block_until_ready(compiled(*fun_args))  # noqa: E731
  else:
    jax.block_until_ready(forward(params, x, t))
    fn = calls
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - start)
  sec = sorted(times)[len(times) // 2]
  out = {"seconds": sec, "per_step_ms": 1e3 * sec / T, "params": models.count_params(params)}
  if result is not None:  # sum |samples|: a sampler and its unrolled-threefry twin agree
    out["checksum"] = float(jnp.sum(jnp.abs(result)))
  return out


def main(args) -> None:
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import harness  # pylint: disable=import-outside-toplevel
  names = [n.strip() for n in args.candidates.split(",") if n.strip()]
  unknown = sorted(set(names) - set(CANDIDATES))
  if unknown or not names:
    raise SystemExit(f"unknown candidates {unknown}; choose from {CANDIDATES}.")
  common = [f"--devices={args.devices}", f"--size={args.size}", f"--batch={args.batch}",
            f"--steps={args.steps}", f"--repeats={args.repeats}"]
  candidates = {n: [sys.executable, os.path.abspath(__file__), f"--worker={n}"] + common
                for n in names}
  result = harness.measure(candidates, rounds=args.rounds,
                           env={"JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"})
  result["settings"] = {"T": args.steps, "batch": args.batch, "size": args.size,
                        "devices": args.devices, "repeats": args.repeats}
  print(f"# bench_sampling: T={args.steps}, batch {args.batch}, {args.size}x{args.size}x3,"
        f" tiny UNet, {args.devices} device(s); ratio: to {names[0]}\n")
  print(harness.markdown(result, "seconds"))
  if args.output:
    with open(args.output, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  ARGS = parse_args()
  if ARGS.worker:
    print(json.dumps(worker(ARGS)))
  else:
    main(ARGS)

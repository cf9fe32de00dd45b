"""GPU benchmark for a short lease: one command, one JSON, about 4 minutes on one H100/H200.

    python benchmarks/bench_gpu.py --output=benchmarks/results/gpu.json   # on the GPU machine
    python benchmarks/bench_gpu.py --quick --output=workdirs/gpu.json     # CPU sanity check
    python benchmarks/bench_gpu.py --peak_tflops=989                      # unknown device kind

Sections, in this order, each skipped (and recorded as skipped) once ``--budget_s`` is
spent, so that a lease that ends early still leaves the first numbers in the JSON, which
is rewritten after every section:

1. ``throughput``: train-step ms, images/s, achieved TFLOP/s and MFU of the CIFAR-10
   UNet (Ho et al., 35.7M) at batch 128, float32 and bfloat16, FANS (annealed) noise.
2. ``fans_overhead``: white against FANS noise, bfloat16, batch 128, the two compiled
   steps timed in alternating blocks (median block); target: FANS < 2% slower.
3. ``largest_batch``: bfloat16 batches 256, 512, 1024, ... until one does not fit in
   memory (or the budget ends): images/s and MFU of each.
4. ``sharded_equality``: the same three train steps (tiny UNet, float32, matmul precision
   "highest") on one device and sharded over every local device; with one device, the
   GPU against the host CPU. The parameters must agree to a small fraction of how far
   the steps moved them (tests/test_train.py's criterion: diff <= 1e-2 x moved).
5. ``sampling``: DDIM steps of the CIFAR UNet (bfloat16, batch 256), ms per step.

FLOPs: XLA's cost analysis of the compiled UNet forward pass, times 3 for forward +
backward (the usual MFU convention; optimiser, noise and EMA not counted). MFU = FLOPs
per step / step time / dense peak FLOP/s of all devices for the dtype (float32 runs its
convolutions as TF32 by default in XLA on NVIDIA GPUs, so its peak is the TF32 one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from fans_jax import models, sampling, train  # noqa: E402

# Dense peak TFLOP/s per device: (float32 as XLA runs it, bfloat16).
PEAK_TFLOPS = {
    "H100": (494.7, 989.4), "H200": (494.7, 989.4), "A100": (156.0, 312.0),
    "L4": (60.0, 121.0), "A10": (62.5, 125.0), "V100": (15.7, 125.0),
    "TPU v4": (275.0, 275.0), "TPU v5 lite": (197.0, 197.0), "TPU v5e": (197.0, 197.0),
    "TPU v5p": (459.0, 459.0), "TPU v6 lite": (918.0, 918.0),
}
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_configs  # noqa: E402
import train_steps  # noqa: E402  (the one train step every benchmark times)

CIFAR = model_configs.architecture("cifar")
TINY = model_configs.architecture("tiny")
SECTIONS = ("throughput", "fans_overhead", "largest_batch", "sharded_equality", "sampling")


def peak_tflops(dtype: str, override: float | None) -> float | None:
  """Dense peak TFLOP/s of all local devices for ``dtype`` (None: unknown kind)."""
  if override:
    return override * jax.device_count()
  kind = jax.devices()[0].device_kind
  for name, (fp32, bf16) in PEAK_TFLOPS.items():
    if name.lower() in kind.lower():
      return (bf16 if dtype == "bfloat16" else fp32) * jax.device_count()
  return None


def build_step(model: dict, dtype: str, batch: int, size: int, fans: bool, mesh=None):
  """``benchmarks/train_steps.build_step`` with XLA's cost analysis: ``(run, info)``;
  ``run(n)`` runs n steps and blocks; info: params, model FLOPs per step, compile s."""
  return train_steps.build_step(model, batch=batch, size=size, noise="fans" if fans else "white",
                                dtype=dtype, mesh=mesh, cost=True)


def timed(run, steps: int) -> float:
  start = time.perf_counter()
  run(steps)
  return (time.perf_counter() - start) / steps


def rates(sec: float, batch: int, flops: float, dtype: str, override) -> dict:
  achieved = flops / sec / 1e12
  peak = peak_tflops(dtype, override)
  return dict(ms_per_step=1e3 * sec, img_per_s=batch / sec, model_tflop_per_step=flops / 1e12,
              achieved_tflops=achieved, peak_tflops=peak,
              mfu=(achieved / peak) if peak else None)


def section_throughput(args, model) -> dict:
  out = {}
  for dtype in ("float32", "bfloat16"):
    run, info = build_step(model, dtype, args.batch, args.size, fans=True)
    out[dtype] = {**info, **rates(timed(run, args.steps), args.batch, info["flops"], dtype,
                                  args.peak_tflops)}
  return out


def section_fans_overhead(args, model) -> dict:
  white, _ = build_step(model, "bfloat16", args.batch, args.size, fans=False)
  fans, _ = build_step(model, "bfloat16", args.batch, args.size, fans=True)
  blocks = {"white": [], "fans": []}
  for _ in range(5):  # alternating blocks: a drift of clocks hits both alike
    for name, run in (("white", white), ("fans", fans)):
      blocks[name].append(timed(run, max(args.steps // 5, 2)))
  med = {k: float(np.median(v)) for k, v in blocks.items()}
  return {"white_ms": 1e3 * med["white"], "fans_ms": 1e3 * med["fans"],
          "fans_overhead": med["fans"] / med["white"] - 1.0,
          "blocks_ms": {k: [1e3 * s for s in v] for k, v in blocks.items()}}


def section_largest_batch(args, model, deadline: float) -> dict:
  out, batch = {}, 2 * args.batch
  while time.perf_counter() < deadline and batch <= args.max_batch:
    try:
      run, info = build_step(model, "bfloat16", batch, args.size, fans=True)
      out[str(batch)] = {**info, **rates(timed(run, max(args.steps // 2, 2)), batch,
                                          info["flops"], "bfloat16", args.peak_tflops)}
    except Exception as e:  # pylint: disable=broad-except  (out of memory ends the search)
      out[str(batch)] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
      break
    batch *= 2
  return out


def _three_steps(mesh, batch: int) -> tuple[list, list, list]:
  """init, final params and losses of three float32 steps of the tiny UNet."""
  shape = (16, 16, 3)
  model_cfg = ml_collections.ConfigDict(dict(name="unet", **TINY))
  schedule = train_steps.schedule_for("fans", 16, mesh)
  tx, lr_fn = train.make_optimizer(train.OptimConfig(learning_rate=1e-3, warmup_steps=0), 10)
  graphdef, state = train.init_train_state(model_cfg, shape, tx, 0, mesh)
  init = jax.tree.leaves(jax.device_get(state.params))
  step = train.make_train_step(graphdef, tx, lr_fn, mesh, objective="eps", ema_decay=0.9)
  rng = np.random.default_rng(3)
  losses = []
  for _ in range(3):
    images = rng.integers(0, 256, (batch,) + shape, dtype=np.uint8)
    state, metrics = step(state, train.global_batch(images, mesh, batch), schedule)
    losses.append(float(metrics["loss"]))
  return init, jax.tree.leaves(jax.device_get(state.params)), losses


def section_sharded_equality(args) -> dict:
  del args
  devices = jax.devices()
  with jax.default_matmul_precision("highest"):
    if len(devices) > 1:
      what = f"1 device against {len(devices)} sharded"
      init, ref, loss_ref = _three_steps(train.make_mesh(devices[:1]), 8 * len(devices))
      _, got, loss_got = _three_steps(train.make_mesh(devices), 8 * len(devices))
    else:
      what = f"{devices[0].platform} against the host CPU (one device)"
      init, got, loss_got = _three_steps(train.make_mesh(devices), 8)
      cpu = jax.devices("cpu")[:1]
      with jax.default_device(cpu[0]):
        _, ref, loss_ref = _three_steps(train.make_mesh(cpu), 8)
  moved = max(float(np.max(np.abs(a - b))) for a, b in zip(ref, init))
  diff = max(float(np.max(np.abs(a - b))) for a, b in zip(got, ref))
  return {"compared": what, "moved": moved, "max_param_diff": diff,
          "diff_over_moved": diff / moved, "losses": loss_got, "reference_losses": loss_ref,
          "passed": bool(diff <= 1e-2 * moved)}


def section_sampling(args, model) -> dict:
  shape = (args.size, args.size, 3)
  batch = 2 * args.batch
  model_cfg = ml_collections.ConfigDict(dict(name="unet", dtype="bfloat16", **model))
  graphdef, params = models.init(model_cfg, shape, jax.random.key(0))
  mesh = sampling.local_mesh()
  params = jax.device_put(params, NamedSharding(mesh, P()))
  schedule = train_steps.schedule_for("fans", args.size, mesh)
  fn = sampling.make_sample_fn(sampling.make_model_fn(graphdef), image_shape=shape,
                               batch_size=batch, sampler="ddim", num_steps=args.sample_steps,
                               eta=1.0, objective="eps", clip_x0=True, mesh=mesh)
  key = jax.random.key(1)
  start = time.perf_counter()
  compiled = fn.lower(params, schedule, key, jax.numpy.int32(0)).compile()
  compile_s = time.perf_counter() - start
  jax.block_until_ready(compiled(params, schedule, key, jax.numpy.int32(0)))
  start = time.perf_counter()
  jax.block_until_ready(compiled(params, schedule, key, jax.numpy.int32(0)))
  sec = time.perf_counter() - start
  return {"batch": batch, "ddim_steps": args.sample_steps, "seconds": sec,
          "ms_per_step": 1e3 * sec / args.sample_steps,
          "img_per_s": batch / sec, "compile_s": compile_s}


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true", help="tiny UNet, small batch (CPU check)")
  p.add_argument("--batch", type=int, default=None, help="default 128; quick 8")
  p.add_argument("--size", type=int, default=None, help="image size (default 32; quick 16)")
  p.add_argument("--max_batch", type=int, default=4096)
  p.add_argument("--steps", type=int, default=None, help="timed steps (default 30; quick 3)")
  p.add_argument("--sample_steps", type=int, default=None, help="DDIM steps (default 20)")
  p.add_argument("--peak_tflops", type=float, default=None, help="per device, overrides")
  p.add_argument("--budget_s", type=float, default=240.0,
                 help="start no section after this many seconds")
  p.add_argument("--sections", default=",".join(SECTIONS))
  p.add_argument("--output", default=None, help="JSON file (rewritten after each section)")
  args = p.parse_args(argv)
  model = TINY if args.quick else CIFAR
  args.batch = args.batch or (8 if args.quick else 128)
  args.size = args.size or (16 if args.quick else 32)
  args.steps = args.steps or (3 if args.quick else 30)
  args.sample_steps = args.sample_steps or (3 if args.quick else 20)
  if args.quick:
    args.max_batch = min(args.max_batch, 2 * args.batch)
  wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
  if set(wanted) - set(SECTIONS):
    raise SystemExit(f"unknown sections {sorted(set(wanted) - set(SECTIONS))}; from {SECTIONS}")
  start = time.perf_counter()
  deadline = start + args.budget_s
  dev = jax.devices()[0]
  record = {"machine": {"device_kind": dev.device_kind, "platform": dev.platform,
                        "device_count": jax.device_count(), "jax": jax.__version__,
                        "host": platform.node(), "cpu_count": os.cpu_count()},
            "model": "tiny" if args.quick else "cifar (Ho et al.)", "batch": args.batch,
            "image_size": args.size,
            "steps": args.steps, "budget_s": args.budget_s, "sections": {}}

  def save():
    record["wall_s"] = time.perf_counter() - start
    if args.output:
      os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
      with open(args.output, "w") as f:
        json.dump(record, f, indent=1, default=float)

  runners = {"throughput": lambda: section_throughput(args, model),
             "fans_overhead": lambda: section_fans_overhead(args, model),
             "largest_batch": lambda: section_largest_batch(args, model, deadline),
             "sharded_equality": lambda: section_sharded_equality(args),
             "sampling": lambda: section_sampling(args, model)}
  for name in wanted:
    if time.perf_counter() > deadline:
      record["sections"][name] = {"skipped": f"budget of {args.budget_s:.0f} s spent"}
    else:
      t0 = time.perf_counter()
      try:
        record["sections"][name] = runners[name]()
      except Exception as e:  # pylint: disable=broad-except  (keep what the others measured)
        record["sections"][name] = {"error": f"{type(e).__name__}: {str(e)[:500]}"}
      record["sections"][name]["section_s"] = time.perf_counter() - t0
    print(name, json.dumps(record["sections"][name], default=float), flush=True)
    save()
  return record


if __name__ == "__main__":
  main()

"""GPU benchmark (issue 3): train-step images/s and model FLOPs utilisation (MFU) of the
CIFAR-10 config (35.7M UNet, batch 128) in float32 and bfloat16. One command, a few
minutes:

    python benchmarks/bench_gpu.py                   # on a GPU (or TPU) machine
    python benchmarks/bench_gpu.py --quick           # CPU sanity check (tiny UNet)
    python benchmarks/bench_gpu.py --peak_tflops=989 # if the device is not in PEAK_TFLOPS

FLOPs: XLA's cost analysis of the compiled UNet forward pass, times 3 for forward +
backward (the usual MFU convention; the optimiser, noise and EMA are not counted), per
step. MFU = FLOPs per step / step time / peak FLOP/s of all devices. The peak is per
dtype (dense, no sparsity) from PEAK_TFLOPS by device kind; float32 on NVIDIA GPUs
runs its matmuls/convs as TF32 by default in XLA, so its peak is the TF32 one. The
batch is sharded over every local device. Prints a markdown table and the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

from fans_jax import models, schedules, spectra, train  # noqa: E402

# Dense peak TFLOP/s per device: (float32 as XLA runs it, bfloat16).
PEAK_TFLOPS = {
    "H100": (494.7, 989.4), "H200": (494.7, 989.4), "A100": (156.0, 312.0),
    "L4": (60.0, 121.0), "A10": (62.5, 125.0), "V100": (15.7, 125.0),
    "TPU v4": (275.0, 275.0), "TPU v5 lite": (197.0, 197.0), "TPU v5e": (197.0, 197.0),
    "TPU v5p": (459.0, 459.0), "TPU v6 lite": (918.0, 918.0),
}
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_configs  # noqa: E402

CIFAR = model_configs.architecture("cifar")
TINY = model_configs.architecture("tiny")


def peak_tflops(dtype: str, override: float | None) -> float | None:
  if override:
    return override * jax.device_count()
  kind = jax.devices()[0].device_kind
  for name, (fp32, bf16) in PEAK_TFLOPS.items():
    if name.lower() in kind.lower():
      return (bf16 if dtype == "bfloat16" else fp32) * jax.device_count()
  return None


def measure(model: dict, dtype: str, batch: int, size: int, steps: int, fans: bool):
  shape = (size, size, 3)
  model_cfg = ml_collections.ConfigDict(dict(name="unet", dtype=dtype, **model))
  mesh = train.make_mesh()
  if fans:
    schedule = schedules.make_schedule("annealed", 1000, "linear", shape, max_ratio=1e3,
                                       data_psd=spectra.power_law_grid(size, size, 2.0))
  else:
    schedule = schedules.make_schedule("white", 1000, "linear", shape)
  schedule = jax.device_put(schedule, NamedSharding(mesh, P()))
  tx, lr_fn = train.make_optimizer(train.OptimConfig(warmup_steps=0), 1000)
  graphdef, state = train.init_train_state(model_cfg, shape, tx, 0, mesh)
  step = train.make_train_step(graphdef, tx, lr_fn, mesh, objective="eps", ema_decay=0.9999)
  images = np.random.default_rng(0).integers(0, 256, (batch,) + shape, dtype=np.uint8)
  data = train.global_batch(images, mesh, batch)

  x = jax.ShapeDtypeStruct((batch,) + shape, jax.numpy.float32)
  t = jax.ShapeDtypeStruct((batch,), jax.numpy.int32)
  fwd = jax.jit(lambda p, x, t: nnx.merge(graphdef, p)(x, t)).lower(state.params, x, t)
  cost = fwd.compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  model_flops = 3.0 * float(cost["flops"])

  start = time.perf_counter()
  state, metrics = step(state, data, schedule)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - start
  for _ in range(2):  # warm-up
    state, metrics = step(state, data, schedule)
  jax.block_until_ready(metrics)
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, data, schedule)
  jax.block_until_ready(metrics)
  sec = (time.perf_counter() - start) / steps
  return dict(params=models.count_params(state.params), sec=sec, flops=model_flops,
              compile=compile_s, loss=float(metrics["loss"]))


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--quick", action="store_true", help="tiny UNet, small batch (CPU check)")
  p.add_argument("--batch", type=int, default=None)
  p.add_argument("--steps", type=int, default=None, help="timed steps per dtype")
  p.add_argument("--peak_tflops", type=float, default=None, help="per device, overrides")
  p.add_argument("--noise", default="fans", choices=["fans", "white"])
  args = p.parse_args()
  model = TINY if args.quick else CIFAR
  batch = args.batch or (8 if args.quick else 128)
  steps = args.steps or (3 if args.quick else 50)
  dev = jax.devices()[0]
  print(f"# bench_gpu: {'tiny' if args.quick else 'CIFAR-10 (Ho et al.)'} UNet, batch {batch},"
        f" 32x32x3, {args.noise} noise, {jax.device_count()} x {dev.device_kind}"
        f" ({dev.platform}), jax {jax.__version__}, {platform.node()}\n")
  print("| dtype | params | ms/step | images/s | model TFLOP/step | achieved TFLOP/s |"
        " peak TFLOP/s | MFU | compile s | loss |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  for dtype in ("float32", "bfloat16"):
    r = measure(model, dtype, batch, 32, steps, args.noise == "fans")
    achieved = r["flops"] / r["sec"] / 1e12
    peak = peak_tflops(dtype, args.peak_tflops)
    mfu = f"{100 * achieved / peak:.1f}%" if peak else "n/a (pass --peak_tflops)"
    print(f"| {dtype} | {r['params']:,} | {r['sec'] * 1e3:.1f} | {batch / r['sec']:.0f} |"
          f" {r['flops'] / 1e12:.3f} | {achieved:.2f} | {peak or 'unknown'} | {mfu} |"
          f" {r['compile']:.1f} | {r['loss']:.3f} |")


if __name__ == "__main__":
  main()

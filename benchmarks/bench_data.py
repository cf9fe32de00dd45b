"""Benchmarks of the data pipeline (issue 4): images/s delivered, spectrum throughput.

    python benchmarks/bench_data.py            # full sizes (about a minute on 2 cores)
    python benchmarks/bench_data.py --quick    # tiny sizes, seconds (a smoke run)

Measures, for 32x32 and 64x64 RGB data (synthetic and offline local sets):
* ``source``: ``src.get_batch`` alone, first pass (synthetic sets generate every image);
* ``pipeline``: ``make_iterator`` (grain, 2 prefetch threads, shuffled, global batch
  128) in steady state, after one warm-up epoch where the set is small enough for the
  synthetic memo;
and the throughput of ``dataset_spectrum`` over the 10,000-image CIFAR-10 set (no
cache). The target is a pipeline at least 5x faster than the tiny model's training
(about 450-490 images/s at 32x32, batch 128, on this machine: environment notes), so
training never waits for data. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import fans_jax.data as data
from fans_jax.data import local
from fans_jax.data import spectra_cache

TRAIN_IMAGES_PER_S = 470.0  # tiny model, 32x32, batch 128 (environment notes)


def bench_source(src, batch: int, batches: int) -> float:
  start = time.perf_counter()
  for k in range(batches):
    src.get_batch(np.arange(k * batch, (k + 1) * batch) % len(src))
  return batches * batch / (time.perf_counter() - start)


def bench_pipeline(src, batch: int, warmup: int, batches: int) -> float:
  it = data.make_iterator(src, batch, seed=0, process_index=0, process_count=1)
  for _ in range(warmup):
    next(it)
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  rate = batches * batch / (time.perf_counter() - start)
  it.close()
  return rate


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
  args = parser.parse_args()
  batch = 128
  n_syn = 1024 if args.quick else 10000
  batches = 4 if args.quick else 40
  have_local = (local.resolve_data_dir() / local.CHECKSUM_FILE).exists()
  cases = [("pltb", 32), ("pltb", 64), ("egm", 32), ("egm", 64)]
  if have_local:
    cases += [("cifar10_local", 32), ("dtd_local", 64), ("dtd_local", 32)]
  rows = []
  for name, size in cases:
    cfg = data.with_overrides(name=name, image_size=size, num_examples=n_syn)
    t0 = time.perf_counter()
    src = data.get_source(cfg)
    build = time.perf_counter() - t0
    cold = bench_source(data.get_source(data.with_overrides(cfg, synthetic_cache_mb=0))
                        if name in ("pltb", "egm") else src, batch, max(2, batches // 4))
    # Synthetic sets: one warm-up epoch fills the memo; local sets are in memory already.
    warm = len(src) // batch if name in ("pltb", "egm") else 2
    pipe = bench_pipeline(src, batch, warm, 10 * batches)  # >> the 4 prefetched batches
    rows.append((name, f"{size}x{size}x3", len(src), build, cold, pipe))
  print(f"\nmachine: {platform.node()} ({platform.processor() or platform.machine()}),"
        " shared CPU: timings are indicative\n")
  print("| dataset | shape | images | build (s) | source, first pass (img/s) |"
        " pipeline, steady (img/s) | pipeline / 32x32 training |")
  print("|---|---|---|---|---|---|---|")
  for name, shape, n, build, cold, pipe in rows:
    print(f"| {name} | {shape} | {n} | {build:.2f} | {cold:,.0f} | {pipe:,.0f} |"
          f" {pipe / TRAIN_IMAGES_PER_S:.0f}x |")

  if have_local:
    n = 1000 if args.quick else 10000
    cfg = data.with_overrides(name="cifar10_local", split="test")
    spectra_cache.dataset_spectrum(cfg, num_images=min(n, 1000), use_cache=False)  # compile
    start = time.perf_counter()
    stats = spectra_cache.dataset_spectrum(cfg, num_images=n, use_cache=False)
    dt = time.perf_counter() - start
    print(f"\n| analysis | images | seconds | images/s | alpha |\n|---|---|---|---|---|\n"
          f"| dataset_spectrum(cifar10_local test) | {n} | {dt:.2f} | {n / dt:,.0f} |"
          f" {stats.fit().alpha:.3f} |")
  else:
    print("\n(offline sets not found: set FANS_DATA_DIR to benchmark local data.)")


if __name__ == "__main__":
  main()

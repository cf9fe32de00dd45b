"""Benchmarks of the FANS core (issue 2): coloured vs white q_sample, spectrum statistics.

    python benchmarks/bench_core.py            # full sizes (a minute or two on 2 cores)
    python benchmarks/bench_core.py --quick    # tiny sizes, seconds (a smoke run)

Every ratio is measured side by side in one run: the candidates alternate, each timed
``--repeats`` times after a warm-up, and the median is reported. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import jax
import jax.numpy as jnp
import numpy as np

from fans_jax import diffusion, schedules, spectra

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402  (one timing discipline for every benchmark)


def timeit_alternating(fns: dict, repeats: int) -> dict:
  """Median wall time (s) of each zero-argument function, run in alternation
  (``benchmarks/harness.alternate``, blocking on JAX results)."""
  return harness.seconds(harness.alternate(fns, repeats, block=jax.block_until_ready))


def bench_q_sample(batch: int, size: int, repeats: int) -> list[tuple]:
  shape = (batch, size, size, 3)
  psd = spectra.power_law_grid(size, size, 2.0)
  scheds = {
      "white": schedules.make_schedule("white", 1000, "linear", shape[1:]),
      "matched": schedules.make_schedule("matched", 1000, "linear", shape[1:], data_psd=psd),
      "annealed": schedules.make_schedule("annealed", 1000, "linear", shape[1:], data_psd=psd),
  }
  x0 = jax.random.normal(jax.random.key(0), shape)
  eps = jax.random.normal(jax.random.key(1), shape)
  t = jax.random.randint(jax.random.key(2), (batch,), 0, 1000)
  q = jax.jit(diffusion.q_sample)

  @jax.jit
  def with_noise(s, x0, key):
    """What a train step does: draw t and eps, make x_t and the target."""
    k1, k2 = jax.random.split(key)
    tt = jax.random.randint(k1, (x0.shape[0],), 0, 1000)
    e = jax.random.normal(k2, x0.shape)
    return diffusion.q_sample(s, x0, tt, e), diffusion.training_target(s, x0, tt, e)

  fns = {}
  for name, s in scheds.items():
    fns[f"q_sample {name}"] = (lambda s=s: q(s, x0, t, eps))
    fns[f"noise+q_sample+target {name}"] = (lambda s=s: with_noise(s, x0, jax.random.key(3)))
  times = timeit_alternating(fns, repeats)
  rows = []
  for name in ("matched", "annealed"):
    for kind in ("q_sample", "noise+q_sample+target"):
      white = times[f"{kind} white"]
      col = times[f"{kind} {name}"]
      rows.append((f"{kind}, {name} vs white ({batch}x{size}x{size}x3)",
                   f"{col * 1e3:.2f} ms vs {white * 1e3:.2f} ms", f"{col / white:.2f}x"))
  return rows


def bench_statistics(num: int, size: int, batch: int, repeats: int) -> list[tuple]:
  images = np.random.default_rng(0).standard_normal((num, size, size, 3)).astype(np.float32)
  nbytes = images.nbytes
  on_device = jax.device_put(images)

  @jax.jit
  def jax_stats(x):
    power = spectra.power_spectrum(x, channel_mean=False)
    return jnp.mean(power, axis=0)

  def numpy_stats():
    coeffs = np.fft.rfft2(images, axes=(1, 2), norm="ortho")
    return (np.abs(coeffs) ** 2).mean(axis=0)

  def streamed():
    acc = spectra.SpectrumAccumulator(spectra.BandSpec(num_bands=8))
    for i in range(0, num, batch):
      acc.update(images[i:i + batch])
    return acc.finalize().psd

  def floor():
    return images.copy()

  times = timeit_alternating({"jax": lambda: jax_stats(on_device), "numpy": numpy_stats,
                              "streamed": streamed, "memcpy": floor}, repeats)
  gbps = lambda t: nbytes / t / 1e9  # noqa: E731
  label = f"{num} images {size}x{size}x3 ({nbytes / 1e6:.0f} MB)"
  return [
      (f"power spectrum mean, jitted JAX, {label}", f"{times['jax'] * 1e3:.0f} ms"
       f" ({gbps(times['jax']):.1f} GB/s)", f"{times['jax'] / times['memcpy']:.1f}x floor"),
      (f"power spectrum mean, NumPy, {label}", f"{times['numpy'] * 1e3:.0f} ms",
       f"{times['numpy'] / times['jax']:.1f}x slower than JAX"),
      (f"SpectrumAccumulator (PSD, variance, band powers; batches of {batch}, host float64)",
       f"{times['streamed'] * 1e3:.0f} ms", f"{times['streamed'] / times['memcpy']:.1f}x floor"),
      ("memory-bandwidth floor: one copy of the same bytes",
       f"{times['memcpy'] * 1e3:.0f} ms ({gbps(times['memcpy']):.1f} GB/s)", "1.0x"),
  ]


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--repeats", type=int, default=None)
  args = parser.parse_args()
  repeats = args.repeats or (3 if args.quick else 20)
  rows = bench_q_sample(16 if args.quick else 128, 32, repeats)
  rows += bench_statistics(500 if args.quick else 10000, 32, 500 if args.quick else 1000,
                           max(2, repeats // 4))
  print(f"\nMachine: {platform.processor() or platform.machine()}, {jax.device_count()} JAX"
        f" device(s) {jax.devices()[0].platform}, jax {jax.__version__}\n")
  print("| measurement | time | ratio |")
  print("|---|---|---|")
  for row in rows:
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
  main()

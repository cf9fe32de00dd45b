"""Where the train step's time goes on XLA:CPU: a profiler trace, summed by op kind,
and the three convolutions of a 3x3 conv layer by batch size.

    python benchmarks/profile_step.py --section=trace --devices=2 --batch=64 --size=16
    python benchmarks/profile_step.py --section=convs

``trace``: the step every benchmark times (``benchmarks/train_steps.py``, tiny UNet,
white noise) under ``jax.profiler.trace``; the Perfetto trace's complete events are
summed by name with the trailing number removed (``ynn_fusion.12`` -> ``ynn_fusion``),
in ms per step summed over devices. Host-side and waiting events are left out of the
kinds except ``all-reduce`` (which includes waiting for the other devices).
``convs``: forward, input gradient and kernel gradient of one 3x3 SAME conv at the
tiny UNet's shapes, microseconds per image by batch, one device, alternating
(``harness.alternate``); and the kernel gradient inside a ``fori_loop`` against the same
calls unrolled. Prints Markdown; ``--output`` writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import re
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SKIP = ("ThunkExecutor", "$", "PjitFunction", "Wait", "Rendezvous", "CommonPjRt",
         "ParseArguments", "Handle", "SlinkyThreadPool", "Invoke", "end:", "[")


def trace_section(batch: int, size: int, steps: int = 5) -> dict:
  """ms per step by op kind (summed over devices) and the wall clock per step."""
  import time  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import model_configs  # pylint: disable=import-outside-toplevel
  import train_steps  # pylint: disable=import-outside-toplevel

  run, _ = train_steps.build_step(model_configs.architecture("tiny"), batch=batch,
                                  size=size, noise="white")
  start = time.perf_counter()
  run(10)
  wall = (time.perf_counter() - start) / 10
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      run(steps)
    paths = [os.path.join(d, f) for d, _, fs in os.walk(tmp) for f in fs
             if f.endswith(".trace.json.gz")]
    if not paths:
      raise SystemExit(f"no Perfetto trace under {tmp}: this jax wrote none.")
    with gzip.open(paths[0]) as f:
      events = json.load(f)
  events = events["traceEvents"] if isinstance(events, dict) else events
  kinds: collections.Counter = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and not e["name"].startswith(_SKIP):
      kinds[re.sub(r"[.\d]+$", "", e["name"])] += e.get("dur", 0) / 1e3 / steps
  return {"devices": jax.device_count(), "batch": batch, "size": size,
          "wall_ms_per_step": wall * 1e3, "ms_per_step_by_kind": dict(kinds.most_common())}


def convs_section(repeats: int = 15) -> dict:
  """Microseconds per image of fwd / d input / d kernel, by batch, one device."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import harness  # pylint: disable=import-outside-toplevel

  def conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  rows = []
  for side, cin, cout in ((32, 16, 16), (32, 48, 16), (16, 32, 32)):
    for batch in (16, 32, 64, 128):
      x = jax.random.normal(jax.random.key(0), (batch, side, side, cin))
      k = 0.1 * jax.random.normal(jax.random.key(1), (3, 3, cin, cout))
      g = jax.random.normal(jax.random.key(2), (batch, side, side, cout))
      fwd = jax.jit(conv)
      dx = jax.jit(lambda x, k, g: jax.vjp(lambda x: conv(x, k), x)[1](g)[0])
      dk = jax.jit(lambda x, k, g: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])
      res = harness.seconds(harness.alternate(
          {"fwd": lambda: fwd(x, k), "d_input": lambda: dx(x, k, g),
           "d_kernel": lambda: dk(x, k, g)}, repeats, block=jax.block_until_ready))
      rows.append({"side": side, "cin": cin, "cout": cout, "batch": batch,
                   **{f"{n}_us_per_image": s / batch * 1e6 for n, s in res.items()}})
  # The kernel gradient inside a loop body against the same 8 calls unrolled.
  x = jax.random.normal(jax.random.key(0), (32, 32, 32, 16))
  k = 0.1 * jax.random.normal(jax.random.key(1), (3, 3, 16, 16))
  g = jax.random.normal(jax.random.key(2), (32, 32, 32, 16))

  def dk_of(x, g):
    return jax.vjp(lambda k: conv(x, k), k)[1](g)[0]

  unrolled = jax.jit(lambda x, g: sum(dk_of(x + i, g) for i in range(8)))
  looped = jax.jit(lambda x, g: jax.lax.fori_loop(
      0, 8, lambda i, acc: acc + dk_of(x + i, g), jnp.zeros_like(k)))
  loop = harness.seconds(harness.alternate(
      {"unrolled": lambda: unrolled(x, g), "fori_loop": lambda: looped(x, g)}, 3,
      block=jax.block_until_ready))
  return {"rows": rows, "kernel_grad_x8_ms": {n: s * 1e3 for n, s in loop.items()}}


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--section", choices=("trace", "convs"), default="trace")
  p.add_argument("--devices", type=int, default=2, help="emulated host devices (trace)")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--size", type=int, default=16)
  p.add_argument("--output", default=None, help="write the numbers as JSON here")
  args = p.parse_args(argv)
  devices = args.devices if args.section == "trace" else 1
  os.environ["XLA_FLAGS"] = (f"--xla_force_host_platform_device_count={devices} "
                             + os.environ.get("XLA_FLAGS", "")).strip()
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  sys.path.insert(0, ROOT)
  import harness  # pylint: disable=import-outside-toplevel

  if args.section == "trace":
    out = trace_section(args.batch, args.size)
    print(f"## Train step by op kind: tiny UNet, batch {args.batch}, {args.size}x{args.size},"
          f" {out['devices']} device(s); wall {out['wall_ms_per_step']:.1f} ms/step\n")
    print("| op kind | ms per step (all devices) |\n|---|---|")
    for name, ms in list(out["ms_per_step_by_kind"].items())[:20]:
      print(f"| {name} | {ms:.2f} |")
  else:
    out = convs_section()
    print("## One 3x3 conv, microseconds per image, one device\n")
    print("| HxW | channels | batch | forward | d input | d kernel |\n|---|---|---|---|---|---|")
    for r in out["rows"]:
      print(f"| {r['side']}x{r['side']} | {r['cin']}->{r['cout']} | {r['batch']} |"
            f" {r['fwd_us_per_image']:.1f} | {r['d_input_us_per_image']:.1f} |"
            f" {r['d_kernel_us_per_image']:.1f} |")
    loop = out["kernel_grad_x8_ms"]
    print(f"\nKernel gradient x8 (32x32, 16->16, batch 32): unrolled {loop['unrolled']:.1f} ms,"
          f" inside fori_loop {loop['fori_loop']:.1f} ms")
  out["machine"] = harness.machine()
  if args.output:
    os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
    with open(args.output, "w") as f:
      json.dump(out, f, indent=1)


if __name__ == "__main__":
  main()

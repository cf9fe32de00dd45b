"""benchmarks/bench_sampling.py: its unrolled-threefry candidates draw the same samples.

The lowering is registered process-wide, so every check runs in a child process.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"

_SAME_BITS = r"""
import sys
sys.path[:0] = [{root!r}, {bench!r}]
import jax, jax.numpy as jnp, numpy as np
import bench_sampling
from fans_jax import noise

def draws(key):
  k1, k2 = jax.random.split(jax.random.fold_in(key, 7))
  return (jax.random.normal(k1, (3, 16, 16, 3)), jax.random.randint(k2, (64,), 0, 1000),
          noise.fourier_white_noise(k2, (2, 16, 16, 3)))

key = jax.random.key(0)
rolled = jax.jit(draws)
before = [np.asarray(a) for a in rolled(key)]
assert " while(" in rolled.lower(key).compile().as_text()
bench_sampling.use_unrolled_threefry()
unrolled = jax.jit(lambda k: draws(k))  # a new function: lowered with the new rule
assert " while(" not in unrolled.lower(key).compile().as_text()
after = [np.asarray(a) for a in unrolled(key)]
assert all(np.array_equal(a, b) for a, b in zip(before, after))
print("same bits")
"""


def _child_env():
  return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}


def test_unrolled_threefry_draws_the_same_bits_without_a_loop():
  code = _SAME_BITS.format(root=str(ROOT), bench=str(BENCH))
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=_child_env(), timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().endswith("same bits")


def test_unrolled_candidate_samples_what_the_rolled_one_does(tmp_path):
  out = tmp_path / "record.json"
  names = ["ddpm FANS clip", "ddpm FANS clip (unrolled threefry)"]
  proc = subprocess.run(
      [sys.executable, str(BENCH / "bench_sampling.py"), "--steps=4", "--batch=2",
       "--rounds=1", f"--candidates={','.join(names)}", f"--output={out}"],
      capture_output=True, text=True, env=_child_env(), timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  summary = json.loads(out.read_text())["summary"]
  sums = [summary[n]["checksum"]["median"] for n in names]
  assert sums[0] > 0 and sums[0] == sums[1]
  assert all(summary[n]["seconds"]["median"] > 0 for n in names)


def test_unknown_candidate_is_refused():
  proc = subprocess.run([sys.executable, str(BENCH / "bench_sampling.py"),
                         "--candidates=ddpm pink"], capture_output=True, text=True,
                        env=_child_env(), timeout=120, check=False)
  assert proc.returncode != 0
  assert "unknown candidates" in proc.stderr + proc.stdout


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-q"]))

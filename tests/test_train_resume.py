"""Training in subprocesses: exact resumption after SIGKILL and SIGTERM, and two
processes with jax.distributed on CPU.

Every run trains the same tiny config (16x16 PLTB, FANS noise, batch 8) with
``launch/train.py`` or a small driver; compiled programs come from the persistent
compilation cache of conftest.py, so each subprocess starts in a few seconds.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from fans_jax import checkpointing

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # ~2-3 min: 8 training subprocesses
STEPS, EVERY = 20, 5
OVERRIDES = {
    "data.image_size": 16, "data.num_examples": 256, "noise.spectrum_images": 256,
    "optim.warmup_steps": 5, "optim.decay": "constant", "optim.learning_rate": 1e-3,
    "train.batch_size": 8, "train.num_train_steps": STEPS,
    "train.checkpoint_every_steps": EVERY, "train.log_every_steps": 10,
    "train.keep_checkpoints": 10, "sample.every_steps": 0,
}


def env(devices: int) -> dict:
  out = dict(os.environ)
  out["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  out["JAX_PLATFORMS"] = "cpu"
  return out


def jit_cache() -> str:
  return str(jax.config.jax_compilation_cache_dir or "")


def launch(workdir, devices: int = 2) -> subprocess.Popen:
  cmd = [sys.executable, str(ROOT / "launch" / "train.py"),
         "--config=" + str(ROOT / "configs" / "pltb_fans.py") + ":tiny",
         f"--workdir={workdir}", f"--jit_cache={jit_cache()}"]
  cmd += [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  return subprocess.Popen(cmd, env=env(devices), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
  out, _ = proc.communicate(timeout=timeout)
  assert proc.returncode == 0, out[-4000:]
  return out


def wait_for_checkpoint(proc, workdir, step: int, timeout: float = 300) -> None:
  """Polls until ``checkpoints/<step>`` is committed (Orbax renames it atomically)."""
  path = pathlib.Path(workdir) / "checkpoints" / str(step)
  start = time.time()
  while not path.exists():
    assert proc.poll() is None, f"training exited early:\n{proc.communicate()[0][-3000:]}"
    assert time.time() - start < timeout
    time.sleep(0.01)


def final_arrays(workdir, step: int = STEPS) -> list[np.ndarray]:
  """Every array of checkpoint ``step`` (params, opt state, RNG key, step, EMA)."""
  ckpt = checkpointing.Checkpointer(pathlib.Path(workdir) / "checkpoints", read_only=True)
  try:
    assert ckpt.read_json(step, "meta")["step"] == step
    items = [ckpt.read_arrays(step, "state"), ckpt.read_arrays(step, "ema")]
    return [np.asarray(x) for x in jax.tree.leaves(items)]
  finally:
    ckpt.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of STEPS steps."""
  workdir = tmp_path_factory.mktemp("resume") / "reference"
  finish(launch(workdir))
  return final_arrays(workdir)


def assert_bitwise_equal(arrays, reference):
  assert len(arrays) == len(reference)
  for a, b in zip(arrays, reference):
    np.testing.assert_array_equal(a, b)


def test_resume_after_sigkill_is_bitwise_exact(reference, tmp_path):
  workdir = tmp_path / "killed"
  proc = launch(workdir)
  wait_for_checkpoint(proc, workdir, EVERY)
  proc.send_signal(signal.SIGKILL)  # no chance to save anything
  proc.communicate()
  steps = sorted(int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit())
  assert EVERY in steps and max(steps) < STEPS, steps  # killed between checkpoints
  out = finish(launch(workdir))
  assert f"resumed from checkpoint step {max(steps)}" in out
  assert_bitwise_equal(final_arrays(workdir), reference)


def test_sigterm_saves_exits_cleanly_and_resume_is_exact(reference, tmp_path):
  workdir = tmp_path / "terminated"
  proc = launch(workdir)
  wait_for_checkpoint(proc, workdir, EVERY)
  proc.send_signal(signal.SIGTERM)
  out = finish(proc)  # exit status 0
  stopped = [int(s) for s in os.listdir(workdir / "checkpoints") if s.isdigit()]
  assert "stopped at step" in out and max(stopped) < STEPS, out[-2000:]
  out = finish(launch(workdir))
  assert f"resumed from checkpoint step {max(stopped)}" in out
  assert_bitwise_equal(final_arrays(workdir), reference)


DRIVER = r"""
import json, sys
args = json.loads(sys.argv[1])
import jax
if args["num_processes"] > 1:
  jax.distributed.initialize(coordinator_address=args["address"],
                             num_processes=args["num_processes"], process_id=args["id"])
jax.config.update("jax_compilation_cache_dir", args["cache"])
sys.path.insert(0, args["root"])
import numpy as np
from configs import pltb_fans
from fans_jax import train
config = pltb_fans.get_config("tiny")
for key, value in args["overrides"].items():
  section, name = key.split(".")
  config[section][name] = value
state = train.train_and_evaluate(config, args["workdir"])
leaves = [np.asarray(x.addressable_data(0)) for x in jax.tree.leaves(state.params)]
np.savez(args["out"], *leaves)
print("process", jax.process_index(), "of", jax.process_count(), "devices", jax.device_count())
"""


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def run_driver(workdir, out, num_processes, process_id, devices, address=""):
  args = dict(num_processes=num_processes, id=process_id, address=address, cache=jit_cache(),
              root=str(ROOT), workdir=str(workdir), out=str(out),
              overrides=dict(OVERRIDES, **{"train.num_train_steps": 6,
                                           "train.checkpoint_every_steps": 3}))
  return subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(args)], env=env(devices),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def load_leaves(path):
  with np.load(path) as f:
    return [f[f"arr_{i}"] for i in range(len(f.files))]


def test_two_processes_match_one_process(tmp_path):
  """jax.distributed with 2 CPU processes x 1 device, each feeding its half of every
  global batch, against 1 process x 2 devices on the same global batches."""
  address = f"localhost:{free_port()}"
  procs = [run_driver(tmp_path / "multi", tmp_path / f"p{i}.npz", 2, i, 1, address)
           for i in range(2)]
  outs = [finish(p) for p in procs]
  assert "process 0 of 2 devices 2" in outs[0] and "process 1 of 2 devices 2" in outs[1]
  single = finish(run_driver(tmp_path / "single", tmp_path / "single.npz", 1, 0, 2))
  assert "process 0 of 1 devices 2" in single
  p0, p1 = load_leaves(tmp_path / "p0.npz"), load_leaves(tmp_path / "p1.npz")
  ref = load_leaves(tmp_path / "single.npz")
  assert_bitwise_equal(p1, p0)  # the replicated state is the same on both processes
  # One process x 2 devices runs the same per-device programs on the same rows, and
  # an all-reduce of two partial sums is exact whatever the order (a + b = b + a);
  # only the collective's implementation differs (gloo vs in-process), so equality
  # is expected to be exact, and anything beyond float rounding is a bug.
  moved = max(float(np.max(np.abs(a))) for a in ref)
  for a, b in zip(p0, ref):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6 * moved)
  # Both wrote one checkpoint directory together, readable as usual.
  assert sorted(os.listdir(tmp_path / "multi" / "checkpoints")) == ["3", "6"]


def test_misspelt_override_fails_before_training(tmp_path):
  proc = subprocess.run(
      [sys.executable, str(ROOT / "launch" / "train.py"),
       "--config=" + str(ROOT / "configs" / "pltb_fans.py") + ":tiny",
       f"--workdir={tmp_path / 'run'}", "--config.model.chanels=8"],
      env=env(1), capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0
  assert "chanels" in proc.stderr
  assert not (tmp_path / "run").exists()


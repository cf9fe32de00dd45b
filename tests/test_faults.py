"""Faults and bad input: kills and SIGTERM at the worst moments, a read-only
checkpoint directory, a full disk, two trainings on one workdir, damaged or foreign
workdir files, bad config values and degenerate data.

Every test names the promise it checks: a resume ends bitwise equal to an uninterrupted
run, nothing saved before is lost, a failed start writes nothing, the exit status, one
clear message. Subprocesses run ``launch/train.py`` on configs/pltb_fans.py:tiny shrunk
to 8x8 images, a 10k-parameter UNet and 6 steps (one CPU device; compiled programs come
from the test compilation cache of conftest.py); the rest runs in this process.
"""

import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

import fans_jax.data as data
from configs import pltb_fans
from fans_jax import checkpointing, train
from fans_jax.data import analysis
from fans_jax import experiment
from fans_jax.utils import lock as lock_lib

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # ~2 min on 2 cores: 7 training subprocesses, 2 short CLI runs
STEPS, EVERY = 6, 2
OVERRIDES = {
    "data.image_size": 8, "data.num_examples": 64, "noise.spectrum_images": 64,
    "model.channels": 8, "model.channel_mult": (1,), "model.attention_resolutions": (),
    "model.num_groups": 4, "optim.warmup_steps": 2, "optim.decay": "constant",
    "optim.learning_rate": 1e-3, "train.batch_size": 4, "train.num_train_steps": STEPS,
    "train.checkpoint_every_steps": EVERY, "train.log_every_steps": EVERY,
    "train.keep_checkpoints": 10, "sample.every_steps": 0,
}


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------


def make_config(**changes) -> ml_collections.ConfigDict:
  """The subprocesses' config, in this process (``changes``: dotted path -> value)."""
  config = pltb_fans.get_config("tiny")
  for key, value in dict(OVERRIDES, **changes).items():
    *parents, name = key.split(".")
    node = config
    for p in parents:
      node = node[p]
    node[name] = value
  return config


def _flag(value) -> str:
  return "(" + ",".join(map(str, value)) + ("," if len(value) == 1 else "") + ")" if isinstance(
      value, tuple) else str(value)


def launch(workdir, **changes) -> subprocess.Popen:
  cmd = [sys.executable, str(ROOT / "launch" / "train.py"),
         f"--config={ROOT / 'configs' / 'pltb_fans.py'}:tiny", f"--workdir={workdir}",
         f"--jit_cache={jax.config.jax_compilation_cache_dir or ''}"]
  cmd += [f"--config.{k}={_flag(v)}" for k, v in dict(OVERRIDES, **changes).items()]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             JAX_PLATFORMS="cpu")
  return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def finish(proc: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
  """Exit status and output; a run that does not exit in ``timeout`` s is a hang."""
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, _ = proc.communicate()
    pytest.fail(f"the process hung (no exit within {timeout} s):\n{out[-3000:]}")
  return proc.returncode, out


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 240,
               poll: float = 0.002) -> None:
  start = time.time()
  while not condition():
    if proc.poll() is not None:
      pytest.fail(f"training exited (rc {proc.returncode}) before {what}:\n"
                  f"{proc.communicate()[0][-3000:]}")
    assert time.time() - start < timeout, f"no {what} within {timeout} s"
    time.sleep(poll)


def catches_sigterm(pid: int) -> bool:
  """Whether process ``pid`` has installed a SIGTERM handler (Linux: SigCgt)."""
  try:
    with open(f"/proc/{pid}/status") as f:
      caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt:"))
  except (OSError, StopIteration):
    return False
  return bool(caught & (1 << (signal.SIGTERM - 1)))


def locked(workdir) -> bool:
  """The workdir's lock is taken and its holder recorded."""
  try:
    return "pid" in json.loads((pathlib.Path(workdir) / lock_lib.LOCK_FILE).read_text())
  except (OSError, ValueError):
    return False


def committed(workdir) -> list[int]:
  directory = pathlib.Path(workdir) / "checkpoints"
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def saving(workdir, step: str = "*") -> bool:
  """A save in flight: Orbax writes a step to ``<step>.orbax-checkpoint-tmp*`` first."""
  directory = pathlib.Path(workdir) / "checkpoints"
  return directory.is_dir() and any(directory.glob(f"{step}.orbax-checkpoint-tmp*"))


def arrays(workdir, step: int) -> list[np.ndarray]:
  """Every array of checkpoint ``step`` (params, Adam state, RNG key, step, EMA), read
  and verified against its checksums."""
  ckpt = checkpointing.Checkpointer(pathlib.Path(workdir) / "checkpoints", read_only=True)
  try:
    assert ckpt.read_json(step, "meta")["step"] == step
    items = [ckpt.read_arrays(step, "state"), ckpt.read_arrays(step, "ema")]
    return [np.asarray(x) for x in jax.tree.leaves(items)]
  finally:
    ckpt.close()


def assert_bitwise_equal(got, want) -> None:
  assert len(got) == len(want)
  for a, b in zip(got, want):
    np.testing.assert_array_equal(a, b)


def snapshot(directory) -> dict[str, str]:
  """Every file under ``directory`` with the SHA-256 of its bytes ({} if absent)."""
  root = pathlib.Path(directory)
  if not root.exists():
    return {}
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob("*")) if p.is_file()}


def copy_run(reference, tmp_path, name="run") -> pathlib.Path:
  workdir = tmp_path / name
  shutil.copytree(reference.workdir, workdir)
  return workdir


class Reference:
  def __init__(self, workdir, final, out, second_start):
    self.workdir, self.final, self.out, self.second_start = workdir, final, out, second_start


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """An uninterrupted run of STEPS steps. While it trains, a second training is
  started on the same workdir in this process (recorded for the lock test)."""
  workdir = tmp_path_factory.mktemp("faults") / "reference"
  proc = launch(workdir)
  wait_until(lambda: locked(workdir), proc, "the workdir lock")
  second = None
  try:
    train.train_and_evaluate(make_config(), workdir)
  except lock_lib.WorkdirBusyError as e:
    second = str(e)
  rc, out = finish(proc)
  assert rc == 0, out[-3000:]
  return Reference(workdir, arrays(workdir, STEPS), out, (second, proc.pid))


# ----------------------------------------------------------------------------------
# Two trainings at once; the lock
# ----------------------------------------------------------------------------------


def test_second_training_on_a_busy_workdir_is_refused_and_the_first_loses_nothing(
    reference):
  """Promise: a second training on a workdir in use stops at once with one message
  naming the process that holds it; the first runs to the end (exit 0) with every
  checkpoint, and leaves no lock behind."""
  message, pid = reference.second_start
  assert message is not None, "the second training was not refused"
  assert f"pid {pid}" in message and "in use by another training" in message
  assert committed(reference.workdir) == [2, 4, 6]
  assert not (reference.workdir / lock_lib.LOCK_FILE).exists()
  meta = json.loads(json.dumps(_meta(reference.workdir, STEPS)))
  assert meta["num_train_steps"] == STEPS  # what a changed run length is compared with


def _meta(workdir, step):
  ckpt = checkpointing.Checkpointer(pathlib.Path(workdir) / "checkpoints", read_only=True)
  try:
    return ckpt.read_json(step, "meta")
  finally:
    ckpt.close()


HOLDER = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import lock
held = lock.WorkdirLock(sys.argv[2])
held.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_stale_locks_of_dead_processes_never_block(tmp_path):
  """Promise: a lock held by a live process refuses (naming its pid); the same lock
  after that process is SIGKILLed, and a lock file left by a process that no longer
  exists (or a garbage one), are taken over."""
  workdir = tmp_path / "w"
  holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ROOT / "fans_jax" / "utils"),
                             str(workdir)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(lock_lib.WorkdirBusyError, match=f"pid {holder.pid} on host"):
      lock_lib.WorkdirLock(workdir).acquire()
    with pytest.raises(lock_lib.WorkdirBusyError):
      lock_lib.WorkdirLock(workdir).check_free()
  finally:
    holder.kill()
    holder.wait()
  assert (workdir / lock_lib.LOCK_FILE).exists()  # SIGKILL: no chance to remove it
  assert lock_lib.process_alive(json.loads((workdir / lock_lib.LOCK_FILE).read_text())) is False
  for content in (None, "{not json"):  # the killed holder's record, then garbage
    if content is not None:
      (workdir / lock_lib.LOCK_FILE).write_text(content)
    taken = lock_lib.WorkdirLock(workdir)
    taken.acquire()
    assert json.loads((workdir / lock_lib.LOCK_FILE).read_text())["pid"] == os.getpid()
    taken.release()
    assert not (workdir / lock_lib.LOCK_FILE).exists()


# ----------------------------------------------------------------------------------
# Kills and SIGTERM
# ----------------------------------------------------------------------------------


def test_kill_during_a_save_then_sigterm_during_the_final_save(reference, tmp_path):
  """Promises: SIGKILL while a checkpoint is being written loses only that save (the
  resume is bitwise equal to the uninterrupted run); SIGTERM during the final save
  lets it finish: exit 0, the last checkpoint complete and bitwise equal."""
  workdir = tmp_path / "killed"
  proc = launch(workdir)
  wait_until(lambda: saving(workdir), proc, "a save in flight")
  proc.send_signal(signal.SIGKILL)
  proc.communicate()
  assert max(committed(workdir), default=0) < STEPS
  proc = launch(workdir)
  wait_until(lambda: saving(workdir, str(STEPS)), proc, "the final save")
  proc.send_signal(signal.SIGTERM)
  rc, out = finish(proc)
  assert rc == 0, out[-3000:]
  assert "SIGTERM received" in out  # it arrived while the process still ran
  assert STEPS in committed(workdir) and not saving(workdir)
  assert_bitwise_equal(arrays(workdir, STEPS), reference.final)


def test_sigterm_during_start_up_exits_cleanly_and_keeps_the_workdir(reference, tmp_path):
  """Promises: SIGTERM during the imports exits 0 having written nothing; SIGTERM
  once the start holds the workdir (lock taken, checkpoint being restored) exits 0,
  releases the lock and leaves every checkpoint as it was."""
  fresh = tmp_path / "fresh"
  proc = launch(fresh)
  # The launcher's first lines install its handler; the imports (seconds) follow.
  wait_until(lambda: catches_sigterm(proc.pid), proc, "the launcher's SIGTERM handler")
  proc.send_signal(signal.SIGTERM)
  rc, out = finish(proc)
  assert rc == 0 and "SIGTERM before training started" in out, out[-3000:]
  assert not fresh.exists()

  workdir = copy_run(reference, tmp_path)
  before = {k: v for k, v in snapshot(workdir / "checkpoints").items()}
  proc = launch(workdir)
  wait_until(lambda: locked(workdir), proc, "the workdir lock")
  proc.send_signal(signal.SIGTERM)
  rc, out = finish(proc)
  assert rc == 0, out[-3000:]
  assert "SIGTERM during start-up" in out and "Traceback" not in out, out[-3000:]
  assert not (workdir / lock_lib.LOCK_FILE).exists()
  assert snapshot(workdir / "checkpoints") == before
  json.loads((workdir / "config.json").read_text())  # whole, never half-written


# ----------------------------------------------------------------------------------
# Checkpoints that cannot be written
# ----------------------------------------------------------------------------------


def _chattr(flag: str, path) -> bool:
  try:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0
  except FileNotFoundError:
    return False


def test_read_only_checkpoint_directory_fails_once_without_hanging(reference, tmp_path):
  """Promise: a checkpoint directory that cannot be written (immutable: root ignores
  file modes) ends the run with exit status 1 and one message naming the directory
  and the checkpoint that is intact, within seconds (Orbax's save threads used to
  keep the process alive); every earlier checkpoint is intact."""
  workdir = copy_run(reference, tmp_path)
  if not _chattr("+i", workdir / "checkpoints"):
    pytest.skip("chattr +i is not available here (needs root and a file system with"
                " attributes)")
  try:
    rc, out = finish(launch(workdir, **{"train.num_train_steps": STEPS + 2}), timeout=180)
  finally:
    _chattr("-i", workdir / "checkpoints")
  assert rc == 1, out[-3000:]
  message = f"could not save checkpoint step {STEPS + 2} in {workdir / 'checkpoints'}"
  assert out.count(message) == 1, out[-3000:]
  assert "is not writable" in out and f"step {STEPS}" in out.split(message)[1]
  assert "Traceback" not in out
  assert committed(workdir) == [2, 4, 6]
  assert_bitwise_equal(arrays(workdir, STEPS), reference.final)


@pytest.fixture
def small_disk(tmp_path):
  """A 2 MiB tmpfs (root only); resized by the test."""
  mount = tmp_path / "disk"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(mount)],
                    capture_output=True).returncode:
    pytest.skip("cannot mount a tmpfs here (needs root)")
  try:
    yield mount
  finally:
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# Orbax's save threads, failing on the full disk, post to an event loop that is closed
# by then: a warning from inside Orbax, not a failure of what is checked here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_full_disk_fails_with_one_message_and_keeps_the_checkpoints(reference, small_disk):
  """Promise: a save on a full disk raises one CheckpointSaveError naming the
  directory, the cause and the intact checkpoint; the earlier checkpoints stay
  readable and bitwise equal, and the failed attempt's partial files are removed
  (freeing the space). In this process, to save a start: the exit of a process after
  a failed save is checked with the read-only directory above."""
  workdir = small_disk / "run"
  shutil.copytree(reference.workdir, workdir)
  used = shutil.disk_usage(small_disk).used
  step_bytes = sum(p.stat().st_size for p in (workdir / "checkpoints" / str(STEPS)).rglob("*")
                   if p.is_file())
  subprocess.run(["mount", "-o", f"remount,size={used + step_bytes // 2}", str(small_disk)],
                 check=True)
  with pytest.raises(checkpointing.CheckpointSaveError) as error:
    train.train_and_evaluate(make_config(**{"train.num_train_steps": STEPS + 2}), workdir)
  message = str(error.value)
  assert f"could not save checkpoint step {STEPS + 2} in {workdir / 'checkpoints'}" in message
  assert "no space left on the device" in message
  assert f"step {STEPS} (of steps [2, 4, 6]), is intact" in message
  assert committed(workdir) == [2, 4, 6] and not saving(workdir)
  assert_bitwise_equal(arrays(workdir, STEPS), reference.final)


# ----------------------------------------------------------------------------------
# A failed start writes nothing; damaged and foreign workdir files
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("changes,match", [
    ({"optim.learning_rate": -1e-3}, r"config\.optim\.learning_rate=-0\.001 must be > 0"),
    ({"optim.end_lr_factor": 3000.0}, r"config\.optim\.end_lr_factor=3000\.0 must be in \[0, 1\]"),
    ({"data.image_size": 7, "model.channel_mult": (1, 2)},
     r"config\.data\.image_size=7.*multiples of 2"),
    ({"data.image_size": 7}, r"config\.data\.image_size=7 is too small"),
    ({"train.batch_size": 128}, r"config\.train\.batch_size=128 is larger than the 64 images"),
    ({"noise.options.gamma_T": 3.0, "noise.options.gamma_0": 0.0, "data.alpha": 3.0,
      "noise.options.path": "sigmoid", "noise.options.max_ratio": None},
     "breaks the forward chain"),
    ({"noise.options.gamma_T": 3.0, "noise.options.gamma_0": 0.0, "data.alpha": 3.0,
      "noise.options.path": "sigmoid", "noise.options.max_ratio": None, "noise.ddim_only": True,
      "sample.every_steps": 2}, r"config\.sample\.eta=1\.0 cannot be used"),
])
def test_a_failed_start_writes_nothing(tmp_path, changes, match):
  """Promise: a config error (any section, or the schedule and the samplers) is one
  ValueError naming the field, raised before anything is written: the workdir does
  not even exist afterwards."""
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(make_config(**changes), workdir)
  assert not workdir.exists()


def test_a_rerun_with_the_fix_proceeds(tmp_path):
  """Promise: after a start that failed on its schedule, the fixed config trains in the
  same workdir (the failed start left no config.json to refuse it with)."""
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="breaks the forward chain"):
    train.train_and_evaluate(make_config(**{
        "noise.options.gamma_T": 3.0, "noise.options.gamma_0": 0.0, "data.alpha": 3.0,
        "noise.options.path": "sigmoid", "noise.options.max_ratio": None}), workdir)
  state = train.train_and_evaluate(make_config(**{
      "data.alpha": 3.0, "train.num_train_steps": 2}), workdir)
  assert int(state.step) == 2 and committed(workdir) == [2]


@pytest.mark.parametrize("changes,match", [
    ({"sample.eta": 2.0}, r"config\.sample\.eta=2\.0 must be in \[0, 1\]"),
    ({"eval.sampler": "euler"}, r"config\.eval\.sampler='euler' is not one of"),
    ({"train.log_every_steps": 0}, r"config\.train\.log_every_steps=0 must be >= 1"),
    ({"data.alpha": 2.0}, r"holds a run of another config .*data\.alpha: 1\.0 != 2\.0"),
])
def test_a_failed_start_leaves_a_run_as_it_was(reference, tmp_path, changes, match):
  """Promise: on a workdir holding a run, a failed start changes no byte of it."""
  workdir = copy_run(reference, tmp_path)
  before = snapshot(workdir)
  with pytest.raises(ValueError, match=match):
    train.train_and_evaluate(make_config(**changes), workdir)
  assert snapshot(workdir) == before


def _only_spectrum(reference, tmp_path, transform=None) -> pathlib.Path:
  """A workdir holding only the reference's data_spectrum.json (optionally changed)."""
  workdir = tmp_path / "spectrum_only"
  workdir.mkdir()
  raw = json.loads((reference.workdir / experiment.SPECTRUM_FILE).read_text())
  (workdir / experiment.SPECTRUM_FILE).write_text(json.dumps(transform(raw) if transform
                                                             else raw))
  return workdir


@pytest.mark.parametrize("kind", ["config_garbage", "config_list", "spectrum_garbage",
                                  "spectrum_foreign", "spectrum_other_data",
                                  "spectrum_without_provenance"])
def test_damaged_or_foreign_workdir_files_are_refused_by_name(reference, tmp_path, kind):
  """Promise: a workdir file that cannot be read, or was computed from other data, is
  refused with one ValueError naming the file (and the differences); nothing changes."""
  changes = {}
  if kind.startswith("config"):
    workdir = copy_run(reference, tmp_path)
    path = workdir / "config.json"
    path.write_text("{garbage" if kind == "config_garbage" else "[1, 2]")
    match = "config.json is not (valid JSON|a config written by fans_jax)"
  elif kind == "spectrum_other_data":
    workdir = _only_spectrum(reference, tmp_path)
    path, changes = workdir / experiment.SPECTRUM_FILE, {"data.alpha": 2.0}
    match = r"data_spectrum\.json was computed from other data .*data\.alpha: 1\.0 != 2\.0"
  elif kind == "spectrum_without_provenance":
    workdir = _only_spectrum(reference, tmp_path,
                             lambda raw: {k: v for k, v in raw.items() if k != "computed_from"})
    path, match = workdir / experiment.SPECTRUM_FILE, "does not record what it was computed"
  else:
    workdir = copy_run(reference, tmp_path)
    path = workdir / experiment.SPECTRUM_FILE
    path.write_text("[1, 2" if kind == "spectrum_garbage" else '{"psd": [1]}')
    match = "data_spectrum.json is not (valid JSON|a dataset spectrum written by fans_jax)"
  before = snapshot(workdir)
  with pytest.raises(ValueError, match=match) as error:
    train.train_and_evaluate(make_config(**changes), workdir)
  assert str(path) in str(error.value)
  assert snapshot(workdir) == before


# ----------------------------------------------------------------------------------
# Messages and warnings for bad input
# ----------------------------------------------------------------------------------


def test_misspelt_config_key_is_one_short_message(tmp_path):
  """Promise: a misspelt override ends in one line naming it (exit 1), not in three
  chained tracebacks."""
  proc = subprocess.run(
      [sys.executable, str(ROOT / "launch" / "train.py"),
       f"--config={ROOT / 'configs' / 'pltb_fans.py'}:tiny", f"--workdir={tmp_path / 'run'}",
       "--config.model.chanels=8"], capture_output=True, text=True, timeout=120,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 1
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert lines[-1] == ("launch/train.py: bad config override --config.model.chanels: 'chanels'"
                       ' Did you mean "channels" instead of "chanels"?'), proc.stderr
  assert "Traceback" not in proc.stderr
  assert not (tmp_path / "run").exists()


def test_check_schedules_names_a_bad_flag():
  proc = subprocess.run([sys.executable, str(ROOT / "launch" / "check_schedules.py"),
                         "--gammas=abc,1"], capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 1
  assert "flag --gammas=['abc', '1']: --gammas takes comma-separated numbers" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_no_cap_is_settable_from_the_command_line():
  """``max_ratio=None`` ("no cap", as documented) and numbers parse from flags."""
  for text, want in (("None", None), ("100", 100), ("2.5e3", 2500.0)):
    argv = ["train.py", f"--config={ROOT / 'configs' / 'pltb_fans.py'}:tiny",
            f"--config.noise.options.max_ratio={text}"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values, lock_config=True,
                                    sys_argv=argv)
    values(argv)
    assert values.config.noise.options.max_ratio == want
    assert train.parse_config(values.config).noise.options["max_ratio"] == want


def test_decay_re_bent_by_a_new_run_length_is_warned(caplog):
  """Raising num_train_steps on a cosine run re-bends the learning-rate schedule: the
  warning gives the jump at the resumed step."""
  cfg = train.parse_config(make_config(**{"optim.decay": "cosine", "optim.end_lr_factor": 0.1,
                                          "train.num_train_steps": 8}))
  existing = train._Existing(config=None, steps=[4], meta={"step": 4, "num_train_steps": 4})
  with caplog.at_level("WARNING"):
    train._warn_if_decay_changes(cfg, existing)
  old = float(train.learning_rate_fn(cfg.optim, 4)(4))
  new = float(train.learning_rate_fn(cfg.optim, 8)(4))
  assert new > 5 * old
  assert f"jumps from {old:.3g} to {new:.3g}" in caplog.text and "from 4 to 8" in caplog.text
  caplog.clear()
  constant = train.parse_config(make_config(**{"train.num_train_steps": 8}))
  train._warn_if_decay_changes(constant, existing)  # a constant rate does not re-bend
  assert "re-bends" not in caplog.text


def _npz_config(path, **changes):
  return make_config(**{"data.name": "npz", "data.path": str(path), "data.num_examples": 20,
                        "noise.spectrum_images": 20, **changes})


def test_degenerate_data_warns_and_writes_no_nan(tmp_path, caplog):
  """Constant images: training warns about degenerate data at start (no power outside
  DC); analyze_spectra's library writes null, never NaN, for the power law."""
  np.savez(tmp_path / "const.npz", images=np.full((20, 8, 8, 3), 77, np.uint8))
  with caplog.at_level("WARNING"):
    start = train._prepare(_npz_config(tmp_path / "const.npz"), experiment.as_path(
        tmp_path / "run"))
  assert start.spectrum is not None and not (tmp_path / "run").exists()
  assert "degenerate data" in caplog.text and "no power outside DC" in caplog.text
  assert "are constant" in caplog.text  # the image check, before the spectrum's
  cfg = data.with_overrides(name="npz", path=str(tmp_path / "const.npz"), image_size=8)
  report = analysis.analyze(cfg, output_dir=tmp_path / "spectra", cache_dir=tmp_path / "c",
                            figures=False)[0]
  assert report["alpha"] is None and report["r2"] is None and report["warning"]
  text = (tmp_path / "spectra" / "npz" / "spectra.json").read_text()
  assert "NaN" not in text and json.loads(text)["alpha"] is None
  assert "n/a" in analysis.markdown_table([report])


def test_boolean_arrays_are_refused_as_images(tmp_path):
  np.savez(tmp_path / "mask.npz", images=np.random.default_rng(0).random((20, 8, 8, 3)) > 0.5)
  with pytest.raises(ValueError, match="boolean arrays are not images"):
    data.get_source(data.with_overrides(name="npz", path=str(tmp_path / "mask.npz"),
                                        image_size=8))


def test_a_corrupt_image_is_reported_once_per_start(tmp_path, caplog):
  """The image folder is decoded once per start (it was three times: three warnings
  per corrupt file)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  folder = tmp_path / "images"
  folder.mkdir()
  rng = np.random.default_rng(0)
  for i in range(8):
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
  (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
  with caplog.at_level("WARNING"):
    train._prepare(make_config(**{"data.name": "folder", "data.path": str(folder),
                                  "data.num_examples": 8, "noise.spectrum_images": 8}),
                   experiment.as_path(tmp_path / "run"))
  assert caplog.text.count("skipping unreadable image") == 1

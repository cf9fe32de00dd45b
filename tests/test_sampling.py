"""End to end: train a tiny run, checkpoint, restore, sample; and what goes wrong.

One tiny run (6 steps of a 0.28M UNet on 16x16 PLTB, FANS noise, checkpoints at
steps 3 and 6, a sample grid at step 6) is trained once per module and copied for
the tests that damage it.
"""

import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import pltb_fans
from fans_jax import checkpointing, diffusion, sampling, schedules, spectra, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A failed Orbax read leaves a callback on Orbax's private event loop, which raises
# "Event loop is closed" when collected; it is harmless and not ours.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def small_config():
  config = pltb_fans.get_config("tiny")
  config.data.image_size = 16
  config.data.num_examples = 256
  config.noise.spectrum_images = 256
  config.optim.warmup_steps = 0
  config.optim.decay = "constant"
  config.optim.learning_rate = 1e-3
  config.train.batch_size = 8
  config.train.num_train_steps = 6
  config.train.checkpoint_every_steps = 3
  config.train.log_every_steps = 3
  config.sample.every_steps = 6
  config.sample.num_samples = 4
  config.sample.num_steps = 3
  return config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("runs") / "pltb_fans_tiny"
  state = train.train_and_evaluate(small_config(), workdir)
  return workdir, jax.device_get(state.params)


def copy_run(trained, tmp_path) -> pathlib.Path:
  workdir = tmp_path / "copy"
  shutil.copytree(trained[0], workdir)
  return workdir


def truncate_arrays(step_dir: pathlib.Path) -> list[pathlib.Path]:
  """Cuts every array data file of a checkpoint step to half its size."""
  cut = []
  for path in sorted(step_dir.rglob("*")):
    if path.is_file() and "/d/" in str(path) and path.stat().st_size > 16:
      with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)
      cut.append(path)
  assert cut
  return cut


def snapshot(directory: pathlib.Path) -> dict:
  return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
          for p in directory.rglob("*") if p.is_file()}


def restore_params(workdir, step):
  return jax.device_get(sampling.load_run(workdir, step=step).params)


# --------------------------------------------------------------------------------


def test_end_to_end_smoke(trained):
  workdir, final_params = trained
  assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]
  assert (workdir / "samples" / "step_00000006.png").stat().st_size > 100
  assert json.loads((workdir / "config.json").read_text())["noise"]["name"] == "annealed"
  assert (workdir / "data_spectrum.json").exists()
  events = list(workdir.glob("events.out.tfevents.*"))
  assert events
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  acc = event_accumulator.EventAccumulator(str(workdir)).Reload()
  tags = set(acc.Tags()["tensors"]) | set(acc.Tags()["scalars"])
  assert {"loss", "grad_norm", "learning_rate", "steps_per_sec"} <= tags

  run = sampling.load_run(workdir)
  assert run.step == 6 and run.objective == "eps" and run.image_shape == (16, 16, 3)
  assert run.schedule.name == "annealed"
  images = sampling.generate(run, 6, sampler="ddim", num_steps=3, progress=False)
  assert images.shape == (6, 16, 16, 3) and images.dtype == np.float32
  assert np.all(np.isfinite(images))
  ema_before = restore_params(workdir, 6)
  leaves = jax.tree.leaves(ema_before)
  assert any(np.any(x != y) for x, y in zip(leaves, jax.tree.leaves(final_params)))  # EMA


def test_samples_depend_on_seed_and_index_only(trained):
  run = sampling.load_run(trained[0])
  kw = dict(sampler="ddim", num_steps=3, progress=False)
  a = sampling.generate(run, 6, batch_size=4, seed=3, **kw)  # batches of 4 (+2 padded)
  b = sampling.generate(run, 6, batch_size=8, seed=3, **kw)  # one batch
  c = sampling.generate(run, 2, batch_size=4, seed=3, **kw)  # a prefix
  other = sampling.generate(run, 6, batch_size=8, seed=4, **kw)
  # Equal up to float rounding (XLA may pick other kernels for other batch shapes).
  np.testing.assert_allclose(a, b, atol=1e-4)
  np.testing.assert_allclose(c, a[:2], atol=1e-4)
  assert np.min(np.abs(other - a).mean(axis=(1, 2, 3))) > 1e-2


def test_ddpm_sampler_runs_sharded(trained):
  """Ancestral sampling on a 20-step copy of the schedule (the sampler's mechanics,
  sharded over 4 devices; 1000 steps would only cost time)."""
  run = sampling.load_run(trained[0])
  psd = spectra.power_law_grid(16, 16, 1.0)
  short = schedules.make_schedule("annealed", 20, "cosine", (16, 16, 3), data_psd=psd,
                                  max_ratio=1e3)
  import dataclasses  # pylint: disable=import-outside-toplevel
  images = sampling.generate(dataclasses.replace(run, schedule=short), 4, sampler="ddpm",
                             progress=False)
  assert images.shape == (4, 16, 16, 3) and np.all(np.isfinite(images))
  assert np.std(images) > 0.1


def test_unknown_sampler(trained):
  run = sampling.load_run(trained[0])
  with pytest.raises(ValueError, match="sampler='euler' is not one of"):
    sampling.generate(run, 4, sampler="euler")


def test_load_run_errors(trained, tmp_path):
  with pytest.raises(FileNotFoundError, match="not a training workdir"):
    sampling.load_run(tmp_path)
  with pytest.raises(FileNotFoundError, match=r"no checkpoint for step 5 .* \[3, 6\]"):
    sampling.load_run(trained[0], step=5)
  assert sampling.load_run(trained[0], step=3).step == 3


def test_launch_sample_writes_grid_and_npz(trained, tmp_path):
  out = tmp_path / "grid"
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  proc = subprocess.run(
      [sys.executable, str(ROOT / "launch" / "sample.py"), f"--workdir={trained[0]}",
       "--num_samples=4", "--num_steps=2", "--eta=1", "--seed=5", f"--output={out}"],
      env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert out.with_suffix(".png").stat().st_size > 100
  from fans_jax import sample_files  # pylint: disable=import-outside-toplevel
  saved = sample_files.read_samples(out.with_suffix(".npz"))
  assert saved.images.shape == (4, 16, 16, 3) and saved.images.dtype == np.uint8
  assert saved.info["step"] == 6 and saved.settings == sample_files.SamplerSettings(
      "ddim", num_steps=2, eta=1.0, clip_x0=True, seed=5)
  # Same seed, in-process, 4 devices instead of 2: the same images (up to one uint8
  # level where float rounding straddles a rounding boundary).
  ref = sampling.generate(sampling.load_run(trained[0]), 4, sampler="ddim", num_steps=2,
                          eta=1.0, seed=5, progress=False)
  from fans_jax.metrics import features  # pylint: disable=import-outside-toplevel
  diff = np.abs(saved.images.astype(int) - features.images_to_uint8(ref).astype(int))
  assert diff.max() <= 1 and np.mean(diff > 0) < 0.01


# --------------------------------------------------------------------------------
# Damaged and foreign workdirs
# --------------------------------------------------------------------------------


def test_corrupt_latest_checkpoint_falls_back(trained, tmp_path, caplog):
  workdir = copy_run(trained, tmp_path)
  truncate_arrays(workdir / "checkpoints" / "6")
  with caplog.at_level(logging.WARNING):
    run = sampling.load_run(workdir)
  assert run.step == 3
  assert any("checkpoint step 6" in r.getMessage() and "cannot be restored" in r.getMessage()
             for r in caplog.records)
  with pytest.raises(FileNotFoundError, match="step 6"):
    sampling.load_run(workdir, step=6)  # an explicit step never falls back


def test_silently_damaged_checkpoint_fails_its_checksum(trained, tmp_path, caplog):
  """A checkpoint whose files still decode but hold other values is caught too."""
  workdir = copy_run(trained, tmp_path)
  ckpt_dir = workdir / "checkpoints"
  integrity = ckpt_dir / "6" / checkpointing.INTEGRITY_ITEM / "metadata"
  sums = json.loads(integrity.read_text())
  sums["ema"][0][0] += 1.0  # as if one EMA array had changed
  integrity.write_text(json.dumps(sums))
  with caplog.at_level(logging.WARNING):
    assert sampling.load_run(workdir).step == 3
  assert any("fails its checksum" in r.getMessage() for r in caplog.records)


def test_resume_moves_corrupt_checkpoint_aside_and_is_exact(trained, tmp_path, caplog):
  workdir = copy_run(trained, tmp_path)
  truncate_arrays(workdir / "checkpoints" / "6")
  damaged = snapshot(workdir / "checkpoints" / "6")
  with caplog.at_level(logging.WARNING):
    state = train.train_and_evaluate(small_config(), workdir)
  messages = " ".join(r.getMessage() for r in caplog.records)
  assert "checkpoint step 6" in messages and "moved unreadable checkpoint" in messages
  # Kept, not deleted: the damaged step now lies in checkpoints_corrupt/6, byte for byte.
  assert snapshot(workdir / "checkpoints_corrupt" / "6") == damaged
  assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]
  # Steps 4-6 retrained from checkpoint 3 give bitwise the original step-6 weights.
  for a, b in zip(jax.tree.leaves(jax.device_get(state.params)),
                  jax.tree.leaves(trained[1])):
    np.testing.assert_array_equal(a, b)


def test_workdir_of_another_config_is_refused(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  before = snapshot(workdir)
  config = small_config()
  config.model.channels = 8
  with pytest.raises(ValueError, match=r"another config.*model\.channels: 16 != 8"):
    train.train_and_evaluate(config, workdir)
  (workdir / "config.json").unlink()  # only the checkpoints know the config now
  before.pop("config.json")
  with pytest.raises(ValueError, match=r"checkpoint step 6 .* another config.*channels"):
    train.train_and_evaluate(config, workdir)
  assert snapshot(workdir) == before  # nothing written, nothing removed


def test_every_checkpoint_unreadable_is_one_clear_error(trained, tmp_path):
  workdir = copy_run(trained, tmp_path)
  for step in ("3", "6"):
    truncate_arrays(workdir / "checkpoints" / step)
  with pytest.raises(FileNotFoundError, match="no readable checkpoint.*step 6.*step 3"):
    sampling.load_run(workdir)
  with pytest.raises(checkpointing.CheckpointError, match="no readable checkpoint"):
    train.train_and_evaluate(small_config(), workdir)
  assert sorted(os.listdir(workdir / "checkpoints")) == ["3", "6"]  # left as they were


def test_predict_returns_the_network_output_itself():
  """Core change (diffusion.predict_eps_and_x0): with a coloured schedule the
  network's own prediction is returned as is (no FFT round trip)."""
  psd = spectra.power_law_grid(8, 8, 2.0)
  sched = schedules.make_schedule("matched", 100, "linear", (8, 8, 3), data_psd=psd)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  out = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  t = jnp.array([3, 70])
  eps, _ = diffusion.predict_eps_and_x0(sched, x, t, out, "eps")
  _, x0 = diffusion.predict_eps_and_x0(sched, x, t, out, "x0")
  np.testing.assert_array_equal(eps, out)
  np.testing.assert_array_equal(x0, out)

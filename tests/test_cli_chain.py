"""The user's chain, as the README tells it: analyze_spectra -> train -> sample ->
evaluate, through the command lines and the files each one writes for the next."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(args, env, timeout=400):
  proc = subprocess.run([sys.executable] + [str(a) for a in args], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=timeout, check=False)
  assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
  return proc


def test_readme_chain(tmp_path, shared_data_dir):
  del shared_data_dir
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             FANS_CACHE_DIR=str(tmp_path / "cache"))
  spectra_dir, workdir, evaldir = tmp_path / "spectra", tmp_path / "run", tmp_path / "eval"
  _run(["launch/analyze_spectra.py", "--datasets=pltb", "--config.image_size=16",
        "--num_images=64", f"--output_dir={spectra_dir}"], env)
  report = json.loads((spectra_dir / "pltb" / "spectra.json").read_text())
  assert report  # the spectrum report a user reads before training
  _run(["launch/train.py", "--config=configs/pltb_fans.py:tiny", f"--workdir={workdir}",
        "--config.data.image_size=16", "--config.train.num_train_steps=4",
        "--config.train.batch_size=8", "--config.train.checkpoint_every_steps=4",
        "--config.train.log_every_steps=2", "--config.sample.every_steps=0",
        "--config.noise.num_timesteps=50", "--config.noise.spectrum_images=64",
        "--config.eval.num_steps=0", "--config.sample.num_steps=10"], env)
  _run(["launch/sample.py", f"--workdir={workdir}", "--num_samples=8", "--num_steps=5"], env)
  files = sorted((workdir / "samples").glob("*.npz"))
  assert [f.name for f in files] == ["ddim5_eta1_clip_seed0_step4.npz"]
  assert files[0].with_suffix(".png").stat().st_size > 100
  _run(["launch/evaluate.py", f"--workdir={workdir}", f"--samples={files[0]}",
        f"--output_dir={evaldir}", "--num_reference=64", "--metrics=spectral",
        "--nofigures"], env)
  rows = json.loads((evaldir / "metrics.json").read_text())
  assert len(rows) == 1
  row = rows[0]
  assert (row["sampler"], row["steps"], row["eta"], row["clip_x0"], row["seed"]) == (
      "ddim", 5, 1.0, True, 0)
  # the checkpoint step the sample file records (its name says step4)
  assert row["num_samples"] == 8 and row["dataset"] == "pltb" and row["step"] == 4
  assert np.isfinite(row["spectral"]["lsd"])

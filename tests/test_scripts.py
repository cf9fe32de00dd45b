"""Small checks of the report scripts in scripts/ on inputs whose answer is known."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import colour_stats  # noqa: E402  pylint: disable=wrong-import-position

from fans_jax import sample_files  # noqa: E402  pylint: disable=wrong-import-position


def test_colour_stats_on_known_images():
  rng = np.random.default_rng(0)
  level = rng.integers(0, 256, size=(64, 1, 1, 1))
  grey = np.broadcast_to(level, (64, 4, 4, 3)).astype(np.uint8)
  s = colour_stats.colour_stats(grey)
  assert s["mean_chroma"] == 0.0 and s["corr_rg"] == pytest.approx(1.0)
  opposite = grey.copy()
  opposite[..., 2] = 255 - opposite[..., 0]  # blue falls as red rises
  s = colour_stats.colour_stats(opposite)
  assert s["corr_rb"] == pytest.approx(-1.0) and s["corr_rg"] == pytest.approx(1.0)
  # one image of (255, 0, 0): its mean colour is 170 from grey (85) in R, 85 in G and B.
  red = np.zeros((2, 2, 2, 3), np.uint8)
  red[..., 0] = 255
  assert colour_stats.colour_stats(red)["mean_chroma"] == pytest.approx(
      np.sqrt(170.0**2 + 2 * 85.0**2))
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    colour_stats.colour_stats(np.zeros((2, 4, 4), np.uint8))


def test_colour_stats_command_reads_sample_files(tmp_path):
  rng = np.random.default_rng(1)
  data = rng.integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
  np.savez(tmp_path / "data.npz", images=data)
  run = tmp_path / "runs" / "d" / "white" / "seed0"
  run.mkdir(parents=True)
  sample_files.write_samples(run / "samples.npz", data[:8])
  out = tmp_path / "out" / "colour"
  subprocess.run([sys.executable, str(ROOT / "scripts" / "colour_stats.py"),
                  f"--reference={tmp_path / 'data.npz'}", f"--samples={run / 'samples.npz'}",
                  f"--output={out}"], check=True, cwd=ROOT, capture_output=True)
  rows = json.loads(out.with_suffix(".json").read_text())["rows"]
  assert rows["data"] == colour_stats.colour_stats(data)
  assert rows["d/white/seed0"] == colour_stats.colour_stats(data[:8])
  assert "| d/white/seed0 | 8 |" in out.with_suffix(".md").read_text()

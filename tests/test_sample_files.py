"""The one sample-file format: writer, reader, names, and the sampler settings type."""

import json

import numpy as np
import pytest

from fans_jax import sample_files
from fans_jax.sample_files import SamplerSettings


def test_round_trip(tmp_path):
  images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3), np.uint8)
  settings = SamplerSettings(sampler="ddim", num_steps=50, eta=1.0, clip_x0=False, seed=3)
  path = sample_files.write_samples(tmp_path / "a", images, settings, step=12, noise="blog")
  assert path.endswith("a.npz")
  back = sample_files.read_samples(path)
  np.testing.assert_array_equal(back.images, images)
  assert back.settings == settings and back.info["step"] == 12 and back.info["noise"] == "blog"


def test_floats_are_quantised_like_the_reference(tmp_path):
  x = np.linspace(-1.2, 1.2, 4 * 4 * 4 * 1, dtype=np.float32).reshape(4, 4, 4, 1)
  back = sample_files.read_samples(sample_files.write_samples(tmp_path / "f", x))
  assert back.images.dtype == np.uint8 and back.images.min() == 0 and back.images.max() == 255
  assert back.settings is None


def test_file_name_carries_every_setting():
  names = {sample_files.sample_file_stem(s, 1000, step=600) for s in (
      SamplerSettings("ddpm"), SamplerSettings("ddpm", clip_x0=False),
      SamplerSettings("ddim", 100, eta=1.0), SamplerSettings("ddim", 100, eta=0.0),
      SamplerSettings("ddim", 50, eta=1.0), SamplerSettings("ddim", 100, eta=1.0, seed=1))}
  assert len(names) == 6
  assert sample_files.sample_file_stem(SamplerSettings("ddpm", num_steps=7), 1000, 600) == (
      "ddpm1000_clip_seed0_step600")  # ancestral: always T steps
  assert sample_files.sample_file_stem(SamplerSettings("ddim", 100, 1.0, False, 2), 1000) == (
      "ddim100_eta1_noclip_seed2")


def test_defaults_are_ddpms():
  s = SamplerSettings()
  assert s.clip_x0 and s.sampler == "ddpm" and s.resolved(1000).num_steps == 1000
  with pytest.raises(ValueError, match="eta=2"):
    SamplerSettings("ddim", eta=2)
  with pytest.raises(ValueError, match="sampler='euler'"):
    SamplerSettings("euler")
  with pytest.raises(ValueError, match="exceeds T=10"):
    SamplerSettings("ddim", 20).steps(10)


def test_reads_other_layouts_and_refuses_bad_ones(tmp_path, caplog):
  u8 = np.zeros((3, 4, 4, 3), np.uint8)
  np.savez(tmp_path / "legacy.npz", samples=u8.astype(np.float32) - 1.0,
           settings=json.dumps({"sampler": "ddim", "num_steps": 100, "eta": 1.0, "seed": 0,
                                "clip_x0": False, "step": 5}))
  legacy = sample_files.read_samples(tmp_path / "legacy.npz")
  assert legacy.images.shape == (3, 4, 4, 3) and legacy.settings.num_steps == 100
  assert legacy.settings.clip_x0 is False and legacy.info["step"] == 5
  np.savez(tmp_path / "any.npz", whatever=u8, labels=np.zeros(3))
  assert sample_files.read_samples(tmp_path / "any.npz").images.shape == (3, 4, 4, 3)
  np.savez(tmp_path / "bool.npz", images=u8.astype(bool))
  with pytest.raises(ValueError, match="boolean"):
    sample_files.read_samples(tmp_path / "bool.npz")
  np.savez(tmp_path / "none.npz", labels=np.zeros(3))
  with pytest.raises(ValueError, match="expected an image array"):
    sample_files.read_samples(tmp_path / "none.npz")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    sample_files.read_samples(tmp_path / "missing.npz")
  np.savez(tmp_path / "unit.npz", images=np.full((2, 4, 4, 3), 0.5, np.float32))
  np.savez(tmp_path / "byte.npz", images=np.full((2, 4, 4, 3), 200.0, np.float32))
  from absl import logging as absl_logging  # pylint: disable=import-outside-toplevel
  absl_logging.use_python_logging()
  with caplog.at_level("WARNING"):
    sample_files.read_samples(tmp_path / "unit.npz")
    sample_files.read_samples(tmp_path / "byte.npz")
  text = caplog.text
  assert "looks like [0, 1]" in text and "looks like [0, 255]" in text

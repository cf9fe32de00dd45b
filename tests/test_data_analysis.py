"""dataset_spectrum caching and the analyze_spectra report, figures and CLI."""

import json
import os
import pathlib
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

import fans_jax.data as data
from fans_jax import spectra
from fans_jax.data import analysis
from fans_jax.data import spectra_cache

ROOT = pathlib.Path(__file__).resolve().parents[1]


def small(**kw):
  return data.with_overrides(**{"image_size": 16, "channels": 1, "num_examples": 64, **kw})


def test_dataset_spectrum_matches_direct_computation_and_is_cached(tmp_path, monkeypatch):
  cfg = small(alpha=2.0)
  stats = data.dataset_spectrum(cfg, cache_dir=tmp_path)
  x = data.to_model_input(data.get_source(cfg).get_batch(np.arange(64)))
  direct = spectra.accumulate_spectrum([x[:30], x[30:]])
  np.testing.assert_allclose(stats.psd, direct.psd, rtol=1e-5)
  np.testing.assert_allclose(stats.band_powers, direct.band_powers, rtol=1e-5)
  path = data.cached_spectrum_path(cfg, cache_dir=tmp_path)
  assert path.exists() and path.name.startswith("pltb_16x16x1_")

  def fail(*args, **kwargs):
    raise AssertionError("recomputed although cached")

  with monkeypatch.context() as m:
    m.setattr(spectra_cache, "spectrum_of_source", fail)
    again = data.dataset_spectrum(cfg, cache_dir=tmp_path)
  np.testing.assert_array_equal(again.psd, stats.psd)
  path.write_text("{truncated")  # a damaged cache file is recomputed and rewritten
  np.testing.assert_allclose(data.dataset_spectrum(cfg, cache_dir=tmp_path).psd, stats.psd)
  assert json.loads(path.read_text())["count"] == 64
  # Every option that changes the content or the statistics changes the key.
  keys = {path}
  for changed in (small(alpha=1.0), small(seed=1), small(image_size=8), small(channels=3),
                  small(num_examples=65), small(clip_sigma=4.0), small(name="egm")):
    keys.add(data.cached_spectrum_path(changed, cache_dir=tmp_path))
  keys.add(data.cached_spectrum_path(cfg, num_images=32, cache_dir=tmp_path))
  keys.add(data.cached_spectrum_path(cfg, band_spec=spectra.BandSpec(4), cache_dir=tmp_path))
  assert len(keys) == 10


def test_cache_dir_from_environment(tmp_path, monkeypatch):
  monkeypatch.setenv("FANS_CACHE_DIR", str(tmp_path / "env"))
  data.dataset_spectrum(small(), num_images=8)
  assert len(list((tmp_path / "env").glob("pltb_*.json"))) == 1
  with pytest.raises(ValueError, match="num_images"):
    data.dataset_spectrum(small(), num_images=65)


def test_analyze_writes_report_and_figures(tmp_path):
  exp = ml_collections.ConfigDict({"data": small(), "model": {"width": 8}})
  reports = analysis.analyze(exp, datasets=["pltb", "egm"], num_images=32,
                             output_dir=tmp_path / "out", cache_dir=tmp_path)
  assert [r["dataset"] for r in reports] == ["pltb", "egm"]
  for name in ("pltb", "egm"):
    rep = json.loads((tmp_path / "out" / name / "spectra.json").read_text())
    assert rep["num_images"] == 32 and rep["image_shape"] == [16, 16, 1]
    assert len(rep["band_powers"]) == 8 and abs(sum(rep["band_powers"]) - 1) < 1e-6
    assert np.asarray(rep["variance"]).shape == (16, 9)
    first_bin = rep["radial_profile"]["freqs"][1]  # default fit: first non-DC bin to 0.5
    assert rep["fit_range"] == [pytest.approx(first_bin), 0.5] and 0 <= rep["r2"] <= 1
    for fig in ("psd.png", "running_variance.png"):
      assert (tmp_path / "out" / name / fig).stat().st_size > 1000
  assert (tmp_path / "out" / "comparison_psd.png").exists()
  assert "| pltb | 32 | 16x16x1 |" in analysis.markdown_table(reports)


def test_cli_runs_on_a_bare_data_config(tmp_path):
  env = dict(os.environ, FANS_CACHE_DIR=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
  cmd = [sys.executable, str(ROOT / "launch" / "analyze_spectra.py"),
         f"--config={ROOT / 'fans_jax' / 'data' / 'config.py'}", "--config.image_size=16",
         "--config.num_examples=40", "--datasets=pltb,egm", "--num_bands=4",
         f"--output_dir={tmp_path / 'out'}"]
  res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
  assert res.returncode == 0, res.stderr[-2000:]
  assert "| egm | 40 | 16x16x3 |" in res.stdout
  rep = json.loads((tmp_path / "out" / "pltb" / "spectra.json").read_text())
  assert len(rep["band_powers"]) == 4

"""Every figure function runs on tiny inputs and writes a non-empty PNG and PDF."""

import logging

import jax
import matplotlib
import matplotlib.image
import numpy as np
import pytest

from fans_jax import noise, plotting, schedules, spectra
from fans_jax.metrics import spectral

H = 16


def _fields(seed, n=24, alpha=2.0, channels=3):
  grid = spectra.power_law_grid(H, H, alpha)
  grid = grid / spectra.grid_mean(grid, H)
  x = noise.colored_noise(jax.random.key(seed), (n, H, H, channels), grid)
  return np.clip(0.4 * np.asarray(x), -1, 1)


@pytest.fixture(scope="module")
def stats():
  return {"alpha 2": spectra.accumulate_spectrum([_fields(0)]),
          "alpha 1": spectra.accumulate_spectrum([_fields(1, alpha=1.0)])}


@pytest.fixture(scope="module")
def tiny_schedules(stats):
  psd = stats["alpha 2"].psd
  return {"DDPM": schedules.make_schedule("white", 20, "cosine", image_shape=(H, H, 3)),
          "FANS": schedules.make_schedule("matched", 20, "cosine", image_shape=(H, H, 3), data_psd=psd)}


def _check_written(path):
  png, pdf = path.with_suffix(".png"), path.with_suffix(".pdf")
  assert png.stat().st_size > 5_000, png
  pixels = matplotlib.image.imread(png)[..., :3]
  assert pixels.std() > 0.05  # not a blank canvas
  assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 2_000


def test_dataset_psds(tmp_path, stats):
  fig = plotting.plot_dataset_psds(stats, path=tmp_path / "psd")
  _check_written(tmp_path / "psd")
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert any("alpha 2" in t and "2." in t for t in labels)
  plotting.plot_dataset_psds(stats, normalize=True, fit_range=(0.1, 0.5), path=tmp_path / "n")
  _check_written(tmp_path / "n")
  with pytest.raises(ValueError, match="empty"):
    plotting.plot_dataset_psds({})


def test_running_variance(tmp_path, stats):
  plotting.plot_running_variance(stats, path=tmp_path / "run")
  _check_written(tmp_path / "run")
  plotting.plot_running_variance({"grid": stats["alpha 1"].variance}, ordering="euclidean",
                                 normalize=False, path=tmp_path / "run2")
  _check_written(tmp_path / "run2")


def test_snr_heatmaps(tmp_path, stats, tiny_schedules):
  fig = plotting.plot_snr_heatmaps(tiny_schedules, stats["alpha 2"].variance, num_bands=4,
                                   path=tmp_path / "snr")
  _check_written(tmp_path / "snr")
  assert [ax.get_title() for ax in fig.axes[:2]] == ["DDPM", "FANS"]
  grid = schedules.band_log_snr(tiny_schedules["DDPM"], stats["alpha 2"].variance,
                               spectra.BandSpec(num_bands=4))
  assert grid.shape == (20, 4)
  # DDPM: log SNR falls with t in every band, and high bands have lower SNR.
  assert np.all(np.diff(grid, axis=0) < 0) and np.all(np.diff(grid[0]) < 0)
  with pytest.raises(ValueError, match="data_variance has shape"):
    plotting.plot_snr_heatmaps(tiny_schedules, np.ones((8, 5)))


def test_forward_bands(tmp_path, tiny_schedules):
  image = _fields(3, n=1)[0]
  plotting.plot_forward_bands(image, tiny_schedules, [0, 10, 19], num_bands=3,
                              path=tmp_path / "fwd")
  _check_written(tmp_path / "fwd")
  with pytest.raises(ValueError, match="outside"):
    plotting.plot_forward_bands(image, tiny_schedules["DDPM"], [20])


def test_band_decompose_sums_to_image():
  x = _fields(4, n=2)
  parts = spectra.band_decompose(x, plotting._display_bands(4))  # pylint: disable=protected-access
  assert parts.shape == (4,) + x.shape
  np.testing.assert_allclose(parts.sum(axis=0), x, atol=1e-5)


def test_sample_figures(tmp_path):
  x = _fields(5, n=10)
  plotting.plot_sample_grid(x, ncols=5, title="samples", path=tmp_path / "grid")
  _check_written(tmp_path / "grid")
  u = ((x + 1) * 127.5).astype(np.uint8)
  plotting.plot_closeups(u, num=3, path=tmp_path / "close")
  _check_written(tmp_path / "close")
  plotting.plot_closeups(x, crops=[(0, 0, 0, 8), (1, 8, 8, 8)], titles=["a", "b"],
                         path=tmp_path / "close2")
  _check_written(tmp_path / "close2")
  with pytest.raises(ValueError, match="does not fit"):
    plotting.plot_closeups(x, crops=[(0, 10, 10, 8)])
  plotting.plot_sample_bands({"data": x[:2], "model": x[2:4]}, num_bands=3,
                             path=tmp_path / "bands")
  _check_written(tmp_path / "bands")
  gray = x[..., :1]
  plotting.plot_sample_bands(gray, num=2, path=tmp_path / "gray")
  _check_written(tmp_path / "gray")
  mosaic = plotting.image_mosaic(x, ncols=4, pad=1)
  assert mosaic.shape == (3 * 17 - 1, 4 * 17 - 1, 3)


def test_spectra_comparison_and_band_bars(tmp_path):
  settings = spectral.SpectralSettings(num_bands=5)
  ref = spectral.spectral_summary(_fields(6), settings)
  fans = spectral.spectral_summary(_fields(7), settings)
  ddpm = spectral.spectral_summary(_fields(8, alpha=3.0), settings)
  fig = plotting.plot_spectra_comparison(ref, {"FANS": fans, "DDPM": ddpm},
                                         path=tmp_path / "spec")
  _check_written(tmp_path / "spec")
  assert len(fig.axes) == 3
  fig = plotting.plot_band_powers(ref, {"FANS": fans, "DDPM": ddpm}, path=tmp_path / "bars")
  _check_written(tmp_path / "bars")
  bars = fig.axes[0].patches
  assert len(bars) == 3 * 5
  assert bars[0].get_facecolor()[:3] == pytest.approx((0x2c / 255, 0xa0 / 255, 0x2c / 255))
  other = spectral.spectral_summary(_fields(9), spectral.SpectralSettings(num_bands=4))
  with pytest.raises(ValueError, match="bands"):
    plotting.plot_band_powers(ref, {"x": other})


def test_saving_a_pdf_logs_no_font_subsetting(tmp_path, caplog):
  """Embedding a font in a PDF makes fontTools log one INFO line per table; the figures'
  writer keeps them out of the log (they were 191 of launch/evaluate.py's 238 lines)."""
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure()
  fig.subplots().set_title("glyphs to subset: 0.1 0.2 0.5")
  with caplog.at_level(logging.INFO):
    with matplotlib.rc_context(plotting.PAPER_RC):
      fig.savefig(tmp_path / "direct.pdf")
  assert any(r.name.startswith("fontTools") for r in caplog.records)  # the test has power
  caplog.clear()
  with caplog.at_level(logging.INFO):
    plotting.save_figure(fig, tmp_path / "quiet.png")
  assert not [r.getMessage() for r in caplog.records if r.name.startswith("fontTools")]
  assert (tmp_path / "quiet.pdf").stat().st_size > 2_000
  assert logging.getLogger("fontTools").level == logging.NOTSET  # restored

"""Synthetic datasets: PLTB slopes, EGM band placement, determinism, any size."""

import jax.numpy as jnp
import numpy as np
import pytest

import fans_jax.data as data
from fans_jax import spectra
from fans_jax.data import analysis
from fans_jax.data import synthetic


def cfg_for(**kw):
  return data.with_overrides(**{"image_size": 64, "channels": 1, "num_examples": 256, **kw})


def fit_float_fields(src, n):
  acc = spectra.SpectrumAccumulator()
  for lo in range(0, n, 128):
    acc.update(jnp.asarray(src.float_batch(np.arange(lo, min(lo + 128, n))), jnp.float32))
  return acc.finalize().fit().alpha


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_pltb_alpha_recovered_through_analyze(alpha, tmp_path):
  """The uint8 images, analysed as ``analyze_spectra`` does, and the float fields."""
  cfg = cfg_for(alpha=alpha)
  (rep,) = analysis.analyze(cfg, cache_dir=tmp_path, figures=False)
  assert abs(rep["alpha"] - alpha) < 0.05, rep["alpha"]
  assert rep["r2"] > 0.99
  src = data.get_source(cfg)
  assert abs(fit_float_fields(src, 256) - alpha) < 0.05
  exact = data.get_source(cfg_for(alpha=alpha, normalize="dataset"))
  assert abs(fit_float_fields(exact, 256) - alpha) < 0.05


def test_pltb_spectrum_matches_generated_fields():
  """'dataset' normalisation keeps the field Gaussian with the known spectrum: the
  empirical PSD of n images has relative s.d. ~ 1/sqrt(n * multiplicity) per
  coefficient, so band averages over >= 50 coefficients agree within a few percent."""
  n, size = 200, 32
  src = data.get_source(cfg_for(image_size=size, normalize="dataset", alpha=2.0, channels=3))
  x = src.float_batch(np.arange(n))
  assert abs(x.var() - 1.0) < 0.1  # unit pixel variance in expectation
  psd = np.asarray(jnp.mean(spectra.power_spectrum(jnp.asarray(x, jnp.float32)), axis=0))
  expected = synthetic.pltb_spectrum(size, 2.0)
  spec = spectra.BandSpec(num_bands=6, spacing="log")
  measured = np.asarray(spectra.band_average(jnp.asarray(psd), spec))
  want = np.asarray(spectra.band_average(jnp.asarray(expected), spec))
  # Smallest band holds >= ~10 coefficients x 3 channels x 200 images: rel. s.d. < 0.05.
  np.testing.assert_allclose(measured, want, rtol=0.15)
  assert expected[0, 0] == 0.0 and spectra.grid_mean(expected, size) == pytest.approx(1.0)


def test_pltb_sample_normalisation_and_uint8_mapping():
  src = data.get_source(cfg_for(image_size=16, channels=3, num_examples=10))
  x = src.float_batch(np.arange(10))
  np.testing.assert_allclose(x.mean(axis=(1, 2)), 0, atol=1e-6)  # float32
  np.testing.assert_allclose(x.std(axis=(1, 2)), 1, atol=1e-5)
  u = src.get_batch(np.arange(10))
  np.testing.assert_array_equal(
      u, np.clip(np.floor(127.5 * (1 + x / 3.0) + 0.5), 0, 255).astype(np.uint8))
  assert not np.array_equal(x[..., 0], x[..., 1])  # independent channels
  rep = data.get_source(cfg_for(image_size=16, channels=3, channel_mode="replicate"))
  b = rep.get_batch([0, 1])
  np.testing.assert_array_equal(b[..., 0], b[..., 2])


@pytest.mark.parametrize("name", ["pltb", "egm"])
def test_images_are_pure_functions_of_seed_and_index(name):
  cfg = cfg_for(name=name, image_size=24, channels=3, num_examples=50)
  src = data.get_source(cfg)
  alone = src[17]
  np.testing.assert_array_equal(src.get_batch([3, 17, 40])[1], alone)
  np.testing.assert_array_equal(data.get_source(cfg)[17], alone)
  assert not np.array_equal(data.get_source(cfg_for(name=name, image_size=24, channels=3,
                                                    num_examples=50, seed=1))[17], alone)
  assert alone.shape == (24, 24, 3) and alone.dtype == np.uint8
  odd = data.get_source(cfg_for(name=name, image_size=33, channels=5, num_examples=3))
  assert odd[2].shape == (33, 33, 5)


def test_egm_gratings_put_their_energy_at_their_frequencies():
  """Gratings-only EGM at 64x64: the power lies in the annulus of the grating
  frequencies, and each image's strongest band is that of one of its gratings.

  Tolerance: a rectangular window leaks a fraction <= 2 / (pi^2 m) of a sinusoid's power
  beyond m bins per axis, i.e. <= 0.10 for m = 2 bins.
  """
  size, n = 64, 100
  src = data.get_source(cfg_for(name="egm", egm_components="gratings", num_examples=n))
  x = jnp.asarray(src.float_batch(np.arange(n)), jnp.float32)
  power = np.asarray(spectra.power_spectrum(x)) * spectra.rfft_multiplicity(size, size)
  radius = spectra.radial_frequency(size, size)
  lo, hi = synthetic.EGM_GRATING_FREQS
  annulus = (radius >= lo - 2 / size) & (radius <= hi + 2 / size)
  inside = (power * annulus).sum(axis=(1, 2)) / power.sum(axis=(1, 2))
  assert inside.mean() >= 0.90, inside.mean()

  spec = spectra.BandSpec(num_bands=8)
  edges = spec.edges(size, size)
  bands = np.asarray(spectra.image_band_powers(x, spec=spec))
  for i in range(n):
    gratings = src.image_params(i)[0]["gratings"]
    own = {int(np.searchsorted(edges, f + d, side="right") - 1)
           for f, *_ in gratings for d in (-1 / size, 0, 1 / size)}
    assert int(bands[i].argmax()) in own, (i, gratings, bands[i])
    assert (np.isclose(np.asarray(x[i]).var(), 1.0, atol=1e-4))
  # A PLTB control (alpha=1) puts much less power in the same annulus.
  ctrl = jnp.asarray(data.get_source(cfg_for()).float_batch(np.arange(n)), jnp.float32)
  cpow = np.asarray(spectra.power_spectrum(ctrl)) * spectra.rfft_multiplicity(size, size)
  assert ((cpow * annulus).sum() / cpow.sum()) < 0.6


def test_egm_components_render_as_documented():
  rng = np.random.default_rng(0)
  p = synthetic.egm_params(rng, 32, ("checkerboards",))
  img = synthetic.render_egm(p, 32)
  cell, _, _, amp = p["checkerboard"]
  assert set(np.unique(np.round(img, 9))) == {-round(abs(amp), 9), round(abs(amp), 9)}
  assert p["gratings"] == [] and p["lines"] == []
  line = {"gratings": [], "checkerboard": None, "lines": [(5.0, 2.0, 5.0, 20.0, 1.5)]}
  img = synthetic.render_egm(line, 32)
  assert np.count_nonzero(img) == 19 and np.all(img[5, 2:21] == 1.5)
  assert synthetic.EGM_CHECKER_CELLS[0] <= cell <= synthetic.EGM_CHECKER_CELLS[1]


def test_synthetic_bad_options():
  with pytest.raises(ValueError, match="egm_components"):
    data.get_source(cfg_for(name="egm", egm_components="gratings,stars"))
  with pytest.raises(ValueError, match="normalize"):
    data.get_source(cfg_for(name="egm", normalize="dataset"))
  with pytest.raises(ValueError, match="channel_mode"):
    data.get_source(cfg_for(channel_mode="mix"))
  with pytest.raises(ValueError, match="unknown dataset"):
    data.get_source(cfg_for(name="pltbb"))
  with pytest.raises(ValueError, match="unknown data option"):
    data.with_overrides(alpah=2.0)
  with pytest.raises(IndexError):
    data.get_source(cfg_for(num_examples=5))[5]


def test_memoised_images_equal_regenerated_ones():
  cfg = cfg_for(name="egm", image_size=16, channels=3, num_examples=300)
  memo, fresh = data.get_source(cfg), data.get_source(data.with_overrides(cfg, synthetic_cache_mb=0))
  assert memo._memo is not None and fresh._memo is None  # pylint: disable=protected-access
  idx = np.random.default_rng(0).integers(0, 300, 200)
  np.testing.assert_array_equal(memo.get_batch(idx), fresh.get_batch(idx))
  np.testing.assert_array_equal(memo.get_batch(idx[::-1]), fresh.get_batch(idx[::-1]))

"""Spectral statistics: power-law fits, band powers, radial profiles, streaming."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import noise, spectra


def power_law_fields(alpha, n, size, channels=1, seed=0):
  """Exact Gaussian fields with E|F x(k)|^2 = |k|^-alpha (DC set like the lowest bin)."""
  s = spectra.power_law_grid(size, size, alpha)
  return noise.colored_noise(jax.random.key(seed), (n, size, size, channels), jnp.asarray(s))


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_alpha_fit_recovers_power_law(alpha):
  fields = power_law_fields(alpha, 256, 64)
  freqs, profile = spectra.radial_profile(jnp.mean(spectra.power_spectrum(fields), axis=0))
  fit = spectra.fit_power_law(freqs, profile)
  assert abs(float(fit.alpha) - alpha) < 0.05, float(fit.alpha)
  assert float(fit.r2) > 0.99
  assert fit.f_lo == pytest.approx(float(freqs[1])) and fit.f_hi == 0.5  # first non-DC bin


def test_fit_power_law_exact_on_noise_free_profile():
  freqs = np.geomspace(0.01, 0.5, 30)
  fit = spectra.fit_power_law(np.r_[0.0, freqs], np.r_[123.0, 7 * freqs**-2.5])
  assert float(fit.alpha) == pytest.approx(2.5, abs=1e-4)
  assert float(fit.amplitude) == pytest.approx(7, rel=1e-3)
  assert float(fit.r2) == pytest.approx(1.0, abs=1e-6)
  batched = spectra.fit_power_law(freqs, np.stack([freqs**-1.0, freqs**-3.0]))
  np.testing.assert_allclose(batched.alpha, [1.0, 3.0], atol=1e-4)


def direct_band_powers(images, edges, include_dc):
  """Per-coefficient sums over the *full* FFT grid (no rfft bookkeeping)."""
  x = np.asarray(images, np.float64)
  _, h, w, _ = x.shape
  power = (np.abs(np.fft.fft2(x, axes=(1, 2), norm="ortho")) ** 2).mean(-1)  # [N, H, W]
  fu = np.fft.fftfreq(h)[:, None]
  fv = np.fft.fftfreq(w)[None, :]
  radius = np.sqrt(fu**2 + fv**2)
  nb = len(edges) - 1
  out = np.zeros((x.shape[0], nb))
  for i in range(h):
    for j in range(w):
      if radius[i, j] == 0 and not include_dc:
        continue
      b = min(max(np.searchsorted(edges, radius[i, j], side="right") - 1, 0), nb - 1)
      out[:, b] += power[:, i, j]
  return out / out.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("h,w", [(16, 16), (15, 17), (12, 9)])
@pytest.mark.parametrize("spacing,include_dc", [("linear", False), ("log", False),
                                                ("linear", True)])
def test_band_powers_match_direct_sum(h, w, spacing, include_dc):
  images = np.random.default_rng(h * w).uniform(0, 1, (5, h, w, 3)).astype(np.float32)
  images[..., 0] += np.linspace(0, 3, w)[None, None, :]  # some low-frequency structure
  spec = spectra.BandSpec(num_bands=4, spacing=spacing, include_dc=include_dc)
  per_image = np.asarray(spectra.image_band_powers(jnp.asarray(images), spec=spec))
  np.testing.assert_allclose(per_image.sum(axis=1), 1.0, atol=1e-5)
  expected = direct_band_powers(images, spec.edges(h, w), include_dc)
  np.testing.assert_allclose(per_image, expected, rtol=2e-4, atol=1e-6)
  pi = spectra.band_powers(jnp.asarray(images), spec=spec)
  np.testing.assert_allclose(pi, expected.mean(axis=0), rtol=2e-4, atol=1e-6)
  assert float(jnp.sum(pi)) == pytest.approx(1.0, abs=1e-5)


def test_band_powers_keyword_api_and_mean_invariance():
  images = np.random.default_rng(0).standard_normal((4, 16, 16, 3)).astype(np.float32)
  a = spectra.band_powers(jnp.asarray(images), num_bands=6)
  b = spectra.band_powers(jnp.asarray(images + 5.0), num_bands=6)  # DC excluded by default
  np.testing.assert_allclose(a, b, rtol=1e-4)
  assert a.shape == (6,)


def test_radial_profile_matches_direct_full_grid_average():
  h, w = 16, 16
  images = np.random.default_rng(1).standard_normal((3, h, w, 2)).astype(np.float32)
  power = spectra.power_spectrum(jnp.asarray(images))
  freqs, profile = spectra.radial_profile(power)
  full = (np.abs(np.fft.fft2(images.astype(np.float64), axes=(1, 2), norm="ortho")) ** 2).mean(-1)
  fu = np.fft.fftfreq(h)[:, None]
  fv = np.fft.fftfreq(w)[None, :]
  radius = np.sqrt(fu**2 + fv**2)
  index = np.floor(radius * h + 1e-9).astype(int)
  for b in range(len(freqs)):
    sel = index == np.unique(index)[b]
    np.testing.assert_allclose(profile[:, b], full[:, sel].mean(axis=1), rtol=1e-4)
    assert float(freqs[b]) == pytest.approx(radius[sel].mean(), rel=1e-6)
  assert float(freqs[0]) == 0.0  # bin 0 is DC alone


def test_manhattan_ordering_and_running_average():
  h = w = 8
  man = spectra.radial_frequency(h, w, "manhattan")
  fu, fv = spectra.frequency_grid(h, w)
  np.testing.assert_allclose(man, np.abs(fu) + np.abs(fv))
  freqs, profile = spectra.radial_profile(jnp.ones((h, w // 2 + 1)), "manhattan")
  np.testing.assert_allclose(profile, 1.0, rtol=1e-6)
  assert np.all(np.diff(np.asarray(freqs)) > 0) and float(freqs[-1]) == pytest.approx(1.0)
  values = np.asarray(spectra.power_law_grid(h, w, 2.0))
  r, avg = spectra.running_average_by_frequency(values)
  assert r.shape == avg.shape == (h * w,) and np.all(np.diff(r) >= 0)
  # the last value is the mean over the full grid
  assert avg[-1] == pytest.approx(float(spectra.grid_mean(values, w)), rel=1e-12)


def test_streaming_accumulator_matches_one_shot_and_merges():
  rng = np.random.default_rng(2)
  data = rng.uniform(-1, 1, (40, 12, 12, 3)).astype(np.float32)
  data += np.sin(np.arange(12) / 2.0)[None, :, None, None]
  spec = spectra.BandSpec(num_bands=5)
  whole = spectra.accumulate_spectrum([data], spec)
  parts = spectra.SpectrumAccumulator(spec)
  for i in range(0, 40, 7):
    parts.update(data[i:i + 7])
  a = spectra.SpectrumAccumulator(spec).update(data[:13])
  b = spectra.SpectrumAccumulator(spec).update(data[13:])
  merged = a.merge(b).finalize()
  coeffs = np.fft.rfft2(data.astype(np.float64), axes=(1, 2), norm="ortho")
  psd = (np.abs(coeffs) ** 2).mean(axis=(0, 3))
  var = np.var(coeffs, axis=0, ddof=1).mean(-1)  # complex variance: E|X - EX|^2
  for stats in (whole, parts.finalize(), merged):
    assert stats.count == 40
    np.testing.assert_allclose(stats.psd, psd, rtol=1e-4)
    np.testing.assert_allclose(stats.variance, var, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(stats.band_powers,
                               np.asarray(spectra.band_powers(jnp.asarray(data), spec=spec)),
                               rtol=1e-5)
  # DC: the PSD keeps the squared mean, the variance does not
  assert whole.psd[0, 0] > whole.variance[0, 0]
  restored = spectra.DatasetSpectrum.from_json(whole.to_json())
  np.testing.assert_allclose(restored.psd, whole.psd)
  assert restored.band_spec == spec and restored.fit().alpha == pytest.approx(whole.fit().alpha)


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3)), np.zeros((2, 8)), np.zeros((2, 1, 8, 3))])
def test_wrong_rank_or_size_rejected(bad):
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]|at least 2x2"):
    spectra.power_spectrum(jnp.asarray(bad))


def test_bad_band_specs_rejected():
  with pytest.raises(ValueError, match="num_bands"):
    spectra.BandSpec(num_bands=0)
  with pytest.raises(ValueError, match="spacing"):
    spectra.BandSpec(spacing="quadratic")
  with pytest.raises(ValueError, match="hold no frequency"):
    spectra.band_masks(4, 4, spectra.BandSpec(num_bands=40))
  with pytest.raises(ValueError, match="f_lo"):
    spectra.fit_power_law(np.array([0.0, 0.1, 0.2]), np.ones(3), f_lo=0.3, f_hi=0.2)
  with pytest.raises(ValueError, match="not square"):
    spectra.radial_profile(jnp.ones((8, 3)))

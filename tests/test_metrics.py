"""Spectral fidelity metrics, Frechet distance and KID."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from fans_jax import noise, spectra
from fans_jax.metrics import frechet, spectral

# ----------------------------------------------------------------------------------
# Frechet distance
# ----------------------------------------------------------------------------------


def _scipy_frechet(mu1, s1, mu2, s2):
  """The textbook formula with scipy's general matrix square root (pytorch-fid's)."""
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  covmean = np.real(covmean)
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d,n1,n2", [(8, 50, 80), (32, 200, 150)])
def test_frechet_matches_scipy_on_random_features(d, n1, n2):
  rng = np.random.default_rng(d)
  a = rng.normal(size=(d, d))
  f1 = rng.normal(size=(n1, d)) @ a + 0.3
  f2 = rng.normal(size=(n2, d)) @ (a + 0.5 * rng.normal(size=(d, d)))
  s1 = frechet.feature_statistics(f1)
  s2 = frechet.feature_statistics(f2)
  np.testing.assert_allclose(s1.sigma, np.cov(f1, rowvar=False), rtol=1e-12)
  ours = frechet.frechet_distance(s1, s2)
  ref = _scipy_frechet(s1.mu, s1.sigma, s2.mu, s2.sigma)
  # Both in float64; scipy's Schur-based sqrtm of the non-symmetric product is accurate
  # to ~1e-10 relative here.
  assert ours == pytest.approx(ref, rel=1e-7)
  assert frechet.frechet_distance(s2, s1) == pytest.approx(ours, rel=1e-9)


def test_frechet_closed_form_for_diagonal_covariances():
  # Commuting covariances: FD = |mu1 - mu2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2 exactly.
  rng = np.random.default_rng(1)
  a, b = rng.uniform(0.1, 3, 10), rng.uniform(0.1, 3, 10)
  mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
  s1 = frechet.FeatureStats(mu1, np.diag(a), 100)
  s2 = frechet.FeatureStats(mu2, np.diag(b), 100)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert frechet.frechet_distance(s1, s2) == pytest.approx(expected, rel=1e-12)


def test_frechet_zero_for_identical_and_translation_adds_squared_norm():
  rng = np.random.default_rng(2)
  f = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
  s = frechet.feature_statistics(f)
  trace = np.trace(s.sigma)
  assert frechet.frechet_distance(s, s) <= 1e-10 * trace
  shift = rng.normal(size=16)
  shifted = frechet.feature_statistics(f + shift)
  assert frechet.frechet_distance(s, shifted) == pytest.approx(shift @ shift, rel=1e-8)


def test_frechet_stable_on_nearly_singular_covariance():
  # Features in a 3-d subspace of R^12 plus 1e-7 noise: condition number ~1e14. The
  # result stays real and non-negative and matches the exact value |shift|^2 up to the
  # conditioning of the square root at 0: each of the d eigenvalues carries an
  # absolute error ~eps ||S||, so its square root an error ~sqrt(eps ||S||).
  rng = np.random.default_rng(3)
  d = 12
  f = rng.normal(size=(500, 3)) @ rng.normal(size=(3, d)) + 1e-7 * rng.normal(size=(500, d))
  s = frechet.feature_statistics(f)
  shift = np.full(d, 0.01)
  value = frechet.frechet_distance(s, frechet.feature_statistics(f + shift))
  tol = 2 * d * np.sqrt(np.finfo(np.float64).eps * np.linalg.norm(s.sigma, 2))
  assert np.isfinite(value) and abs(value - shift @ shift) < tol
  assert frechet.frechet_distance(s, s) < tol


def test_frechet_needs_enough_samples():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match=r"needs at least 17 samples"):
    frechet.feature_statistics(rng.normal(size=(16, 16)))
  assert frechet.feature_statistics(rng.normal(size=(17, 16))).count == 17
  with pytest.raises(ValueError, match="feature dimensions differ"):
    frechet.frechet_distance(frechet.feature_statistics(rng.normal(size=(20, 4))),
                             frechet.feature_statistics(rng.normal(size=(20, 5))))
  with pytest.raises(ValueError, match=r"\[N, d\]"):
    frechet.feature_statistics(rng.normal(size=(20,)))


def test_feature_stats_save_load(tmp_path):
  s = frechet.feature_statistics(np.random.default_rng(0).normal(size=(30, 5)), name="x")
  s.save(tmp_path / "a" / "stats.npz")
  t = frechet.FeatureStats.load(tmp_path / "a" / "stats.npz")
  np.testing.assert_array_equal(s.mu, t.mu)
  np.testing.assert_array_equal(s.sigma, t.sigma)
  assert (t.count, t.name) == (30, "x")


# ----------------------------------------------------------------------------------
# KID
# ----------------------------------------------------------------------------------


def _finite_support(seed, num_points=6, dim=4):
  rng = np.random.default_rng(seed)
  return rng.normal(size=(num_points, dim))


def _exact_mmd2(points, p, q):
  """Population MMD^2 of two laws on a finite support: (p - q)^T K (p - q)."""
  k = frechet.polynomial_kernel(points, points)
  return float((p - q) @ k @ (p - q))


@pytest.mark.parametrize("shifted", [False, True])
def test_mmd2_estimator_is_unbiased(shifted):
  points = _finite_support(0)
  p = np.array([0.3, 0.2, 0.1, 0.15, 0.15, 0.1])
  q = np.array([0.1, 0.1, 0.3, 0.2, 0.1, 0.2]) if shifted else p
  exact = _exact_mmd2(points, p, q)
  rng = np.random.default_rng(1)
  m, rounds = 20, 2000
  unbiased, biased = [], []
  for _ in range(rounds):
    x = points[rng.choice(len(p), m, p=p)]
    y = points[rng.choice(len(q), m, p=q)]
    unbiased.append(frechet.mmd2_unbiased(x, y))
    kxx, kyy = frechet.polynomial_kernel(x, x), frechet.polynomial_kernel(y, y)
    biased.append(kxx.mean() + kyy.mean() - 2 * frechet.polynomial_kernel(x, y).mean())
  unbiased, biased = np.array(unbiased), np.array(biased)
  # 4 standard errors of the mean of `rounds` independent estimates.
  tol = 4 * unbiased.std(ddof=1) / np.sqrt(rounds)
  assert abs(unbiased.mean() - exact) < tol
  # The test has power: the V-statistic (diagonal included) is biased by O(1/m).
  assert abs(biased.mean() - exact) > tol
  if shifted:
    assert exact > 5 * tol  # the shift is resolved


def test_kernel_distance_subsets():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(120, 8))
  y = rng.normal(size=(90, 8)) + 0.5
  kid = frechet.kernel_distance(x, y, num_subsets=20, subset_size=1000, seed=3)
  assert kid.subset_size == 90 and kid.num_subsets == 20  # clipped to the smaller set
  # Same subsets drawn by hand give the same mean.
  draw = np.random.default_rng(3)
  values = [frechet.mmd2_unbiased(x[draw.choice(120, 90, replace=False)],
                                  y[draw.choice(90, 90, replace=False)]) for _ in range(20)]
  assert kid.mean == pytest.approx(np.mean(values), rel=1e-12)
  same = frechet.kernel_distance(x[:60], x[60:], num_subsets=20, subset_size=50)
  assert abs(same.mean) < kid.mean / 10
  with pytest.raises(ValueError, match="at least 2 samples"):
    frechet.kernel_distance(x[:1], y)


# ----------------------------------------------------------------------------------
# Spectral metrics
# ----------------------------------------------------------------------------------

H, N, C, ALPHA = 32, 256, 3, 2.0


def _power_law_fields(seed, n=N):
  """Gaussian random fields with E P(k) proportional to |k|^-ALPHA, ``[n, H, H, C]``."""
  grid = spectra.power_law_grid(H, H, ALPHA)
  grid = grid / spectra.grid_mean(grid, H)
  return 0.3 * np.asarray(noise.colored_noise(jax.random.key(seed), (n, H, H, C), grid))


def _blur(x, sigma):
  """Periodic Gaussian blur: amplitude times exp(-2 pi^2 sigma^2 |k|^2)."""
  g = np.exp(-2 * np.pi**2 * sigma**2 * spectra.radial_frequency(H, H) ** 2)
  return np.asarray(spectra.irfft2(spectra.rfft2(jnp.asarray(x)) * g[None, :, :, None], H, H))


@pytest.fixture(scope="module")
def fields():
  return _power_law_fields(0), _power_law_fields(1)


def test_identical_sets_give_perfect_scores(fields):
  a, _ = fields
  m = spectral.spectral_metrics(a, a.copy())
  assert m["slope_error"] == 0.0 and m["lsd"] == 0.0
  assert m["band_jsd"] == pytest.approx(0.0, abs=1e-15)
  assert m["band_kl"] == pytest.approx(0.0, abs=1e-15)
  assert m["band_corr"] == pytest.approx(1.0, abs=1e-12)
  np.testing.assert_array_equal(m["band_rel_error"], 0.0)
  np.testing.assert_array_equal(m["band_log10_psd_ratio"], 0.0)
  assert m["settings"]["log_base"] == "e (nats)"
  assert m["settings"]["fit_range"][1] == 0.5


def _slope_standard_error(summary):
  """Delta-method standard error of the fitted slope of N C independent fields: a bin
  of m rfft coefficients averages N C m exponential powers (half of them mirrored, so
  m / 2 independent ones, conservatively), Var(log p) ~ 2 / (N C m)."""
  lo, hi = summary.fit_range
  f = summary.freqs
  mask = (f >= lo * (1 - 1e-9)) & (f <= hi * (1 + 1e-9))
  radius = spectra.radial_frequency(H, H)
  df = 1.0 / H
  idx = np.floor(radius / df + 1e-9).astype(int).ravel()
  counts = np.bincount(idx)
  counts = counts[counts > 0][mask]
  x = np.log(f[mask])
  w = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
  return float(np.sqrt(np.sum(w**2 * 2.0 / (N * C * counts))))


def test_reference_slope_matches_the_power_law(fields):
  a, _ = fields
  ref = spectral.spectral_summary(a)
  # The exact power law on the grid, radially averaged, fits to alpha_exact; the
  # sample estimate must agree within 5 standard errors.
  grid = spectra.power_law_grid(H, H, ALPHA)
  freqs, profile = spectra.radial_profile(jnp.asarray(grid))
  alpha_exact = float(spectra.fit_power_law(freqs, profile).alpha)
  assert abs(ref.alpha - alpha_exact) < 5 * _slope_standard_error(ref)
  np.testing.assert_allclose(ref.band_powers.sum(), 1.0, rtol=1e-6)


def test_blur_raises_slope_and_high_band_error(fields):
  a, b = fields
  ref = spectral.spectral_summary(a)
  base = spectral.spectral_metrics(b, ref)  # independent draw, same law
  se = _slope_standard_error(ref)
  assert abs(base["slope_error"]) < 5 * np.sqrt(2) * se
  previous = base
  for sigma in (0.5, 0.75):
    m = spectral.spectral_metrics(_blur(b, sigma), ref)
    # Expected slope change: fit of the radially averaged power law times the blur's
    # power transfer exp(-4 pi^2 sigma^2 |k|^2), minus the unblurred fit.
    grid = spectra.power_law_grid(H, H, ALPHA)
    transfer = np.exp(-4 * np.pi**2 * sigma**2 * spectra.radial_frequency(H, H) ** 2)
    f, p = spectra.radial_profile(jnp.asarray(grid))
    _, p_blur = spectra.radial_profile(jnp.asarray(grid * transfer))
    expected = float(spectra.fit_power_law(f, p_blur).alpha - spectra.fit_power_law(f, p).alpha)
    assert m["slope_error"] - base["slope_error"] == pytest.approx(expected, abs=5 * se)
    assert m["slope_error"] > previous["slope_error"]
    assert m["band_rel_error"][-1] < previous["band_rel_error"][-1]
    assert m["band_log10_psd_ratio"][-1] < previous["band_log10_psd_ratio"][-1]
    assert m["lsd"] > previous["lsd"]
    assert m["band_jsd"] > previous["band_jsd"] and m["band_kl"] > previous["band_kl"]
    assert m["band_corr"] <= 1.0
    previous = m
  # Blurring shifts power fractions to the low bands: the first band gains.
  assert previous["band_rel_error"][0] > 0


def test_summary_from_dataset_spectrum_matches_direct(fields):
  a, _ = fields
  settings = spectral.SpectralSettings(num_bands=6)
  direct = spectral.spectral_summary(a, settings)
  stats = spectra.accumulate_spectrum([a[:100], a[100:]], settings.band_spec())
  via = spectral.summary_from_dataset_spectrum(stats, a.shape[1:], settings)
  np.testing.assert_allclose(via.profile, direct.profile, rtol=1e-6)
  np.testing.assert_allclose(via.band_powers, direct.band_powers, rtol=1e-6)
  assert via.alpha == pytest.approx(direct.alpha, rel=1e-6)
  m = spectral.spectral_metrics(a, via)
  assert m["lsd"] < 1e-6 and m["settings"]["num_bands"] == 6
  with pytest.raises(ValueError, match="same bands"):
    spectral.summary_from_dataset_spectrum(stats, a.shape[1:], spectral.SpectralSettings())


def test_divergences_known_values():
  p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
  assert spectral.kl_divergence(p, q) == pytest.approx(0.5 * np.log(2) + 0.5 * np.log(2 / 3))
  assert spectral.js_divergence(p, q) == pytest.approx(spectral.js_divergence(q, p))
  # Disjoint distributions: JSD = ln 2 (nats), up to the 1e-12 floor.
  assert spectral.js_divergence([1, 0], [0, 1]) == pytest.approx(np.log(2), abs=1e-9)
  assert spectral.pearson_correlation([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)


def test_spectral_metrics_bad_input(fields):
  a, _ = fields
  with pytest.raises(ValueError, match="same shape"):
    spectral.spectral_metrics(a, a[:, :16, :16])
  with pytest.raises(ValueError, match="same units"):
    spectral.spectral_metrics(a, np.zeros(a.shape, np.uint8))
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    spectral.spectral_metrics(a[0], a)
  with pytest.raises(ValueError, match="num_bands"):
    spectral.SpectralSettings(num_bands=0)

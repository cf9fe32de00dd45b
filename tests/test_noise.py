"""Coloured noise has exactly the spectrum and covariance it claims."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import noise, spectra


def _spectra(h, w):
  radius = spectra.radial_frequency(h, w)
  fu, fv = spectra.frequency_grid(h, w)
  aniso = 1.0 + 0.8 * np.cos(2 * np.pi * fu) ** 2 + 0.3 * np.cos(np.pi * fv)  # even in fu
  return {
      "pink_alpha1": spectra.power_law_grid(h, w, 1.0),
      "steep_alpha3": spectra.power_law_grid(h, w, 3.0),
      "band_pass": 0.05 + np.exp(-((radius - 0.25) ** 2) / (2 * 0.05**2)),
      "anisotropic": aniso + 0 * radius,
  }


@pytest.mark.parametrize("name", ["pink_alpha1", "steep_alpha3", "band_pass", "anisotropic"])
@pytest.mark.parametrize("h,w,c", [(16, 16, 3), (15, 12, 1)])
def test_power_per_frequency_matches_spectrum(name, h, w, c):
  """E|F eta(k)|^2 = S(k). With n = N*C draws per coefficient, |F eta|^2 / S is
  Exp(1) (complex coefficients) or chi^2_1 (self-conjugate ones), so the sample mean
  has standard error 1/sqrt(n) or sqrt(2/n). We require every z-score below 5 (a
  Bonferroni bound over <= 160 coefficients: false alarm < 1e-4) and the sum of z^2 to
  be a plausible chi^2 draw (within 5 standard deviations)."""
  s = noise.normalize_spectrum(_spectra(h, w)[name], w)
  n_samples = 4000
  eta = noise.colored_noise(jax.random.key(1), (n_samples, h, w, c), jnp.asarray(s))
  assert eta.dtype == jnp.float32 and eta.shape == (n_samples, h, w, c)
  power = np.asarray(spectra.power_spectrum(eta, channel_mean=False), np.float64)
  mean_power = power.mean(axis=(0, 3))
  n = n_samples * c
  mult = spectra.rfft_multiplicity(h, w)
  self_conj = np.zeros((h, w // 2 + 1), bool)
  self_conj[0, 0] = True
  if h % 2 == 0:
    self_conj[h // 2, 0] = True
  if w % 2 == 0:
    self_conj[0, -1] = True
    if h % 2 == 0:
      self_conj[h // 2, -1] = True
  stderr = np.where(self_conj, np.sqrt(2.0 / n), np.sqrt(1.0 / n))
  z = (mean_power / s - 1.0) / stderr
  assert np.max(np.abs(z)) < 5.0, (name, np.max(np.abs(z)))
  k = z.size
  assert abs(np.sum(z**2) - k) < 5 * np.sqrt(2 * k)
  # Mean-1 spectrum -> unit mean pixel variance (Parseval, full-grid weights).
  assert abs(np.sum(s * mult) / (h * w) - 1.0) < 1e-6


@pytest.mark.parametrize("name", ["pink_alpha1", "steep_alpha3", "anisotropic"])
def test_spatial_autocovariance_is_inverse_fft_of_spectrum(name):
  """Direct spatial estimate of E[eta(x) eta(x + d)] (averaged over positions,
  channels and samples) against C = F^-1 S. Each image's spatial average has variance
  at most Var(eta(x) eta(x + d)) = C(0)^2 + C(d)^2, so with n independent images the
  estimate has standard error <= sqrt((C(0)^2 + C(d)^2) / n); we allow 5 of them."""
  h = w = 16
  s = noise.normalize_spectrum(_spectra(h, w)[name], w)
  cov = noise.spatial_autocovariance(s, w)
  assert abs(cov[0, 0] - 1.0) < 1e-9  # mean-1 spectrum: unit pixel variance
  n, c = 3000, 2
  eta = np.asarray(noise.colored_noise(jax.random.key(7), (n, h, w, c), jnp.asarray(s)),
                   np.float64)
  for dy, dx in [(0, 0), (0, 1), (1, 0), (1, 1), (2, 5), (8, 8), (-3, 2)]:
    prod = eta * np.roll(eta, (-dy, -dx), axis=(1, 2))
    estimate = prod.mean()
    expected = cov[dy % h, dx % w]
    tol = 5 * np.sqrt((cov[0, 0] ** 2 + expected**2) / (n * c))
    assert abs(estimate - expected) < tol, (dy, dx, estimate, expected, tol)


def test_covariance_matrix_exact_small_grid():
  """On a 4x5 grid the covariance of A eps is A A^T exactly: build A column by column
  and compare with the circulant matrix of F^-1 S (float64)."""
  with jax.enable_x64(True):
    h, w = 4, 5
    s = noise.normalize_spectrum(_spectra(h, w)["anisotropic"], w)
    basis = np.eye(h * w).reshape(h * w, h, w, 1)
    a = np.asarray(noise.apply_sqrt_spectrum(jnp.asarray(basis), jnp.sqrt(jnp.asarray(s))[..., None]))
    a = a.reshape(h * w, h * w).T  # column j = A e_j
    cov = a @ a.T
    c = noise.spatial_autocovariance(s, w)
    ys, xs = np.divmod(np.arange(h * w), w)
    expected = c[(ys[None] - ys[:, None]) % h, (xs[None] - xs[:, None]) % w]
    np.testing.assert_allclose(cov, expected, atol=1e-12)
    assert np.allclose(a.imag if np.iscomplexobj(a) else 0, 0)


def test_white_spectrum_returns_eps():
  key = jax.random.key(3)
  shape = (8, 12, 12, 3)
  eta = noise.colored_noise(key, shape, jnp.ones((12, 7)))
  eps = jax.random.normal(key, shape)
  np.testing.assert_allclose(eta, eps, atol=2e-6)
  np.testing.assert_array_equal(noise.white_noise(key, shape), eps)


def test_colored_noise_jits_and_per_channel_spectra():
  h, w = 8, 8
  s = np.stack([np.ones((h, 5)), spectra.power_law_grid(h, w, 2.0)], axis=-1)
  fn = jax.jit(noise.colored_noise, static_argnums=1)
  eta = fn(jax.random.key(0), (2000, h, w, 2), jnp.asarray(s))
  power = np.asarray(spectra.power_spectrum(eta, channel_mean=False)).mean(0)
  ratio = power / s
  assert abs(ratio[..., 0].mean() - 1) < 0.02 and abs(ratio[..., 1].mean() - 1) < 0.02


@pytest.mark.parametrize("bad,match", [
    (-np.ones((8, 5)), "strictly positive"),
    (np.full((8, 5), np.nan), "finite"),
    (np.ones((8, 4)), "rfft grid"),
    (np.ones((5,)), "rfft grid"),
])
def test_bad_spectra_are_rejected(bad, match):
  with pytest.raises(ValueError, match=match):
    noise.colored_noise(jax.random.key(0), (1, 8, 8, 1), jnp.asarray(bad))


def test_asymmetric_spectrum_rejected_and_symmetrize_fixes_it():
  s = np.ones((8, 5))
  s[1, 0] = 3.0  # S(1, 0) != S(-1, 0)
  with pytest.raises(ValueError, match="not symmetric"):
    noise.check_spectrum(s, 8, 8)
  fixed = noise.symmetrize(s, 8)
  noise.check_spectrum(fixed, 8, 8)
  assert fixed[1, 0] == fixed[7, 0] == 2.0


def test_bad_shape_rank():
  with pytest.raises(ValueError, match="shape must be"):
    noise.colored_noise(jax.random.key(0), (8, 8, 1), jnp.ones((8, 5)))


@pytest.mark.parametrize("h,w", [(6, 8), (5, 7)])
def test_fourier_white_noise_is_distributed_as_rfft_of_white(h, w):
  """Second moments of fourier_white_noise equal those of rfft2(N(0, I)): E|Z|^2 = 1,
  E[Z^2] = 1 on self-conjugate coefficients (real) and 0 elsewhere (circular), Hermitian
  within the self-conjugate columns. n draws: standard error of a mean of |Z|^2 or Z^2
  is at most sqrt(2/n); 5 of them allowed."""
  n = 40000
  z = np.asarray(noise.fourier_white_noise(jax.random.key(0), (n, h, w, 1)))[..., 0]
  ref = np.asarray(spectra.rfft2(jax.random.normal(jax.random.key(1), (n, h, w, 1))))[..., 0]
  tol = 5 * np.sqrt(2 / n)
  for a in (z, ref):
    np.testing.assert_allclose(np.mean(np.abs(a) ** 2, 0), 1.0, atol=tol)
  np.testing.assert_allclose(np.mean(z**2, 0), np.mean(ref**2, 0), atol=2 * tol)
  cols = [0] + ([w // 2] if w % 2 == 0 else [])
  for col in cols:
    mirror = np.roll(z[:, ::-1, col], 1, axis=1)
    np.testing.assert_allclose(z[:, :, col], np.conj(mirror), atol=1e-6)

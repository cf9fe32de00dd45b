"""The Gaussian ground truth: the optimal denoiser's error is the closed-form MMSE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import noise, schedules, spectra
from fans_jax.metrics import gaussian

H = W = 16
PSD = spectra.power_law_grid(H, W, 1.0)
VAR = 0.1 * PSD / float(spectra.grid_mean(PSD, W))


@pytest.mark.parametrize("name", ["white", "annealed", "blog_corrected"])
def test_optimal_model_reaches_the_mmse(name):
  sched = schedules.make_schedule(name, 200, "linear", (H, W, 1), data_psd=PSD)
  n = 512
  x0 = noise.colored_noise(jax.random.key(0), (n, H, W, 1), VAR)
  t = np.array([0, 20, 100, 199])
  model = gaussian.model_eps_mse(gaussian.optimal_eps_model(sched, VAR), None, sched, x0, t,
                                 jax.random.key(1), batch_size=256)
  want = gaussian.optimal_eps_mse(sched, VAR, t)
  spec = spectra.BandSpec(num_bands=4)
  edges = np.array([0, 1, 21, 101, 200])
  got_b = gaussian.reduce_to_bands(model, t, edges, spec)
  want_b = gaussian.reduce_to_bands(want, t, edges, spec)
  # each band mean averages >= 20 coefficients x 512 images of a chi-square-like error:
  # relative standard error < sqrt(2 / (20 * 512)) = 1.4%; 5 sigma
  np.testing.assert_allclose(got_b, want_b, rtol=0.07)
  # a useless predictor (zero) has error 1 everywhere: the excess is visible wherever
  # the noise is not already unpredictable (at t = 0 the MMSE is ~1 too)
  zero = gaussian.model_eps_mse(lambda p, x, tt: jnp.zeros_like(x), None, sched, x0, t,
                                jax.random.key(1), batch_size=256)
  assert np.all(gaussian.reduce_to_bands(zero, t, edges, spec)[1:] > want_b[1:] + 0.1)
  np.testing.assert_allclose(zero.mean(), 1.0, rtol=0.02)


def test_excess_loss_of_the_optimum_is_zero():
  sched = schedules.make_schedule("matched", 100, "linear", (H, W, 1), data_psd=PSD)
  x0 = noise.colored_noise(jax.random.key(2), (256, H, W, 1), VAR)
  out = gaussian.excess_loss(gaussian.optimal_eps_model(sched, VAR), None, sched, x0, VAR,
                             key=jax.random.key(3), num_buckets=2, t_per_bucket=2,
                             spec=spectra.BandSpec(num_bands=4))
  assert out.excess.shape == (2, 4)
  assert np.max(np.abs(out.excess) / out.optimal) < 0.1
  with pytest.raises(ValueError, match="not Gaussian"):
    std = schedules.make_schedule("blog", 100, "linear", (H, W, 1), data_psd=PSD,
                                  standardize=True)
    gaussian.optimal_eps_mse(std, VAR, [0])


def test_direct_excess_has_the_known_answer():
  # eps_hat = (1 + d) eps_opt: its excess is d^2 E|eps_opt_k|^2 = d^2 (1 - MMSE_k(t))
  # exactly (E|Y_k|^2 = a^2 v + sigma^2), so each estimator can be checked against it.
  d = 0.3
  sched = schedules.make_schedule("annealed", 200, "linear", (H, W, 1), data_psd=PSD)
  n = 256
  x0 = noise.colored_noise(jax.random.key(4), (n, H, W, 1), VAR)
  opt = gaussian.optimal_eps_model(sched, VAR)
  scaled = lambda p, x, tt: (1.0 + d) * opt(p, x, tt)
  spec = spectra.BandSpec(num_bands=4)
  out = gaussian.excess_loss(scaled, None, sched, x0, VAR, key=jax.random.key(5),
                             num_buckets=4, t_per_bucket=2, spec=spec)
  want = d ** 2 * (1.0 - out.optimal)
  # a band-bucket mean averages >= 20 coefficients x 256 images x 2 t of an
  # exponential-like |.|^2 (relative std <= sqrt 2 for the real coefficients):
  # relative standard error < sqrt(2 / (20 * 256 * 2)) = 1.4%; 5 sigma
  np.testing.assert_allclose(out.direct, want, rtol=0.07)
  # the closed-form estimator is unbiased too, but its error is the Monte Carlo error
  # of the whole loss (~ MMSE per draw), not of the excess: a tolerance of that size
  se_loss = (out.optimal + want) * np.sqrt(2 / (20 * n * 2))
  assert np.all(np.abs(out.excess - want) < 5 * se_loss)
  # the paired difference and the distance differ by the cross term, mean zero
  se_cross = 2 * np.sqrt(out.optimal_mc * out.direct) * np.sqrt(2 / (20 * n * 2))
  assert np.all(np.abs((out.model - out.optimal_mc) - out.direct) < 5 * se_cross)
  # the exact denoiser's Monte Carlo error on these draws is the closed form
  np.testing.assert_allclose(out.optimal_mc, out.optimal, rtol=0.07)
  js = out.to_json()
  np.testing.assert_allclose(js["direct"], out.direct)
  np.testing.assert_allclose(js["optimal_mc"], out.optimal_mc)


def test_direct_excess_of_the_optimum_is_zero_and_model_errors_unchanged():
  sched = schedules.make_schedule("white", 100, "linear", (H, W, 1), data_psd=PSD)
  x0 = noise.colored_noise(jax.random.key(6), (64, H, W, 1), VAR)
  opt = gaussian.optimal_eps_model(sched, VAR)
  t = np.array([0, 50, 99])
  errs = gaussian.eps_errors(opt, None, sched, x0, t, jax.random.key(7), batch_size=32,
                             reference_fn=opt)
  assert np.all(errs["distance"] == 0.0)
  np.testing.assert_array_equal(errs["model"], errs["reference"])
  # the model's error does not depend on whether a reference rides along
  alone = gaussian.model_eps_mse(opt, None, sched, x0, t, jax.random.key(7), batch_size=32)
  np.testing.assert_allclose(alone, errs["model"], rtol=1e-6)

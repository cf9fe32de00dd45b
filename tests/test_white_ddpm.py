"""White noise must reproduce textbook DDPM (Ho et al. 2020) exactly, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import diffusion, schedules, spectra

T = 1000
SHAPE = (4, 8, 8, 3)


def textbook(beta_schedule):
  """Ho et al.'s closed forms in NumPy float64 (their t = ours + 1)."""
  if beta_schedule == "linear":
    betas = np.linspace(1e-4, 0.02, T)
  else:  # Nichol & Dhariwal
    s = 0.008
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
  alphas = 1 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.append(1.0, abar[:-1])
  return dict(
      betas=betas, abar=abar,
      coef_x0=betas * np.sqrt(abar_prev) / (1 - abar),            # eq. 7
      coef_xt=(1 - abar_prev) * np.sqrt(alphas) / (1 - abar),      # eq. 7
      var=betas * (1 - abar_prev) / (1 - abar),                    # beta tilde
      alphas=alphas, abar_prev=abar_prev)


def rel_err(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.mark.parametrize("beta_schedule", ["linear", "cosine"])
def test_white_matches_ho_closed_forms(x64, beta_schedule):
  ref = textbook(beta_schedule)
  sched = schedules.make_schedule("white", T, beta_schedule, SHAPE[1:], dtype=jnp.float64)
  assert sched.is_white and sched.spectrum.dtype == jnp.float64
  assert rel_err(sched.betas, ref["betas"]) < 1e-10
  assert rel_err(sched.alphas_cumprod, ref["abar"]) < 1e-10

  rng = np.random.default_rng(0)
  x0 = jnp.asarray(rng.uniform(-1, 1, SHAPE))
  eps = jnp.asarray(rng.standard_normal(SHAPE))
  z = jnp.asarray(rng.standard_normal(SHAPE))
  eps_hat = jnp.asarray(rng.standard_normal(SHAPE))
  for t in [0, 1, 17, 500, T - 1]:
    tt = jnp.full((SHAPE[0],), t)
    a, ab = np.sqrt(ref["abar"][t]), ref["abar"][t]
    # q(x_t | x_0), eq. 4
    x_t = diffusion.q_sample(sched, x0, tt, eps)
    x_t_ref = a * np.asarray(x0) + np.sqrt(1 - ab) * np.asarray(eps)
    assert rel_err(x_t, x_t_ref) < 1e-10
    # posterior q(x_{t-1} | x_t, x_0), eq. 6-7
    mean, var = diffusion.posterior_mean_variance(sched, x_t, x0, tt)
    mean_ref = ref["coef_x0"][t] * np.asarray(x0) + ref["coef_xt"][t] * x_t_ref
    assert rel_err(mean, mean_ref) < 1e-10
    if t > 0:
      assert rel_err(var[0, 0, 0, 0], ref["var"][t]) < 1e-10
    else:
      assert float(var[0, 0, 0, 0]) == 0.0
    # the ancestral step, Algorithm 2: mu = (x_t - beta/sqrt(1-abar) eps)/sqrt(alpha)
    step = diffusion.reverse_step(sched, x_t, tt, eps_hat, z)
    mu = (x_t_ref - ref["betas"][t] / np.sqrt(1 - ab) * np.asarray(eps_hat)) / np.sqrt(
        ref["alphas"][t])
    step_ref = mu + (np.sqrt(ref["var"][t]) * np.asarray(z) if t > 0 else 0.0)
    assert rel_err(step, step_ref) < 1e-9
    # DDIM (Song et al. 2021, eq. 12, eta = 0) to s = t - 1
    ddim = diffusion.ddim_step(sched, x_t, tt, tt - 1, eps_hat)
    x0_hat = (x_t_ref - np.sqrt(1 - ab) * np.asarray(eps_hat)) / a
    ddim_ref = (np.sqrt(ref["abar_prev"][t]) * x0_hat
                + np.sqrt(1 - ref["abar_prev"][t]) * np.asarray(eps_hat))
    assert rel_err(ddim, ddim_ref) < 1e-9


def test_flat_spectrum_through_fourier_path_equals_white(x64):
  """A coloured schedule whose spectrum is flat runs the rfft2/irfft2 code path; it must
  give white DDPM up to float64 rounding."""
  h, w = SHAPE[1:3]
  flat = np.ones((h, w // 2 + 1))
  sched = schedules.make_schedule("matched", T, "linear", SHAPE[1:], data_psd=flat,
                                  dtype=jnp.float64)
  white = schedules.make_schedule("white", T, "linear", SHAPE[1:], dtype=jnp.float64)
  assert not sched.is_white
  np.testing.assert_allclose(sched.spectrum, 1.0, rtol=1e-12)
  rng = np.random.default_rng(1)
  x0, eps, eps_hat, z = (jnp.asarray(rng.standard_normal(SHAPE)) for _ in range(4))
  t = jnp.asarray([0, 3, 400, T - 1])
  for fn in [lambda s: diffusion.q_sample(s, x0, t, eps),
             lambda s: diffusion.reverse_step(s, x0, t, eps_hat, z),
             lambda s: diffusion.ddim_step(s, x0, t, t - 1, eps_hat),
             lambda s: diffusion.ddim_step(s, x0, t, jnp.maximum(t - 7, -1), eps_hat, z, eta=0.5),
             lambda s: diffusion.training_target(s, x0, t, eps, "v"),
             lambda s: diffusion.training_target(s, x0, t, eps, "flow"),
             lambda s: diffusion.predict_eps_and_x0(s, x0, t, eps_hat, "v")[1]]:
    np.testing.assert_allclose(fn(sched), fn(white), rtol=0, atol=1e-10)


def test_white_noise_is_eps_and_textbook_loss(x64):
  sched = schedules.make_schedule("white", 50, "linear", SHAPE[1:], dtype=jnp.float64)
  rng = np.random.default_rng(2)
  x0, eps, out = (jnp.asarray(rng.standard_normal(SHAPE)) for _ in range(3))
  t = jnp.asarray([0, 10, 20, 49])
  eta, target = diffusion.forward_noise(sched, t, eps)
  assert np.array_equal(eta, eps) and np.array_equal(target, eps)
  loss = diffusion.loss_per_example(sched, out, x0, t, eps)
  np.testing.assert_allclose(loss, np.mean((np.asarray(out) - np.asarray(eps)) ** 2,
                                           axis=(1, 2, 3)), rtol=1e-6)
  # v objective: Salimans & Ho, v = a eps - sigma x0.
  ab = np.asarray(sched.alphas_cumprod)[np.asarray(t)][:, None, None, None]
  v_ref = np.sqrt(ab) * np.asarray(eps) - np.sqrt(1 - ab) * np.asarray(x0)
  np.testing.assert_allclose(diffusion.training_target(sched, x0, t, eps, "v"), v_ref,
                             rtol=1e-12, atol=1e-12)


def test_grid_mean_counts_half_plane(x64):
  """The mean over the full grid weights interior rfft columns twice."""
  for h, w in [(8, 8), (7, 9), (6, 5)]:
    full = np.random.default_rng(h * w).uniform(1, 2, (h, w))
    full = 0.5 * (full + np.roll(full[::-1, ::-1], (1, 1), axis=(0, 1)))  # S(k) = S(-k)
    half = full[:, : w // 2 + 1]
    np.testing.assert_allclose(spectra.grid_mean(jnp.asarray(half), w), full.mean(), rtol=1e-12)

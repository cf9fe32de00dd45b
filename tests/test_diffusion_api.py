"""Everything jits, works on batches, 1 and 3 channels, odd and even (and non-square)
sizes; objectives invert exactly; bad input gets a clear error."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import diffusion, samplers, schedules, spectra

SIZES = [(8, 8), (9, 9), (7, 10)]


def build(name, h, w, c, T=30):
  psd = spectra.power_law_grid(h, w, 2.0) if name != "white" else None
  kwargs = {"num_bands": 3} if name in ("band_annealed", "blog") else {}
  return schedules.make_schedule(name, T, "linear", (h, w, c), data_psd=psd, **kwargs)


@pytest.mark.parametrize("h,w", SIZES)
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("name", ["white", "matched", "annealed", "band_annealed", "blog"])
def test_all_ops_jit_on_batches(name, h, w, c):
  sched = build(name, h, w, c)
  rng = np.random.default_rng(0)
  b = 3
  x0, eps, out, z = (jnp.asarray(rng.standard_normal((b, h, w, c)), jnp.float32)
                     for _ in range(4))
  t = jnp.asarray([0, 7, 29])

  @jax.jit
  def everything(s, x0, eps, out, z, t):
    x_t = diffusion.q_sample(s, x0, t, eps)
    results = [x_t, diffusion.reverse_step(s, x_t, t, out, z),
               diffusion.reverse_step(s, x_t, t, out, z, clip_x0=True),
               diffusion.ddim_step(s, x_t, t, t - 1, out),
               diffusion.ddim_step(s, x_t, t, jnp.maximum(t - 5, -1), out, z, eta=1.0)]
    for objective in diffusion.OBJECTIVES:
      results.append(diffusion.training_target(s, x0, t, eps, objective))
      results.extend(diffusion.predict_eps_and_x0(s, x_t, t, out, objective))
      results.append(diffusion.loss_per_example(s, out, x0, t, eps, objective)[:, None, None, None]
                     * jnp.ones_like(x0))
    return results

  results = everything(sched, x0, eps, out, z, t)
  for r in results:
    assert r.shape == (b, h, w, c) and r.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(r)))
  # jitted == eager, and a batch equals its examples one by one
  eager = diffusion.q_sample(sched, x0, t, eps)
  np.testing.assert_allclose(results[0], eager, rtol=1e-5, atol=1e-5)
  single = diffusion.q_sample(sched, x0[1:2], t[1], eps[1:2])
  np.testing.assert_allclose(single[0], eager[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("objective", diffusion.OBJECTIVES)
@pytest.mark.parametrize("name", ["white", "annealed", "blog"])
def test_objectives_invert_exactly(name, objective):
  """The target for (x0, eps), fed back as the prediction, returns eps and x0."""
  with jax.enable_x64(True):
    h, w, c = 9, 8, 2
    psd = spectra.power_law_grid(h, w, 2.0) if name != "white" else None
    sched = schedules.make_schedule(name, 50, "cosine", (h, w, c), data_psd=psd,
                                    dtype=jnp.float64)
    rng = np.random.default_rng(1)
    x0, eps = (jnp.asarray(rng.standard_normal((4, h, w, c))) for _ in range(2))
    t = jnp.asarray([0, 10, 30, 49])
    x_t = diffusion.q_sample(sched, x0, t, eps)
    target = diffusion.training_target(sched, x0, t, eps, objective)
    eps_hat, x0_hat = diffusion.predict_eps_and_x0(sched, x_t, t, target, objective)
    _, eps_target = diffusion.forward_noise(sched, t, eps)
    np.testing.assert_allclose(x0_hat, x0, atol=1e-8)
    np.testing.assert_allclose(eps_hat, eps_target, atol=1e-8)
    assert float(jnp.max(diffusion.loss_per_example(sched, target, x0, t, eps, objective))) < 1e-16


def test_ddim_eta1_single_step_is_ancestral():
  """DDIM with eta = 1 and s = t - 1 is the ancestral step (same noise)."""
  h, w, c = 8, 8, 3
  sched = build("annealed", h, w, c, T=100)
  rng = np.random.default_rng(2)
  x, e, z = (jnp.asarray(rng.standard_normal((2, h, w, c)), jnp.float32) for _ in range(3))
  t = jnp.asarray([5, 60])
  a = diffusion.reverse_step(sched, x, t, e, z)
  b = diffusion.ddim_step(sched, x, t, t - 1, e, z, eta=1.0)
  np.testing.assert_allclose(a, b, atol=2e-4, rtol=1e-4)


def test_reverse_step_at_t0_returns_x0_hat():
  sched = build("matched", 8, 8, 1, T=40)
  x = jnp.ones((2, 8, 8, 1))
  e = jnp.zeros_like(x)
  np.testing.assert_allclose(diffusion.reverse_step(sched, x, jnp.asarray(0), e, e + 5.0),
                             diffusion.x0_from_eps(sched, x, jnp.asarray(0), e), atol=1e-6)


def test_sampler_scan_runs_and_is_deterministic():
  h, w, c = 8, 8, 3
  sched = build("annealed", h, w, c, T=30)
  model = lambda params, x, t: params * x  # noqa: E731
  fn = jax.jit(functools.partial(samplers.sample, model, shape=(4, h, w, c), sampler="ddpm"))
  a = fn(0.1, jax.random.key(0), schedule=sched)
  b = fn(0.1, jax.random.key(0), schedule=sched)
  d = fn(0.1, jax.random.key(1), schedule=sched)
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, d) and a.shape == (4, h, w, c)
  ddim = samplers.sample(model, 0.1, jax.random.key(0), schedule=sched, shape=(4, h, w, c),
                         sampler="ddim", num_steps=7, eta=0.3)
  assert ddim.shape == (4, h, w, c) and np.all(np.isfinite(ddim))
  assert list(samplers.ddim_timesteps(30, 4)) == [29, 19, 10, 0]


@pytest.mark.parametrize("kwargs,match", [
    (dict(sampler="euler"), "sampler='euler'"),
    (dict(sampler="ddim", num_steps=0), "num_steps=0"),
    (dict(sampler="ddim", num_steps=31), "num_steps=31"),
    (dict(objective="score"), "objective='score'"),
    (dict(sampler="ddim", eta=1.5), "eta=1.5"),
])
def test_sampler_bad_input(kwargs, match):
  sched = build("white", 8, 8, 1, T=30)
  with pytest.raises(ValueError, match=match):
    samplers.sample(lambda p, x, t: x, None, jax.random.key(0), schedule=sched,
                    shape=(1, 8, 8, 1), **kwargs)


def test_wrong_image_size_or_rank_named():
  sched = build("white", 8, 8, 1)
  with pytest.raises(ValueError, match=r"spatial size \(9, 9\)"):
    diffusion.q_sample(sched, jnp.zeros((1, 9, 9, 1)), 0, jnp.zeros((1, 9, 9, 1)))
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    diffusion.q_sample(sched, jnp.zeros((8, 8, 1)), 0, jnp.zeros((8, 8, 1)))

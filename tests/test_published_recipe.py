"""The published recipe (``blog``), its corrected variant, and the edge checks.

One test per finding of the float64 audit (F1-F7); each fails on the code before the
fix. Exact-denoiser sampling of every family at its defaults, DC included, is in
``test_sampler_exact.py``.
"""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import diffusion, noise, samplers, schedules, spectra

H = W = 16
C = 2
PSD = spectra.power_law_grid(H, W, 2.0)
# Per-frequency data variance with a real DC term: per-image means vary (std 0.1 per
# pixel-mean), as in image data.
DATA_VAR = 0.3 * PSD / spectra.grid_mean(PSD, W)


def _dc_exact_model(sched, v):
  """The Bayes-optimal eps predictor for Gaussian data of variance ``v`` per frequency,
  given the schedule's own forward noise. For a standardised schedule DC is never
  noised, so the optimal prediction there is 0 (x_t's DC is a_t x0's DC)."""
  v = jnp.asarray(v, jnp.float32)[None, :, :, None]

  def model_fn(params, x, t):
    del params
    a2 = sched.alphas_cumprod[t][:, None, None, None]
    sig2 = (1 - a2) * sched.spectrum_at(t)[..., None]
    gain = jnp.sqrt(sig2) / (a2 * v + sig2)
    if sched.standardize:
      gain = gain.at[:, 0, 0, :].set(0.0)
    return spectra.irfft2(gain * spectra.rfft2(x), H, W)
  return model_fn


def _per_image_mean_std(sched, sampler, num_steps=None, eta=0.0, n=512):
  fn = jax.jit(functools.partial(samplers.sample, _dc_exact_model(sched, DATA_VAR), None,
                                 shape=(n, H, W, C), sampler=sampler, num_steps=num_steps,
                                 eta=eta))
  x = np.asarray(fn(jax.random.key(0), schedule=sched), np.float64)
  return float(x.mean(axis=(1, 2)).std())


# F1 ------------------------------------------------------------------------------


def test_f1_blog_default_is_gaussian_and_noises_dc():
  sched = schedules.make_schedule("blog", 1000, "linear", (H, W, C), data_psd=PSD)
  assert sched.gaussian and not sched.standardize
  eps = jax.random.normal(jax.random.key(1), (256, H, W, C))
  for t in (999, 500, 10):
    eta, _ = diffusion.forward_noise(sched, jnp.full((256,), t), eps)
    dc = np.asarray(spectra.rfft2(eta))[:, 0, 0, :]
    # E|DC|^2 = S_t(DC) exactly (Gaussian): 512 draws, standard error sqrt(2/512)
    ratio = np.mean(np.abs(dc) ** 2) / float(sched.spectrum[t, 0, 0])
    assert abs(ratio - 1) < 5 * np.sqrt(2 / 512), (t, ratio)


def test_f1_blog_samples_reproduce_per_image_mean_spread():
  """Default blog: per-image means spread like the data's (std sqrt(v_DC / HW))."""
  sched = schedules.make_schedule("blog", 1000, "linear", (H, W, C), data_psd=PSD)
  want = np.sqrt(DATA_VAR[0, 0] / (H * W))
  n = 512
  for sampler, steps, eta in (("ddpm", None, 0.0), ("ddim", 100, 1.0)):
    got = _per_image_mean_std(sched, sampler, steps, eta, n)
    # std of a sample std over n * C = 1024 draws: ~ want / sqrt(2 * 1024); plus the
    # sampler's O(1/T) discretisation error (< 5%, test_sampler_exact)
    assert abs(got / want - 1) < 0.05 + 5 / np.sqrt(2 * n * C), (sampler, got, want)


def test_f1_standardized_blog_sampler_adds_no_dc_noise():
  """With per-sample standardisation the forward process never noises DC; the sampler
  must not either (before the fix the per-image means had std 13-17, data 0.1)."""
  sched = schedules.make_schedule("blog", 1000, "linear", (H, W, C), data_psd=PSD,
                                  standardize=True)
  for sampler, steps, eta in (("ddpm", None, 0.0), ("ddim", 100, 1.0), ("ddim", 50, 0.0)):
    assert _per_image_mean_std(sched, sampler, steps, eta, 64) < 1e-4, (sampler, steps, eta)


# F2 ------------------------------------------------------------------------------


def test_f2_guardrail_only_below_t_knee():
  pibar = np.array([0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01])
  u = np.linspace(0, 1, 101)            # u = t / (T - 1); tau = 1 - u
  tau = 1 - u
  w = schedules.blog_band_weights(pibar, u, t_knee=0.15)
  pure = schedules.blog_band_weights(pibar, u, t_knee=0.0)
  above = tau >= 0.15
  np.testing.assert_allclose(w[above], pure[above], rtol=1e-12)  # pure softmax above
  np.testing.assert_allclose(w[np.argmin(tau)], 1 / 8, rtol=1e-12)  # all 1/B at tau = 0
  i = np.argmin(np.abs(tau - 0.07))      # below the knee: blended in proportion
  m = tau[i] / 0.15
  np.testing.assert_allclose(w[i], (1 - m) / 8 + m * pure[i], rtol=1e-9)


# F3 ------------------------------------------------------------------------------


def test_f3_direction_is_its_own_option():
  pibar = np.array([0.5, 0.2, 0.1, 0.08, 0.05, 0.04, 0.02, 0.01])
  u = np.linspace(0, 1, 11)
  formula = schedules.blog_band_weights(pibar, u, t_knee=0.0, direction="formula")
  text = schedules.blog_band_weights(pibar, u, t_knee=0.0, direction="text")
  np.testing.assert_allclose(text, formula[::-1], rtol=1e-12)  # the ramp reversed in time
  # text: at the noise end (u = 1, tau = 0) low bands carry more weight than at the
  # data end; the formula does the opposite
  assert text[-1, 0] > text[0, 0] and formula[-1, 0] < formula[0, 0]
  # the time convention still moves the guardrail with the ramp
  flow = schedules.blog_band_weights(pibar, u, t_knee=0.15, time_convention="flow")
  ddpm = schedules.blog_band_weights(pibar, u, t_knee=0.15, time_convention="ddpm")
  np.testing.assert_allclose(flow[-1], 1 / 8)
  np.testing.assert_allclose(ddpm[0], 1 / 8)
  with pytest.raises(ValueError, match="direction='up'"):
    schedules.blog_band_weights(pibar, u, direction="up")


def test_corrected_variant_is_white_at_noise_gaussian_and_valid():
  for alpha in (1.0, 2.0, 3.0):
    psd = spectra.power_law_grid(32, 32, alpha)
    sched = schedules.make_schedule("blog_corrected", 1000, "linear", (32, 32, 3),
                                    data_psd=psd)  # raises if the chain breaks
    assert sched.gaussian and not sched.standardize and sched.min_margin > 0
    np.testing.assert_allclose(sched.spectrum[-1], 1.0, rtol=1e-5)  # white guardrail
    s0 = np.asarray(sched.spectrum[0])
    spec = spectra.BandSpec(num_bands=8, f_max=0.5)
    sizes = spectra.band_sizes(32, 32, spec)
    sizes[0] += 1  # DC joins band 0
    w = np.asarray(spectra.band_average(jnp.asarray(s0), spec, 32)) * sizes / 32**2
    # text direction at the data end (tau = 1): the softmax of the importance alone,
    # softmax(beta g_b), no band penalty
    masks = spectra.band_masks(32, 32, spec)
    pibar = np.einsum("hw,bhw->b", psd * spectra.rfft_multiplicity(32, 32), masks)
    g = (pibar / pibar.sum() + 1e-6) ** -0.5
    g = g / g.mean()
    np.testing.assert_allclose(w, np.exp(g) / np.exp(g).sum(), rtol=1e-4)
    r = np.asarray(sched.spectrum)
    assert (r.max(axis=(1, 2)) / r.min(axis=(1, 2))).max() <= 1e3 * (1 + 1e-5)


# F4 ------------------------------------------------------------------------------


def test_f4_band_mode_leaves_dc_out_of_the_bands():
  psd = PSD.copy()
  big_dc = psd.copy()
  big_dc[0, 0] = 1e4 * psd.max()          # a bright mean must not move band 0's share
  ctx = lambda p: schedules.SpectrumContext(H, W, 10, p)  # noqa: E731
  a = schedules.base_spectrum(ctx(psd), "matched", mode="band", floor=0.0)
  b = schedules.base_spectrum(ctx(big_dc), "matched", mode="band", floor=0.0)
  np.testing.assert_allclose(a, b, rtol=1e-12)
  spec = schedules.band_mode_spec(8)
  masks = spectra.band_masks(H, W, spec)
  mult = spectra.rfft_multiplicity(H, W)
  pi = np.einsum("hw,bhw->b", psd * mult, masks)
  np.testing.assert_allclose(np.einsum("hw,bhw->b", a * mult, masks), pi / pi.sum(),
                             rtol=1e-12)
  assert a[0, 0] == pytest.approx(pi[0] / pi.sum() / spectra.band_sizes(H, W, spec)[0])


# F5 ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,opts", [("matched", dict(gamma=2.0)),
                                       ("annealed", dict(gamma_T=0.0, gamma_0=2.0))])
def test_f5_cap_is_on_the_noise_spectrum(name, opts):
  psd = spectra.power_law_grid(32, 32, 3.0)
  sched = schedules.make_schedule(name, 1000, "linear", (32, 32, 1), data_psd=psd,
                                  max_ratio=100.0, ddim_only=True, **opts)
  s = np.asarray(sched.spectrum, np.float64)
  ratio = s.max(axis=(1, 2)) / s.min(axis=(1, 2))
  assert ratio.max() == pytest.approx(100.0, rel=1e-4)   # not 100^gamma = 1e4
  assert np.all(ratio <= 100.0 * (1 + 1e-5))


def test_f5_no_cap_is_none():
  psd = spectra.power_law_grid(32, 32, 3.0)
  sched = schedules.make_schedule("matched", 100, "linear", (32, 32, 1), data_psd=psd,
                                  max_ratio=None)
  s = np.asarray(sched.spectrum)
  assert s.max() / s.min() > 1e3


# F7 ------------------------------------------------------------------------------


def _white(T=100):
  return schedules.make_schedule("white", T, "linear", (8, 8, 1))


@pytest.mark.parametrize("t", [100, -1, 250])
def test_f7_timestep_out_of_range_named(t):
  sched = _white()
  x = jnp.zeros((1, 8, 8, 1))
  with pytest.raises(ValueError, match=f"t={t} is outside"):
    diffusion.q_sample(sched, x, jnp.array([t]), x)


def test_f7_ddim_step_needs_s_below_t():
  sched = _white()
  x = jnp.zeros((1, 8, 8, 1))
  with pytest.raises(ValueError, match="s < t"):
    diffusion.ddim_step(sched, x, 10, 20, x)
  with pytest.raises(ValueError, match="s=-5 is outside"):
    diffusion.ddim_step(sched, x, 10, -5, x)
  assert diffusion.ddim_step(sched, x, 10, -1, x).shape == x.shape


def test_f7_normalize_spectrum_checks_width():
  s = np.ones((8, 5))
  with pytest.raises(ValueError, match="width=10"):
    noise.normalize_spectrum(s, 10)
  asym = np.ones((8, 5))
  asym[1, 4] = 2.0                        # not symmetric in the Nyquist column of W = 8
  with pytest.raises(ValueError, match="not symmetric"):
    noise.normalize_spectrum(asym, 8)
  assert float(spectra.grid_mean(noise.normalize_spectrum(asym, 9), 9)) == pytest.approx(1.0)


def test_f7_power_law_fit_names_a_zero_bin():
  freqs = np.array([0.0, 0.1, 0.2, 0.3, 0.4])
  with pytest.raises(ValueError, match="f=0.3"):
    spectra.fit_power_law(freqs, np.array([5.0, 1.0, 0.5, 0.0, 0.1]))


def test_f7_band_powers_of_a_constant_image():
  images = np.ones((3, 8, 8, 1), np.float32)
  images[0] = np.random.default_rng(0).normal(size=(8, 8, 1))
  with pytest.raises(ValueError, match=re.escape("image 1 (of 2 such) has no power")):
    spectra.image_band_powers(jnp.asarray(images), 4)
  traced = jax.jit(lambda x: spectra.image_band_powers(x, 4))(jnp.asarray(images))
  assert np.all(np.isnan(np.asarray(traced)[1:])) and np.isclose(np.sum(traced[0]), 1.0)


def test_f7_per_channel_spectrum_when_rfft_width_equals_channels():
  # 3x4 RGB: H = W // 2 + 1 = C = 3
  spec = np.ones((3, 3, 3))
  spec[..., 1] = 4.0
  x = noise.colored_noise(jax.random.key(0), (4096, 3, 4, 3), spec)
  var = np.asarray(x, np.float64).var(axis=(0, 1, 2))
  np.testing.assert_allclose(var, [1.0, 4.0, 1.0], rtol=0.05)
  with pytest.raises(ValueError, match="C = 3"):
    noise.colored_noise(jax.random.key(0), (2, 3, 4, 2), spec)

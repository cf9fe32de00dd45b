"""The sampler is exact where the answer is known.

Data: Gaussian with covariance diagonal in the Fourier basis (per-frequency variance
``v_k``). Then ``E[eps | x_t]`` has a closed form per frequency,
``E_hat = sigma_k / (a^2 v_k + sigma_k^2) Y_t``, and sampling with that predictor must
give back the data spectrum. Two independent checks per schedule and sampler:

1. Maths: a float64 NumPy recursion of the sampler's per-frequency variance, written
   from the method's formulas (not from the library), ends within the discretisation
   error of ``v_k`` (which halves when T doubles). A sampler with the wrong posterior
   (``S_t`` in place of ``S_{t-1}``) fails the same bound.
2. Code: samples from the library's jitted sampler have, per frequency, the variance
   that recursion predicts, within a tolerance set by the number of samples.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import samplers, schedules, spectra

H = W = 16
C = 2
N = 1000
DATA_VAR = 0.3 * spectra.power_law_grid(H, W, 2.0) / spectra.grid_mean(
    spectra.power_law_grid(H, W, 2.0), W)
PSD = spectra.power_law_grid(H, W, 2.0)
SCHEDULES = {
    "white": {},
    "matched": {},
    "annealed": {},
    "annealed_1_to_0": dict(name="annealed", gamma_T=1.0, gamma_0=0.0, path="cosine"),
    "band_annealed": {},
    "blog": {},  # the published recipe at its defaults (Gaussian since the DC fix)
    "blog_corrected": {},
}


def make(label, num_timesteps=1000):
  opts = dict(SCHEDULES[label])
  name = opts.pop("name", label)
  return schedules.make_schedule(name, num_timesteps, "linear", (H, W, C), data_psd=PSD, **opts)


def _arrays(sched):
  T = sched.num_timesteps
  betas = np.asarray(sched.betas, np.float64)
  abar = np.cumprod(1 - betas)
  s = np.broadcast_to(np.asarray(sched.spectrum, np.float64), (T, H, W // 2 + 1))
  return betas, abar, s


def ancestral_variance(sched, v, wrong_posterior=False):
  """Per-frequency variance after ancestral sampling with the optimal predictor."""
  betas, abar, s = _arrays(sched)
  var = (1 - abar[-1]) * s[-1]
  for t in range(sched.num_timesteps - 1, -1, -1):
    a_t, sig2_t = np.sqrt(abar[t]), (1 - abar[t]) * s[t]
    abar_s = abar[t - 1] if t > 0 else 1.0
    s_prev = s[t] if wrong_posterior else s[max(t - 1, 0)]
    sig2_s = (1 - abar_s) * s_prev
    alpha_ts = np.sqrt(1 - betas[t])
    cond = sig2_t - alpha_ts**2 * sig2_s
    x0_gain = a_t * v / (a_t**2 * v + sig2_t)           # Y0_hat = x0_gain * Y_t
    gain = alpha_ts * sig2_s / sig2_t + np.sqrt(abar_s) * cond / sig2_t * x0_gain
    var = gain**2 * var + cond * sig2_s / sig2_t
  return var


def ddim_variance(sched, v, num_steps):
  """Per-frequency variance after deterministic DDIM with the optimal predictor."""
  _, abar, s = _arrays(sched)
  steps = samplers.ddim_timesteps(sched.num_timesteps, num_steps)
  var = (1 - abar[-1]) * s[-1]
  for i, t in enumerate(steps):
    nxt = steps[i + 1] if i + 1 < len(steps) else -1
    a_t, sd_t = np.sqrt(abar[t]), np.sqrt((1 - abar[t]) * s[t])
    a_s = np.sqrt(abar[nxt]) if nxt >= 0 else 1.0
    sd_s = np.sqrt((1 - abar[nxt]) * s[nxt]) if nxt >= 0 else 0.0
    gain = (a_s * a_t * v + sd_s * sd_t) / (a_t**2 * v + sd_t**2)
    var = gain**2 * var
  return var


def optimal_eps(sched, v):
  v = jnp.asarray(v, jnp.float32)[None, :, :, None]

  def model_fn(params, x, t):
    del params
    a2 = sched.alphas_cumprod[t][:, None, None, None]
    sig2 = (1 - a2) * (1.0 if sched.is_white else sched.spectrum_at(t)[..., None])
    y = spectra.rfft2(x)
    return spectra.irfft2(jnp.sqrt(sig2) / (a2 * v + sig2) * y, H, W)
  return model_fn


def sample(sched, sampler, num_steps=None, seed=0):
  fn = jax.jit(functools.partial(samplers.sample, optimal_eps(sched, DATA_VAR), None,
                                 shape=(N, H, W, C), sampler=sampler, num_steps=num_steps),
               static_argnames=())
  return fn(jax.random.key(seed), schedule=sched)


def empirical_z(samples, expected):
  """Per-frequency z-scores of the sample power against ``expected`` (see test_noise)."""
  power = np.asarray(spectra.power_spectrum(samples, channel_mean=False), np.float64)
  mean = power.mean(axis=(0, 3))
  n = samples.shape[0] * samples.shape[3]
  self_conj = np.zeros_like(mean, bool)
  self_conj[[0, 0, H // 2, H // 2], [0, -1, 0, -1]] = True
  stderr = np.where(self_conj, np.sqrt(2 / n), np.sqrt(1 / n))
  return (mean / expected - 1) / stderr


@pytest.mark.parametrize("label", sorted(SCHEDULES))
def test_maths_ancestral_recovers_data_spectrum(label):
  dev = {}
  for T in (1000, 2000):
    ratio = ancestral_variance(make(label, T), DATA_VAR) / DATA_VAR
    dev[T] = np.max(np.abs(ratio - 1))
  assert dev[1000] < 0.05, dev            # discretisation error at T = 1000
  assert 0.4 < dev[2000] / dev[1000] < 0.6  # ... and it is O(1/T)
  if make(label).time_varying:
    wrong = ancestral_variance(make(label), DATA_VAR, wrong_posterior=True) / DATA_VAR
    # the bound has the power to catch a bug: the wrong posterior is clearly worse
    assert np.max(np.abs(wrong - 1)) > max(1.5 * dev[1000], 0.02), (np.max(np.abs(wrong - 1)),
                                                                     dev)


@pytest.mark.parametrize("label", sorted(SCHEDULES))
def test_maths_ddim_recovers_data_spectrum(label):
  dev = {n: np.max(np.abs(ddim_variance(make(label), DATA_VAR, n) / DATA_VAR - 1))
         for n in (1000, 500)}
  assert dev[1000] < 0.02, dev
  assert 1.6 < dev[500] / dev[1000] < 2.4  # O(1 / steps)


@pytest.mark.parametrize("label", ["white", "matched", "annealed", "blog", "blog_corrected"])
def test_ancestral_samples_have_predicted_spectrum(label):
  sched = make(label)
  samples = sample(sched, "ddpm")
  expected = ancestral_variance(sched, DATA_VAR)
  z = empirical_z(samples, expected)
  assert np.max(np.abs(z)) < 5.0, np.max(np.abs(z))  # Bonferroni over 144 coefficients
  # (per coefficient n = N * C = 2000 draws: standard error 2.2%)
  assert abs(np.sum(z**2) - z.size) < 5 * np.sqrt(2 * z.size)
  # and therefore the data spectrum, up to the <5% discretisation error checked above
  band = spectra.BandSpec(num_bands=4)
  got = np.asarray(spectra.band_average(jnp.mean(spectra.power_spectrum(samples), 0), band, W))
  want = np.asarray(spectra.band_average(jnp.asarray(DATA_VAR), band, W))
  np.testing.assert_allclose(got, want, rtol=0.06)


@pytest.mark.parametrize("label,num_steps", [("white", 1000), ("annealed", 1000),
                                             ("matched", 100), ("annealed_1_to_0", 50)])
def test_ddim_samples_have_predicted_spectrum(label, num_steps):
  sched = make(label)
  samples = sample(sched, "ddim", num_steps)
  z = empirical_z(samples, ddim_variance(sched, DATA_VAR, num_steps))
  assert np.max(np.abs(z)) < 5.0, np.max(np.abs(z))
  assert abs(np.sum(z**2) - z.size) < 5 * np.sqrt(2 * z.size)

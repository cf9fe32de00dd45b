"""Schedules: families, normalisation, forward-chain validity, bad input."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fans_jax import diffusion, schedules, spectra

H = W = 32
PSDS = {f"pltb{a:g}": spectra.power_law_grid(H, W, a) for a in (1.0, 2.0, 3.0)}


def cifar_psd(shared_data_dir):
  images = np.load(shared_data_dir / "cifar10_test_uint8.npz")["images"][:5000]
  batches = (images[i:i + 1000].astype(np.float32) / 127.5 - 1 for i in range(0, 5000, 1000))
  return spectra.accumulate_spectrum(batches).psd


@pytest.mark.parametrize("family", schedules.spectrum_family_names())
@pytest.mark.parametrize("beta_schedule", ["linear", "cosine"])
@pytest.mark.parametrize("psd_name", sorted(PSDS))
def test_every_family_default_is_valid(family, beta_schedule, psd_name):
  sched = schedules.make_schedule(family, 1000, beta_schedule, (H, W, 3), data_psd=PSDS[psd_name])
  assert sched.min_margin > 0 and not sched.ddim_only
  check_schedule_invariants(sched)


def test_every_family_default_is_valid_on_cifar(shared_data_dir):
  psd = cifar_psd(shared_data_dir)
  for family in schedules.spectrum_family_names():
    for beta_schedule in ("linear", "cosine"):
      sched = schedules.make_schedule(family, 1000, beta_schedule, (H, W, 3), data_psd=psd)
      assert sched.min_margin > 0, (family, beta_schedule)


def check_schedule_invariants(sched):
  s = np.asarray(sched.spectrum, np.float64)
  assert s.shape[1:] == (H, W // 2 + 1) and s.shape[0] in (1, sched.num_timesteps)
  np.testing.assert_allclose(spectra.grid_mean(s, W), 1.0, rtol=1e-5)
  assert np.all(s > 0)
  # independent check: per-frequency log-SNR strictly decreases in t
  lsnr = schedules.noise_log_snr(sched.alphas_cumprod, np.broadcast_to(
      s, (sched.num_timesteps,) + s.shape[1:]))
  assert np.all(np.diff(lsnr, axis=0) < 0)


def test_time_invariance_flags():
  m = schedules.make_schedule("matched", 100, "linear", (H, W), data_psd=PSDS["pltb2"])
  a = schedules.make_schedule("annealed", 100, "linear", (H, W), data_psd=PSDS["pltb2"])
  assert not m.time_varying and a.time_varying and a.spectrum.shape[0] == 100
  # matched(gamma=0) is white noise, gamma=1 follows the data spectrum (EqualSNR)
  flat = schedules.make_schedule("matched", 100, "linear", (H, W), data_psd=PSDS["pltb2"],
                                 gamma=0.0)
  np.testing.assert_allclose(flat.spectrum, 1.0, rtol=1e-6)
  radius = spectra.radial_frequency(H, W)
  sel = (radius > 0.05) & (radius < 0.45)  # inside the 1e3 cap
  ratio = np.asarray(m.spectrum[0])[sel] / PSDS["pltb2"][sel]
  assert ratio.std() / ratio.mean() < 0.05
  # annealed goes from white at t = T-1 (gamma_T = 0) to matched at t = 0 (gamma_0 = 1)
  np.testing.assert_allclose(a.spectrum[-1], 1.0, rtol=1e-5)
  np.testing.assert_allclose(a.spectrum[0], m.spectrum[0], rtol=1e-4)


def first_violation(sched_kwargs):
  """Independent computation of the first t whose log-SNR fails to decrease."""
  sched = schedules.make_schedule(ddim_only=True, **sched_kwargs)
  s = np.broadcast_to(np.asarray(sched.spectrum, np.float64),
                      (sched.num_timesteps,) + sched.spectrum.shape[1:])
  lsnr = schedules.noise_log_snr(sched.alphas_cumprod, s)
  bad = np.diff(lsnr, axis=0) >= 0
  return int(np.argmax(bad.any(axis=(1, 2)))) + 1, sched


def test_broken_chain_is_rejected_naming_t_and_frequency():
  kwargs = dict(name="annealed", num_timesteps=1000, beta_schedule="linear",
                image_shape=(H, W, 3), data_psd=PSDS["pltb3"], gamma_0=0.0, gamma_T=2.5,
                max_ratio=None)
  with pytest.raises(ValueError) as info:
    schedules.make_schedule(**kwargs)
  message = str(info.value)
  t_first, sched = first_violation(kwargs)
  assert f"at t={t_first} " in message
  assert re.search(r"frequency \(fu=[+-]\d\.\d+, fv=\d\.\d+\) cycles/px", message)
  assert "ddim_only=True" in message
  # DDIM-only schedules build, refuse ancestral and stochastic steps, allow eta = 0
  assert sched.ddim_only
  x = jnp.zeros((2, H, W, 3))
  t = jnp.asarray([500, 500])
  with pytest.raises(ValueError, match="ddim_only"):
    diffusion.reverse_step(sched, x, t, x, x)
  with pytest.raises(ValueError, match="eta = 0"):
    diffusion.ddim_step(sched, x, t, t - 10, x, x, eta=0.5)
  assert diffusion.ddim_step(sched, x, t, t - 10, x).shape == x.shape


def test_blog_recipe_structure():
  """The published recipe: guardrail at the noise end, mean-1, Gaussian by default."""
  sched = schedules.make_schedule("blog", 1000, "linear", (H, W, 3), data_psd=PSDS["pltb1"])
  assert sched.gaussian and not sched.standardize and sched.time_varying
  spec = spectra.BandSpec(num_bands=8, f_max=0.5)
  sizes = spectra.band_sizes(H, W, spec)
  sizes[0] += 1  # DC joins band 0
  weights = lambda s: np.asarray(spectra.band_average(s, spec, W)) * sizes / (H * W)  # noqa
  # flow convention: tau = 1 - t/(T-1) = 0 at t = T - 1 has equal band weights, which,
  # as published, is not white noise ...
  np.testing.assert_allclose(weights(sched.spectrum[-1]), 1 / 8, rtol=1e-4)
  assert np.std(np.asarray(sched.spectrum[-1])) > 0.5
  # ... while guardrail="white" is. Blended linearly in the weights (as published) it
  # breaks the forward chain next to pure noise on this spectrum (blog_corrected blends
  # geometrically instead), so it samples with DDIM eta = 0 only.
  with pytest.raises(ValueError, match="breaks the forward chain: at t=9"):
    schedules.make_schedule("blog", 1000, "linear", (H, W, 3), data_psd=PSDS["pltb1"],
                            guardrail="white")
  white = schedules.make_schedule("blog", 1000, "linear", (H, W, 3), data_psd=PSDS["pltb1"],
                                  guardrail="white", ddim_only=True)
  np.testing.assert_allclose(white.spectrum[-1], 1.0, rtol=1e-5)
  std = schedules.make_schedule("blog", 100, "linear", (H, W, 3), data_psd=PSDS["pltb1"],
                                standardize=True)
  assert std.standardize and not std.gaussian
  # at tau = 1 the band weights are softmax(beta g_b - gamma b/(B-1)): sum 1, and on a
  # pink spectrum the formula favours low bands
  w = weights(sched.spectrum[0])
  assert abs(w.sum() - 1) < 1e-6 and np.all(np.diff(w) < 0)


def test_noise_standardized_for_blog():
  sched = schedules.make_schedule("blog", 100, "linear", (16, 16, 2),
                                  data_psd=spectra.power_law_grid(16, 16, 1.0), standardize=True)
  eps = jax.random.normal(jax.random.key(0), (8, 16, 16, 2))
  t = jnp.full((8,), 10)
  eta, target = diffusion.forward_noise(sched, t, eps)
  np.testing.assert_allclose(jnp.mean(eta, axis=(1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(jnp.std(eta, axis=(1, 2)), 1.0, rtol=1e-4)
  # the target is the white noise that the shaping operator maps onto eta
  from fans_jax import noise
  back = noise.apply_sqrt_spectrum(target, jnp.sqrt(sched.spectrum[10])[..., None])
  np.testing.assert_allclose(back, eta, atol=2e-4)


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="pink"), "not one of"),
    (dict(num_timesteps=1), "num_timesteps=1"),
    (dict(beta_schedule="sqrt"), "beta_schedule='sqrt'"),
    (dict(name="matched", gamma=9.0), "gamma=9.0"),
    (dict(name="matched", gamma=float("nan")), "gamma=nan"),
    (dict(name="annealed", gamma_T=-7), "gamma_T=-7"),
    (dict(name="band_annealed", num_bands=1), "num_bands=1"),
    (dict(name="band_annealed", num_bands=200), "hold no frequency"),
    (dict(name="blog", num_bands=0), "num_bands=0"),
    (dict(name="blog", t_knee=1.5), "t_knee=1.5"),
    (dict(name="matched", max_ratio=0.5), "max_ratio"),
    (dict(name="matched", colour="red"), r"has no option\(s\) \[.colour.\]; its options are"),
    (dict(name="annealed", path="zigzag"), "path='zigzag'"),
    (dict(image_shape=(32,)), "image_shape"),
])
def test_bad_schedule_options_named(kwargs, match):
  base = dict(name="white", num_timesteps=100, beta_schedule="linear", image_shape=(H, W, 3))
  if kwargs.get("name", "white") != "white":
    base["data_psd"] = PSDS["pltb2"]
  base.update(kwargs)
  with pytest.raises(ValueError, match=re.escape(match) if "(" not in match else match):
    schedules.make_schedule(**base)


def test_bad_data_psd_named():
  with pytest.raises(ValueError, match="needs the dataset spectrum"):
    schedules.make_schedule("matched", 100, image_shape=(H, W))
  with pytest.raises(ValueError, match=r"data_psd must have shape"):
    schedules.make_schedule("matched", 100, image_shape=(H, W), data_psd=np.ones((H, W)))
  bad = PSDS["pltb1"].copy()
  bad[3, 3] = -1
  with pytest.raises(ValueError, match="non-negative"):
    schedules.make_schedule("matched", 100, image_shape=(H, W), data_psd=bad)
  with pytest.raises(ValueError, match="non-negative"):
    schedules.make_schedule("matched", 100, image_shape=(H, W), data_psd=PSDS["pltb1"] * np.inf)


def test_schedule_is_a_pytree_usable_under_jit():
  sched = schedules.make_schedule("annealed", 50, "cosine", (8, 8, 1),
                                  data_psd=spectra.power_law_grid(8, 8, 2.0))
  leaves = jax.tree_util.tree_leaves(sched)
  assert len(leaves) == 6
  f = jax.jit(lambda s, x: diffusion.q_sample(s, x, jnp.asarray([3, 40]), x))
  out = f(sched, jnp.ones((2, 8, 8, 1)))
  assert out.shape == (2, 8, 8, 1) and np.all(np.isfinite(out))
  assert sched.describe()["name"] == "annealed"


def test_log_snr_view():
  sched = schedules.make_schedule("matched", 100, "linear", (H, W), data_psd=PSDS["pltb2"])
  var = PSDS["pltb2"]
  lsnr = schedules.log_snr(sched, var)
  assert lsnr.shape == (100, H, W // 2 + 1)
  # matched gamma = 1: every frequency inside the cap has the same SNR at every t
  radius = spectra.radial_frequency(H, W)
  sel = (radius > 0.05) & (radius < 0.45)
  assert np.ptp(lsnr[50][sel]) < 0.2
  white = schedules.make_schedule("white", 100, "linear", (H, W))
  lw = schedules.log_snr(white, var)
  assert np.ptp(lw[50][sel]) > 3.0  # DDPM: low frequencies far above high ones


def test_family_options_are_declared_dataclasses():
  """Every family has a frozen options dataclass; its defaults are what make_schedule
  uses when an option is not given, and its band_spec is the bands the family reads."""
  import dataclasses  # pylint: disable=import-outside-toplevel
  for name in schedules.spectrum_family_names():
    cls = schedules.family_options_class(name)
    assert dataclasses.is_dataclass(cls) and issubclass(cls, schedules.FamilyOptions)
    opts = cls()
    with pytest.raises(dataclasses.FrozenInstanceError):
      opts.x = 1  # frozen
    assert opts.overrides() == {}
  assert schedules.family_options("matched").band_spec() is None
  assert schedules.family_options("matched", mode="band", num_bands=6).band_spec() == (
      schedules.band_mode_spec(6))
  assert schedules.family_options("band_annealed").band_spec() == schedules.band_mode_spec(8)
  blog = schedules.family_options("blog", {"num_bands": 5}, f_min=0.05)
  assert blog.band_spec() == spectra.BandSpec(num_bands=5, f_min=0.05, f_max=0.5)
  assert blog.overrides() == {"num_bands": 5, "f_min": 0.05}
  assert set(schedules.BlogCorrectedOptions.optional_fields()) == {"f_min", "max_ratio"}
  with pytest.raises(ValueError, match="is not one of"):
    schedules.family_options("pink")
  # Defaults of the dataclass are the schedule's defaults.
  psd = PSDS["pltb2"]
  a = schedules.make_schedule("annealed", 100, image_shape=(H, W, 3), data_psd=psd)
  b = schedules.make_schedule("annealed", 100, image_shape=(H, W, 3), data_psd=psd,
                              **dataclasses.asdict(schedules.AnnealedOptions()))
  np.testing.assert_array_equal(np.asarray(a.spectrum), np.asarray(b.spectrum))

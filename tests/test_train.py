"""The train step: sharding invariance, a real learning signal, config and input errors.

Runs in one process with the 4 CPU devices of conftest.py. Multi-process training
and resumption are in test_train_resume.py (subprocesses).
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import fans_jax.data as data
from configs import cifar_ddpm, cifar_fans, pltb_fans
from fans_jax import checkpointing, diffusion, sampling, schedules, spectra, train
from fans_jax import experiment

SHAPE = (16, 16, 3)


def small_config(**train_overrides):
  """configs/pltb_fans.py:tiny at 16x16 with few steps (what every test here uses)."""
  config = pltb_fans.get_config("tiny")
  config.data.image_size = SHAPE[0]
  config.data.num_examples = 256
  config.noise.spectrum_images = 256
  config.optim.warmup_steps = 0
  config.optim.decay = "constant"
  config.optim.learning_rate = 1e-3
  config.train.batch_size = 8
  config.train.num_train_steps = 6
  config.train.checkpoint_every_steps = 3
  config.train.log_every_steps = 3
  config.sample.every_steps = 0
  for key, value in train_overrides.items():
    config.train[key] = value
  return config


def fans_schedule(shape=SHAPE):
  """An annealed FANS schedule on the exact 1/f^2 power law (no data needed)."""
  psd = spectra.power_law_grid(shape[0], shape[1], 2.0)
  return schedules.make_schedule("annealed", 1000, "linear", shape, data_psd=psd,
                                 max_ratio=1e3)


def pltb_batches(n, batch_size, seed=0, size=SHAPE[0]):
  cfg = data.default_config()
  cfg.name, cfg.image_size, cfg.num_examples = "pltb", size, 512
  it = data.make_iterator(data.get_source(cfg), global_batch_size=batch_size, seed=seed,
                          num_threads=0)
  return [next(it) for _ in range(n)]


def run_steps(config, mesh, batches, schedule):
  """Trains on ``batches`` over ``mesh``; returns (initial params, final state, losses)."""
  cfg = train.parse_config(config)
  tx, lr_fn = train.make_optimizer(cfg.optim, cfg.train.num_train_steps)
  graphdef, state = train.init_train_state(config.model, SHAPE, tx, cfg.train.seed, mesh)
  init = jax.device_get(state.params)
  step = train.make_train_step(graphdef, tx, lr_fn, mesh, objective=cfg.noise.objective,
                               ema_decay=cfg.train.ema_decay)
  schedule = jax.device_put(schedule, NamedSharding(mesh, P()))
  losses = []
  for batch in batches:
    state, metrics = step(state, train.global_batch(batch, mesh, len(batch)), schedule)
    losses.append(float(metrics["loss"]))
  return init, state, np.array(losses)


def test_sharded_step_matches_single_device():
  config = small_config()
  batches = pltb_batches(3, 8)
  schedule = fans_schedule()
  init, one, losses_one = run_steps(config, train.make_mesh(jax.devices()[:1]), batches,
                                    schedule)
  _, four, losses_four = run_steps(config, train.make_mesh(jax.devices()[:4]), batches,
                                   schedule)
  # Same random numbers (threefry is sharding-invariant), same data: only the order of
  # float32 summations differs (the batch mean and the all-reduce of the gradient),
  # i.e. relative differences ~1e-7 per reduction. Adam turns a relative gradient
  # error into a similar relative error of the update (|g| >> eps here), so the
  # parameters must agree to a small fraction of how far 3 steps moved them. A real
  # bug (a device updating with its quarter of the batch, different noise or dropout
  # per device) changes the update itself: a difference of the order of the update.
  np.testing.assert_allclose(losses_four, losses_one, rtol=1e-5)
  p1, p4 = jax.device_get(one.params), jax.device_get(four.params)
  moved = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p1),
                                                          jax.tree.leaves(init)))
  diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p4),
                                                         jax.tree.leaves(p1)))
  assert moved > 1e-4  # the steps did train
  # Measured on the 2-core AMD EPYC machine: diff / moved = 1.5e-3 (the same before and
  # after the run-layer split). Adam divides by sqrt(v): a parameter whose gradients are
  # near zero (the zero-initialised output layer) turns float32 rounding into a larger
  # relative change of its update. A real bug gives diff / moved of order 1.
  assert diff <= 1e-2 * moved, (diff, moved)
  assert int(one.step) == int(four.step) == 3


def test_loss_metric_is_the_core_loss():
  """The step's loss equals diffusion.loss_per_example on the same draws."""
  config = small_config()
  mesh = train.make_mesh()
  batch = pltb_batches(1, 8)[0]
  schedule = fans_schedule()
  cfg = train.parse_config(config)
  tx, lr_fn = train.make_optimizer(cfg.optim, 6)
  graphdef, state = train.init_train_state(config.model, SHAPE, tx, 0, mesh)
  # Perturb the zero-initialised output so the network output is not trivially 0.
  state = state.replace(params=jax.tree.map(lambda p: p + 0.01, state.params))
  key = jax.random.fold_in(state.key, state.step)
  step = train.make_train_step(graphdef, tx, lr_fn, mesh, objective="eps", ema_decay=0.9)
  params = jax.tree.map(jnp.copy, state.params)  # the step donates (deletes) state
  _, metrics = step(state, train.global_batch(batch, mesh, 8),
                    jax.device_put(schedule, NamedSharding(mesh, P())))
  # The same draws, recomputed here with the core functions on one device.
  k_t, k_eps, k_dropout = jax.random.split(key, 3)
  x0 = data.to_model_input(jnp.asarray(batch))
  t = jax.random.randint(k_t, (8,), 0, 1000)
  eps = jax.random.normal(k_eps, x0.shape)
  x_t = diffusion.q_sample(schedule, x0, t, eps)
  from flax import nnx  # pylint: disable=import-outside-toplevel
  out = jax.jit(lambda p: nnx.merge(graphdef, p)(x_t, t, train=True, rngs=k_dropout))(params)
  ref = jnp.mean(diffusion.loss_per_example(schedule, out, x0, t, eps, "eps"))
  np.testing.assert_allclose(float(metrics["loss"]), float(ref), rtol=1e-4)


def test_loss_decreases_on_pltb():
  """A tiny UNet learns to denoise PLTB: after 75 steps, on held-out images (fixed t
  and noise), its loss is far below that of predicting 0 (which is what the untrained,
  zero-initialised net does)."""
  config = small_config(batch_size=32)
  config.optim.learning_rate = 2e-3
  mesh = train.make_mesh()
  schedule = jax.device_put(fans_schedule(), NamedSharding(mesh, P()))
  cfg = train.parse_config(config)
  tx, lr_fn = train.make_optimizer(cfg.optim, 75)
  graphdef, state = train.init_train_state(config.model, SHAPE, tx, 0, mesh)
  step = train.make_train_step(graphdef, tx, lr_fn, mesh, objective="eps", ema_decay=0.9)
  cfg_data = data.default_config()
  cfg_data.name, cfg_data.image_size, cfg_data.num_examples = "pltb", SHAPE[0], 4096
  it = data.make_iterator(data.get_source(cfg_data), global_batch_size=32, seed=0,
                          num_threads=1)
  # Held-out: other PLTB content (another data seed), fixed t and eps.
  cfg_data.seed = 123
  held = data.to_model_input(next(data.make_iterator(data.get_source(cfg_data), 256, seed=1,
                                                     num_threads=0)))
  t = jax.random.randint(jax.random.key(7), (256,), 0, 1000)
  eps = jax.random.normal(jax.random.key(8), held.shape)
  x_t = diffusion.q_sample(fans_schedule(), held, t, eps)
  target = diffusion.training_target(fans_schedule(), held, t, eps, "eps")
  from flax import nnx  # pylint: disable=import-outside-toplevel
  evaluate = jax.jit(lambda p: jnp.mean((nnx.merge(graphdef, p)(x_t, t) - target) ** 2))
  zero_loss = float(jnp.mean(target ** 2))
  initial = float(evaluate(state.params))
  for _ in range(75):
    state, _ = step(state, train.global_batch(next(it), mesh, 32), schedule)
  final = float(evaluate(state.params))
  # The zero predictor's loss is mean(eps^2) = 1 up to sampling error: its standard
  # error over 256 x 768 values is sqrt(2 / 196608) ~ 0.003.
  assert abs(zero_loss - 1.0) < 0.02
  assert initial == pytest.approx(zero_loss, rel=1e-6)  # zero-initialised output layer
  # 75 steps bring it to ~0.18 here; 0.5 leaves a wide margin, and is ~150 standard
  # errors below what a net that learned nothing would score.
  assert final < 0.5 * zero_loss, (initial, final)


def test_bfloat16_compute_with_v_objective():
  """model.dtype=bfloat16 (parameters stay float32) and another objective train."""
  config = small_config()
  config.model.dtype = "bfloat16"
  config.noise.objective = "v"
  init, state, losses = run_steps(config, train.make_mesh(), pltb_batches(2, 8), fans_schedule())
  assert np.all(np.isfinite(losses))
  leaves = jax.tree.leaves(jax.device_get(state.params))
  assert all(x.dtype == np.float32 for x in leaves)
  assert any(np.any(a != b) for a, b in zip(leaves, jax.tree.leaves(init)))


def test_learning_rate_schedule():
  cfg = train.OptimConfig(learning_rate=1e-3, warmup_steps=10, decay="cosine",
                          end_lr_factor=0.1)
  lr = train.learning_rate_fn(cfg, 110)
  assert float(lr(0)) == 0.0
  assert float(lr(5)) == pytest.approx(5e-4)
  assert float(lr(10)) == pytest.approx(1e-3)
  assert float(lr(60)) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-5)  # half way
  assert float(lr(110)) == pytest.approx(1e-4, rel=1e-5)
  const = train.learning_rate_fn(train.OptimConfig(learning_rate=2e-4, warmup_steps=0), 10)
  assert float(const(0)) == float(const(9)) == pytest.approx(2e-4)


# --------------------------------------------------------------------------------
# Configs and bad input
# --------------------------------------------------------------------------------

# The experiment configs of launch/train.py (other files in configs/ serve other tools).
CONFIG_FILES = sorted(p.stem for p in (pathlib.Path(__file__).parents[1] / "configs").glob("*.py")
                      if p.stem.endswith(("_ddpm", "_fans")))


@pytest.mark.parametrize("name", CONFIG_FILES)
@pytest.mark.parametrize("arg", [None, "tiny"])
def test_every_config_parses(name, arg):
  module = __import__(f"configs.{name}", fromlist=["get_config"])
  config = module.get_config(arg)
  sections = train.parse_config(config)
  assert sections.train.batch_size >= 1
  assert config.is_locked
  if "fans" in name:
    assert sections.noise.name != "white" and experiment.needs_spectrum(sections.noise)
  else:
    assert sections.noise.name == "white"


def test_fans_variants_build_valid_schedules():
  """Every FANS family variant of cifar_fans.py builds a schedule (forward chain
  valid) on a CIFAR-like 1/f^2.8 spectrum, with its band powers when it needs them."""
  psd = spectra.power_law_grid(32, 32, 2.8)
  for variant in ("matched", "annealed", "band_annealed", "blog"):
    config = cifar_fans.get_config(variant)
    noise = experiment.noise_config(config)
    spec = experiment.band_spec(noise) or spectra.BandSpec()
    images = jnp.asarray(np.random.default_rng(0).standard_normal((4, 32, 32, 3)))
    stats = spectra.accumulate_spectrum([images], spec)._replace(psd=psd)
    sched = experiment.schedule_from_config(config, (32, 32, 3), stats)
    assert sched.name == variant and not sched.ddim_only


def test_locked_config_rejects_misspelt_keys():
  config = cifar_ddpm.get_config()
  with pytest.raises(AttributeError, match="chanels"):
    config.model.chanels = 64
  with pytest.raises(ValueError, match="unknown config variant 'tiyn'"):
    cifar_ddpm.get_config("tiyn")


@pytest.mark.parametrize("section,key,value,match", [
    ("train", "bach_size", 8, "did you mean 'batch_size'"),
    ("optim", "lr", 1e-3, "unknown key"),
    ("model", "chanels", 8, "did you mean 'channels'"),
    ("noise", "objectiv", "eps", "did you mean 'objective'"),
    ("data", "imagesize", 8, "did you mean 'image_size'"),
])
def test_unknown_keys_are_named(section, key, value, match):
  config = small_config()
  config.unlock()
  config[section][key] = value
  with pytest.raises(ValueError, match=match):
    train.parse_config(config)


@pytest.mark.parametrize("path,value,match", [
    ("optim.name", "sgd", "config.optim.name='sgd' is not one of"),
    ("optim.decay", "linear", "config.optim.decay='linear'"),
    ("noise.name", "pink", "config.noise.name='pink'"),
    ("noise.objective", "score", "objective='score'"),
    ("train.ema_decay", 1.0, "ema_decay"),
    ("train.num_train_steps", 0, "num_train_steps"),
])
def test_bad_values_are_named(path, value, match):
  config = small_config()
  section, key = path.split(".")
  config[section][key] = value
  with pytest.raises(ValueError, match=match):
    train.parse_config(config)


def test_unknown_sampler_in_config():
  config = small_config()
  config.sample.every_steps = 3
  config.sample.sampler = "euler"
  with pytest.raises(ValueError, match="sampler='euler' is not one of"):
    train.parse_config(config)


def test_batch_not_divisible_by_devices(tmp_path):
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match="batch_size=6 is not divisible by the 4 devices"):
    train.train_and_evaluate(small_config(batch_size=6), workdir)
  assert not workdir.exists()  # failed before writing anything


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = small_config(num_train_steps=8, checkpoint_every_steps=1, log_every_steps=100)
  config.optim.grad_clip = 0.0
  config.optim.learning_rate = 1e30  # step 1 is fine; its update makes every weight huge
  workdir = tmp_path / "run"
  with pytest.raises(train.NonFiniteLossError,
                     match=r"loss is (nan|inf) at step 2\. The last good checkpoint \(step 1\)"):
    train.train_and_evaluate(config, workdir)
  ckpt = checkpointing.Checkpointer(workdir / "checkpoints", read_only=True)
  assert ckpt.steps() == [1]  # nothing saved after the first non-finite loss
  meta = ckpt.read_json(1, "meta")
  assert meta["step"] == 1
  run = sampling.load_run(workdir)  # the good checkpoint restores and verifies
  assert run.step == 1
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(jax.device_get(run.params)))


def test_debug_mode_trains_under_the_transfer_guard(tmp_path):
  """debug=True: jax_debug_nans on, and the step runs under transfer_guard('disallow'),
  so any hidden host-device copy in the step would raise."""
  config = small_config(num_train_steps=2, checkpoint_every_steps=2, log_every_steps=1)
  config.debug = True
  try:
    state = train.train_and_evaluate(config, tmp_path / "run")
    assert jax.config.jax_debug_nans
  finally:
    jax.config.update("jax_debug_nans", False)
  assert int(state.step) == 2

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
# ---

# %% [markdown]
# # FANS 3: samples and metrics of trained runs
#
# Loads trained runs (or, by default, trains two tiny ones here: DDPM and FANS on
# CIFAR-10, a few minutes), draws samples, and compares them with the data: sample
# grids, close-ups, samples split into frequency bands, spectra and band powers,
# and the evaluation table of `launch/evaluate.py` (`fans_jax.metrics`).
#
# Ten training steps (SMALL) give noise, not images: the point of the small setting
# is that every cell runs. Set `WORKDIRS` to your own runs for real results.

# %%
# Trained runs to compare: training workdirs (launch/train.py --workdir=...).
# Empty: train two tiny runs below.
WORKDIRS = []
# Where the tiny runs go (relative: next to this notebook, or /content on Colab).
RUN_DIR = os.environ.get("FANS_NOTEBOOK_RUN_DIR", "fans_notebook_runs")
NUM_SAMPLES = 96 if SMALL else 1000  # >= 65 for FD-ResNet20 (64-d features)
SAMPLER, NUM_STEPS = "ddim", (10 if SMALL else 100)

# %%
from fans_jax import sample_files, sampling, train
from fans_jax import evaluation
from fans_jax.metrics import features

if not WORKDIRS:
  from configs import base  # the repository's configs (see the install cell)
  data_candidates = [dict(name="cifar10_local"), dict(name="cifar10", tfds_download=True)]
  data_cfg = next(o for o in data_candidates if try_source("CIFAR-10", o) is not None)

  def tiny_config(noise):
    c = base.get_config()
    base.tiny(c)
    for k, v in data_cfg.items():
      c.data[k] = v
    if noise != "white":
      base.set_fans(c, noise)
    c.train.num_train_steps = 10 if SMALL else 1500
    c.train.batch_size = 32 if SMALL else 64
    c.train.checkpoint_every_steps = c.train.num_train_steps
    c.train.log_every_steps = 5 if SMALL else 50
    c.noise.spectrum_images = 500 if SMALL else 10000
    c.sample.every_steps = 0
    c.lock()
    return c

  for noise in ("white", "annealed"):
    workdir = f"{RUN_DIR}/{noise}"
    train.train_and_evaluate(tiny_config(noise), workdir)
    WORKDIRS.append(workdir)
print(WORKDIRS)

# %%
runs = {os.path.basename(w): sampling.load_run(w) for w in WORKDIRS}
# DDPM's sampler default: the predicted x0 clipped to [-1, 1] at every step
SETTINGS = sample_files.SamplerSettings(sampler=SAMPLER, num_steps=NUM_STEPS, clip_x0=True,
                                        seed=0)
samples = {name: sampling.generate_with(run, NUM_SAMPLES, SETTINGS, progress=False)
           for name, run in runs.items()}
first = next(iter(runs.values()))
cfg = data.with_overrides(first.config.data)
src = data.get_source(cfg)
real = src.get_batch(data.base.spread_indices(len(src), NUM_SAMPLES))  # spread: sets are class-sorted
for name, run in runs.items():
  print(name, run.schedule.describe()["name"], "step", run.step, samples[name].shape)

# %% [markdown]
# ## Sample grids and close-ups

# %%
display(plotting.plot_sample_grid(real[:32], ncols=8, title="data"))
for name, x in samples.items():
  display(plotting.plot_sample_grid(x[:32], ncols=8, title=f"{name}: {SAMPLER}, {NUM_STEPS} steps"))
display(plotting.plot_closeups(np.concatenate([real[:2], *[features.images_to_uint8(x[:2])
                                                         for x in samples.values()]]),
                               num=2 + 2 * len(samples),
                               titles=["data", "data"] + [n for n in samples for _ in range(2)]))

# %% [markdown]
# ## Samples split into frequency bands

# %%
display(plotting.plot_sample_bands({'data': real, **samples}, num=2))

# %% [markdown]
# ## Spectra and band powers against the data
#
# Radially averaged PSDs with fitted slopes, their ratio to the data's, and the band
# powers `pi_b` (the published post's bar plot: data green, then each run).

# %%
settings = spectral.SpectralSettings(num_bands=8)
quantized = {n: evaluation.quantize(x) for n, x in samples.items()}  # as saved PNGs
ref = spectral.spectral_summary(evaluation.quantize(real), settings)
gen = {n: spectral.spectral_summary(x, settings) for n, x in quantized.items()}
display(plotting.plot_spectra_comparison(ref, gen, reference_name=cfg.name))

# %% [markdown]
# ## The evaluation table
#
# What `launch/evaluate.py` writes: spectral fidelity, FD-ResNet20 (CIFAR-10 only;
# not FID) and FID/KID when the Inception weights are installed
# (`docs/evaluation.md`), otherwise a note saying where to put them.

# %%
options = evaluation.EvalOptions(num_reference=min(len(src), 1000 if SMALL else 10000),
                                 spectral=settings)
rows = []
for (name, run), workdir in zip(runs.items(), WORKDIRS):
  sample_set = evaluation.SampleSet(images=quantized[name],
                                    settings=SETTINGS.resolved(run.schedule.num_timesteps),
                                    source="notebook")
  rows.append(evaluation.evaluate_run(workdir, options=options, run=run,
                                      sample_set=sample_set).row)
display(Markdown(evaluation.markdown_table(rows)))

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
# # FANS 2: the forward process in Fourier space
#
# In Fourier coordinates the forward process is an independent scalar diffusion per
# frequency `k`: `x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eta_t` with noise of
# spectrum `S_t(k)`, so the signal-to-noise ratio of frequency `k` is
# `SNR_k(t) = abar_t var_k / ((1 - abar_t) S_t(k))`. White noise (DDPM, `S = 1`)
# drowns the weak high frequencies first; FANS shapes `S_t` with the data spectrum
# (docs/method.md §2-3; `fans_jax.schedules`).

# %%
found = try_source("CIFAR-10", dict(name="cifar10_local"),
                   dict(name="cifar10", tfds_download=True))
if found is None:  # no real data: a power-law texture bank
  found = try_source("PLTB", dict(name="pltb", alpha=2.0, num_examples=2000))
cfg, src = found
stats = data.dataset_spectrum(cfg, num_images=min(500 if SMALL else 10000, len(src)))
T = 1000
shape = src.image_shape
print(src, "alpha =", round(stats.fit().alpha, 2))


# %% [markdown]
# ## Schedules
#
# All with linear betas and `T = 1000`. `matched` with gamma = 1 gives every
# frequency the same SNR (EqualSNR); `annealed` moves gamma from 0 (white, at the
# noisiest step) to 1 (EqualSNR, at t = 0); `band_annealed` sweeps a window over
# bands; `blog` is the recipe of the published post (Gaussian by default since its DC
# fix; `standardize=True` restores the post's per-sample standardisation, which is not
# Gaussian: the schedule is then marked so); `blog_corrected` is that recipe with its
# flaws fixed (white guardrail, the direction its text describes).

# %%
def make(name, **options):
  return schedules.make_schedule(name, T, "linear", shape, data_psd=stats.psd,
                                 data_band_powers=None, **options)

scheds = {
    "DDPM (white)": make("white"),
    "FANS matched (γ=1)": make("matched", gamma=1.0),
    "FANS annealed (γ 0→1)": make("annealed"),
    "FANS band_annealed": make("band_annealed"),
    "published (blog)": make("blog"),
    "blog_corrected": make("blog_corrected"),
}
for name, s in scheds.items():
  print(f"{name:26s} gaussian={s.gaussian!s:5s} ddim_only={s.ddim_only!s:5s}"
        f" smallest chain margin={s.min_margin:.3g}")

# %% [markdown]
# ## Per-band log SNR over time
#
# Each panel: mean of `log SNR_k(t)` within 8 radial bands (rows, low at the
# bottom) against the step `t` (0 = data). The black contour is `SNR = 1`: left of
# it a band is mostly signal. Under DDPM the high bands cross it within the first
# few dozen steps and the low ones hundreds of steps later (coarse-to-fine
# generation); EqualSNR makes the contour vertical.

# %%
display(plotting.plot_snr_heatmaps(scheds, stats.variance))

# %% [markdown]
# When does each band drown? The first step at which the band's mean log SNR drops
# below 0:

# %%
spec = spectra.BandSpec(num_bands=8)
edges = spec.edges(*shape[:2])
rows = ["| schedule | " + " | ".join(f"{edges[b]:.2f}-{edges[b + 1]:.2f}" for b in range(8))
        + " |", "|---" * 9 + "|"]
for name, s in scheds.items():
  grid = schedules.band_log_snr(s, stats.variance, spec)
  cross = [int(np.argmax(grid[:, b] < 0)) if np.any(grid[:, b] < 0) else T for b in range(8)]
  rows.append(f"| {name} | " + " | ".join(str(c) for c in cross) + " |")
display(Markdown("Step at which each band (cycles/px) falls below SNR 1:\n\n" + "\n".join(rows)))

# %% [markdown]
# ## The noise spectra themselves
#
# Radial profiles of `S_t` (mean 1 over the grid) at a few steps. Time-invariant
# families have one curve.

# %%
fig = Figure(figsize=(7, 2.4), layout="constrained")
axes = fig.subplots(1, 3, sharey=True)
for ax, name in zip(axes, ["FANS matched (γ=1)", "FANS annealed (γ 0→1)", "published (blog)"]):
  s = scheds[name]
  for t in ([0] if s.spectrum.shape[0] == 1 else [0, 250, 500, 999]):
    f, p = spectra.radial_profile(jnp.asarray(s.spectrum[t]))
    ax.loglog(np.asarray(f)[1:], np.asarray(p)[1:], label=f"t = {t}")
  ax.axhline(1.0, color="0.5", ls=":", lw=0.8)
  ax.set_title(name, fontsize=8)
  ax.set_xlabel("|k| (cycles / pixel)")
  plotting.log_frequency_axis(ax)
  ax.legend(fontsize=6)
axes[0].set_ylabel("noise spectrum $S_t$")
display(fig)

# %% [markdown]
# ## A time-varying spectrum must keep the forward chain valid
#
# The per-frequency log SNR must decrease in `t` for every `k`. A steep annealing
# path (gamma 2 at the noisiest step to 0 at the data) breaks the chain on this
# spectrum, even with the noise spectrum's dynamic range capped at 1e3 (the default
# `max_ratio`, a cap on `S_t` itself); the library refuses it with a
# `ForwardChainError` that names the first offending step and frequency. The gentler
# path 1 -> 0 is valid:

# %%
try:
  print("gamma 2 -> 0: margin", make("annealed", gamma_T=2.0, gamma_0=0.0).min_margin,
        "(valid on this spectrum)")
except schedules.ForwardChainError as e:
  print(f"ForwardChainError at t={e.t}, frequency {e.frequency}:", e)
print("gamma 1 -> 0: margin", make("annealed", gamma_T=1.0, gamma_0=0.0).min_margin)

# %% [markdown]
# ## One image, band by band
#
# `x_t` and its band-pass components (4 linear bands from DC to Nyquist; they sum
# to `x_t`) under DDPM and FANS, with one shared white-noise draw. Each band panel
# is scaled on its own; its title is that band's signal-to-noise ratio.

# %%
image = src[3]
steps = [0, 50, 200, 500] if SMALL else [0, 25, 100, 250, 500, 800]
display(plotting.plot_forward_bands(
    image, {"DDPM": scheds["DDPM (white)"], "FANS γ=1": scheds["FANS matched (γ=1)"],
            "FANS 0→1": scheds["FANS annealed (γ 0→1)"]}, steps))

# %% [markdown]
# ## Check: measured band SNR against the formula
#
# Noise a batch with `diffusion.q_sample` and measure, per band, the power of the
# signal part against that of the noise part; compare with the band average of
# `abar_t var_k / ((1 - abar_t) S_t(k))` (ratio of band sums).

# %%
from fans_jax import diffusion
picks = data.base.spread_indices(len(src), 64 if SMALL else 512)
x0 = data.to_model_input(src.get_batch(picks))
x0 = x0 - jnp.mean(x0, axis=0)  # remove the dataset mean: var_k is a variance
masks = spectra.band_masks(*shape[:2], spec) * spectra.rfft_multiplicity(*shape[:2])
rows = ["| schedule | t | measured / predicted SNR, bands 1..8 |", "|---|---|---|"]
for name in ["DDPM (white)", "FANS matched (γ=1)"]:
  s = scheds[name]
  for t in (100, 400):
    eps = jax.random.normal(jax.random.key(t), x0.shape)
    abar = float(s.alphas_cumprod[t])
    noise_part = diffusion.q_sample(s, x0, jnp.full((x0.shape[0],), t), eps) - np.sqrt(abar) * x0
    p_sig = np.asarray(spectra.power_spectrum(np.sqrt(abar) * x0)).mean(0)
    p_noise = np.asarray(spectra.power_spectrum(noise_part)).mean(0)
    measured = (masks * p_sig).sum((1, 2)) / (masks * p_noise).sum((1, 2))
    s_t = np.asarray(s.spectrum[min(t, s.spectrum.shape[0] - 1)])
    predicted = (masks * abar * stats.variance).sum((1, 2)) / (masks * (1 - abar) * s_t).sum((1, 2))
    rows.append(f"| {name} | {t} | " + ", ".join(f"{m / p:.2f}" for m, p in zip(measured, predicted)) + " |")
display(Markdown("\n".join(rows)))

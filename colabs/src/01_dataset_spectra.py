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
# # FANS 1: the spectra of image datasets
#
# How is the power of a dataset spread over spatial frequencies? This notebook
# measures, for synthetic and real image sets, the radially averaged power spectral
# density (PSD) and its power-law slope `alpha` (`P(f) ∝ f^-alpha`), the running
# average of per-frequency variance, and the band powers `pi_b` that FANS shapes its
# noise with (docs/method.md §1; `fans_jax.spectra`, `fans_jax.data`).
#
# Frequencies are in cycles per pixel (Nyquist = 0.5); images are on the model scale
# `[-1, 1]`. The offline CIFAR-10 copy is a JPEG re-encode: its highest frequencies
# are damaged, so quote absolute slopes measured on it with that caveat.

# %%
NUM_IMAGES = 300 if SMALL else 5000
SIZE = 32  # every set at 32x32 so that the curves share one frequency grid
candidates = {
    "PLTB (alpha=1)": [dict(name="pltb", alpha=1.0, image_size=SIZE, num_examples=NUM_IMAGES)],
    "PLTB (alpha=2)": [dict(name="pltb", alpha=2.0, image_size=SIZE, num_examples=NUM_IMAGES)],
    "EGM": [dict(name="egm", image_size=SIZE, num_examples=NUM_IMAGES)],
    "CIFAR-10": [dict(name="cifar10_local", image_size=SIZE),
                 dict(name="cifar10", image_size=SIZE, tfds_download=True)],
    "DTD": [dict(name="dtd_local", image_size=SIZE),
            dict(name="dtd", image_size=SIZE, tfds_download=True)],
    "Galaxy Zoo": [dict(name="galaxy_zoo_local", image_size=SIZE)],
}
sources = {}
for label, cands in candidates.items():
  found = try_source(label, *cands)
  if found is not None:
    sources[label] = found
print({label: len(src) for label, (cfg, src) in sources.items()})

# %% [markdown]
# A few images of each set.

# %%
for label, (cfg, src) in sources.items():
  picks = data.base.spread_indices(len(src), 8)  # spread: the offline sets are class-sorted
  display(plotting.plot_sample_grid(src.get_batch(picks), ncols=8, title=label, width=5.0))

# %% [markdown]
# ## Dataset PSDs and their slopes
#
# `data.dataset_spectrum` streams the images through `spectra.SpectrumAccumulator`
# and caches the result (`$FANS_CACHE_DIR`). The dashed lines are least-squares fits
# of `log P` on `log f` from the first non-DC bin to 0.5 cycles/px.

# %%
stats = {label: data.dataset_spectrum(cfg, num_images=min(NUM_IMAGES, len(src)))
         for label, (cfg, src) in sources.items()}
display(plotting.plot_dataset_psds(stats))
display(plotting.plot_dataset_psds(stats, normalize=True))

# %% [markdown]
# The slope depends on the fit range: real photographs bend at high frequencies
# (JPEG, demosaicing, optics). Three ranges:

# %%
ranges = [(None, 0.5), (0.05, 0.25), (0.1, 0.5)]
rows = ["| dataset | " + " | ".join(f"alpha on [{lo or 'first bin'}, {hi}]" for lo, hi in ranges)
        + " | R^2 (full range) |", "|---" * (len(ranges) + 2) + "|"]
for label, st in stats.items():
  fits = [st.fit(lo, hi) for lo, hi in ranges]
  rows.append(f"| {label} | " + " | ".join(f"{f.alpha:.2f}" for f in fits)
              + f" | {fits[0].r2:.3f} |")
display(Markdown("\n".join(rows)))

# %% [markdown]
# ## Per-image slopes
#
# The dataset slope hides a spread: each image's own radially averaged spectrum
# fitted the same way.

# %%
fig = Figure(figsize=(5, 2.6), layout="constrained")
ax = fig.add_subplot()
for label, (cfg, src) in sources.items():
  picks = data.base.spread_indices(len(src), min(200, len(src)))
  images = data.to_model_input(src.get_batch(picks))
  freqs, profiles = spectra.radial_profile(spectra.power_spectrum(images))
  alphas = np.asarray(spectra.fit_power_law(freqs, profiles).alpha)
  ax.hist(alphas, bins=30, histtype="step", lw=1.3, label=f"{label} (median {np.median(alphas):.2f})")
ax.set_xlabel(r"per-image slope $\alpha$")
ax.set_ylabel("images")
ax.legend(fontsize=7)
display(fig)

# %% [markdown]
# ## Running average of per-frequency variance
#
# The draft's figure: frequencies sorted by their Manhattan distance `|fu| + |fv|`
# from DC, and the running mean of the signal variance `Var_i[F x_i(k)]`, divided
# by the mean over all frequencies (white noise is flat at 1). Most of the variance
# sits in the few lowest frequencies.

# %%
display(plotting.plot_running_variance(stats))

# %% [markdown]
# ## Band powers
#
# `pi_b`: the mean over images of the fraction of (non-DC) power in each of 8 linear
# radial bands. These are the distributions whose divergence between data and
# samples the evaluation reports (`fans_jax.metrics.spectral`).

# %%
settings = spectral.SpectralSettings(num_bands=8)
summaries = {label: spectral.summary_from_dataset_spectrum(
                 data.dataset_spectrum(cfg, num_images=min(NUM_IMAGES, len(src)),
                                       band_spec=settings.band_spec()),
                 src.image_shape, settings)
             for label, (cfg, src) in sources.items()}
first, *rest = summaries
display(plotting.plot_band_powers(summaries[first], {k: summaries[k] for k in rest},
                                  reference_name=first, width=6.5))

"""Builds the Colab notebooks of ``colabs/`` from the cell sources below.

    python colabs/build_notebooks.py          # rewrites colabs/*.ipynb (without outputs)

The notebooks import ``fans_jax`` (never copy it). Each opens with an Open-in-Colab
badge (:data:`GITHUB_REPO`), then an install cell that clones and installs the
repository on Colab when ``fans_jax`` is not importable (and does nothing elsewhere),
and a ``SMALL`` switch read from ``$FANS_NOTEBOOK_SMALL`` (the test suite runs them
with ``FANS_NOTEBOOK_SMALL=1``, on a CPU in a few minutes). Edit the cells here, not in
the ``.ipynb`` files, and rebuild.
"""

from __future__ import annotations

import pathlib
import textwrap

import nbformat

HERE = pathlib.Path(__file__).resolve().parent

# The public repository: the install cell clones it on Colab, and the Open-in-Colab links
# point at its notebooks. This checkout names no public URL (no git remote, none in the
# README): set OWNER here once the repository is published, and rebuild.
GITHUB_REPO = "OWNER/fans_jax"
GITHUB_BRANCH = "main"
REPO_URL = f"https://github.com/{GITHUB_REPO}"


def colab_url(name: str) -> str:
  """The Open-in-Colab address of ``colabs/<name>``."""
  return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_BRANCH}/colabs/{name}"


def colab_badge(name: str) -> str:
  return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          f"({colab_url(name)})")


INSTALL = '''\
# Install fans_jax where it is not importable (a fresh Colab runtime): clone the repository
# (the training cells use its configs/) and `pip install -e` it. Its requirements are
# ranges with no TensorFlow, so pip adds what is missing and leaves Colab's TensorFlow,
# NumPy and JAX as they are when they meet the floors (pyproject.toml); the cell says if
# pip changed one of them. Elsewhere (a clone installed with `pip install -e .`) it does
# nothing.
import importlib.metadata, importlib.util, os, pathlib, subprocess, sys
FANS_JAX_REPO = os.environ.get("FANS_JAX_REPO", "REPO_URL")  # or upload a copy to /content/fans_jax
CLONE = pathlib.Path("/content/fans_jax")
ON_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
if importlib.util.find_spec("fans_jax") is None:
  if not ON_COLAB:
    raise ModuleNotFoundError("fans_jax is not installed in this kernel's environment: run"
                              " `pip install -e .` in the repository (README), then restart it.")
  def _versions(names=("jax", "jaxlib", "numpy", "tensorflow")):
    found = {}
    for name in names:
      try:
        found[name] = importlib.metadata.version(name)
      except importlib.metadata.PackageNotFoundError:
        pass
    return found
  before = _versions()
  if not (CLONE / "pyproject.toml").exists():
    subprocess.check_call(["git", "clone", "-q", "--depth=1", FANS_JAX_REPO, str(CLONE)])
  subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", str(CLONE)])
  sys.path.insert(0, str(CLONE))
  after = _versions()
  changed = {k: f"{v} -> {after.get(k)}" for k, v in before.items() if after.get(k) != v}
  if changed:
    print("pip changed", changed, "- if a GPU/TPU runtime's JAX changed, reinstall its build"
          " (JAX's installation guide) and restart the session.")
# The repository root (for configs/): the clone, or a parent of this notebook's folder.
REPO_DIR = next((p for p in [CLONE, pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
                 if (p / "configs" / "base.py").exists()), None)
if REPO_DIR is not None and str(REPO_DIR) not in sys.path:
  sys.path.insert(0, str(REPO_DIR))
'''.replace("REPO_URL", REPO_URL)

SETUP_COMMON = '''\
%matplotlib inline
import os
# SMALL: settings that run top to bottom on a CPU in minutes (the test suite sets
# FANS_NOTEBOOK_SMALL=1). Set SMALL = False for the full-size figures.
SMALL = os.environ.get("FANS_NOTEBOOK_SMALL", "0") == "1"

import numpy as np
import jax
import jax.numpy as jnp
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import fans_jax.data as data
from fans_jax import plotting, schedules, spectra
from fans_jax.metrics import spectral
print("JAX devices:", jax.devices(), "| SMALL =", SMALL)


def try_source(label, *candidates):
  """The first data config among ``candidates`` (dicts of overrides) whose source
  loads: the offline copies here, tensorflow-datasets (with download) on Colab."""
  for overrides in candidates:
    cfg = data.with_overrides(None, **overrides)
    try:
      return cfg, data.get_source(cfg)
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as e:
      print(f"{label}: {overrides['name']} not available ({type(e).__name__}: {str(e)[:120]})")
  return None
'''


def _cells(*items):
  cells = []
  for kind, source in items:
    source = textwrap.dedent(source).strip("\n")
    if kind == "md":
      cells.append(nbformat.v4.new_markdown_cell(source))
    else:
      cells.append(nbformat.v4.new_code_cell(source))
  return cells


def _notebook(title: str, intro: str, *items) -> nbformat.NotebookNode:
  nb = nbformat.v4.new_notebook()
  nb.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": []},
  }
  nb.cells = _cells(("md", f"# {title}\n\n{textwrap.dedent(intro).strip()}"),
                    ("code", INSTALL), ("code", SETUP_COMMON), *items)
  return nb


# ----------------------------------------------------------------------------------
# 1. Dataset spectra
# ----------------------------------------------------------------------------------

SPECTRA = _notebook(
    "FANS 1: the spectra of image datasets",
    """
    How is the power of a dataset spread over spatial frequencies? This notebook
    measures, for synthetic and real image sets, the radially averaged power spectral
    density (PSD) and its power-law slope `alpha` (`P(f) ∝ f^-alpha`), the running
    average of per-frequency variance, and the band powers `pi_b` that FANS shapes its
    noise with (the method, section 1; `fans_jax.spectra`, `fans_jax.data`).

    Frequencies are in cycles per pixel (Nyquist = 0.5); images are on the model scale
    `[-1, 1]`. The offline CIFAR-10 copy is a JPEG re-encode: its highest frequencies
    are damaged, so quote absolute slopes measured on it with that caveat.
    """,
    ("code", """
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
    """),
    ("md", "A few images of each set."),
    ("code", """
    for label, (cfg, src) in sources.items():
      picks = data.base.spread_indices(len(src), 8)  # spread: the offline sets are class-sorted
      display(plotting.plot_sample_grid(src.get_batch(picks), ncols=8, title=label, width=5.0))
    """),
    ("md", """
    ## Dataset PSDs and their slopes

    `data.dataset_spectrum` streams the images through `spectra.SpectrumAccumulator`
    and caches the result (`$FANS_CACHE_DIR`). The dashed lines are least-squares fits
    of `log P` on `log f` from the first non-DC bin to 0.5 cycles/px.
    """),
    ("code", """
    stats = {label: data.dataset_spectrum(cfg, num_images=min(NUM_IMAGES, len(src)))
             for label, (cfg, src) in sources.items()}
    display(plotting.plot_dataset_psds(stats))
    display(plotting.plot_dataset_psds(stats, normalize=True))
    """),
    ("md", """
    The slope depends on the fit range: real photographs bend at high frequencies
    (JPEG, demosaicing, optics). Three ranges:
    """),
    ("code", """
    ranges = [(None, 0.5), (0.05, 0.25), (0.1, 0.5)]
    rows = ["| dataset | " + " | ".join(f"alpha on [{lo or 'first bin'}, {hi}]" for lo, hi in ranges)
            + " | R^2 (full range) |", "|---" * (len(ranges) + 2) + "|"]
    for label, st in stats.items():
      fits = [st.fit(lo, hi) for lo, hi in ranges]
      rows.append(f"| {label} | " + " | ".join(f"{f.alpha:.2f}" for f in fits)
                  + f" | {fits[0].r2:.3f} |")
    display(Markdown("\\n".join(rows)))
    """),
    ("md", """
    ## Per-image slopes

    The dataset slope hides a spread: each image's own radially averaged spectrum
    fitted the same way.
    """),
    ("code", """
    fig = Figure(figsize=(5, 2.6), layout="constrained")
    ax = fig.add_subplot()
    for label, (cfg, src) in sources.items():
      picks = data.base.spread_indices(len(src), min(200, len(src)))
      images = data.to_model_input(src.get_batch(picks))
      freqs, profiles = spectra.radial_profile(spectra.power_spectrum(images))
      alphas = np.asarray(spectra.fit_power_law(freqs, profiles).alpha)
      ax.hist(alphas, bins=30, histtype="step", lw=1.3, label=f"{label} (median {np.median(alphas):.2f})")
    ax.set_xlabel(r"per-image slope $\\alpha$")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    display(fig)
    """),
    ("md", """
    ## Running average of per-frequency variance

    The draft's figure: frequencies sorted by their Manhattan distance `|fu| + |fv|`
    from DC, and the running mean of the signal variance `Var_i[F x_i(k)]`, divided
    by the mean over all frequencies (white noise is flat at 1). Most of the variance
    sits in the few lowest frequencies.
    """),
    ("code", "display(plotting.plot_running_variance(stats))"),
    ("md", """
    ## Band powers

    `pi_b`: the mean over images of the fraction of (non-DC) power in each of 8 linear
    radial bands. These are the distributions whose divergence between data and
    samples the evaluation reports (`fans_jax.metrics.spectral`).
    """),
    ("code", """
    settings = spectral.SpectralSettings(num_bands=8)
    summaries = {label: spectral.summary_from_dataset_spectrum(
                     data.dataset_spectrum(cfg, num_images=min(NUM_IMAGES, len(src)),
                                           band_spec=settings.band_spec()),
                     src.image_shape, settings)
                 for label, (cfg, src) in sources.items()}
    first, *rest = summaries
    display(plotting.plot_band_powers(summaries[first], {k: summaries[k] for k in rest},
                                      reference_name=first, width=6.5))
    """),
)

# ----------------------------------------------------------------------------------
# 2. The forward process in Fourier space
# ----------------------------------------------------------------------------------

FORWARD = _notebook(
    "FANS 2: the forward process in Fourier space",
    """
    In Fourier coordinates the forward process is an independent scalar diffusion per
    frequency `k`: `x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eta_t` with noise of
    spectrum `S_t(k)`, so the signal-to-noise ratio of frequency `k` is
    `SNR_k(t) = abar_t var_k / ((1 - abar_t) S_t(k))`. White noise (DDPM, `S = 1`)
    drowns the weak high frequencies first; FANS shapes `S_t` with the data spectrum
    (the method, sections 2-3; `fans_jax.schedules`).
    """,
    ("code", """
    found = try_source("CIFAR-10", dict(name="cifar10_local"),
                       dict(name="cifar10", tfds_download=True))
    if found is None:  # no real data: a power-law texture bank
      found = try_source("PLTB", dict(name="pltb", alpha=2.0, num_examples=2000))
    cfg, src = found
    stats = data.dataset_spectrum(cfg, num_images=min(500 if SMALL else 10000, len(src)))
    T = 1000
    shape = src.image_shape
    print(src, "alpha =", round(stats.fit().alpha, 2))
    """),
    ("md", """
    ## Schedules

    All with linear betas and `T = 1000`. `matched` with gamma = 1 gives every
    frequency the same SNR (EqualSNR); `annealed` moves gamma from 0 (white, at the
    noisiest step) to 1 (EqualSNR, at t = 0); `band_annealed` sweeps a window over
    bands; `blog` is the recipe of the published post (Gaussian by default since its DC
    fix; `standardize=True` restores the post's per-sample standardisation, which is not
    Gaussian: the schedule is then marked so); `blog_corrected` is that recipe with its
    flaws fixed (white guardrail, the direction its text describes).
    """),
    ("code", """
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
    """),
    ("md", """
    ## Per-band log SNR over time

    Each panel: mean of `log SNR_k(t)` within 8 radial bands (rows, low at the
    bottom) against the step `t` (0 = data). The black contour is `SNR = 1`: left of
    it a band is mostly signal. Under DDPM the high bands cross it within the first
    few dozen steps and the low ones hundreds of steps later (coarse-to-fine
    generation); EqualSNR makes the contour vertical.
    """),
    ("code", "display(plotting.plot_snr_heatmaps(scheds, stats.variance))"),
    ("md", """
    When does each band drown? The first step at which the band's mean log SNR drops
    below 0:
    """),
    ("code", """
    spec = spectra.BandSpec(num_bands=8)
    edges = spec.edges(*shape[:2])
    rows = ["| schedule | " + " | ".join(f"{edges[b]:.2f}-{edges[b + 1]:.2f}" for b in range(8))
            + " |", "|---" * 9 + "|"]
    for name, s in scheds.items():
      grid = plotting.band_log_snr(s, stats.variance, spec)
      cross = [int(np.argmax(grid[:, b] < 0)) if np.any(grid[:, b] < 0) else T for b in range(8)]
      rows.append(f"| {name} | " + " | ".join(str(c) for c in cross) + " |")
    display(Markdown("Step at which each band (cycles/px) falls below SNR 1:\\n\\n" + "\\n".join(rows)))
    """),
    ("md", """
    ## The noise spectra themselves

    Radial profiles of `S_t` (mean 1 over the grid) at a few steps. Time-invariant
    families have one curve.
    """),
    ("code", """
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
    """),
    ("md", """
    ## A time-varying spectrum must keep the forward chain valid

    The per-frequency log SNR must decrease in `t` for every `k`. A steep annealing
    path (gamma 2 at the noisiest step to 0 at the data) breaks the chain on this
    spectrum, even with the noise spectrum's dynamic range capped at 1e3 (the default
    `max_ratio`, a cap on `S_t` itself); the library refuses it with a
    `ForwardChainError` that names the first offending step and frequency. The gentler
    path 1 -> 0 is valid:
    """),
    ("code", """
    try:
      print("gamma 2 -> 0: margin", make("annealed", gamma_T=2.0, gamma_0=0.0).min_margin,
            "(valid on this spectrum)")
    except schedules.ForwardChainError as e:
      print(f"ForwardChainError at t={e.t}, frequency {e.frequency}:", e)
    print("gamma 1 -> 0: margin", make("annealed", gamma_T=1.0, gamma_0=0.0).min_margin)
    """),
    ("md", """
    ## One image, band by band

    `x_t` and its band-pass components (4 linear bands from DC to Nyquist; they sum
    to `x_t`) under DDPM and FANS, with one shared white-noise draw. Each band panel
    is scaled on its own; its title is that band's signal-to-noise ratio.
    """),
    ("code", """
    image = src[3]
    steps = [0, 50, 200, 500] if SMALL else [0, 25, 100, 250, 500, 800]
    display(plotting.plot_forward_bands(
        image, {"DDPM": scheds["DDPM (white)"], "FANS γ=1": scheds["FANS matched (γ=1)"],
                "FANS 0→1": scheds["FANS annealed (γ 0→1)"]}, steps))
    """),
    ("md", """
    ## Check: measured band SNR against the formula

    Noise a batch with `diffusion.q_sample` and measure, per band, the power of the
    signal part against that of the noise part; compare with the band average of
    `abar_t var_k / ((1 - abar_t) S_t(k))` (ratio of band sums).
    """),
    ("code", """
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
    display(Markdown("\\n".join(rows)))
    """),
)

# ----------------------------------------------------------------------------------
# 3. Samples and metrics of trained runs
# ----------------------------------------------------------------------------------

SAMPLES = _notebook(
    "FANS 3: samples and metrics of trained runs",
    """
    Loads trained runs (or, by default, trains two tiny ones here: DDPM and FANS on
    CIFAR-10, a few minutes), draws samples, and compares them with the data: sample
    grids, close-ups, samples split into frequency bands, spectra and band powers,
    and the evaluation table of `launch/evaluate.py` (`fans_jax.metrics`).

    Ten training steps (SMALL) give noise, not images: the point of the small setting
    is that every cell runs. Set `WORKDIRS` to your own runs for real results.
    """,
    ("code", """
    # Trained runs to compare: training workdirs (launch/train.py --workdir=...).
    # Empty: train two tiny runs below.
    WORKDIRS = []
    # Where the tiny runs go (relative: next to this notebook, or /content on Colab).
    RUN_DIR = os.environ.get("FANS_NOTEBOOK_RUN_DIR", "fans_notebook_runs")
    NUM_SAMPLES = 96 if SMALL else 1000  # >= 65 for FD-ResNet20 (64-d features)
    SAMPLER, NUM_STEPS = "ddim", (10 if SMALL else 100)
    """),
    ("code", """
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
    """),
    ("code", """
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
    """),
    ("md", "## Sample grids and close-ups"),
    ("code", """
    display(plotting.plot_sample_grid(real[:32], ncols=8, title="data"))
    for name, x in samples.items():
      display(plotting.plot_sample_grid(x[:32], ncols=8, title=f"{name}: {SAMPLER}, {NUM_STEPS} steps"))
    display(plotting.plot_closeups(np.concatenate([real[:2], *[features.images_to_uint8(x[:2])
                                                             for x in samples.values()]]),
                                   num=2 + 2 * len(samples),
                                   titles=["data", "data"] + [n for n in samples for _ in range(2)]))
    """),
    ("md", "## Samples split into frequency bands"),
    ("code", "display(plotting.plot_sample_bands({'data': real, **samples}, num=2))"),
    ("md", """
    ## Spectra and band powers against the data

    Radially averaged PSDs with fitted slopes, their ratio to the data's, and the band
    powers `pi_b` (the published post's bar plot: data green, then each run).
    """),
    ("code", """
    settings = spectral.SpectralSettings(num_bands=8)
    quantized = {n: evaluation.quantize(x) for n, x in samples.items()}  # as saved PNGs
    ref = spectral.spectral_summary(evaluation.quantize(real), settings)
    gen = {n: spectral.spectral_summary(x, settings) for n, x in quantized.items()}
    display(plotting.plot_spectra_comparison(ref, gen, reference_name=cfg.name))
    """),
    ("md", """
    ## The evaluation table

    What `launch/evaluate.py` writes: spectral fidelity, FD-ResNet20 (CIFAR-10 only;
    not FID) and FID/KID when the Inception weights are installed
    (`docs/evaluation.md`), otherwise a note saying where to put them.
    """),
    ("code", """
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
    """),
)

def _with_colab_badge(name: str, nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
  """Puts the Open-in-Colab badge of ``colabs/<name>`` above the title."""
  first = nb.cells[0]
  first.source = f"{colab_badge(name)}\n\n{first.source}"
  return nb


NOTEBOOKS = {name: _with_colab_badge(name, nb) for name, nb in {
    "01_dataset_spectra.ipynb": SPECTRA,
    "02_forward_process_fourier.ipynb": FORWARD,
    "03_samples_and_metrics.ipynb": SAMPLES,
}.items()}


def main() -> None:
  for name, nb in NOTEBOOKS.items():
    nbformat.validate(nb)
    nbformat.write(nb, HERE / name)
    print(f"wrote {HERE / name}")


if __name__ == "__main__":
  main()

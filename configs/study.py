r"""The FANS study: DDPM against FANS variants, same model, budget, seeds and sampler.

For every dataset x variant x seed, ``launch/study.py`` trains a run, samples it,
evaluates it (spectral metrics, FD-ResNet20 on CIFAR-10) and writes one table in the
published post's format, with the post's numbers beside ours, plus figures
(``fans_jax/study.py``, ``docs/study_design.md``)::

    python launch/study.py --config=configs/study.py --outdir=studies/cpu        # hours, 2 CPUs
    python launch/study.py --config=configs/study.py:quick --outdir=workdirs/quick   # minutes
    python launch/study.py --config=configs/study.py:gpu --outdir=studies/gpu    # one GPU

Rerunning the same command skips finished runs and resumes partly trained ones.
Budget overrides go through ``run`` (a whole training config minus ``data``) and
``evaluation``, e.g. ``--config.run.train.num_train_steps=3000
--config.evaluation.num_samples=512 --config.seeds=0,1,2
--config.dataset_names=pltb,cifar10``. Change the budget only with a new
``--outdir``: a run whose saved config differs from the current one is an error.

Sections:

* ``datasets``: name -> ``label``, ``published`` (its row in the post's tables,
  ``fans_jax.study.PUBLISHED``; '' for none), ``data`` (a full data config, from the
  experiment config's ``:tiny`` variant at ``image_size``) and ``spectrum_images``.
  ``dataset_names``: the ones run, in table order (comma-separated).
* ``variants``: name -> ``family`` (a noise spectrum family), ``options`` (all its
  options) and ``published_as`` (``DDPM`` / ``FANS``: the post's column it stands for).
  ``variant_names``: the ones run; ``baseline``: the one the others are compared with.
* ``seeds``: training seeds (comma-separated); run ``s`` samples with
  ``evaluation.seed + s``.
* ``run``: the shared training config of every run (model, noise T / betas /
  objective, optim, train, sample, debug); each run adds its dataset's ``data``, its
  variant's noise family and options, its seed and ``eval`` from ``evaluation``.
* ``evaluation``: sampler, steps, eta, samples per run, reference images (0: all),
  band count and slope-fit range of the spectral metrics.
"""

from __future__ import annotations

import ml_collections

from configs import base
from configs import cifar_ddpm, dtd_ddpm, egm_ddpm, galaxy_ddpm, pltb_ddpm

# name -> (experiment config module, image size, label, row of the published tables)
_DATASETS = {
    "pltb": (pltb_ddpm, 32, "PLTB (alpha 1)", "PLTB"),
    "egm": (egm_ddpm, 32, "EGM", "EGM"),
    "dtd": (dtd_ddpm, 32, "DTD (10 classes)", "Texture"),
    "galaxy": (galaxy_ddpm, 32, "Galaxy Zoo", "Multimodal Universe"),
    "cifar10": (cifar_ddpm, 32, "CIFAR-10 (local 10k)", "CIFAR-10"),
    # Optional lower resolution (not in the default list): 16x16 fits a 2-core CPU study.
    "pltb16": (pltb_ddpm, 16, "PLTB (alpha 1) 16x16", "PLTB"),
    "egm16": (egm_ddpm, 16, "EGM 16x16", "EGM"),
    "dtd16": (dtd_ddpm, 16, "DTD (10 classes)", "Texture"),
    "galaxy16": (galaxy_ddpm, 16, "Galaxy Zoo", "Multimodal Universe"),
    # Exactly Gaussian PLTB (no per-sample normalisation): the Bayes-optimal denoiser
    # of every schedule is known per frequency (the study's ground truth).
    "pltb_gauss16": (pltb_ddpm, 16, "PLTB Gaussian (alpha 1, no per-sample norm.) 16x16",
                     "PLTB"),
}
GAUSSIAN_DATASETS = ("pltb_gauss16",)
DEFAULT_DATASETS = "pltb,egm,dtd,galaxy,cifar10"

# name -> (noise family, option overrides, the post's column it stands for, description)
_VARIANTS = {
    "white": ("white", {}, "DDPM", "DDPM: white noise"),
    "blog": ("blog", {}, "FANS", "the published FANS recipe: band softmax weights as its"
             " formula is written, 1/B guardrail below t_knee; Gaussian (standardize=False,"
             " the DC fix)"),
    "blog_corrected": ("blog_corrected", {}, "", "the published idea with its flaws fixed:"
                       " white guardrail blended geometrically, direction as the text says,"
                       " Gaussian, capped at 1e3"),
    "matched": ("matched", dict(gamma=1.0), "", "EqualSNR: S ∝ Pbar, constant in time"),
    # The path configs/*_fans.py ship (schedules.annealed_spectrum's default): white at
    # the noisiest step (DDPM's prior), EqualSNR at t = 0.
    "annealed": ("annealed", dict(gamma_T=0.0, gamma_0=1.0, path="linear", max_ratio=1e3), "",
                 "gamma 0 -> 1 (white at t = T to EqualSNR at t = 0), capped at 1e3"),
    # The other direction: EqualSNR at the noisiest step, white at t = 0.
    "annealed_1to0": ("annealed", dict(gamma_T=1.0, gamma_0=0.0, path="linear", max_ratio=1e3),
                      "", "gamma 1 -> 0 (EqualSNR at t = T to white at t = 0), capped at 1e3"),
}
DEFAULT_VARIANTS = "white,blog,blog_corrected,matched,annealed"


def _dataset(module, image_size: int, label: str, published: str,
             gaussian: bool = False) -> ml_collections.ConfigDict:
  experiment = module.get_config("tiny")
  data = ml_collections.ConfigDict(experiment.data.to_dict())
  data.image_size = image_size
  if gaussian:
    data.normalize = "dataset"  # exactly Gaussian with the known spectrum
  # spectrum_images 0: the FANS spectra from every image. The offline sets are sorted by
  # class, so "the first 2000" (the :tiny default) would be two CIFAR-10 classes.
  return ml_collections.ConfigDict(dict(label=label, published=published, data=data,
                                        spectrum_images=0, gaussian=bool(gaussian)))


def _variant(family: str, options: dict, published_as: str, description: str
             ) -> ml_collections.ConfigDict:
  opts = base.family_options(family, **options) if family != "white" else (
      ml_collections.ConfigDict())
  return ml_collections.ConfigDict(dict(family=family, options=opts, published_as=published_as,
                                        description=description))


def _run_template() -> ml_collections.ConfigDict:
  """base.py + its tiny variant (0.28M-parameter UNet), minus what each run sets."""
  run = base.get_config()
  base.tiny(run)
  del run["data"]  # per dataset
  del run["eval"]  # from `evaluation`
  for key in ("name", "options", "spectrum_images"):  # per variant / dataset
    del run.noise[key]
  run.sample.every_steps = 0  # no grids during training: the evaluation samples are drawn
  return run


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.datasets = ml_collections.ConfigDict(
      {name: _dataset(*spec, gaussian=name in GAUSSIAN_DATASETS)
       for name, spec in _DATASETS.items()})
  config.dataset_names = DEFAULT_DATASETS
  config.variants = ml_collections.ConfigDict(
      {name: _variant(*spec) for name, spec in _VARIANTS.items()})
  config.variant_names = DEFAULT_VARIANTS
  config.baseline = "white"
  config.seeds = "0,1"
  config.run = _run_template()

  # --- The CPU budget (docs/study_design.md has the arithmetic). ----------------------
  # Per run, on a quiet 2-core CPU: the :tiny recipe (600 steps of batch 64, ~0.45 s a
  # step: ~4.5 min), then 128 samples with the ancestral sampler over all T = 1000 steps
  # (~1.8 ms per image and step: ~4 min), evaluated against every image of the dataset;
  # ~9 min a run with start-up, 40 runs ~6 h (seed-major order: seed 0 done in ~3 h).
  config.run.train.batch_size = 64          # base.tiny
  config.run.train.num_train_steps = 600    # base.tiny
  config.run.train.ema_decay = 0.99         # base.tiny
  config.run.train.log_every_steps = 50
  config.run.train.checkpoint_every_steps = 200
  config.run.optim.learning_rate = 2e-3     # base.tiny: 100 warm-up steps, cosine to 5%

  config.evaluation = ml_collections.ConfigDict(dict(
      num_samples=128,  # >= 65 for FD-ResNet20
      sampler="ddpm",  # ancestral over all T steps, as the post ("T = 1000 sampling steps")
      num_steps=0,     # DDIM steps (0: T); the ddpm sampler always takes T
      eta=1.0,         # DDIM only
      seed=1,
      batch_size=0,    # 0: automatic (up to 256 per jitted call)
      clip_x0=True,
      # Reference images: N spread evenly over the dataset (0: all; the offline sets are
      # sorted by class, so a subset is never their first N).
      num_reference=0,
      reference_split="",  # '': the run's own split
      num_bands=8,
      band_spacing="linear",
      fit_f_lo=ml_collections.config_dict.placeholder(float),  # None: first non-DC bin
      fit_f_hi=0.5,
      # 'auto': spectral; FD-ResNet20 on CIFAR-10; FID/KID when the Inception weights
      # exist and there are >= 2049 samples. Or a subset of spectral,fd_resnet20,fid,kid.
      metrics="auto",
      # Learning curves (fans_jax/study/curves.py): checkpoints at these steps (and the
      # last) sampled with the curve sampler and evaluated; '' for none.
      curve_steps="",
      curve_sampler="ddim",
      curve_num_steps=100,
      curve_eta=1.0,
      curve_num_samples=256,
      held_images=256,     # data images for the eps loss / excess loss of each point
      gaussian_buckets=5,  # noise-level buckets of the excess loss (Gaussian datasets)
  ))
  config.retry_failed = False  # a failed run is final (training is deterministic)
  config.save_samples = True  # samples.npz per run (the figures and resumption use it)
  config.figures = True
  config.grid_size = 64  # samples shown per grid

  return _finalize(config, arg)


def quick(config: ml_collections.ConfigDict) -> None:
  """Minutes end to end (the test suite runs it): CIFAR-10 only (so FD-ResNet20 runs),
  every variant, one seed, 24 steps, DDIM-10, 72 samples (FD-ResNet20 needs >= 65),
  against all 10k images."""
  config.dataset_names = "cifar10"
  config.seeds = "0"
  config.run.train.batch_size = 16
  config.run.train.num_train_steps = 24
  config.run.train.ema_decay = 0.9
  config.run.train.log_every_steps = 12
  config.run.train.checkpoint_every_steps = 12
  config.run.optim.warmup_steps = 4
  config.evaluation.num_samples = 72
  config.evaluation.sampler = "ddim"
  config.evaluation.num_steps = 10
  config.grid_size = 36


def gpu(config: ml_collections.ConfigDict) -> None:
  """About 10 minutes on one H100/H200 (arithmetic in docs/study_design.md, not yet
  measured): CIFAR-10 at 32x32, every variant, three seeds (15 runs), a 6.5M-parameter
  UNet (64 channels x (1, 2, 2), 2 res blocks, attention at 16x16; 3.0 GFLOP forward
  per image), 3000 steps of batch 128 in bfloat16 with learning curves at 375, 750 and
  1500 steps, and 2560 DDIM-100 samples per run so that FID and KID are computed
  (FID needs >= 2049)."""
  config.dataset_names = "cifar10"
  config.seeds = "0,1,2"
  model = config.run.model
  model.channels = 64
  model.channel_mult = (1, 2, 2)
  model.num_res_blocks = 2
  model.attention_resolutions = (16,)
  model.dropout = 0.1
  model.num_groups = 32
  model.dtype = "bfloat16"
  config.run.train.batch_size = 128
  config.run.train.num_train_steps = 3000
  config.run.train.ema_decay = 0.999
  config.run.train.log_every_steps = 250
  config.run.train.checkpoint_every_steps = 375
  config.run.train.keep_checkpoints = 16
  config.run.optim.learning_rate = 2e-4
  config.run.optim.warmup_steps = 200
  config.run.optim.decay = "constant"
  config.evaluation.num_samples = 2560
  config.evaluation.sampler = "ddim"
  config.evaluation.num_steps = 100
  config.evaluation.eta = 1.0
  config.evaluation.batch_size = 1280
  config.evaluation.curve_steps = "375,750,1500"


def curves(config: ml_collections.ConfigDict) -> None:
  """The CPU study of this round (docs/results.md): the Gaussian PLTB field at 16x16
  (the ground truth), every variant, three seeds, learning curves at doubling steps.

  Constant learning rate after warm-up, so the checkpoints at 125, 250, 500 and 1000
  steps (doubling) are the learning curve of one run; curve points sampled with
  DDIM-100 (eta 1, 256 samples), the final step also ancestrally over all T = 1000
  steps (256 samples). About 7 minutes a run on a quiet 2-core CPU (15 runs: ~1h45);
  raise ``--config.run.train.num_train_steps`` (and ``curve_steps``) with a new
  ``--outdir``.
  """
  config.dataset_names = "pltb_gauss16"
  config.seeds = "0,1,2"
  config.run.train.num_train_steps = 1000
  config.run.train.checkpoint_every_steps = 125
  config.run.train.keep_checkpoints = 16
  config.run.optim.decay = "constant"
  config.evaluation.num_samples = 256
  config.evaluation.sampler = "ddpm"
  config.evaluation.curve_steps = "125,250,500"


def plateau(config: ml_collections.ConfigDict) -> None:
  """The :curves study run eight times longer, to find where the runs plateau (issue
  item "convergence before comparison"): the Gaussian PLTB field, constant learning rate
  after warm-up, 8000 steps with curve points at 1000, 2000 and 4000 (and the last),
  DDIM-100 (eta 1, 256 samples) at each point, the final step also ancestrally over all
  T = 1000 steps. Its first 1000 steps are those of :curves (same seed, same data order,
  constant rate), so its 1000-step point repeats :curves' last. About 16 minutes a run
  on a quiet 2-core CPU; ``--config.variant_names=white`` first gives the baseline's
  three seeds.
  """
  curves(config)
  config.run.train.num_train_steps = 8000
  config.run.train.checkpoint_every_steps = 1000
  config.evaluation.curve_steps = "1000,2000,4000"


def plateau16(config: ml_collections.ConfigDict) -> None:
  """The :plateau budget on a 16x16 natural-image set (issue item "convergence before
  comparison" beyond the Gaussian field): Galaxy Zoo by default, where the 600-step
  study found its largest FANS effect (``--config.dataset_names=dtd16`` or ``egm16``
  for the others). DDPM, EqualSNR and the annealed path, three seeds, 8000 steps at a
  constant learning rate, curve points at 500, 1000, 2000, 4000 (DDIM-100, 256
  samples) and the last, which is also sampled ancestrally over all T = 1000 steps.
  About 21 minutes a run on a quiet 2-core CPU; ``--config.variant_names=`` adds
  ``blog,blog_corrected`` (a new plan in the same ``--outdir`` keeps finished runs).
  """
  plateau(config)
  config.dataset_names = "galaxy16"
  config.variant_names = "white,matched,annealed"
  config.run.train.checkpoint_every_steps = 500
  config.evaluation.curve_steps = "500,1000,2000,4000"


VARIANTS = {"quick": quick, "gpu": gpu, "curves": curves, "plateau": plateau,
            "plateau16": plateau16}


def _finalize(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """Applies the comma-separated variants in ``arg`` and locks the config.

  Raises:
    ValueError: an unknown variant (naming the valid ones).
  """
  for name in filter(None, (arg or "").split(",")):
    if name not in VARIANTS:
      raise ValueError(f"unknown study variant {name!r}; valid variants: {sorted(VARIANTS)}.")
    VARIANTS[name](config)
  config.lock()
  return config

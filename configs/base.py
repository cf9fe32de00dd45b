r"""Defaults for every config field the library reads (Ho et al.'s CIFAR-10 DDPM).

Experiment configs import this module, change fields and call :func:`finalize`::

    from configs import base

    def get_config(arg=None):
      config = base.get_config()
      config.data.name = "pltb"
      ...
      return base.finalize(config, arg, VARIANTS)

Sections:

* ``data``: :func:`fans_jax.data.default_config` (dataset, resolution, channels...).
* ``model``: the UNet (:class:`fans_jax.models.unet.UNetConfig`; ``name`` picks the
  model from the registry). ``out_channels = 0`` means "as many as the input".
* ``noise``: the diffusion: ``name`` (spectrum family: white, matched, annealed,
  band_annealed, blog), ``num_timesteps``, ``beta_schedule`` (linear, cosine),
  ``objective`` (eps, x0, v, flow), ``ddim_only``, ``spectrum_images`` (images the
  dataset spectrum is estimated from; 0: all) and ``options`` (the family's own
  arguments, see ``fans_jax.schedules.*_spectrum``; :func:`set_fans` fills in every
  option of a family so each can be overridden; switch family with a variant, e.g.
  ``--config=configs/cifar_fans.py:blog``, so that the options match it).
* ``optim``: Adam(W), learning rate, warm-up, decay, clipping
  (:class:`fans_jax.train.OptimConfig`).
* ``train``: seed, global batch, steps, EMA, logging and checkpoint intervals
  (:class:`fans_jax.train.TrainConfig`).
* ``sample``: sample grids written during training and the defaults of
  ``launch/sample.py`` (:class:`fans_jax.train.SampleConfig`).
* ``eval``: read by the evaluation code (number of samples, sampler, steps, seed).
* ``debug``: NaN checks (``jax_debug_nans``) and the transfer guard.

:func:`finalize` applies a variant named after the colon of ``--config=file.py:tiny``
and locks the config, so a misspelt override (``--config.model.chanels=64``) fails.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import ml_collections

from fans_jax import data, schedules


def get_config() -> ml_collections.ConfigDict:
  """Every field with its default: DDPM on CIFAR-10 (Ho et al. 2020, 35.7M UNet)."""
  config = ml_collections.ConfigDict()

  config.data = data.default_config()
  config.data.name = "cifar10"
  config.data.image_size = 32
  config.data.channels = 3

  config.model = ml_collections.ConfigDict(dict(
      name="unet",
      channels=128,
      channel_mult=(1, 2, 2, 2),
      num_res_blocks=2,
      attention_resolutions=(16,),
      dropout=0.1,
      num_groups=32,
      num_heads=1,
      resample_with_conv=True,
      dtype="float32",  # "bfloat16": mixed precision (parameters stay float32)
      out_channels=0,
  ))

  config.noise = ml_collections.ConfigDict(dict(
      name="white",
      num_timesteps=1000,
      beta_schedule="linear",
      objective="eps",
      ddim_only=False,
      spectrum_images=10000,
      options=ml_collections.ConfigDict(),
  ))

  config.optim = ml_collections.ConfigDict(dict(
      name="adam",
      learning_rate=2e-4,
      warmup_steps=5000,
      decay="constant",
      end_lr_factor=0.0,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      weight_decay=0.0,
      grad_clip=1.0,
  ))

  config.train = ml_collections.ConfigDict(dict(
      seed=0,
      batch_size=128,
      num_train_steps=800_000,
      ema_decay=0.9999,
      log_every_steps=100,
      checkpoint_every_steps=5000,
      keep_checkpoints=3,
      async_checkpoints=True,
      data_threads=2,
  ))

  # DDIM with eta = 1 (stochastic, ancestral-like): with eta = 0 an under-trained
  # network's x0 errors at high noise are never washed out and early grids saturate.
  config.sample = ml_collections.ConfigDict(dict(
      every_steps=10_000,
      num_samples=64,
      sampler="ddim",
      num_steps=50,
      eta=1.0,
      seed=0,
      # Clip the predicted x0 to [-1, 1] at every step (Ho et al.'s sampler; diffusers'
      # clip_sample=True). Without it an under-trained model gives saturated grids.
      clip_x0=True,
  ))

  config.eval = ml_collections.ConfigDict(dict(
      num_samples=10_000,
      sampler="ddpm",
      num_steps=0,  # 0: all T steps
      eta=0.0,
      batch_size=0,  # 0: automatic
      seed=1,
      clip_x0=True,
  ))

  config.debug = False
  return config


def family_options(name: str, **overrides) -> ml_collections.ConfigDict:
  """Every option of the noise family ``name`` with its default (the fields of its
  options dataclass, ``fans_jax.schedules.family_options_class(name)``), so each can
  be overridden from the command line (``--config.noise.options.gamma_T=1.5``). An
  option that may be ``None`` (annotated ``... | None``: ``max_ratio``, "no cap";
  ``f_min``) takes a number or ``None`` there: ``--config.noise.options.max_ratio=None``.

  Raises:
    ValueError: an unknown family or option (naming the valid ones).
  """
  opts = schedules.family_options(name, **overrides)
  optional = set(type(opts).optional_fields())
  options = {f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)}
  # A field typed `object` is parsed as a Python literal by ml_collections'
  # config_flags, so "None", "1e3" and "100" all work (make_schedule checks the value).
  return ml_collections.ConfigDict({
      k: ml_collections.config_dict.FieldReference(v, field_type=object) if k in optional else v
      for k, v in options.items()})


def set_fans(config: ml_collections.ConfigDict, name: str = "annealed", **options) -> None:
  """Switches the noise to the FANS family ``name``, every option at its default
  unless given.

  Default: ``annealed`` with gamma 0 (white) at the noisiest step to 1 (EqualSNR) at
  t = 0 (``schedules.annealed_spectrum``'s default path), on the dataset's radial spectrum with its dynamic range capped at 1e3 (a
  valid forward chain for linear betas, T = 1000; docs/method.md §3).
  """
  config.noise.name = name
  config.noise.options = family_options(name, **options)


def fans_variants() -> dict[str, Callable[[ml_collections.ConfigDict], None]]:
  """Variants switching a config to each FANS family (``--config=...py:blog``)."""
  return {name: (lambda c, name=name: set_fans(c, name))
          for name in schedules.spectrum_family_names() if name != "white"}


def tiny(config: ml_collections.ConfigDict) -> None:
  """A 0.28M-parameter UNet, 600 steps of batch 64 on 32x32 images: about 5 minutes
  on a 2-core CPU (2 emulated devices, launch/train.py's default there)."""
  config.model.channels = 16
  config.model.channel_mult = (1, 2, 2)
  config.model.num_res_blocks = 1
  config.model.attention_resolutions = (8,)
  config.model.num_groups = 8
  config.model.dropout = 0.0
  config.noise.spectrum_images = 2000
  config.optim.learning_rate = 2e-3
  config.optim.warmup_steps = 100
  config.optim.decay = "cosine"
  config.optim.end_lr_factor = 0.05
  config.train.batch_size = 64
  config.train.num_train_steps = 600
  config.train.ema_decay = 0.99
  config.train.log_every_steps = 50
  config.train.checkpoint_every_steps = 300
  config.sample.every_steps = 300
  config.sample.num_samples = 64
  config.sample.num_steps = 50
  config.eval.num_samples = 1000
  config.eval.sampler = "ddim"
  config.eval.num_steps = 100


VARIANTS: dict[str, Callable[[ml_collections.ConfigDict], None]] = {"tiny": tiny}


def finalize(config: ml_collections.ConfigDict, arg: str | None,
             variants: dict[str, Callable[[ml_collections.ConfigDict], None]] | None = None
             ) -> ml_collections.ConfigDict:
  """Applies the comma-separated variants in ``arg`` (``"tiny"``...) and locks.

  Raises:
    ValueError: an unknown variant (naming the valid ones).
  """
  variants = dict(VARIANTS, **(variants or {}))
  for name in filter(None, (arg or "").split(",")):
    if name not in variants:
      raise ValueError(f"unknown config variant {name!r}; valid variants: {sorted(variants)}.")
    variants[name](config)
  config.lock()
  return config

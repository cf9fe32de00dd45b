"""The data config: one ``ml_collections.ConfigDict`` shared by every dataset.

Experiment configs keep it under ``config.data``; :func:`default_config` holds every
field with its default, so that a misspelt override fails once the config is locked.
"""

from __future__ import annotations

import ml_collections


def default_config() -> ml_collections.ConfigDict:
  """Every data option with its default (see ``docs/data.md`` for each dataset).

  Fields:
    name: dataset name, one of :func:`fans_jax.data.list_datasets`.
    image_size: side ``H = W`` of the images delivered, pixels.
    channels: ``C`` of the images delivered (1 or 3; synthetic sets take any C >= 1).
    data_dir: folder of the offline sets; '' -> ``$FANS_DATA_DIR`` or
      ``<repo>/../shared/data``.
    num_examples: number of images of a synthetic set (its epoch length); the offline
      sets (``*_local``) keep at most this many, spread evenly over the file (the
      default 10,000 keeps all of each). tfds, npz and folder sets ignore it.
    alpha: PLTB slope, ``E P(f) ∝ f^-alpha``.
    seed: content seed of synthetic sets and of random crops.
    split: 'train' or 'test' ('validation' for galaxy_zoo_local, any tfds split).
    crop: 'center' or 'random' square crop before resizing.
    crop_scale: side of the square crop as a fraction of the shorter image side.
    path: file or folder for the 'folder', 'npz' and 'mmu' datasets.
    array_key: array of an .npz file holding the images.
    verify_checksums: check the offline sets against SHA256SUMS (once per process).
    value_range: ``(lo, hi)`` of float arrays in an .npz ('npz' maps it to [0, 255]).
    size_policy: 'crop_resize' (every image cropped and resized to image_size) or
      'exact' (every image must already be image_size x image_size, else an error).
    on_corrupt: 'skip' (log and count unreadable image files) or 'error'.
    pltb_eps: the eps of the PLTB amplitude ``(|k| + eps)^(-alpha/2)``; with 0 the DC
      coefficient gets amplitude 0.
    normalize: per-sample brightness/contrast normalisation of synthetic images:
      'sample' (each image and channel to mean 0, variance 1, as published) or
      'dataset' (divide by the expected standard deviation: exactly Gaussian PLTB).
    clip_sigma: synthetic images map ``[-clip_sigma, clip_sigma]`` (in units of the
      unit-variance field) linearly onto uint8 [0, 255]; values beyond are clipped.
    channel_mode: synthetic channels 'independent' (one independent draw per channel)
      or 'replicate' (one draw copied to every channel).
    egm_components: comma-separated subset of 'gratings,checkerboards,lines'.
    synthetic_cache_mb: keep generated synthetic images in memory when the whole set
      (uint8) fits in this many MiB (0: regenerate every time).
    tfds_name: tfds dataset of ``name='tfds'`` (any dataset with an 'image' feature).
    tfds_data_dir: tfds data_dir ('' -> tfds's default, ~/tensorflow_datasets).
    tfds_download: let tfds download and prepare a missing dataset (needs internet).
    mmu_dataset: Multimodal Universe hub dataset (only when the hub is reachable).
    mmu_bands: comma-separated band names or indices mapped to the channels ('' ->
      the first ``channels`` bands).
    mmu_softening: arcsinh softening ``s`` in flux units: ``y = asinh(flux / s)``.
    mmu_flux_range: ``(lo, hi)`` flux clipped before the stretch and mapped to
      [0, 255] after it.
    mmu_image_key: HDF5 dataset / parquet column with the flux cutouts ('' -> auto).
  """
  cfg = ml_collections.ConfigDict()
  cfg.name = "pltb"
  cfg.image_size = 32
  cfg.channels = 3
  cfg.data_dir = ""
  cfg.num_examples = 10000
  cfg.alpha = 1.0
  cfg.seed = 0
  cfg.split = "train"
  cfg.crop = "center"
  cfg.crop_scale = 1.0
  cfg.path = ""
  cfg.array_key = "images"
  cfg.verify_checksums = True
  cfg.value_range = (0.0, 1.0)
  cfg.size_policy = "crop_resize"
  cfg.on_corrupt = "skip"
  # Synthetic sets.
  cfg.pltb_eps = 0.0
  cfg.normalize = "sample"
  cfg.clip_sigma = 3.0
  cfg.channel_mode = "independent"
  cfg.egm_components = "gratings,checkerboards,lines"
  cfg.synthetic_cache_mb = 2048
  # tensorflow-datasets.
  cfg.tfds_name = ""
  cfg.tfds_data_dir = ""
  cfg.tfds_download = False
  # Multimodal Universe.
  cfg.mmu_dataset = "MultimodalUniverse/legacysurvey"
  cfg.mmu_bands = ""
  cfg.mmu_softening = 0.1
  cfg.mmu_flux_range = (-0.05, 50.0)
  cfg.mmu_image_key = ""
  return cfg


def with_overrides(cfg: ml_collections.ConfigDict | None = None,
                   **overrides) -> ml_collections.ConfigDict:
  """A copy of ``cfg`` (default :func:`default_config`) with fields replaced.

  Missing fields of an older or partial config are filled from the defaults; an
  unknown override raises a ValueError naming the valid fields.
  """
  base = default_config()
  if cfg is not None:
    for key, value in cfg.items():  # extra fields of a caller's config are kept
      base[key] = value
  for key, value in overrides.items():
    if key not in base:
      raise ValueError(f"unknown data option {key!r}; valid options: {sorted(base.keys())}.")
    base[key] = value
  return base


def get_config() -> ml_collections.ConfigDict:
  """For ``config_flags``: ``--config=fans_jax/data/config.py`` is the default data config."""
  return default_config()

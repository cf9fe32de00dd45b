"""Real datasets through tensorflow-datasets' random-access ``tfds.data_source``.

No TensorFlow at run time: ``tfds.data_source`` reads the prepared ArrayRecord files
directly. Preparing a dataset (``tfds_download=True``) needs internet (and tfds's
preparation code); without it the source raises a FileNotFoundError that names the
offline stand-in (``cifar10`` -> ``cifar10_local``, ``dtd`` -> ``dtd_local``).

Each image is cropped to a square (``crop`` and ``crop_scale``; random crops drawn from
``(seed, epoch, index)``), resized to ``image_size`` and converted to ``channels`` as
described in :mod:`fans_jax.data.base`. DTD images are 300x300 to 640x640, so
``image_size=64`` with ``crop_scale=1`` shrinks them 5-10x (the spectrum then covers
coarser texture scales than a native-resolution crop, ``crop_scale = 64 / min(H, W)``).
"""

from __future__ import annotations

from typing import Any, Sequence

import ml_collections
import numpy as np

from fans_jax.data import base
from fans_jax.data import registry

# Registered tfds datasets and their offline alternatives.
TFDS_DATASETS = {"cifar10": "cifar10_local", "dtd": "dtd_local"}


def open_data_source(tfds_name: str, split: str, data_dir: str, download: bool,
                     offline_alternative: str | None = None):
  """``tfds.data_source(...)`` with one clear error when tfds or the data is not there.

  Raises:
    base.MissingPackageError: tensorflow-datasets is not installed (``fans_jax[tfds]``).
    FileNotFoundError: the dataset is not prepared (or could not be downloaded); the
      message starts with what to do.
  """
  alt = (f"Offline, use name={offline_alternative!r} (the shared data folder). "
         if offline_alternative else "")
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise base.MissingPackageError(
        f"{alt}dataset {tfds_name!r} is read with tensorflow-datasets, which is not"
        " installed: pip install 'fans_jax[tfds]' (tensorflow-datasets, and TensorFlow to"
        " download and prepare datasets).") from e
  where = data_dir or "~/tensorflow_datasets (tfds's default data_dir)"
  not_prepared = (
      f"tfds dataset {tfds_name!r} (split {split!r}) is not prepared in {where}. {alt}"
      "With internet: set tfds_download=True (needs TensorFlow: pip install"
      f" 'fans_jax[tfds]'), or run `tfds build {tfds_name} --file_format=array_record`"
      f" and copy the prepared folder to {where}.")
  try:
    # Random access needs ArrayRecord files: ask for them when tfds prepares the data.
    kwargs = {"builder_kwargs": {"file_format": "array_record"}} if download else {}
    return tfds.data_source(tfds_name, split=split, data_dir=data_dir or None,
                            download=download, **kwargs)
  except ImportError as e:
    # Without prepared files tfds builds the dataset from its code, which imports
    # TensorFlow (tfds 4.9.5 does so even to report a missing dataset).
    if download:
      raise base.MissingPackageError(
          f"{alt}tfds needs TensorFlow to download and prepare {tfds_name!r}: pip install"
          f" 'fans_jax[tfds]' ({type(e).__name__}: {e}).") from e
    raise FileNotFoundError(f"{not_prepared} (tfds: {_short(e)})") from e
  except (KeyError, FileNotFoundError, AssertionError, NotImplementedError) as e:
    raise FileNotFoundError(f"{not_prepared} (tfds: {_short(e)})") from e
  except Exception as e:  # network and preparation errors come in many types
    if not download:
      raise
    raise FileNotFoundError(
        f"{alt}tfds could not download/prepare {tfds_name!r} ({type(e).__name__}:"
        f" {_short(e)}); this machine may have no internet.") from e


def _short(error: BaseException, limit: int = 160) -> str:
  text = " ".join(str(error).split())
  return text if len(text) <= limit else text[:limit - 3] + "..."


class TfdsSource(base.ImageSource):
  """A tfds image dataset (feature ``image``) with random access."""

  def __init__(self, name: str, tfds_name: str, cfg: ml_collections.ConfigDict,
               offline_alternative: str | None = None):
    self.name = name
    self.size, self.channels = int(cfg.image_size), int(cfg.channels)
    self.image_shape = (self.size, self.size, self.channels)
    self.crop, self.crop_scale, self.seed = cfg.crop, float(cfg.crop_scale), int(cfg.seed)
    self.exact = cfg.size_policy == "exact"
    self._source = open_data_source(tfds_name, cfg.split, cfg.tfds_data_dir,
                                    bool(cfg.tfds_download), offline_alternative)
    self._fp = {"name": name, "tfds_name": tfds_name, "split": cfg.split,
                "image_size": self.size, "channels": self.channels, "crop": self.crop,
                "crop_scale": self.crop_scale, "num_records": len(self._source)}
    info = getattr(self._source, "dataset_info", None)
    if info is not None and getattr(info, "version", None) is not None:
      self._fp["tfds_version"] = str(info.version)
    if self.crop == "random":
      self._fp["seed"] = self.seed

  def __len__(self) -> int:
    return len(self._source)

  def _read(self, idx: np.ndarray) -> list[dict[str, Any]]:
    # Record by record: the batched __getitems__ of tfds's mock data source is broken
    # in tfds 4.9.10, and grain's prefetch threads already overlap the reads.
    return [self._source[int(i)] for i in idx]

  def get_batch(self, indices: Sequence[int], epoch: int = 0) -> np.ndarray:
    idx = self._check_indices(indices)
    out = np.empty((idx.size,) + self.image_shape, np.uint8)
    for j, (i, record) in enumerate(zip(idx, self._read(idx))):
      image = np.asarray(record["image"])
      if image.ndim == 2:
        image = image[..., None]
      if self.exact and image.shape[:2] != (self.size, self.size):
        raise ValueError(f"{self.name}[{i}] is {image.shape[:2]}, not {self.size}x{self.size}"
                         " (size_policy='exact'); use size_policy='crop_resize'.")
      image = base.convert_channels(image.astype(np.uint8), self.channels)
      rng = base.crop_rng(self.seed, epoch, i) if self.crop == "random" else None
      out[j] = base.crop_resize(image, self.size, self.crop, self.crop_scale, rng)
    return out

  def fingerprint(self) -> dict[str, Any]:
    return dict(self._fp)


def _register(name: str, alternative: str):
  registry.register(name, f"tfds {name!r} via tfds.data_source (offline: {alternative!r})")(
      lambda cfg: TfdsSource(name, name, cfg, alternative))


for _name, _alt in TFDS_DATASETS.items():
  _register(_name, _alt)


@registry.register("tfds", "any tfds image dataset: tfds_name=<name> (feature 'image')")
def _any_tfds(cfg):
  if not cfg.tfds_name:
    raise ValueError("dataset 'tfds' needs tfds_name=<a tfds dataset with an 'image' feature>.")
  return TfdsSource(f"tfds_{cfg.tfds_name}", cfg.tfds_name, cfg, TFDS_DATASETS.get(cfg.tfds_name))

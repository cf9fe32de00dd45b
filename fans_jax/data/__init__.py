"""Datasets, the input pipeline and dataset spectra.

Usage::

  import fans_jax.data as data
  cfg = data.default_config()            # cfg.name = 'pltb', 'cifar10_local', ...
  src = data.get_source(cfg)             # src[i] -> uint8 [H, W, C]
  it = data.make_iterator(src, global_batch_size=128, seed=0)
  x = data.to_model_input(next(it))      # float32 in [-1, 1], on device
  stats = data.dataset_spectrum(cfg)     # spectra.DatasetSpectrum, cached on disk

``list_datasets()`` names every registered dataset; ``docs/data.md`` describes them.
"""

# Importing the modules registers their datasets.
from fans_jax.data import analysis  # noqa: F401
from fans_jax.data import config  # noqa: F401
from fans_jax.data import local  # noqa: F401
from fans_jax.data import multimodal_universe  # noqa: F401
from fans_jax.data import synthetic  # noqa: F401
from fans_jax.data import tfds_sources  # noqa: F401
from fans_jax.data.base import ImageSource, MissingPackageError
from fans_jax.data.config import default_config, with_overrides
from fans_jax.data.pipeline import DataIterator, from_model_input, make_iterator, to_model_input
from fans_jax.data.registry import get_source, list_datasets, register
from fans_jax.data.spectra_cache import cached_spectrum_path, dataset_spectrum

__all__ = [
    "DataIterator", "ImageSource", "MissingPackageError", "analysis", "cached_spectrum_path", "dataset_spectrum",
    "default_config", "from_model_input", "get_source", "list_datasets", "local",
    "make_iterator", "register", "synthetic", "tfds_sources", "multimodal_universe",
    "to_model_input", "with_overrides",
]

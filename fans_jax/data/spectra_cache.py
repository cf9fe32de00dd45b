"""Dataset spectral statistics, streamed once and cached on disk.

``dataset_spectrum(cfg)`` reads the dataset in its source order (no shuffling), maps
every batch to model inputs (``u / 127.5 - 1`` in [-1, 1], on device), streams it
through :class:`fans_jax.spectra.SpectrumAccumulator` and writes the result to
``<cache_dir>/<name>_<H>x<W>x<C>_<key hash>.json``. The key holds the source's
fingerprint (everything that changes its content: dataset, resolution, channels,
split, crop, synthetic options, file identity), the number of images, the band spec
and the scale; a second call with the same key reads the file. Default cache dir:
``$FANS_CACHE_DIR`` or ``~/.cache/fans_jax/spectra``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib

import grain
import jax
import ml_collections
import numpy as np
from absl import logging

from fans_jax import spectra
from fans_jax.data import base
from fans_jax.data import pipeline
from fans_jax.data import registry

CACHE_ENV = "FANS_CACHE_DIR"
CACHE_VERSION = 2  # 2: subsets are evenly spaced over the source, not its first N
SCALE = "model_input_[-1,1]"


def default_cache_dir() -> pathlib.Path:
  if os.environ.get(CACHE_ENV):
    return pathlib.Path(os.environ[CACHE_ENV]).expanduser()
  return pathlib.Path.home() / ".cache" / "fans_jax" / "spectra"


def cache_key(source: base.ImageSource, num_images: int, band_spec: spectra.BandSpec) -> dict:
  """Everything the statistics depend on (JSON-serialisable)."""
  key = {"version": CACHE_VERSION, "source": source.fingerprint(), "num_images": int(num_images),
         "band_spec": dataclasses.asdict(band_spec), "scale": SCALE}
  return json.loads(json.dumps(key, sort_keys=True))  # as it reads back (tuples -> lists)


def cache_path(cache_dir, source: base.ImageSource, key: dict) -> pathlib.Path:
  digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
  h, w, c = source.image_shape
  return pathlib.Path(cache_dir) / f"{source.name}_{h}x{w}x{c}_{digest}.json"


spread_indices = base.spread_indices  # evenly spread subsets (the offline sets are class-sorted)


def iterate_in_order(source: base.ImageSource, num_images: int, batch_size: int = 500,
                     process_index: int = 0, process_count: int = 1, num_threads: int = 2):
  """Yields ``uint8`` batches of ``num_images`` images spread evenly over ``source``
  (:func:`spread_indices`; every image when ``num_images == len(source)``), this
  process's share (batches ``process_index::process_count``), read ahead by grain
  threads."""
  indices = spread_indices(len(source), num_images)
  starts = list(range(0, num_images, batch_size))[process_index::process_count]

  def read(j: int) -> np.ndarray:
    lo = starts[j]
    return source.get_batch(indices[lo:lo + batch_size])

  if not starts:
    return
  ds = grain.MapDataset.range(len(starts)).map(read)
  yield from ds.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                                  prefetch_buffer_size=4))


def spectrum_of_source(source: base.ImageSource, num_images: int, band_spec: spectra.BandSpec,
                       batch_size: int = 500) -> spectra.DatasetSpectrum:
  """Streams ``num_images`` images spread evenly over ``source`` (model-input scale) into statistics;
  under several JAX processes each reads its share and the sums are all-gathered."""
  acc = spectra.SpectrumAccumulator(band_spec)
  for batch in iterate_in_order(source, num_images, batch_size, jax.process_index(),
                                jax.process_count()):
    acc.update(pipeline.to_model_input(batch))
  return acc.allgather().finalize()


def dataset_spectrum(cfg: ml_collections.ConfigDict, num_images: int | None = None,
                     band_spec: spectra.BandSpec | None = None, cache_dir=None,
                     use_cache: bool = True, batch_size: int = 500,
                     source: base.ImageSource | None = None) -> spectra.DatasetSpectrum:
  """Spectral statistics of the dataset ``cfg`` describes, on the model-input scale.

  Args:
    cfg: a data config (:func:`fans_jax.data.default_config`).
    num_images: use ``num_images`` images spread evenly over the source
      (:func:`spread_indices`); ``None``: all.
    band_spec: bands for the band powers (default ``BandSpec()``: 8 linear bands).
    cache_dir: where results are cached (default ``$FANS_CACHE_DIR`` or
      ``~/.cache/fans_jax/spectra``).
    use_cache: read/write the cache (``False`` always recomputes and writes nothing).
    batch_size: images per streamed batch.
    source: the source of ``cfg`` if already built (an image folder is then not
      decoded again); default: built here.
  Returns:
    :class:`fans_jax.spectra.DatasetSpectrum` (psd, per-frequency variance, band
    powers; ``.fit()`` for alpha).
  """
  source = registry.get_source(cfg) if source is None else source
  band_spec = band_spec if band_spec is not None else spectra.BandSpec()
  n = len(source) if num_images is None else int(num_images)
  if not 2 <= n <= len(source):
    raise ValueError(f"num_images must be in [2, {len(source)}] for {source.name}, got {n}.")
  key = cache_key(source, n, band_spec)
  path = cache_path(cache_dir or default_cache_dir(), source, key)
  cached = _read_cache(path, key) if use_cache else None
  if jax.process_count() > 1:  # every process computes (and all-gathers) or none does
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    hits = multihost_utils.process_allgather(np.asarray([cached is not None], np.int32))
    if not np.all(hits):
      cached = None
  if cached is not None:
    logging.info("read cached spectrum of %s from %s", source.name, path)
    return cached
  stats = spectrum_of_source(source, n, band_spec, batch_size)
  if use_cache and jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    spectra.save_dataset_spectrum(tmp, stats, {"cache_key": key})
    os.replace(tmp, path)  # atomic: concurrent readers never see a partial file
    logging.info("cached spectrum of %s (%d images) at %s", source.name, n, path)
  return stats


def _read_cache(path: pathlib.Path, key: dict) -> spectra.DatasetSpectrum | None:
  if not path.exists():
    return None
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, ValueError) as e:
    logging.warning("unreadable cache file %s (%s); recomputing.", path, e)
    return None
  if data.get("cache_key") != key:
    logging.warning("cache file %s holds another key; recomputing.", path)
    return None
  return spectra.DatasetSpectrum.from_json(data)


def cached_spectrum_path(cfg: ml_collections.ConfigDict, num_images: int | None = None,
                         band_spec: spectra.BandSpec | None = None, cache_dir=None) -> pathlib.Path:
  """The cache file :func:`dataset_spectrum` reads/writes for these arguments."""
  source = registry.get_source(cfg)
  band_spec = band_spec if band_spec is not None else spectra.BandSpec()
  n = len(source) if num_images is None else int(num_images)
  return cache_path(cache_dir or default_cache_dir(), source, cache_key(source, n, band_spec))



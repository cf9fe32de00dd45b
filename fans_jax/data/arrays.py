"""An in-memory image source: the common back end of the offline sets, .npz files and
image folders."""

from __future__ import annotations

from typing import Any, Sequence

import ml_collections
import numpy as np
from absl import logging

from fans_jax.data import base


class ArraySource(base.ImageSource):
  """Images held in memory, cropped, resized and converted as the config says.

  Args:
    name: dataset name.
    images: ``uint8 [N, h, w, c]`` array, or a list of ``uint8 [h_i, w_i, c]`` arrays
      (images of different sizes, e.g. from a folder).
    cfg: data config (image_size, channels, crop, crop_scale, seed, size_policy).
    fingerprint: JSON-serialisable identity of the underlying data (file, checksum).

  With ``crop='center'`` every image is processed once, here; with ``crop='random'``
  the native images are kept and each batch is cropped with a generator drawn from
  ``(seed, epoch, index)``.
  """

  def __init__(self, name: str, images, cfg: ml_collections.ConfigDict,
               fingerprint: dict[str, Any]):
    self.name = name
    self.size = int(cfg.image_size)
    self.channels = int(cfg.channels)
    self.image_shape = (self.size, self.size, self.channels)
    self.crop, self.crop_scale, self.seed = cfg.crop, float(cfg.crop_scale), int(cfg.seed)
    self._fingerprint = dict(fingerprint)
    self._fingerprint.update(name=name, image_size=self.size, channels=self.channels,
                             crop=self.crop, crop_scale=self.crop_scale)
    if self.crop == "random":
      self._fingerprint["seed"] = self.seed
    uniform = isinstance(images, np.ndarray)
    n = len(images)
    if n == 0:
      raise ValueError(f"{name} holds no images.")
    if cfg.size_policy == "exact":
      sizes = {tuple(im.shape[:2]) for im in images} if not uniform else {images.shape[1:3]}
      if sizes != {(self.size, self.size)}:
        raise ValueError(
            f"{name}: size_policy='exact' needs every image to be {self.size}x{self.size},"
            f" found sizes {sorted(sizes)[:5]}; use size_policy='crop_resize' to crop and"
            " resize them.")
    if uniform:
      images = base.convert_channels(images, self.channels)
    else:
      images = [base.convert_channels(im, self.channels) for im in images]
    self._n = n
    if self.crop == "center":
      self._images = self._process_all(images, uniform)
      self._natives = None
    else:
      self._images = None
      self._natives = images
    logging.info("%s: %d images -> %s (crop=%s, crop_scale=%g)", name, n, self.image_shape,
                 self.crop, self.crop_scale)

  def _process_all(self, images, uniform: bool) -> np.ndarray:
    if uniform:
      h, w = images.shape[1:3]
      top, left, side = base.crop_box(h, w, "center", self.crop_scale)
      return np.ascontiguousarray(
          base.resize_batch(images[:, top:top + side, left:left + side], self.size))
    return np.stack([base.crop_resize(im, self.size, "center", self.crop_scale)
                     for im in images])

  def __len__(self) -> int:
    return self._n

  def get_batch(self, indices: Sequence[int], epoch: int = 0) -> np.ndarray:
    idx = self._check_indices(indices)
    if self._images is not None:
      return self._images[idx]
    out = np.empty((idx.size,) + self.image_shape, np.uint8)
    for j, i in enumerate(idx):
      out[j] = base.crop_resize(self._natives[i], self.size, "random", self.crop_scale,
                                base.crop_rng(self.seed, epoch, i))
    return out

  def fingerprint(self) -> dict[str, Any]:
    return dict(self._fingerprint)

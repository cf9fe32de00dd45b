"""The random-access image source every dataset implements, and image operations.

A source holds ``N`` images and returns any of them as ``uint8 [H, W, C]`` (``H = W =
cfg.image_size``, ``C = cfg.channels``). Image operations (crop, resize, channel
conversion) are NumPy on the host; they are shared by every dataset so that the same
policy holds everywhere:

* crop: a square of side ``round(crop_scale * min(H, W))`` at the centre
  (``crop='center'``) or at a uniformly random position (``crop='random'``, drawn
  from ``(seed, epoch, index)``, so a random crop changes from epoch to epoch and is
  reproducible).
* resize: to ``image_size``; downscaling by an integer factor ``m`` averages ``m x m``
  blocks exactly (area averaging, rounding half up); any other factor uses PIL's
  ``BOX`` filter (area-weighted) down and ``BICUBIC`` up (upsampling adds no content:
  the spectrum above the native Nyquist frequency stays nearly empty).
* channels: RGB -> gray by ITU-R 601 luminance ``0.299 R + 0.587 G + 0.114 B`` (the
  weights PIL's ``convert('L')`` uses); gray -> RGB by replication; RGBA drops alpha.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

import ml_collections
import numpy as np

CROPS = ("center", "random")
SIZE_POLICIES = ("crop_resize", "exact")
LUMA = np.array([0.299, 0.587, 0.114])


class MissingPackageError(ImportError):
  """A dataset needs a package that is not installed; the message names the
  ``fans_jax`` extra (``pip install 'fans_jax[<extra>]'``) that brings it."""


def spread_indices(total: int, num_images: int) -> np.ndarray:
  """``num_images`` indices spread evenly over ``0 .. total - 1`` (all of them, in order,
  when ``num_images == total``). The offline sets are stored sorted by class, so a
  subset must not be their first N images. Returns ``int64[num_images]``, increasing."""
  if not 1 <= num_images <= total:
    raise ValueError(f"num_images must be in [1, {total}], got {num_images}.")
  return (np.arange(num_images, dtype=np.int64) * total) // num_images


def check_common_options(cfg: ml_collections.ConfigDict) -> None:
  """Validates the options every dataset shares; one ValueError per mistake."""
  if int(cfg.image_size) < 2:
    raise ValueError(f"image_size must be >= 2 pixels, got {cfg.image_size}.")
  if int(cfg.channels) < 1:
    raise ValueError(f"channels must be >= 1, got {cfg.channels}.")
  if cfg.crop not in CROPS:
    raise ValueError(f"crop={cfg.crop!r} is not one of {CROPS}.")
  if not 0 < float(cfg.crop_scale) <= 1:
    raise ValueError(f"crop_scale must be in (0, 1], got {cfg.crop_scale}.")
  if cfg.size_policy not in SIZE_POLICIES:
    raise ValueError(f"size_policy={cfg.size_policy!r} is not one of {SIZE_POLICIES}.")


class ImageSource(abc.ABC):
  """Random access to ``N`` uint8 images ``[H, W, C]``.

  Subclasses implement :meth:`__len__`, :meth:`get_batch` and :meth:`fingerprint`.
  ``get_batch(indices, epoch)`` returns ``uint8 [len(indices), H, W, C]``; ``epoch``
  only matters for random crops. ``src[i]`` is ``get_batch([i], epoch=0)[0]``.
  """

  name: str = ""
  image_shape: tuple[int, int, int] = (0, 0, 0)

  @abc.abstractmethod
  def __len__(self) -> int:
    ...

  @abc.abstractmethod
  def get_batch(self, indices: Sequence[int], epoch: int = 0) -> np.ndarray:
    """``uint8 [len(indices), H, W, C]``."""

  @abc.abstractmethod
  def fingerprint(self) -> dict[str, Any]:
    """JSON-serialisable description of everything that determines the content."""

  def __getitem__(self, index: int) -> np.ndarray:
    n = len(self)
    index = int(index)
    if not -n <= index < n:
      raise IndexError(f"index {index} out of range for {self.name} of {n} images.")
    return self.get_batch([index % n])[0]

  def __repr__(self) -> str:
    return f"{type(self).__name__}(name={self.name!r}, len={len(self)}, image_shape={self.image_shape})"

  def _check_indices(self, indices) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    n = len(self)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
      raise IndexError(f"indices must lie in [0, {n}) for {self.name}; got"
                       f" [{idx.min()}, {idx.max()}].")
    return idx


# ----------------------------------------------------------------------------------
# Image operations (NumPy, uint8 in and out)
# ----------------------------------------------------------------------------------


def crop_box(height: int, width: int, crop: str, crop_scale: float,
             rng: np.random.Generator | None = None) -> tuple[int, int, int]:
  """Top, left and side of the square crop (see the module docstring)."""
  side = max(1, int(round(crop_scale * min(height, width))))
  if crop == "center":
    return (height - side) // 2, (width - side) // 2, side
  if rng is None:
    raise ValueError("a random crop needs an rng.")
  return (int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1)),
          side)


def crop_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
  """The generator of one random crop, from ``(seed, epoch, index)``."""
  return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), int(index), 7]))


def area_downsample(images: np.ndarray, factor: int) -> np.ndarray:
  """Averages ``factor x factor`` blocks: ``uint8 [..., H, W, C] -> [..., H/f, W/f, C]``.

  Rounds half up (``floor(mean + 0.5)``), so a constant image stays constant.
  """
  *lead, h, w, c = images.shape
  if h % factor or w % factor:
    raise ValueError(f"{h}x{w} is not divisible by the factor {factor}.")
  x = images.reshape(*lead, h // factor, factor, w // factor, factor, c)
  total = np.zeros((*lead, h // factor, w // factor, c), np.uint32)
  for i in range(factor):  # strided adds: ~10x faster than a sum over the block axes
    for j in range(factor):
      total += x[..., :, i, :, j, :]
  n = factor * factor
  return ((2 * total + n) // (2 * n)).astype(np.uint8)


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes a square ``uint8 [S, S, C]`` image to ``[size, size, C]``."""
  side = image.shape[0]
  if image.shape[1] != side:
    raise ValueError(f"resize expects a square image, got {image.shape[:2]}.")
  if side == size:
    return image
  if side > size and side % size == 0:
    return area_downsample(image, side // size)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  method = Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC
  chans = [np.asarray(Image.fromarray(image[..., c]).resize((size, size), method))
           for c in range(image.shape[-1])]
  return np.stack(chans, axis=-1)


def resize_batch(images: np.ndarray, size: int) -> np.ndarray:
  """:func:`resize` for a batch of square images ``[B, S, S, C]`` (vectorised when
  the factor is an integer)."""
  side = images.shape[1]
  if side == size:
    return images
  if side > size and side % size == 0:
    return area_downsample(images, side // size)
  return np.stack([resize(im, size) for im in images]) if len(images) else np.zeros(
      (0, size, size, images.shape[-1]), np.uint8)


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
  """``uint8 [..., C_in] -> [..., channels]``: RGB(A) -> gray by luminance, gray ->
  any C by replication, RGBA -> RGB by dropping alpha. Other pairs raise."""
  cin = images.shape[-1]
  if cin == channels:
    return images
  if cin == 4:
    images, cin = images[..., :3], 3
    if channels == 3:
      return images
  if cin == 1:
    return np.repeat(images, channels, axis=-1)
  if cin == 3 and channels == 1:
    gray = images.astype(np.float32) @ LUMA.astype(np.float32)
    return np.clip(np.floor(gray + 0.5), 0, 255).astype(np.uint8)[..., None]
  raise ValueError(f"cannot convert {cin}-channel images to channels={channels}; supported:"
                   " RGB(A) <-> gray, gray -> any number of channels.")


def crop_resize(image: np.ndarray, size: int, crop: str, crop_scale: float,
                rng: np.random.Generator | None = None) -> np.ndarray:
  """Square crop then resize of one ``uint8 [H, W, C]`` image to ``[size, size, C]``."""
  top, left, side = crop_box(image.shape[0], image.shape[1], crop, crop_scale, rng)
  return resize(image[top:top + side, left:left + side], size)


def check_uint8_batch(batch: np.ndarray, shape: tuple[int, int, int], name: str) -> np.ndarray:
  """Raises unless ``batch`` is ``uint8 [B, *shape]``."""
  if batch.dtype != np.uint8 or batch.shape[1:] != tuple(shape):
    raise ValueError(f"{name} produced {batch.dtype} {batch.shape[1:]}, expected uint8 {shape}.")
  return batch

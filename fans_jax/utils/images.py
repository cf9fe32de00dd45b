"""Images on the host: the one float -> uint8 rule, the one tiler, PNG files (NumPy).

Imports nothing from ``fans_jax`` (``utils`` is the bottom layer): the data pipeline,
the metrics and the figures all round and tile images with these functions.
"""

from __future__ import annotations

import io
import math

import numpy as np
from etils import epath
from PIL import Image  # Pillow, a dependency of matplotlib


def to_uint8(x) -> np.ndarray:
  """Model units (``[-1, 1]`` is the data range) to uint8, the one rounding rule of
  the project: clip to ``[-1, 1]``, then ``u = floor(127.5 (x + 1) + 0.5)`` (round half
  up, as torchvision's ``save_image``). Host NumPy, any shape."""
  x = np.clip(np.asarray(x, np.float32), -1.0, 1.0)
  return np.floor(127.5 * (x + 1.0) + 0.5).astype(np.uint8)


def tile(images: np.ndarray, ncols: int | None = None, pad: int = 2, pad_value=255,
         outer: bool = True) -> np.ndarray:
  """Tiles ``[N, H, W, C]`` images (any dtype) into one ``[rows, cols, C]`` array.

  ``ncols`` images per row (default ``ceil(sqrt(N))``, at most N), ``pad`` pixels of
  ``pad_value`` between tiles and, with ``outer``, around them:
  ``[R (H + pad) + pad, K (W + pad) + pad, C]`` (``- pad`` each without ``outer``).
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[0] == 0:
    raise ValueError(f"images must be a non-empty [N, H, W, C] array; got {images.shape}.")
  n, h, w, c = images.shape
  ncols = max(1, min(int(ncols or math.ceil(math.sqrt(n))), n))
  nrows = math.ceil(n / ncols)
  edge = pad if outer else -pad
  grid = np.full((nrows * (h + pad) + edge, ncols * (w + pad) + edge, c), pad_value,
                 images.dtype)
  start = pad if outer else 0
  for i in range(n):
    r, col = divmod(i, ncols)
    top, left = start + r * (h + pad), start + col * (w + pad)
    grid[top:top + h, left:left + w] = images[i]
  return grid


def make_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2,
              pad_value: int = 255) -> np.ndarray:
  """Tiles images into one uint8 picture (:func:`tile` with an outer border).

  Args:
    images: ``[N, H, W, C]`` in model units ([-1, 1] data range; clipped) or uint8.
    ncols: images per row (default ``ceil(sqrt(N))``).
    pad: pixels between tiles.
  Returns:
    ``uint8 [rows * (H + pad) + pad, ncols * (W + pad) + pad, C]``.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[0] == 0:
    raise ValueError(f"images must be a non-empty [N, H, W, C] array; got {images.shape}.")
  if images.dtype != np.uint8:
    images = to_uint8(images)
  return tile(images, ncols, pad, pad_value, outer=True)


def save_png(image: np.ndarray, path) -> epath.Path:
  """Writes ``uint8 [H, W, C]`` (C = 1 or 3) to ``path`` (folders created)."""
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"save_png needs uint8 [H, W, 1 or 3]; got {image.dtype} {image.shape}.")
  path = epath.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  buffer = io.BytesIO()
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, format="PNG")
  path.write_bytes(buffer.getvalue())  # local or remote (gs://) alike
  return path


def save_grid(images: np.ndarray, path, ncols: int | None = None) -> epath.Path:
  """:func:`make_grid` then :func:`save_png`; images with C not in (1, 3) show their
  first channel."""
  images = np.asarray(images)
  if images.shape[-1] not in (1, 3):
    images = images[..., :1]
  return save_png(make_grid(images, ncols), path)


__all__ = ["make_grid", "save_grid", "save_png"]

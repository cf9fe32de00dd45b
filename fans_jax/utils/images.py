"""Image grids and PNG files for samples (host NumPy)."""

from __future__ import annotations

import io
import math

import numpy as np
from etils import epath
from PIL import Image  # Pillow, a dependency of matplotlib

from fans_jax import data


def make_grid(images: np.ndarray, ncols: int | None = None, pad: int = 2,
              pad_value: int = 255) -> np.ndarray:
  """Tiles images into one picture.

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
    images = data.from_model_input(images)
  n, h, w, c = images.shape
  ncols = ncols or math.ceil(math.sqrt(n))
  nrows = math.ceil(n / ncols)
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), pad_value, np.uint8)
  for i in range(n):
    r, col = divmod(i, ncols)
    top, left = pad + r * (h + pad), pad + col * (w + pad)
    grid[top:top + h, left:left + w] = images[i]
  return grid


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

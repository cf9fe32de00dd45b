"""Local data: the offline shared sets, any ``.npz`` file and any folder of images.

Offline sets (``<data_dir>/README.md`` describes them) are read from ``cfg.data_dir``,
else ``$FANS_DATA_DIR``, else ``<repo root>/../shared/data``, and checked against that
folder's ``SHA256SUMS`` once per process (a file is hashed again only if its size or
modification time changed). An offline set holds at most ``cfg.num_examples`` images,
spread evenly over its file (the files are sorted by class); the default 10,000 keeps
every image of every offline set.

Bad input ends in one clear error each:
* a missing file: FileNotFoundError saying where to put it or to set FANS_DATA_DIR;
* a wrong checksum: ValueError naming the file, both hashes and how to fix it;
* an .npz without the array: ValueError listing the arrays it has;
* float arrays with NaN/inf, or values outside ``cfg.value_range``; integer arrays
  outside [0, 255]: ValueError with the count and the extreme values;
* folders: unreadable/corrupt files are skipped with a logged warning and counted in
  ``src.skipped`` (``on_corrupt='skip'``, default) or raise (``on_corrupt='error'``);
  images of other sizes are cropped and resized (``size_policy='crop_resize'``) or raise
  (``'exact'``); gray, palette and RGBA images among RGB ones are converted (gray ->
  replicated, RGBA -> alpha dropped; counted in ``src.converted``); 16-bit or float
  images raise (their scaling to 8 bits is ambiguous).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import threading
from typing import Any

import ml_collections
import numpy as np
from absl import logging

from fans_jax.data import arrays
from fans_jax.data import base
from fans_jax.data import registry
from fans_jax.utils import files

DATA_ENV = "FANS_DATA_DIR"
CHECKSUM_FILE = "SHA256SUMS"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                    ".pgm")

_verified: dict[tuple[str, int, int], str] = {}
_verified_lock = threading.Lock()


def repo_root() -> pathlib.Path:
  return pathlib.Path(__file__).resolve().parents[2]


def resolve_data_dir(data_dir: str = "") -> pathlib.Path:
  """``data_dir`` if set, else ``$FANS_DATA_DIR``, else ``<repo root>/../shared/data``."""
  if data_dir:
    return pathlib.Path(data_dir).expanduser()
  if os.environ.get(DATA_ENV):
    return pathlib.Path(os.environ[DATA_ENV]).expanduser()
  return repo_root().parent / "shared" / "data"


def sha256(path: pathlib.Path) -> str:
  """SHA-256 hex digest of a data file (checked against ``SHA256SUMS``)."""
  return files.digest(path, "sha256")


def read_checksums(data_dir: pathlib.Path) -> dict[str, str]:
  path = data_dir / CHECKSUM_FILE
  if not path.exists():
    raise FileNotFoundError(
        f"{path} is missing: the offline sets need their checksum list. Copy the shared"
        f" data folder (with {CHECKSUM_FILE}) to {data_dir}, set {DATA_ENV}, or set"
        " verify_checksums=False.")
  sums = {}
  for line in path.read_text().splitlines():
    if line.strip():
      digest, name = line.split(maxsplit=1)
      sums[name.strip().lstrip("*")] = digest.lower()
  return sums


def verify_file(path: pathlib.Path, expected: str) -> None:
  """Checks ``path`` against its SHA-256 once per process (re-checks if it changed)."""
  stat = path.stat()
  key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
  with _verified_lock:
    if _verified.get(key) == expected:
      return
  actual = sha256(path)
  if actual != expected:
    raise ValueError(
        f"checksum mismatch for {path}: SHA-256 {actual}, expected {expected} (from"
        f" {path.parent / CHECKSUM_FILE}). The file is damaged or a different version:"
        " copy it again from the shared data folder.")
  with _verified_lock:
    _verified[key] = expected
  logging.info("verified SHA-256 of %s", path)


def shared_file(cfg: ml_collections.ConfigDict, filename: str) -> tuple[pathlib.Path, dict]:
  """Path of an offline set's file, existing and (if asked) checksum-verified, and its
  identity for cache keys (the SHA-256 if verified, else size and modification time)."""
  data_dir = resolve_data_dir(cfg.data_dir)
  path = data_dir / filename
  if not path.exists():
    raise FileNotFoundError(
        f"dataset {cfg.name!r} needs {filename}, not found in {data_dir}. Put {filename}"
        f" at {path} (it is in the project's shared data folder), or set data_dir /"
        f" ${DATA_ENV} to the folder that holds it.")
  if cfg.verify_checksums:
    sums = read_checksums(data_dir)
    if filename not in sums:
      raise ValueError(f"{filename} is not listed in {data_dir / CHECKSUM_FILE}; cannot"
                       " verify it (set verify_checksums=False to skip the check).")
    verify_file(path, sums[filename])
    return path, {"sha256": sums[filename]}
  stat = path.stat()
  return path, {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# ----------------------------------------------------------------------------------
# Arrays from .npz files
# ----------------------------------------------------------------------------------


def load_npz_array(path: pathlib.Path, key: str) -> np.ndarray:
  """``np.load(path)[key]`` (no pickles), with a clear error for a missing key."""
  try:
    with np.load(path, allow_pickle=False) as z:
      if key not in z.files:
        raise ValueError(f"{path} has no array {key!r}; it has {z.files}. Set array_key to"
                         " one of them.")
      return z[key]
  except (OSError, EOFError, ValueError) as e:
    if "has no array" in str(e):
      raise
    raise ValueError(f"cannot read {path} as an .npz file: {e}") from e


def images_to_uint8(array: np.ndarray, value_range=(0.0, 1.0), where: str = "") -> np.ndarray:
  """Validates an image array and returns ``uint8 [N, H, W, C]``.

  Accepts ``[N, H, W]`` (gray) or ``[N, H, W, C]`` with C in {1, 3, 4}; uint8 as is;
  other integers must lie in [0, 255] (booleans are refused: masks, not images);
  floats must be finite and inside
  ``value_range = (lo, hi)``, mapped linearly onto [0, 255] and rounded.
  """
  a = np.asarray(array)
  if a.ndim == 3:
    a = a[..., None]
  if a.ndim != 4 or a.shape[-1] not in (1, 3, 4):
    hint = (" (it looks channels-first: transpose it to [N, H, W, C])"
            if a.ndim == 4 and a.shape[1] in (1, 3, 4) else "")
    raise ValueError(f"{where}: images must be [N, H, W] or [N, H, W, C] with C in 1, 3, 4;"
                     f" got shape {array.shape}{hint}.")
  if a.dtype == np.uint8:
    return a
  if a.dtype == bool:  # a mask, not an image: 0/1 would be near-black, silently
    raise ValueError(f"{where}: boolean arrays are not images (True/False would become"
                     " pixel values 1/0 of 255). Convert them first, e.g."
                     " `images.astype(np.uint8) * 255`.")
  if np.issubdtype(a.dtype, np.integer):
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or hi > 255:
      raise ValueError(f"{where}: integer images must lie in [0, 255]; found values in"
                       f" [{lo}, {hi}] (dtype {a.dtype}). Rescale them to uint8 first.")
    return a.astype(np.uint8)
  if not np.issubdtype(a.dtype, np.floating):
    raise ValueError(f"{where}: unsupported image dtype {a.dtype}.")
  finite = np.isfinite(a)
  if not finite.all():
    raise ValueError(f"{where}: {int((~finite).sum())} of {a.size} values are NaN or inf.")
  lo, hi = (float(v) for v in value_range)
  if not hi > lo:
    raise ValueError(f"value_range must be (lo, hi) with hi > lo, got {value_range}.")
  amin, amax = float(a.min()), float(a.max())
  tol = 1e-6 * (hi - lo)
  if amin < lo - tol or amax > hi + tol:
    outside = int(((a < lo - tol) | (a > hi + tol)).sum())
    raise ValueError(f"{where}: {outside} float values lie outside value_range=({lo}, {hi})"
                     f" (min {amin:.6g}, max {amax:.6g}); set value_range to the range of"
                     " the data.")
  return np.clip(np.floor((a - lo) / (hi - lo) * 255 + 0.5), 0, 255).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class SharedSet:
  """An offline set: file per split, the array holding the images, optional split mask."""
  files: dict[str, str]
  array_key: str = "images"
  split_key: str | None = None  # an array of split names inside the file
  note: str = ""


SHARED_SETS = {
    "cifar10_local": SharedSet({"train": "cifar10_train10k_uint8.npz",
                                "test": "cifar10_test_uint8.npz"},
                               note="CIFAR-10 (JPEG q75 re-encode), 32x32 RGB"),
    "dtd_local": SharedSet({"train": "textures_dtd10_64_uint8.npz"},
                           note="DTD patches, 10 classes, 64x64 RGB"),
    "galaxy_zoo_local": SharedSet({"train": "galaxies_gz_64_uint8.npz",
                                   "validation": "galaxies_gz_64_uint8.npz",
                                   "all": "galaxies_gz_64_uint8.npz"}, split_key="split",
                                  note="Galaxy Zoo SDSS gri composites, 64x64 RGB"),
    "hubble_local": SharedSet({"train": "skimage_extras_64_uint8.npz"}, array_key="hubble_rgb",
                              note="Hubble Deep Field tiles, 64x64 RGB"),
    "textures_gray_local": SharedSet({"train": "skimage_extras_64_uint8.npz"},
                                     array_key="textures_gray",
                                     note="brick/grass/gravel textures, 64x64 gray"),
}


def load_shared(cfg: ml_collections.ConfigDict, spec: SharedSet) -> arrays.ArraySource:
  if cfg.split not in spec.files:
    raise ValueError(f"dataset {cfg.name!r} has splits {sorted(spec.files)}, not"
                     f" split={cfg.split!r}.")
  filename = spec.files[cfg.split]
  path, identity = shared_file(cfg, filename)
  images = load_npz_array(path, spec.array_key)
  if spec.split_key and cfg.split != "all":
    images = images[load_npz_array(path, spec.split_key) == cfg.split]
  fp = {"file": filename, "array_key": spec.array_key, "split": cfg.split, **identity}
  limit = int(cfg.num_examples)
  if limit < 1:
    raise ValueError(f"num_examples must be >= 1 for {cfg.name}, got {cfg.num_examples}.")
  if limit < len(images):  # a subset spread evenly over the (class-sorted) file
    images = images[base.spread_indices(len(images), limit)]
    fp["num_examples"] = limit
  images = images_to_uint8(images, where=str(path))
  return arrays.ArraySource(cfg.name, images, cfg, fp)


def _register_shared(name: str, spec: SharedSet):
  registry.register(name, f"{spec.note} (offline, {', '.join(spec.files.values())})")(
      lambda cfg: load_shared(cfg, spec))


for _name, _spec in SHARED_SETS.items():
  _register_shared(_name, _spec)


@registry.register("npz", "images from any .npz file (cfg.path, cfg.array_key)")
def _npz(cfg: ml_collections.ConfigDict) -> arrays.ArraySource:
  if not cfg.path:
    raise ValueError("dataset 'npz' needs path=<file.npz>.")
  path = pathlib.Path(cfg.path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f"npz file {path} does not exist (set path=... to an .npz file).")
  images = images_to_uint8(load_npz_array(path, cfg.array_key), cfg.value_range,
                           where=f"{path}[{cfg.array_key!r}]")
  stat = path.stat()
  fp = {"file": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
        "array_key": cfg.array_key, "value_range": list(cfg.value_range)}
  return arrays.ArraySource("npz", images, cfg, fp)


# ----------------------------------------------------------------------------------
# Folders of image files
# ----------------------------------------------------------------------------------


_PIL_CONVERT = {"L": "L", "RGB": "RGB", "RGBA": "RGBA", "P": "RGBA", "LA": "RGBA",
                "CMYK": "RGB", "YCbCr": "RGB", "1": "L", "PA": "RGBA", "RGBX": "RGB"}


def decode_image(path: pathlib.Path) -> tuple[np.ndarray, str]:
  """Decodes one file to ``uint8 [H, W, C]`` (C = 1, 3 or 4) and its PIL mode.

  Raises:
    OSError/SyntaxError: unreadable or corrupt file; ValueError: not 8-bit.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(path) as im:
    im.load()
    mode = im.mode
    if mode not in _PIL_CONVERT:
      raise ValueError(f"{path}: PIL mode {mode!r} is not 8-bit gray/colour (16-bit or float"
                       " images have no unambiguous 8-bit scaling); convert it first.")
    im = im.convert(_PIL_CONVERT[mode]) if _PIL_CONVERT[mode] != mode else im
    arr = np.asarray(im, dtype=np.uint8)
  if arr.ndim == 2:
    arr = arr[..., None]
  if arr.shape[-1] == 4:
    arr = arr[..., :3]
  return arr, mode


class FolderSource(arrays.ArraySource):
  """Every image file under ``cfg.path`` (recursively, sorted by path).

  All files are decoded when the source is built (so the length is exact and a corrupt
  file is found before training); fine for folders up to a few 100k small images. For
  larger sets convert them to an .npz or a tfds/ArrayRecord dataset.
  """

  def __init__(self, cfg: ml_collections.ConfigDict):
    if not cfg.path:
      raise ValueError("dataset 'folder' needs path=<folder of images>.")
    root = pathlib.Path(cfg.path).expanduser()
    if not root.is_dir():
      raise FileNotFoundError(f"image folder {root} does not exist (set path=...).")
    if cfg.on_corrupt not in ("skip", "error"):
      raise ValueError(f"on_corrupt={cfg.on_corrupt!r} is not one of ('skip', 'error').")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                   and p.is_file())
    if not files:
      raise FileNotFoundError(f"no image files ({', '.join(IMAGE_EXTENSIONS)}) under {root}.")
    images, kept, self.skipped, self.converted = [], [], [], []
    for path in files:
      try:
        arr, mode = decode_image(path)
      except (OSError, SyntaxError) as e:  # PIL raises these for corrupt/truncated files
        if cfg.on_corrupt == "error":
          raise ValueError(f"cannot decode image {path}: {e}") from e
        logging.warning("skipping unreadable image %s: %s", path, e)
        self.skipped.append(str(path))
        continue
      if mode not in ("RGB", "L") or (arr.shape[-1] == 1) != (int(cfg.channels) == 1):
        self.converted.append(str(path))
      images.append(arr)
      kept.append(path)
    if not images:
      raise ValueError(f"none of the {len(files)} image files under {root} could be decoded.")
    if self.skipped:
      logging.warning("folder %s: skipped %d unreadable of %d files (see warnings above).",
                      root, len(self.skipped), len(files))
    if self.converted:
      logging.info("folder %s: converted %d images to %d channel(s) (modes other than the"
                   " target's).", root, len(self.converted), int(cfg.channels))
    sizes = {im.shape[:2] for im in images}
    if len(sizes) > 1:
      logging.info("folder %s: %d different image sizes; each is %s-cropped and resized to %d.",
                   root, len(sizes), cfg.crop, int(cfg.image_size))
    uniform = len(sizes) == 1 and len({im.shape[-1] for im in images}) == 1
    data = np.stack(images) if uniform else images
    digest = hashlib.sha256()
    for path in kept:
      stat = path.stat()
      digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    fp = {"folder": str(root.resolve()), "files": digest.hexdigest()[:16]}
    self.files = [str(p) for p in kept]
    super().__init__("folder", data, cfg, fp)


@registry.register("folder", "every image file under cfg.path")
def _folder(cfg):
  return FolderSource(cfg)


def describe_shared() -> dict[str, Any]:
  return {name: dataclasses.asdict(spec) for name, spec in SHARED_SETS.items()}

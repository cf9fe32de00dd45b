"""Multimodal Universe image cutouts from a local folder of its HDF5 or parquet files.

Layouts read (``cfg.path`` is a file or a folder searched recursively):

* HDF5 (the MMU build scripts' ``healpix=*/*.hdf5``): ``image_array`` ``[N, bands, H,
  W]`` float32 flux and ``image_band`` ``[N, bands]`` band names (bytes).
* parquet (the Hugging Face hub files): a column ``image`` holding a struct with the
  band names (``band``) and the cutouts (``flux``, or ``array`` in older versions),
  ``[bands, H, W]`` per row.
``mmu_image_key`` names another HDF5 dataset / parquet struct field if needed.

Processing of every object, in this order:
  1. bands: ``mmu_bands`` (comma-separated names, case-insensitive, a name also matching
     the part after a '-' such as 'g' for 'DES-G'; or integer indices) map to the
     channels in that order; '' takes the first ``channels`` bands;
  2. centre crop of side ``crop_scale * min(H, W)`` and resize to ``image_size`` in
     flux space (area averaging for integer factors, PIL BOX/BICUBIC on float32
     otherwise), so pixels average physical flux; random crops are not supported here;
  3. clip the flux to ``mmu_flux_range = (lo, hi)``;
  4. arcsinh stretch ``y = asinh(f / s)``, ``s = mmu_softening`` (flux units);
  5. map ``[asinh(lo / s), asinh(hi / s)]`` linearly onto [0, 255] and round.
The defaults (s = 0.1, range (-0.05, 50)) are not tuned for a survey: look at the
images and the histogram before trusting a spectrum. An object with a non-finite flux
in a selected band is skipped with a logged warning (``on_corrupt='skip'``; counted
in ``src.skipped``) or raises (``'error'``).

The Hugging Face hub is not read directly: streaming needs the ``datasets`` package and
internet, neither of which this project depends on. Download a few files on a machine
with internet (``huggingface-cli download MultimodalUniverse/legacysurvey --repo-type
dataset --include 'dr10_south_21/healpix=1*/*'``) and set ``path`` to them.
"""

from __future__ import annotations

import hashlib
import pathlib
from typing import Sequence

import ml_collections
import numpy as np
from absl import logging

from fans_jax.data import arrays
from fans_jax.data import base
from fans_jax.data import registry

HDF5_SUFFIXES = (".hdf5", ".h5")
PARQUET_SUFFIXES = (".parquet",)


def _require(module: str):
  """Imports ``module`` (h5py or pyarrow: only this loader needs them) on first use."""
  try:
    return __import__(module)
  except ImportError as e:
    raise base.MissingPackageError(
        f"reading Multimodal Universe files needs {module!r}, which is not installed:"
        " pip install 'fans_jax[mmu]' (h5py and pyarrow).") from e


def resize_float(image: np.ndarray, size: int) -> np.ndarray:
  """Resizes a square float ``[S, S, C]`` image to ``[size, size, C]`` (float32)."""
  side = image.shape[0]
  if side == size:
    return image.astype(np.float32)
  if side > size and side % size == 0:
    m = side // size
    return image.reshape(size, m, size, m, -1).mean(axis=(1, 3)).astype(np.float32)
  from PIL import Image  # pylint: disable=g-import-not-at-top
  method = Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC
  return np.stack([np.asarray(Image.fromarray(image[..., c].astype(np.float32), mode="F")
                              .resize((size, size), method)) for c in range(image.shape[-1])],
                  axis=-1)


def stretch(flux: np.ndarray, softening: float, flux_range: Sequence[float]) -> np.ndarray:
  """Clip, arcsinh stretch and map to uint8 (steps 3-5 of the module docstring)."""
  lo, hi = float(flux_range[0]), float(flux_range[1])
  y = np.arcsinh(np.clip(flux, lo, hi) / softening)
  y_lo, y_hi = np.arcsinh(lo / softening), np.arcsinh(hi / softening)
  return np.clip(np.floor((y - y_lo) / (y_hi - y_lo) * 255 + 0.5), 0, 255).astype(np.uint8)


def select_bands(names: Sequence[str], spec: str, channels: int) -> list[int]:
  """Indices of the bands ``spec`` asks for (see the module docstring)."""
  names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
  if not spec:
    if len(names) < channels:
      raise ValueError(f"channels={channels} but the cutouts have only {len(names)} bands"
                       f" {names}.")
    return list(range(channels))
  wanted = [w.strip() for w in str(spec).split(",") if w.strip()]
  if len(wanted) != channels:
    raise ValueError(f"mmu_bands={spec!r} names {len(wanted)} bands but channels={channels}.")
  out = []
  for w in wanted:
    if w.lstrip("-").isdigit():
      i = int(w)
      if not 0 <= i < len(names):
        raise ValueError(f"band index {i} out of range; the cutouts have bands {names}.")
      out.append(i)
      continue
    hits = [i for i, n in enumerate(names)
            if n.lower() == w.lower() or n.lower().split("-")[-1] == w.lower()]
    if len(hits) != 1:
      raise ValueError(f"band {w!r} matches {len(hits)} of the bands {names}; name one"
                       " exactly or give its index.")
    out.append(hits[0])
  return out


def _iter_hdf5(path: pathlib.Path, key: str, chunk: int = 256):
  h5py = _require("h5py")
  with h5py.File(path, "r") as f:
    key = key or "image_array"
    if key not in f:
      raise ValueError(f"{path} has no dataset {key!r}; it has {sorted(f.keys())} (set"
                       " mmu_image_key).")
    data = f[key]
    if data.ndim != 4:
      raise ValueError(f"{path}[{key!r}] must be [N, bands, H, W]; got shape {data.shape}.")
    if "image_band" in f:  # [N, bands] (one row per object, all alike) or [bands]
      names = f["image_band"]
      bands = names[0] if names.ndim == 2 else names[:]
    else:
      bands = [str(i) for i in range(data.shape[1])]
    for lo in range(0, data.shape[0], chunk):
      yield np.asarray(data[lo:lo + chunk], np.float32), list(bands)


def _iter_parquet(path: pathlib.Path, key: str, chunk: int = 256):
  _require("pyarrow")
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  pf = pq.ParquetFile(path)
  if "image" not in pf.schema_arrow.names:
    raise ValueError(f"{path} has no column 'image'; it has {pf.schema_arrow.names}.")
  for batch in pf.iter_batches(batch_size=chunk, columns=["image"]):
    rows = batch.column(0).to_pylist()
    if not rows:
      continue
    fields = [key] if key else ["flux", "array"]
    field = next((k for k in fields if k in rows[0]), None)
    if field is None:
      raise ValueError(f"{path}: column 'image' has fields {sorted(rows[0])}, none of"
                       f" {fields} (set mmu_image_key).")
    flux = np.asarray([r[field] for r in rows], np.float32)
    if flux.ndim != 4:
      raise ValueError(f"{path}: image.{field} must be [bands, H, W] per row; got"
                       f" {flux.shape[1:]}.")
    bands = rows[0].get("band") or [str(i) for i in range(flux.shape[1])]
    yield flux, list(bands)


def find_files(path: pathlib.Path) -> list[pathlib.Path]:
  suffixes = HDF5_SUFFIXES + PARQUET_SUFFIXES
  if path.is_file():
    return [path]
  return sorted(p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


class MMUSource(arrays.ArraySource):
  """Multimodal Universe cutouts (see the module docstring); images processed once."""

  def __init__(self, cfg: ml_collections.ConfigDict):
    if not cfg.path:
      raise ValueError(
          "dataset 'mmu' needs path=<folder or file of Multimodal Universe HDF5/parquet"
          f" cutouts>. The Hugging Face hub ({cfg.mmu_dataset}) is not read directly: download"
          " a few files on a machine with internet and point path to them (see"
          " fans_jax/data/multimodal_universe.py).")
    if cfg.crop != "center":
      raise ValueError("dataset 'mmu' supports crop='center' only (choose the field of view"
                       " with crop_scale).")
    if not float(cfg.mmu_softening) > 0:
      raise ValueError(f"mmu_softening must be > 0, got {cfg.mmu_softening}.")
    lo, hi = (float(v) for v in cfg.mmu_flux_range)
    if not hi > lo:
      raise ValueError(f"mmu_flux_range must be (lo, hi) with hi > lo, got {cfg.mmu_flux_range}.")
    root = pathlib.Path(cfg.path).expanduser()
    if not root.exists():
      raise FileNotFoundError(f"Multimodal Universe path {root} does not exist.")
    files = find_files(root)
    if not files:
      raise FileNotFoundError(f"no .hdf5/.h5/.parquet files under {root}.")
    size, channels = int(cfg.image_size), int(cfg.channels)
    images, self.skipped, band_names = [], [], None
    digest = hashlib.sha256()
    for path in files:
      stat = path.stat()
      digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
      reader = _iter_hdf5 if path.suffix.lower() in HDF5_SUFFIXES else _iter_parquet
      offset = 0
      for flux, names in reader(path, cfg.mmu_image_key):
        idx = select_bands(names, cfg.mmu_bands, channels)
        band_names = band_names or [names[i] for i in idx]
        flux = np.moveaxis(flux[:, idx], 1, -1)  # [n, H, W, C]
        top, left, side = base.crop_box(flux.shape[1], flux.shape[2], "center",
                                        float(cfg.crop_scale))
        for j, obj in enumerate(flux[:, top:top + side, left:left + side]):
          if not np.all(np.isfinite(obj)):
            where = f"{path}[{offset + j}]"
            if cfg.on_corrupt == "error":
              raise ValueError(f"{where} has {int((~np.isfinite(obj)).sum())} non-finite flux"
                               " values in the selected bands.")
            logging.warning("skipping %s: non-finite flux values", where)
            self.skipped.append(where)
            continue
          images.append(stretch(resize_float(obj, size), float(cfg.mmu_softening), (lo, hi)))
        offset += len(flux)
    if not images:
      raise ValueError(f"no usable cutouts under {root} ({len(self.skipped)} skipped).")
    if self.skipped:
      logging.warning("mmu: skipped %d objects with non-finite flux.", len(self.skipped))
    self.band_names = [b.decode() if isinstance(b, bytes) else str(b) for b in band_names]
    fp = {"files": digest.hexdigest()[:16], "bands": self.band_names,
          "softening": float(cfg.mmu_softening), "flux_range": [lo, hi]}
    cfg_native = ml_collections.ConfigDict(dict(cfg))
    cfg_native.crop_scale = 1.0  # already cropped and resized above
    super().__init__("mmu", np.stack(images), cfg_native, fp)
    self._fingerprint["crop_scale"] = float(cfg.crop_scale)


@registry.register("mmu", "Multimodal Universe cutouts from local HDF5/parquet files (path=...)")
def _mmu(cfg):
  return MMUSource(cfg)

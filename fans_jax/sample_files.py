"""Sampler settings and the one sample-file format: its writer, its reader, its name.

Every tool that draws or reads samples (``launch/sample.py``, ``launch/evaluate.py``,
the study, the notebooks, training grids) describes how they were drawn with one
:class:`SamplerSettings` and stores them with :func:`write_samples` /
:func:`read_samples`.

A sample file is an ``.npz`` (``np.load`` without pickles) holding

* ``images``: ``uint8 [N, H, W, C]`` (samples in model units ``[-1, 1]`` clipped and
  rounded as :func:`fans_jax.metrics.features.images_to_uint8` does, the same
  quantisation the reference images get);
* ``settings``: a JSON string: the :class:`SamplerSettings` fields, the checkpoint
  ``step`` and anything else the writer records (workdir, dataset, noise family).

Its default name, :func:`sample_file_stem`, carries every setting that changes the
samples: ``ddpm1000_clip_seed0_step600`` or ``ddim100_eta1_noclip_seed3_step2000``,
so a clipped and an unclipped draw of the same run never overwrite each other.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from typing import Any

import numpy as np
from absl import logging

SAMPLERS = ("ddpm", "ddim")
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SamplerSettings:
  """How samples are drawn: the one type shared by every sampling tool.

  Attributes:
    sampler: ``ddpm`` (ancestral, every one of the T steps) or ``ddim``.
    num_steps: DDIM steps; ``None`` or 0 means T. Ignored (always T) by ``ddpm``.
    eta: DDIM stochasticity in [0, 1] (1: ancestral-like, 0: deterministic).
    clip_x0: clip the predicted ``x0`` to the data range [-1, 1] at every step, as
      Ho et al.'s sampler and diffusers' ``DDPMScheduler(clip_sample=True)`` do. The
      default; turn it off only for research on the unclipped reverse process (an
      under-trained network then gives saturated samples).
    seed: sample ``i`` uses ``fold_in(key(seed), i)``.
  """
  sampler: str = "ddpm"
  num_steps: int | None = None
  eta: float = 0.0
  clip_x0: bool = True
  seed: int = 0

  def __post_init__(self):
    if self.sampler not in SAMPLERS:
      raise ValueError(f"sampler={self.sampler!r} is not one of {SAMPLERS}.")
    if self.num_steps is not None and int(self.num_steps) < 0:
      raise ValueError(f"num_steps={self.num_steps} must be >= 0 (0 or None: all T steps).")
    if not 0.0 <= float(self.eta) <= 1.0:
      raise ValueError(f"eta={self.eta} must lie in [0, 1].")

  def steps(self, num_timesteps: int) -> int:
    """The number of network evaluations: T for ``ddpm``, else ``num_steps`` (or T)."""
    if self.sampler == "ddpm" or not self.num_steps:
      return int(num_timesteps)
    if int(self.num_steps) > int(num_timesteps):
      raise ValueError(f"num_steps={self.num_steps} exceeds T={num_timesteps}.")
    return int(self.num_steps)

  def resolved(self, num_timesteps: int) -> "SamplerSettings":
    """A copy with ``num_steps`` made explicit (and ``eta`` 0 for ``ddpm``)."""
    return dataclasses.replace(self, num_steps=self.steps(num_timesteps),
                               eta=float(self.eta) if self.sampler == "ddim" else 0.0,
                               clip_x0=bool(self.clip_x0), seed=int(self.seed))

  def to_json(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_json(cls, data: dict[str, Any]) -> "SamplerSettings":
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def sample_file_stem(settings: SamplerSettings, num_timesteps: int, step: int | None = None
                     ) -> str:
  """The file name (no suffix) of a sample set: every setting that changes the images.

  ``ddpm1000_clip_seed0_step600``; ``ddim100_eta1_noclip_seed0_step600``.
  """
  s = settings.resolved(num_timesteps)
  parts = [f"{s.sampler}{s.num_steps}"]
  if s.sampler == "ddim":
    parts.append(f"eta{s.eta:g}")
  parts.append("clip" if s.clip_x0 else "noclip")
  parts.append(f"seed{s.seed}")
  if step is not None:
    parts.append(f"step{int(step)}")
  return "_".join(parts)


@dataclasses.dataclass(frozen=True)
class SampleFile:
  """What :func:`read_samples` returns.

  images: ``uint8 [N, H, W, C]``. settings: the sampler settings (``None`` when the
  file does not say). info: everything else the writer recorded (step, workdir, ...).
  path: where it was read from.
  """
  images: np.ndarray
  settings: SamplerSettings | None
  info: dict
  path: str


def write_samples(path, images, settings: SamplerSettings | None = None, **info) -> str:
  """Writes a sample file; returns its path (``.npz`` appended if missing).

  Args:
    path: a local path or any ``etils.epath`` path (``gs://...``).
    images: ``uint8 [N, H, W, C]``, or floats in model units (clipped to [-1, 1] and
      rounded to uint8).
    settings: how they were drawn.
    **info: JSON-serialisable extras (``step``, ``workdir``, ``dataset``, ``noise``).
  """
  from fans_jax.metrics import features  # pylint: disable=import-outside-toplevel
  from etils import epath  # pylint: disable=import-outside-toplevel
  path = str(path)
  if not path.endswith(".npz"):
    path += ".npz"
  array = features.images_to_uint8(images)
  meta = {"format_version": FORMAT_VERSION, **info,
          "sampler_settings": settings.to_json() if settings is not None else None}
  buffer = io.BytesIO()
  np.savez(buffer, images=array, settings=json.dumps(meta, sort_keys=True, default=str))
  target = epath.Path(path)
  target.parent.mkdir(parents=True, exist_ok=True)
  if "://" in path:
    target.write_bytes(buffer.getvalue())
  else:  # atomic on a local file system: a reader never sees a partial file
    tmp = target.parent / f".{target.name}.tmp{os.getpid()}"
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)
  return path


def _to_uint8_checked(array: np.ndarray, path: str, key: str) -> np.ndarray:
  """A 4-D array of a sample file as uint8, refusing or warning on odd value ranges."""
  from fans_jax.metrics import features  # pylint: disable=import-outside-toplevel
  if array.ndim != 4:
    raise ValueError(f"'{key}' in {path} has shape {array.shape}; expected [N, H, W, C].")
  if array.dtype == np.bool_:
    raise ValueError(f"'{key}' in {path} is boolean; sample images are uint8 [0, 255] or"
                     " floats in [-1, 1].")
  if array.dtype == np.uint8:
    return array
  if np.issubdtype(array.dtype, np.integer):
    raise ValueError(f"'{key}' in {path} has dtype {array.dtype}; use uint8 [0, 255] or floats"
                     " in [-1, 1].")
  lo, hi = float(np.min(array)), float(np.max(array))
  if hi > 1.5 and lo >= 0:
    logging.warning("'%s' in %s holds floats in [%.3g, %.3g]: that looks like [0, 255], not the"
                    " [-1, 1] model units; values beyond [-1, 1] are clipped. Convert with"
                    " x / 127.5 - 1, or save uint8.", key, path, lo, hi)
  elif lo >= 0 and hi <= 1.0 and hi > 0:
    logging.warning("'%s' in %s holds floats in [%.3g, %.3g]: that looks like [0, 1] images, not"
                    " the [-1, 1] model units (they would all map to the upper half of the"
                    " range). Convert with 2 x - 1, or save uint8.", key, path, lo, hi)
  return features.images_to_uint8(array)


def read_samples(path) -> SampleFile:
  """Reads a sample file (or any ``.npz`` holding one image array).

  Accepts, in this order: ``images`` (this module's format), ``samples`` (float32 in
  model units, as written by earlier versions of ``launch/sample.py``), or the only
  4-D array of the file (uint8 ``[N, H, W, C]`` or floats in [-1, 1]).

  Raises:
    FileNotFoundError: no such file. ValueError: no image array, or a bad dtype/shape.
  """
  path = str(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"samples file {path} does not exist.")
  with np.load(path, allow_pickle=False) as data:
    files = list(data.files)
    key = next((k for k in ("images", "samples") if k in files), None)
    if key is None:
      four_d = [k for k in files if data[k].ndim == 4]
      if len(four_d) != 1:
        raise ValueError(f"{path} holds {files}; expected an image array 'images' [N, H, W, C]"
                         " (uint8, or floats in [-1, 1]).")
      key = four_d[0]
    images = _to_uint8_checked(np.asarray(data[key]), path, key)
    meta: dict = {}
    for name in ("settings", "metadata"):
      if name in files:
        try:
          meta = json.loads(str(data[name]))
        except json.JSONDecodeError as e:
          raise ValueError(f"'{name}' in {path} is not JSON: {e}") from e
        break
  raw = meta.pop("sampler_settings", None)
  if raw is None and "sampler" in meta:  # older files: the fields at the top level
    raw = {k: meta[k] for k in ("sampler", "num_steps", "eta", "clip_x0", "seed") if k in meta}
  settings = SamplerSettings.from_json(raw) if raw else None
  return SampleFile(images=images, settings=settings, info=meta, path=path)


__all__ = ["FORMAT_VERSION", "SAMPLERS", "SampleFile", "SamplerSettings", "read_samples",
           "sample_file_stem", "write_samples"]

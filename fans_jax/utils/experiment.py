"""From a config to the objects a run needs: image shape, dataset spectrum, schedule.

Shared by training (:mod:`fans_jax.train`) and sampling (:mod:`fans_jax.sampling`),
so that a trained run is rebuilt exactly as it was trained. The dataset spectrum a
FANS schedule is shaped with is written once into the workdir
(:data:`SPECTRUM_FILE`); resuming and sampling read it from there, so they never need
the data and always get the schedule the network was trained with.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from fans_jax import data, diffusion, schedules, spectra
from fans_jax.utils import config as config_utils

SPECTRUM_FILE = "data_spectrum.json"


def as_path(path) -> epath.Path:
  """A workdir path: local (made absolute) or remote (``gs://...``, via etils)."""
  text = os.fspath(path)
  return epath.Path(text if "://" in text else os.path.abspath(text))


@dataclasses.dataclass(frozen=True)
class NoiseConfig:
  """``config.noise``.

  Attributes:
    name: noise spectrum family (``schedules.spectrum_family_names()``).
    num_timesteps: T.
    beta_schedule: ``linear`` or ``cosine``.
    objective: what the network predicts (``diffusion.OBJECTIVES``; ``eps`` default).
    ddim_only: allow a schedule that breaks the forward chain (DDIM eta=0 only).
    spectrum_images: images the dataset spectrum is estimated from (0: all).
    options: the family's options (``schedules.make_schedule(**options)``).
  """
  name: str = "white"
  num_timesteps: int = 1000
  beta_schedule: str = "linear"
  objective: str = "eps"
  ddim_only: bool = False
  spectrum_images: int = 10000
  options: dict = dataclasses.field(default_factory=dict)


def noise_config(config: ml_collections.ConfigDict) -> NoiseConfig:
  """The typed ``config.noise`` (raises a ValueError on unknown keys or names)."""
  noise = config_utils.from_config(NoiseConfig, config.noise, "noise")
  options = config_utils.to_dict(noise.options) or {}
  noise = dataclasses.replace(noise, options=options)
  if noise.name not in schedules.spectrum_family_names():
    raise ValueError(f"config.noise.name={noise.name!r} is not one of"
                     f" {schedules.spectrum_family_names()}.")
  diffusion.check_objective(noise.objective)
  return noise


def image_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
  """``(H, W, C)`` of the images ``config.data`` describes."""
  return (int(config.data.image_size), int(config.data.image_size), int(config.data.channels))


def needs_spectrum(noise: NoiseConfig) -> bool:
  """Every family but ``white`` is shaped with the dataset spectrum."""
  return noise.name != "white"


def _option(fn: Callable, options: dict, name: str) -> Any:
  """``options[name]``, else the default of ``fn``'s argument ``name``."""
  return options.get(name, inspect.signature(fn).parameters[name].default)


def _blog_bands(options: dict) -> spectra.BandSpec:
  fn = schedules.blog_spectrum
  return spectra.BandSpec(num_bands=int(_option(fn, options, "num_bands")),
                          f_min=_option(fn, options, "f_min"), f_max=0.5)


def _dc_bands(fn: Callable) -> Callable[[dict], spectra.BandSpec | None]:
  """Linear bands with DC in band 0 (what ``base_spectrum(mode='band')`` uses)."""
  def spec(options: dict):
    if "mode" in inspect.signature(fn).parameters and _option(fn, options, "mode") != "band":
      return None
    return spectra.BandSpec(num_bands=int(_option(fn, options, "num_bands")), include_dc=True)
  return spec


# Families that read the dataset's band powers, and the bands they read them on.
_BAND_SPECS: dict[str, Callable[[dict], spectra.BandSpec | None]] = {
    "blog": _blog_bands,
    "band_annealed": _dc_bands(schedules.band_annealed_spectrum),
    "matched": _dc_bands(schedules.matched_spectrum),
    "annealed": _dc_bands(schedules.annealed_spectrum),
}


def band_spec(noise: NoiseConfig) -> spectra.BandSpec | None:
  """The bands whose dataset band powers the family uses, or None."""
  fn = _BAND_SPECS.get(noise.name)
  return fn(noise.options) if fn is not None else None


def compute_spectrum(config: ml_collections.ConfigDict) -> spectra.DatasetSpectrum:
  """The dataset spectrum of ``config.data`` (cached by :mod:`fans_jax.data`).

  Every process must call it (the statistics are all-gathered).
  """
  noise = noise_config(config)
  source = data.get_source(config.data)
  n = len(source) if noise.spectrum_images <= 0 else min(noise.spectrum_images, len(source))
  spec = band_spec(noise) or spectra.BandSpec()
  logging.info("dataset spectrum of %s from %d images, bands %s", source.name, n, spec)
  return data.dataset_spectrum(config.data, num_images=n, band_spec=spec)


def run_spectrum(config: ml_collections.ConfigDict, workdir) -> spectra.DatasetSpectrum:
  """The run's dataset spectrum: read from ``workdir`` if there, else computed and
  written there (by process 0). All processes take the same branch."""
  path = as_path(workdir) / SPECTRUM_FILE
  exists = path.exists()
  if jax.process_count() > 1:
    exists = bool(multihost_utils.broadcast_one_to_all(np.int32(exists)))
  if exists:
    logging.info("dataset spectrum read from %s", path)
    return load_spectrum(workdir)
  stats = compute_spectrum(config)
  if jax.process_index() == 0:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{SPECTRUM_FILE}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(stats.to_json()))
    tmp.rename(path)  # atomic on a local file system: readers never see a partial file
  return stats


def load_spectrum(workdir) -> spectra.DatasetSpectrum | None:
  """The spectrum written by :func:`run_spectrum`, or None."""
  path = as_path(workdir) / SPECTRUM_FILE
  if not path.exists():
    return None
  return spectra.DatasetSpectrum.from_json(json.loads(path.read_text()))


def schedule_from_config(config: ml_collections.ConfigDict, shape: tuple[int, int, int],
                         spectrum: spectra.DatasetSpectrum | None = None
                         ) -> schedules.Schedule:
  """``schedules.make_schedule`` for ``config.noise``.

  Args:
    config: the run's config.
    shape: ``(H, W, C)``.
    spectrum: the dataset spectrum (needed by every family but ``white``).
  Raises:
    ValueError: unknown family or options, a missing spectrum, or a schedule that
      breaks the forward chain (the message names the first offending t and k).
  """
  noise = noise_config(config)
  kwargs: dict[str, Any] = {}
  if needs_spectrum(noise):
    if spectrum is None:
      raise ValueError(f"noise family {noise.name!r} needs the dataset spectrum; none was"
                       " given (train writes it to the workdir as " + SPECTRUM_FILE + ").")
    kwargs["data_psd"] = spectrum.psd
    spec = band_spec(noise)
    if spec is not None:
      if spectrum.band_spec != spec:
        raise ValueError(f"the dataset spectrum has band powers for {spectrum.band_spec}, but"
                         f" noise family {noise.name!r} with these options needs {spec}.")
      kwargs["data_band_powers"] = spectrum.band_powers
  return schedules.make_schedule(
      name=noise.name, num_timesteps=noise.num_timesteps, beta_schedule=noise.beta_schedule,
      image_shape=shape, ddim_only=noise.ddim_only, **kwargs, **noise.options)


__all__ = [
    "NoiseConfig", "SPECTRUM_FILE", "as_path", "band_spec", "compute_spectrum", "image_shape",
    "load_spectrum", "needs_spectrum", "noise_config", "run_spectrum", "schedule_from_config",
]

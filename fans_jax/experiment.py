"""From a config to the objects a run needs: image shape, dataset spectrum, schedule.

Shared by training (:mod:`fans_jax.train`) and sampling (:mod:`fans_jax.sampling`),
so that a trained run is rebuilt exactly as it was trained. The dataset spectrum a
FANS schedule is shaped with is written once into the workdir
(:data:`SPECTRUM_FILE`); resuming and sampling read it from there, so they never need
the data and always get the schedule the network was trained with.

The spectrum file records what it was computed from (``computed_from``: the data
config's identity, the source's fingerprint, the number of images, the bands and the
scale); training refuses a file computed from other data or settings, so a leftover
spectrum never shapes another dataset's noise. Workdir files are written to a
temporary name and renamed (a kill never leaves half a file); unreadable ones end in
one error naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from fans_jax import data, diffusion, schedules, spectra
from fans_jax.utils import config as config_utils

SPECTRUM_FILE = "data_spectrum.json"
# Data options that may differ between machines without changing the data.
DATA_LOCAL_KEYS = ("data_dir", "tfds_data_dir", "verify_checksums", "tfds_download")


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


def band_spec(noise: NoiseConfig) -> spectra.BandSpec | None:
  """The bands whose dataset band powers the family uses, or None (its options
  dataclass says: :meth:`fans_jax.schedules.FamilyOptions.band_spec`)."""
  return schedules.family_options(noise.name, noise.options).band_spec()


# ----------------------------------------------------------------------------------
# Workdir files: one reader and one atomic writer
# ----------------------------------------------------------------------------------


def read_json(path, what: str) -> Any:
  """The JSON content of ``path``; a ValueError naming the file (and ``what`` it
  should hold) if it cannot be read or parsed."""
  path = as_path(path)
  try:
    text = path.read_text()
  except OSError as e:
    raise ValueError(f"cannot read {path} ({what}): {e.strerror or e}.") from None
  try:
    return json.loads(text)
  except ValueError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); it should hold {what}. It is damaged"
                     " or not written by fans_jax: move it away (or restore it) and rerun."
                     ) from None


def write_text_atomic(path, text: str) -> None:
  """Writes ``text`` to a temporary file next to ``path`` and renames it over
  ``path`` (readers never see a partial file; a failed write leaves ``path`` as it
  was). Raises OSError naming the file."""
  path = as_path(path)
  tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
  try:
    tmp.write_text(text)
    tmp.replace(path)
  except OSError as e:
    try:
      tmp.unlink()
    except OSError:
      pass
    raise OSError(e.errno, f"cannot write {path}: {e.strerror or e}") from None
  except BaseException:  # e.g. SIGTERM during start-up: no temporary file left behind
    try:
      tmp.unlink()
    except OSError:
      pass
    raise


def data_identity(config: ml_collections.ConfigDict) -> dict:
  """``config.data`` without the machine-local keys (:data:`DATA_LOCAL_KEYS`), as it
  reads back from JSON."""
  d = config_utils.to_dict(config.data)
  return json.loads(json.dumps({k: v for k, v in d.items() if k not in DATA_LOCAL_KEYS}))


def check_spectrum_bands(config: ml_collections.ConfigDict) -> None:
  """The dataset spectrum's band powers need every band to hold a frequency of the
  image grid: a ValueError naming ``config.data.image_size`` if one is empty."""
  noise = noise_config(config)
  height, width, _ = image_shape(config)
  family_bands = band_spec(noise)
  spec = family_bands or spectra.BandSpec()
  try:
    spectra.band_masks(height, width, spec)
  except ValueError as e:
    fix = (" or fewer bands (config.noise.options.num_bands)" if family_bands is not None
           else "")
    raise ValueError(f"config.data.image_size={height} is too small for the {spec.num_bands}"
                     f" radial bands the dataset spectrum is measured on: {e} Use a larger"
                     f" config.data.image_size{fix}.") from None


def _spectrum_plan(config: ml_collections.ConfigDict, source) -> tuple[int, spectra.BandSpec]:
  noise = noise_config(config)
  n = len(source) if noise.spectrum_images <= 0 else min(noise.spectrum_images, len(source))
  return n, band_spec(noise) or spectra.BandSpec()


def spectrum_provenance(config: ml_collections.ConfigDict, source) -> dict:
  """What the run's spectrum is computed from (stored with it as ``computed_from``)."""
  n, spec = _spectrum_plan(config, source)
  return json.loads(json.dumps({
      "data": data_identity(config), "source": source.fingerprint(), "num_images": int(n),
      "band_spec": dataclasses.asdict(spec), "scale": data.spectra_cache.SCALE}))


def run_spectrum(config: ml_collections.ConfigDict, source=None) -> spectra.DatasetSpectrum:
  """The dataset spectrum of ``config.data`` (cached by :mod:`fans_jax.data`).

  Every process must call it (the statistics are all-gathered). ``source``: the
  already built source of ``config.data`` (else it is built here).
  """
  source = data.get_source(config.data) if source is None else source
  n, spec = _spectrum_plan(config, source)
  logging.info("dataset spectrum of %s from %d images, bands %s", source.name, n, spec)
  return data.dataset_spectrum(config.data, num_images=n, band_spec=spec, source=source)


def prepare_spectrum(config: ml_collections.ConfigDict, workdir, source, trusted: bool = False
                     ) -> tuple[spectra.DatasetSpectrum, dict, bool]:
  """The run's dataset spectrum, without writing anything to ``workdir``.

  Read from ``workdir/data_spectrum.json`` if there (and computed from this data and
  these settings), else computed (through the spectra cache). All processes take the
  same branch.

  Args:
    config: the run's config; workdir: the run's workdir; source: its data source.
    trusted: the workdir's config or checkpoint was already found to be this run's,
      so a file from before provenance records (none recorded) is accepted.
  Returns:
    ``(spectrum, provenance, new)``: ``new`` if it still has to be written
    (:func:`write_spectrum`).
  Raises:
    ValueError: the file is unreadable, or was computed from other data or settings
      (naming the differences).
  """
  path = as_path(workdir) / SPECTRUM_FILE
  provenance = spectrum_provenance(config, source)
  exists = path.exists()
  if jax.process_count() > 1:
    exists = bool(multihost_utils.broadcast_one_to_all(np.int32(exists)))
  if exists:
    raw = read_json(path, "the dataset spectrum of the run")
    check_spectrum_provenance(raw, provenance, path, trusted)
    logging.info("dataset spectrum read from %s", path)
    return _spectrum_from_json(raw, path), provenance, False
  return run_spectrum(config, source), provenance, True


def check_spectrum_provenance(raw: dict, provenance: dict, path, trusted: bool) -> None:
  """Refuses a spectrum file computed from other data or settings (see
  :func:`prepare_spectrum`)."""
  saved = raw.get("computed_from") if isinstance(raw, dict) else None
  fix = (f" Use another --workdir, or move {path} away to recompute it (only if no"
         " checkpoint in this workdir was trained with it). Nothing was changed.")
  if saved is None:
    if trusted:
      logging.info("%s records no provenance (written before fans_jax recorded it); the"
                   " workdir's config is this run's, so it is used.", path)
      return
    raise ValueError(f"{path} does not record what it was computed from (written by an older"
                     " fans_jax, or left over from another run), and no config.json or"
                     " checkpoint of this run vouches for it." + fix)
  keys = ("data", "num_images", "band_spec", "scale")
  diffs = config_utils.diff({k: saved.get(k) for k in keys}, {k: provenance[k] for k in keys})
  if diffs:
    raise ValueError(f"{path} was computed from other data or settings ({len(diffs)}"
                     f" difference(s), file != this config: {'; '.join(diffs[:6])}"
                     f"{' ...' if len(diffs) > 6 else ''})." + fix)
  if saved.get("source") != provenance["source"]:
    logging.warning("the files of dataset %s changed since %s was computed (%s); the run"
                    " keeps the spectrum it was trained with.", provenance["data"].get("name"),
                    path, "; ".join(config_utils.diff(saved.get("source") or {},
                                                      provenance["source"])[:4]))


def write_spectrum(workdir, stats: spectra.DatasetSpectrum, provenance: dict) -> None:
  """Writes the run's spectrum with its provenance (process 0; atomic)."""
  if jax.process_index() == 0:
    write_text_atomic(as_path(workdir) / SPECTRUM_FILE,
                      json.dumps(dict(stats.to_json(), computed_from=provenance)))


def _spectrum_from_json(raw: Any, path) -> spectra.DatasetSpectrum:
  try:
    return spectra.DatasetSpectrum.from_json(raw)
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(f"{path} is not a dataset spectrum written by fans_jax ({type(e).__name__}:"
                     f" {e}). Move it away (only if no checkpoint was trained with it) and"
                     " rerun to recompute it.") from None


def load_spectrum(workdir) -> spectra.DatasetSpectrum | None:
  """The spectrum written by :func:`write_spectrum`, or None (a ValueError naming the
  file if it cannot be read)."""
  path = as_path(workdir) / SPECTRUM_FILE
  if not path.exists():
    return None
  return _spectrum_from_json(read_json(path, "the dataset spectrum of the run"), path)


# ----------------------------------------------------------------------------------
# Degenerate data
# ----------------------------------------------------------------------------------


def check_spectrum(stats: spectra.DatasetSpectrum, name: str) -> bool:
  """Warns (and returns False) if the spectrum is degenerate: no power outside DC
  (constant or all-zero images, from which no noise can be shaped) or not finite."""
  reason = data.analysis.degenerate_reason(stats)
  if reason is not None:
    logging.warning("degenerate data: the images of %s have %s; there is nothing to learn,"
                    " and a FANS schedule shaped by this spectrum is only its floor and cap."
                    " Check the data (value range, the array key, the files).", name, reason)
    return False
  return True


def check_images(source, num: int = 64) -> bool:
  """Warns (and returns False) if every one of ``num`` images spread over ``source``
  is constant (no structure at all: e.g. all-zero images)."""
  n = min(num, len(source))
  batch = np.asarray(source.get_batch(data.spectra_cache.spread_indices(len(source), n)))
  flat = batch.reshape(n, -1)
  if np.all(flat.min(axis=1) == flat.max(axis=1)):
    values = sorted({int(v) for v in flat[:, 0]})
    logging.warning("degenerate data: all %d images checked of %s (%d) are constant (values"
                    " %s): there is nothing to learn. Check the data (value range, the array"
                    " key, the files).", n, source.name, len(source), values[:8])
    return False
  return True


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
    "DATA_LOCAL_KEYS", "NoiseConfig", "SPECTRUM_FILE", "as_path", "band_spec",
    "check_images", "check_spectrum", "check_spectrum_bands", "check_spectrum_provenance",
    "run_spectrum",
    "data_identity", "image_shape", "load_spectrum", "needs_spectrum", "noise_config",
    "prepare_spectrum", "read_json", "schedule_from_config", "spectrum_provenance",
    "write_spectrum", "write_text_atomic",
]

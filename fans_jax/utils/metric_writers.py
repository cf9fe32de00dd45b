"""Training metrics to the console and to TensorBoard event files, without TensorFlow.

The writer and the reader of the ``events.out.tfevents.*`` format live here:

* :class:`MetricWriter` logs every scalar at INFO (``[step] name=value, ...``, as
  ``clu.metric_writers.LoggingWriter`` does) and, when given a folder, writes
  TensorBoard event files through ``tensorboardX`` (pure Python on protobuf; the
  ``clu`` writers need TensorFlow). tensorboardX queues events and writes them from a
  background thread, so a write does not block the training loop.
* :class:`ReportProgress` logs steps/s, the fraction done and the ETA every N steps and
  writes ``steps_per_sec`` and ``uptime`` (what ``clu.periodic_actions.ReportProgress``
  did; that module imports clu's TensorFlow writers).
* :func:`read_events` reads the event files back (TFRecord framing with its CRCs,
  ``Event`` protos from tensorboardX): scalars, image tags and hyperparameters. It
  needs neither TensorFlow nor the ``tensorboard`` package.

View the files with ``pip install tensorboard; tensorboard --logdir <workdir>``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import struct
import time
from typing import Any, Mapping

import numpy as np
from absl import logging

EVENT_FILE_GLOB = "events.out.tfevents.*"


class MetricWriter:
  """Scalars, images and hyperparameters to the console and (optionally) TensorBoard.

  Args:
    logdir: folder of the event files (created); ``None``: console only. ``gs://``
      folders need the ``google-cloud-storage`` package (tensorboardX's GCS writer).
    flush_secs: tensorboardX writes pending events at least this often.
  """

  def __init__(self, logdir: str | os.PathLike | None = None, *, flush_secs: int = 30):
    self._tb = None
    if logdir is not None:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      logdir = os.fspath(logdir)
      if "://" not in logdir:
        pathlib.Path(logdir).mkdir(parents=True, exist_ok=True)
      self._tb = SummaryWriter(logdir=logdir, flush_secs=flush_secs)

  @property
  def logdir(self) -> str | None:
    return None if self._tb is None else self._tb.logdir

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Logs ``[step] k=v, ...`` (sorted by name) and writes one scalar per key."""
    if not scalars:
      return
    logging.info("[%d] %s", step, ", ".join(
        f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(scalars.items())))
    if self._tb is not None:
      for name, value in scalars.items():
        self._tb.add_scalar(name, float(value), global_step=int(step))

  def write_images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
    """``images[name]``: ``uint8 [N, H, W, C]`` (C = 1 or 3), or floats in [0, 1];
    the N images of a name are tiled into one TensorBoard image."""
    for name, value in images.items():
      value = np.asarray(value)
      if value.ndim != 4 or value.shape[-1] not in (1, 3):
        raise ValueError(f"image {name!r} must be [N, H, W, 1 or 3]; got shape {value.shape}.")
      logging.info("[%d] image %s %s", step, name, value.shape)
      if self._tb is not None:
        self._tb.add_images(name, value, global_step=int(step), dataformats="NHWC")

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Hyperparameters (bool, int, float or str values) for TensorBoard's HParams tab."""
    logging.info("hyperparameters: %d values", len(hparams))
    if self._tb is not None:
      from tensorboardX import summary  # pylint: disable=g-import-not-at-top
      for proto in summary.hparams(dict(hparams), {}):  # experiment, session start, end
        self._tb.file_writer.add_summary(proto)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def create_default_writer(logdir: str | os.PathLike | None, *,
                          just_logging: bool = False) -> MetricWriter:
  """Console and event files in ``logdir``; console only with ``just_logging`` (the
  processes other than 0 of a multi-process job)."""
  return MetricWriter(None if just_logging else logdir)


def _format_secs(secs: float) -> str:
  secs = int(round(secs))
  hours, rest = divmod(secs, 3600)
  minutes, seconds = divmod(rest, 60)
  return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class ReportProgress:
  """Called after each step; every ``every_steps`` steps (and at the last) logs
  ``x steps/s, p% (step/total), ETA`` and writes ``steps_per_sec`` and ``uptime``.

  Steps/s are measured over the steps since the previous report (the first report
  includes compilation).
  """

  def __init__(self, *, num_train_steps: int, writer: MetricWriter | None, every_steps: int):
    self._total, self._writer, self._every = int(num_train_steps), writer, max(int(every_steps), 1)
    self._t0 = time.monotonic()
    self._last: tuple[int, float] | None = None

  def __call__(self, step: int) -> None:
    now = time.monotonic()
    if self._last is None:  # the first call: steps/s counts from here
      self._last = (step, now)
      return
    if step % self._every and step != self._total:
      return
    prev_step, prev_time = self._last
    if step <= prev_step or now <= prev_time:
      return
    rate = (step - prev_step) / (now - prev_time)
    self._last = (step, now)
    eta = (self._total - step) / rate
    logging.info("%.2f steps/s, %.1f%% (%d/%d), ETA %s", rate, 100 * step / self._total, step,
                 self._total, _format_secs(eta))
    if self._writer is not None:
      self._writer.write_scalars(step, {"steps_per_sec": rate, "uptime": now - self._t0})


# ----------------------------------------------------------------------------------
# Reading event files back
# ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Events:
  """What :func:`read_events` found. ``scalars[tag]``: ``[(step, value), ...]`` in file
  order; ``images[tag]``: steps; ``hparams``: name -> value (None: none written)."""
  files: list[pathlib.Path]
  scalars: dict[str, list[tuple[int, float]]]
  images: dict[str, list[int]]
  hparams: dict[str, Any] | None


def _records(path: pathlib.Path):
  """The payloads of a TFRecord file, CRCs checked (a torn last record, as left by a
  killed writer, ends the file quietly)."""
  from tensorboardX.record_writer import masked_crc32c  # pylint: disable=g-import-not-at-top
  data = path.read_bytes()
  pos = 0
  while pos + 12 <= len(data):
    header = data[pos:pos + 8]
    (length,), (length_crc,) = struct.unpack("<Q", header), struct.unpack("<I", data[pos + 8:pos + 12])
    if masked_crc32c(header) != length_crc:
      raise ValueError(f"{path}: corrupt record header at byte {pos}.")
    end = pos + 12 + length + 4
    if end > len(data):
      return
    payload = data[pos + 12:pos + 12 + length]
    (payload_crc,) = struct.unpack("<I", data[end - 4:end])
    if masked_crc32c(payload) != payload_crc:
      raise ValueError(f"{path}: corrupt record at byte {pos}.")
    yield payload
    pos = end


def read_events(logdir: str | os.PathLike) -> Events:
  """Reads every ``events.out.tfevents.*`` file directly in ``logdir`` (sorted by name).

  Raises:
    FileNotFoundError: no event file in ``logdir``.
    ValueError: a record whose CRC does not match.
  """
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  from tensorboardX.proto import plugin_hparams_pb2  # pylint: disable=g-import-not-at-top
  files = sorted(pathlib.Path(logdir).glob(EVENT_FILE_GLOB))
  if not files:
    raise FileNotFoundError(f"no TensorBoard event files ({EVENT_FILE_GLOB}) in {logdir}.")
  scalars: dict[str, list[tuple[int, float]]] = {}
  images: dict[str, list[int]] = {}
  hparams = None
  for path in files:
    for payload in _records(path):
      event = event_pb2.Event.FromString(payload)
      for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
          scalars.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
        elif kind == "image":
          images.setdefault(value.tag, []).append(int(event.step))
        elif value.metadata.plugin_data.plugin_name == "hparams":
          data = plugin_hparams_pb2.HParamsPluginData.FromString(
              value.metadata.plugin_data.content)
          if data.WhichOneof("data") == "session_start_info":
            hparams = {k: _hparam_value(v)
                       for k, v in data.session_start_info.hparams.items()}
  return Events(files=files, scalars=scalars, images=images, hparams=hparams)


def _hparam_value(value) -> Any:
  kind = value.WhichOneof("kind")
  return None if kind is None else getattr(value, kind)


__all__ = ["EVENT_FILE_GLOB", "Events", "MetricWriter", "ReportProgress",
           "create_default_writer", "read_events"]

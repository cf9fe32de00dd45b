"""Checkpoints: Orbax ``CheckpointManager`` with verification and a safe fallback.

A checkpoint is one step directory holding named items:

* array items (``ocp.args.StandardSave``), e.g. ``state`` and ``ema``, restored into
  abstract targets that carry their shardings;
* JSON items (``ocp.args.JsonSave``), e.g. ``data`` (the input iterator's position)
  and ``meta`` (config fingerprint, versions);
* ``integrity``: per-leaf checksums of every array item, written with the save and
  checked after every restore, so a damaged file that still decodes is caught too.

Restoring the latest checkpoint tries the newest step first; a checkpoint that fails
to read or to verify is reported with a warning naming it, and the next older one is
tried. Nothing is ever deleted here: :meth:`Checkpointer.quarantine` *moves* a bad
step directory aside (``<directory>_corrupt/<step>``) so that training can continue
and later save that step number again. Saves are asynchronous (``wait`` before exit).

A save that fails (a read-only or immutable directory, a full disk, ...) raises one
:class:`CheckpointSaveError` naming the step, the directory, the cause and the newest
complete checkpoint, which a failed save never touches (Orbax writes a step into a
temporary directory and renames it only once complete; the failed attempt's
temporary directory is removed). Step directories are created synchronously, in
:meth:`Checkpointer.save`: created by Orbax's background threads, a failure there
left the other save threads waiting for it until Orbax's 5-minute barrier timeout,
which also kept the process from exiting.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import shutil
import threading
import time
from typing import Any, Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

INTEGRITY_ITEM = "integrity"
# The checksums are exact float64 sums of the stored float32 values, recomputed the
# same way on restore: only JSON's float round trip (exact) separates them.
CHECKSUM_RTOL = 1e-12


class CheckpointError(RuntimeError):
  """No readable checkpoint where one was expected."""


class CheckpointSaveError(CheckpointError):
  """A checkpoint could not be written (the message names the step, the directory,
  the cause and the newest complete checkpoint)."""


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _causes(e: BaseException):
  """``e`` and every exception it was raised from or while handling."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    yield e
    e = e.__cause__ or e.__context__


def failure_reason(e: BaseException, directory) -> str:
  """A one-line cause of a failed write under ``directory``: no space left (with the
  free space), not writable, or the first line of the error."""
  for cause in _causes(e):
    text = str(cause)
    code = getattr(cause, "errno", None)
    if code in _NO_SPACE or "No space left" in text or "RESOURCE_EXHAUSTED" in text:
      try:
        free = f"{shutil.disk_usage(str(directory)).free / 2**20:.1f} MiB free"
      except OSError:
        free = "free space unknown"
      return f"no space left on the device holding {directory} ({free})"
    if code in _NOT_WRITABLE or any(m in text for m in (
        "Permission denied", "Operation not permitted", "Read-only file system")):
      return (f"{directory} is not writable ({getattr(cause, 'strerror', None) or text[:200]}:"
              " read-only, immutable or owned by another user)")
  lines = str(e).strip().splitlines()
  return f"{type(e).__name__}: {lines[0][:300] if lines else ''}"


def checksums(tree) -> list[list[float]]:
  """Per-leaf ``[sum |x|, sum x w]`` in float64 on the host, ``w = 1 + (i mod 7)``
  for element ``i`` (so that moved values change it too). Exact and deterministic:
  the same bytes always give the same numbers."""
  out = []
  for x in jax.device_get(jax.tree.leaves(tree)):
    x = np.asarray(x, np.float64).ravel()
    weights = 1.0 + np.arange(x.size) % 7
    out.append([float(np.abs(x).sum()), float(x @ weights)])
  return out


def _verify(name: str, tree, expected: list[list[float]]) -> None:
  got = np.asarray(checksums(tree))
  want = np.asarray(expected, np.float64)
  if got.shape != want.shape:
    raise ValueError(f"item {name!r} has {got.shape[0]} arrays, the checksum {want.shape[0]}.")
  bad = ~np.isclose(got, want, rtol=CHECKSUM_RTOL, atol=0.0)
  if bad.any():
    leaf = int(np.argwhere(bad)[0][0])
    raise ValueError(f"item {name!r} fails its checksum (array #{leaf}: {got[leaf]} vs saved"
                     f" {want[leaf]}).")


@functools.cache
def _no_replica_parallel_saves() -> None:
  """Orbax splits every replicated array into per-replica slices to parallelise the
  device-to-host copy. On CPU (host memory already) that only adds thousands of tiny
  eager slice ops (seconds on the first save with 4 emulated devices), so it is
  turned off there, through Orbax's public type-handler registry."""
  ocp.type_handlers.register_type_handler(
      jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)


@dataclasses.dataclass
class Restored:
  """What :meth:`Checkpointer.restore` returns."""
  step: int
  arrays: dict[str, Any]
  json: dict[str, Any]
  skipped: list[int]          # newer steps that could not be read


class Checkpointer:
  """Saves and restores named items under ``directory`` (one sub-directory per step).

  Args:
    directory: where the step directories live (local, absolute, or ``gs://...``).
    max_to_keep: keep the newest N steps (older ones are removed by Orbax).
    async_save: write in a background thread (``save`` returns after the device to
      host copy; :meth:`wait` blocks until the files are committed).
    read_only: never write (for sampling and evaluation).
  """

  def __init__(self, directory, max_to_keep: int = 3, async_save: bool = True,
               read_only: bool = False):
    self.directory = epath.Path(directory)
    if jax.default_backend() == "cpu":
      _no_replica_parallel_saves()
    if not read_only and jax.process_index() == 0:
      self.directory.mkdir(parents=True, exist_ok=True)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=None if read_only else max_to_keep,
        save_interval_steps=0 if read_only else 1,
        enable_async_checkpointing=async_save, read_only=read_only, create=not read_only,
        async_options=ocp.AsyncOptions(create_directories_asynchronously=False))
    self._manager = ocp.CheckpointManager(self.directory, options=options)
    self._pending: int | None = None   # the step of the save in flight, if any
    self._failed: CheckpointSaveError | None = None
    self._failed_step: int | None = None

  # -- queries -----------------------------------------------------------------------

  def steps(self) -> list[int]:
    """Committed steps, ascending (unfinished saves are not listed)."""
    return sorted(int(s) for s in self._manager.all_steps())

  def latest_step(self) -> int | None:
    steps = self.steps()
    return steps[-1] if steps else None

  def read_json(self, step: int, name: str) -> dict:
    """One JSON item of ``step`` (raises if it cannot be read)."""
    out = self._manager.restore(step, args=ocp.args.Composite(**{name: ocp.args.JsonRestore()}))
    return out[name]

  def read_arrays(self, step: int, name: str) -> Any:
    """One array item of ``step`` as saved (no target: the saved tree structure and
    dtypes, on the default device). For inspection and tests."""
    out = self._manager.restore(step, args=ocp.args.Composite(
        **{name: ocp.args.StandardRestore()}))
    return out[name]

  # -- save / restore ----------------------------------------------------------------

  def save(self, step: int, arrays: dict[str, Any], json: dict[str, Any]) -> None:
    """Saves array items and JSON items as step ``step`` (asynchronously).

    Every process must call it (Orbax synchronises them); JSON items are written by
    process 0. Waits for the previous save first.

    Raises:
      CheckpointSaveError: this save or the previous one failed (after a failure
        every further save raises the same error).
      CheckpointError: ``step`` already exists.
    """
    self.wait()  # a failure of the previous save is reported as that step's
    args = {name: ocp.args.StandardSave(tree) for name, tree in arrays.items()}
    args.update({name: ocp.args.JsonSave(value) for name, value in json.items()})
    args[INTEGRITY_ITEM] = ocp.args.JsonSave(
        {name: checksums(tree) for name, tree in arrays.items()})
    self._pending = step
    try:
      saved = self._manager.save(step, args=ocp.args.Composite(**args), force=True)
    except Exception as e:  # pylint: disable=broad-except  (reported as one clear error)
      raise self._save_failed(step, e) from None
    if not saved:
      self._pending = None
      raise CheckpointError(f"checkpoint step {step} was not saved in {self.directory}"
                            f" (existing steps: {self.steps()}).")
    logging.info("saving checkpoint step %d to %s", step, self.directory)

  def _save_failed(self, step: int, e: BaseException) -> CheckpointSaveError:
    """Records and returns the error of a failed save of ``step`` (and removes the
    failed attempt's temporary directory: partial data, never a checkpoint)."""
    self._pending = None
    if self._failed is not None:
      return self._failed
    self._failed_step = step
    reason = failure_reason(e, self.directory)
    steps = self._committed_steps()
    kept = (f"The newest complete checkpoint, step {steps[-1]} (of steps {steps}), is intact"
            if steps else "No complete checkpoint was written before it")
    self._failed = CheckpointSaveError(
        f"could not save checkpoint step {step} in {self.directory}: {reason}. {kept}; fix"
        " the cause and rerun the same command to resume from it.")
    return self._failed

  def _remove_failed_attempt(self, settle: float = 10.0) -> None:
    """Removes the temporary directory of the failed save (partial data, never a
    checkpoint; on a full disk it holds the space the next attempt needs). Orbax's
    threads of the failed save may still write into it for a moment, so it is removed
    until it stays away (three checks 0.1 s apart, within ``settle`` seconds)."""
    if jax.process_index() != 0 or self._failed_step is None:
      return
    deadline, quiet, error = time.monotonic() + settle, 0, None
    while quiet < 3 and time.monotonic() < deadline:
      tmps = list(self.directory.glob(f"{self._failed_step}.orbax-checkpoint-tmp*"))
      for tmp in tmps:
        try:
          shutil.rmtree(str(tmp))
          logging.info("removed the incomplete %s", tmp)
        except FileNotFoundError:
          pass
        except OSError as e:  # e.g. a read-only directory: nothing was written there
          error = e
      quiet = 0 if tmps else quiet + 1
      if error is not None:
        break
      time.sleep(0.1)
    if error is not None:
      logging.warning("could not remove the incomplete save of step %d: %s", self._failed_step,
                      error)

  def _committed_steps(self) -> list[int]:
    """Committed steps read from the directory listing (valid after a failed save)."""
    try:
      return sorted(int(p.name) for p in self.directory.iterdir() if p.name.isdigit())
    except OSError:
      return []

  def restore(self, abstract_arrays: dict[str, Any], json_items: Sequence[str] = (),
              step: int | None = None) -> Restored:
    """Restores ``step`` (default: the newest readable one).

    Args:
      abstract_arrays: ``{item: pytree of jax.ShapeDtypeStruct with .sharding}``.
      json_items: names of JSON items to read too.
      step: a particular step (no fallback: an unreadable one raises).
    Returns:
      :class:`Restored`.
    Raises:
      CheckpointError: no checkpoint, or none readable (each failure is named).
    """
    candidates = [step] if step is not None else self.steps()[::-1]
    if step is not None and step not in self.steps():
      raise CheckpointError(f"no checkpoint for step {step} in {self.directory}; saved steps:"
                            f" {self.steps()}.")
    if not candidates:
      raise CheckpointError(f"no checkpoint in {self.directory}.")
    failures = []
    for candidate in candidates:
      try:
        return dataclasses.replace(self._restore_step(candidate, abstract_arrays, json_items),
                                   skipped=[s for s, _ in failures])
      except Exception as e:  # pylint: disable=broad-except
        message = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        failures.append((candidate, message))
        if step is None:
          logging.warning("checkpoint step %d in %s cannot be restored (%s); trying the"
                          " previous one.", candidate, self.directory / str(candidate), message)
    listing = "; ".join(f"step {s}: {m}" for s, m in failures)
    raise CheckpointError(f"no readable checkpoint in {self.directory} ({listing}).")

  def _restore_step(self, step: int, abstract_arrays, json_items) -> Restored:
    args = {name: ocp.args.StandardRestore(tree) for name, tree in abstract_arrays.items()}
    args.update({name: ocp.args.JsonRestore() for name in json_items})
    args[INTEGRITY_ITEM] = ocp.args.JsonRestore()
    out = self._manager.restore(step, args=ocp.args.Composite(**args))
    integrity = out[INTEGRITY_ITEM]
    arrays = {name: out[name] for name in abstract_arrays}
    for name, tree in arrays.items():
      if name not in integrity:
        raise ValueError(f"item {name!r} has no saved checksum.")
      _verify(name, tree, integrity[name])
    return Restored(step=step, arrays=arrays, json={name: out[name] for name in json_items},
                    skipped=[])

  def quarantine(self, steps: Sequence[int]) -> list[epath.Path]:
    """Moves unreadable step directories to ``<directory>_corrupt/`` (never deletes).

    Returns the new locations. Process 0 moves; all processes wait for it.
    """
    moved = []
    target_root = self.directory.parent / (self.directory.name + "_corrupt")
    for step in steps:
      source = self.directory / str(step)
      target = target_root / str(step)
      if target.exists():
        target = target_root / f"{step}.{int(time.time())}"
      if jax.process_index() == 0 and source.exists():
        target_root.mkdir(parents=True, exist_ok=True)
        source.rename(target)
        logging.warning("moved unreadable checkpoint %s to %s (kept, not deleted).", source,
                        target)
      moved.append(target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("fans_jax_checkpoint_quarantine")
    self._manager.reload()
    return moved

  @property
  def failed(self) -> CheckpointSaveError | None:
    """The error of a failed save, if one failed."""
    return self._failed

  def wait(self) -> None:
    """Blocks until every asynchronous save is committed.

    Raises:
      CheckpointSaveError: the save in flight (or an earlier one) failed.
    """
    if self._failed is not None:
      raise self._failed
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except  (reported as one clear error)
      raise self._save_failed(self._pending if self._pending is not None else -1, e) from None
    self._pending = None

  def close(self, timeout: float = 60.0) -> None:
    """Waits for the save in flight, then closes Orbax's manager.

    Raises:
      CheckpointSaveError: the save in flight failed (raised once: after a failure
        that was already raised, close only cleans up).
    """
    already_failed = self._failed is not None
    try:
      if not already_failed:
        self.wait()
    finally:
      if self._failed is None:
        self._manager.close()
      else:  # Orbax may still hold threads of the failed save: never block on them
        closer = threading.Thread(target=self._close_quietly, daemon=True,
                                  name="fans_jax_checkpoint_close")
        closer.start()
        closer.join(timeout)
        if closer.is_alive():
          logging.warning("Orbax's checkpoint manager did not close within %.0f s after the"
                          " failed save; not waiting for it.", timeout)
        self._remove_failed_attempt()

  def _close_quietly(self) -> None:
    try:
      self._manager.close()
    except Exception:  # pylint: disable=broad-except  (the save error was reported)
      pass


__all__ = ["CheckpointError", "CheckpointSaveError", "Checkpointer", "Restored", "checksums",
           "failure_reason"]

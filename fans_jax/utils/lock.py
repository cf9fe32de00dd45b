"""A lock file that keeps a second training out of a workdir.

:class:`WorkdirLock` holds an exclusive ``flock`` on ``<workdir>/train.lock`` for as
long as the training runs. The kernel drops the lock when its process dies, however it
dies (SIGKILL included), so a lock left behind by a dead process never blocks: the
file's content (pid, host, start time) is only read to say who holds a live lock, or
whom a stale one belonged to. Where ``flock`` is not supported, the lock falls back to
that record: it is stale when its process no longer runs on this host.

Local paths only (``gs://...`` has no locks; there the lock is skipped with a warning).
Imports nothing of the project.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from typing import Any

from absl import logging

LOCK_FILE = "train.lock"


class WorkdirBusyError(RuntimeError):
  """Another live process holds the workdir's lock."""


def _host() -> str:
  return socket.gethostname()


def _start_ticks(pid: int) -> int | None:
  """The process start time in clock ticks since boot (``/proc/<pid>/stat`` field 22),
  which tells a live process from a later one that reuses its pid; None if unknown."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      stat = f.read()
    return int(stat.rsplit(")", 1)[1].split()[19])
  except (OSError, ValueError, IndexError):
    return None


def process_alive(record: dict[str, Any]) -> bool | None:
  """Whether the process of a lock record still runs: True/False on this host, None
  (unknown) for a record from another host or without a pid."""
  pid, host = record.get("pid"), record.get("host")
  if not isinstance(pid, int) or host != _host():
    return None
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass  # it exists, owned by another user
  saved, now = record.get("start_ticks"), _start_ticks(pid)
  if saved is not None and now is not None and saved != now:
    return False  # the pid was reused by a later process
  return True


def _read_record(path: str) -> dict[str, Any]:
  try:
    with open(path) as f:
      record = json.loads(f.read() or "{}")
    return record if isinstance(record, dict) else {}
  except (OSError, ValueError):
    return {}


def describe(record: dict[str, Any]) -> str:
  if not record:
    return "a process that left no record"
  since = record.get("started", "?")
  return f"pid {record.get('pid', '?')} on host {record.get('host', '?')} (since {since})"


class WorkdirLock:
  """``with WorkdirLock(workdir):`` one training at a time in ``workdir``.

  Args:
    directory: the workdir (created if missing; removed again on release if it was
      created here and is empty then).
    name: the lock file's name.
  Raises (on entry):
    WorkdirBusyError: another live process holds it (naming its pid and host).
  """

  def __init__(self, directory, name: str = LOCK_FILE):
    self.directory = os.fspath(directory)
    self.path = os.path.join(self.directory, name)
    self._fd: int | None = None
    self._created_dir = False
    self.local = "://" not in self.directory

  # -- queries -----------------------------------------------------------------------

  def check_free(self) -> None:
    """Raises :class:`WorkdirBusyError` if a live process holds the lock; writes
    nothing (to fail fast, before any work is done)."""
    if not self.local or not os.path.exists(self.path):
      return
    try:
      fd = os.open(self.path, os.O_RDONLY)
    except OSError:
      return
    try:
      if not self._try_flock(fd):
        raise self._busy(_read_record(self.path))
      fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
      os.close(fd)

  # -- acquire / release -------------------------------------------------------------

  def acquire(self) -> None:
    if not self.local:
      logging.warning("workdir %s is not a local path: no lock against a second training"
                      " there.", self.directory)
      return
    if not os.path.isdir(self.directory):
      try:
        os.makedirs(self.directory, exist_ok=True)
      except OSError as e:
        raise OSError(e.errno, f"cannot create the workdir {self.directory}: {e.strerror}"
                      ) from None
      self._created_dir = True
    try:
      previous = self._lock()
      if previous and previous.get("pid") != os.getpid():
        logging.info("taking over the stale lock %s of %s (that process no longer holds it).",
                     self.path, describe(previous))
      self._write_record()
    except BaseException:  # busy, or interrupted (SIGTERM during start-up): leave no trace
      self.release()
      raise

  def _lock(self) -> dict[str, Any]:
    """Takes the flock (``self._fd`` set as soon as it is held); returns the record of
    the previous holder."""
    for _ in range(5):
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        locked = self._try_flock(fd)
      except BaseException:
        os.close(fd)
        raise
      if not locked:
        previous = _read_record(self.path)
        os.close(fd)
        raise self._busy(previous)
      self._fd = fd
      try:  # the file may have been unlinked by a holder releasing it meanwhile
        same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
      except FileNotFoundError:
        same = False
      if same:
        return _read_record(self.path)
      self._fd = None
      os.close(fd)
    raise WorkdirBusyError(f"could not lock {self.path}: it keeps being replaced.")

  def _try_flock(self, fd: int) -> bool:
    """True if the flock was taken; False if held elsewhere. Where flock is not
    supported, the pid/host record decides (stale when its process is gone)."""
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return True
    except BlockingIOError:
      return False
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        raise
      record = _read_record(self.path)
      alive = process_alive(record) if record else False
      if alive is None:
        logging.warning("cannot lock %s (%s) and cannot tell whether %s still runs; going"
                        " on.", self.path, e.strerror, describe(record))
        return True
      return not alive or record.get("pid") == os.getpid()

  def _write_record(self) -> None:
    record = {"pid": os.getpid(), "host": _host(), "start_ticks": _start_ticks(os.getpid()),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    data = (json.dumps(record) + "\n").encode()
    try:
      os.ftruncate(self._fd, 0)
      os.pwrite(self._fd, data, 0)
    except OSError as e:  # e.g. a full disk: name the file
      raise OSError(e.errno, f"cannot write the lock file {self.path}: {e.strerror}") from None

  def _busy(self, record: dict[str, Any]) -> WorkdirBusyError:
    return WorkdirBusyError(
        f"workdir {self.directory} is in use by another training: {describe(record)} holds"
        f" {self.path}. Wait for it to finish, stop it, or use another --workdir. Nothing"
        " was changed.")

  def release(self) -> None:
    """Removes the lock file (while still holding it: see the inode check of
    :meth:`acquire`) and drops the lock; removes the workdir if this lock created it
    and it is empty."""
    if self._fd is not None:
      try:
        os.unlink(self.path)
      except OSError:
        pass
      os.close(self._fd)
      self._fd = None
    if self._created_dir:
      self._created_dir = False
      try:
        os.rmdir(self.directory)  # only if this start left it empty
      except OSError:
        pass

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> bool:
    self.release()
    return False


__all__ = ["LOCK_FILE", "WorkdirBusyError", "WorkdirLock", "describe", "process_alive"]

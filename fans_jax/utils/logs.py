"""Log hygiene for the launchers (the library itself configures no logging)."""

from __future__ import annotations

import logging

from absl import logging as absl_logging


class _DropInfoFrom(logging.Filter):
  """Drops records below WARNING whose source file lies in one of ``packages``."""

  def __init__(self, packages: tuple[str, ...]):
    super().__init__()
    self._markers = tuple(f"/{p}/" for p in packages)

  def filter(self, record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or not any(
        m in record.pathname for m in self._markers)


def quiet(packages: tuple[str, ...] = ("orbax", "fontTools")) -> None:
  """Hides INFO logs of ``packages`` (Orbax logs every file of every save; fontTools
  one line per font table subsetted into every PDF figure)."""
  absl_logging.get_absl_handler().addFilter(_DropInfoFrom(packages))


class _OneLineErrorsFrom(logging.Filter):
  """Cuts error records of ``packages`` to their first line, without the traceback."""

  def __init__(self, packages: tuple[str, ...]):
    super().__init__()
    self._markers = tuple(f"/{p}/" for p in packages)

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and any(m in record.pathname for m in self._markers):
      lines = record.getMessage().strip().splitlines()
      record.msg = (lines[0][:300] if lines else "") + " (traceback omitted)"
      record.args = None
      record.exc_info = None
      record.exc_text = None
    return True


def one_line_errors(packages: tuple[str, ...] = ("orbax",)) -> None:
  """Shortens the error logs of ``packages`` to one line each: Orbax logs the full
  traceback of a failed background save from every thread it touched (hundreds of
  lines for a full disk), and the training reports that failure itself, once, with
  its cause and the checkpoint that is intact."""
  absl_logging.get_absl_handler().addFilter(_OneLineErrorsFrom(packages))

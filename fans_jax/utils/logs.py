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


def quiet(packages: tuple[str, ...] = ("orbax",)) -> None:
  """Hides INFO logs of ``packages`` (Orbax logs every file of every save)."""
  absl_logging.get_absl_handler().addFilter(_DropInfoFrom(packages))

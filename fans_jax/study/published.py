"""The published post's numbers (``published.json``, beside this file, with its source):
the rows of its tables, its slope MAE and its paired t-test, as printed."""

from __future__ import annotations

import json
import pathlib
from typing import Any


PUBLISHED_FILE = pathlib.Path(__file__).with_name("published.json")


def _load() -> dict[str, Any]:
  with open(PUBLISHED_FILE, encoding="utf-8") as f:
    return json.load(f)


_DATA = _load()
PUBLISHED_SOURCE: str = _DATA["source"]
# Row name -> metric -> {"FANS": x, "DDPM": y}, and the data slope ("slope_ref").
PUBLISHED: dict[str, dict[str, Any]] = _DATA["rows"]
PUBLISHED_SLOPE_MAE: dict[str, float] = _DATA["slope_mae"]
PUBLISHED_T_TEST: dict[str, Any] = _DATA["t_test"]


def published_slope_errors() -> dict[str, list[float]]:
  """``{"FANS": [...], "DDPM": [...]}``: the post's absolute slope errors, one per row
  of its slope table (from :data:`PUBLISHED`)."""
  out = {"FANS": [], "DDPM": []}
  for row in PUBLISHED.values():
    for name in out:
      out[name].append(abs(row["slope_gen"][name] - row["slope_ref"]))
  return out

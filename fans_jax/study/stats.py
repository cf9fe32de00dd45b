"""Statistics over seeds: mean +- std and the paired t-test."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np


def stat(values: Sequence[float]) -> dict[str, Any] | None:
  """``{"mean", "std" (sample, ddof 1; None for n = 1), "n", "values"}``, or None."""
  values = [float(v) for v in values if v is not None and math.isfinite(float(v))]
  if not values:
    return None
  std = float(np.std(values, ddof=1)) if len(values) > 1 else None
  return {"mean": float(np.mean(values)), "std": std, "n": len(values), "values": values}


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> dict[str, Any] | None:
  """Two-sided paired t-test of ``a - b`` (scipy ``ttest_rel``); None for n < 2 or
  identical pairs."""
  if len(a) < 2 or len(a) != len(b) or np.allclose(np.asarray(a) - np.asarray(b), 0.0):
    return None
  from scipy import stats  # pylint: disable=g-import-not-at-top
  result = stats.ttest_rel(a, b)
  return {"t": float(result.statistic), "p": float(result.pvalue), "n": len(a)}


def hms(seconds: float) -> str:
  """``1h02m03s``."""
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"

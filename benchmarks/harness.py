"""The benchmark harness: candidates alternating in separate processes.

Two candidates timed in one process share its thread pools, caches and compiled state
and disturb each other (JAX and PyTorch in one process do). Here every measurement is
a fresh process: each candidate is a command that prints, as the last line of its
stdout, one JSON object of numbers (``{"img_per_s": 93.1, ...}``). ``measure`` runs the
candidates in alternation for ``rounds`` rounds (A B, then B A, ...: a slow drift of
the machine hits both alike), records the load average before each process and the
machine, and reports per candidate and figure the median, minimum and maximum, and
per round the ratio to the first candidate (its median is what to quote)::

    from benchmarks import harness   # or: sys.path.insert(0, "benchmarks"); import harness
    result = harness.measure({"jax": [sys.executable, "bench_x.py", "--worker=jax"],
                              "torch": [sys.executable, "bench_x.py", "--worker=torch"]},
                             rounds=5)
    print(harness.markdown(result, "img_per_s"))

Inside one process, for candidates that must share it (two compiled functions of the
same framework, a white and a FANS step of one model), ``alternate`` times zero-argument
functions in alternation after a warm-up and returns the same summary (median, minimum,
maximum, and ratios to the first); every benchmark in ``benchmarks/`` times through one
of the two.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Mapping, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fans_jax.utils import host  # noqa: E402


class CandidateError(RuntimeError):
  """A candidate exited non-zero or printed no JSON object on its last line."""


def machine() -> dict[str, Any]:
  """CPU model, core count, platform and Python of this machine."""
  return {"cpu": host.cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "python": platform.python_version()}


def _load() -> float | None:
  try:
    return os.getloadavg()[0]
  except OSError:
    return None


def run_once(argv: Sequence[str], env: Mapping[str, str] | None = None,
             timeout: float = 3600.0) -> dict[str, float]:
  """Runs one candidate process; returns the JSON object of its last stdout line.

  Raises:
    CandidateError: a non-zero exit, or a last line that is not a JSON object.
  """
  proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                        env=None if env is None else {**os.environ, **env}, check=False)
  lines = proc.stdout.strip().splitlines()
  if proc.returncode != 0 or not lines:
    raise CandidateError(f"{' '.join(argv)} exited {proc.returncode}; stderr tail:"
                         f" {proc.stderr[-800:]}")
  try:
    out = json.loads(lines[-1])
  except json.JSONDecodeError as e:
    raise CandidateError(f"{' '.join(argv)}: the last stdout line is not JSON:"
                         f" {lines[-1][:200]!r}") from e
  if not isinstance(out, dict):
    raise CandidateError(f"{' '.join(argv)}: the last stdout line is not a JSON object.")
  return out


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def portable(argv: Sequence[str]) -> list[str]:
  """``argv`` as a record that names no machine: the interpreter as ``python``, paths
  inside the repository relative to its root."""
  out = []
  for a in argv:
    a = "python" if a == sys.executable else str(a)
    if os.path.isabs(a) and a.startswith(_ROOT + os.sep):
      a = os.path.relpath(a, _ROOT)
    out.append(a)
  return out


def _summary(values: Sequence[float]) -> dict[str, float]:
  return {"median": statistics.median(values), "min": min(values), "max": max(values),
          "n": len(values)}


def _ratios(values: Mapping[str, Mapping[str, Sequence[float]]], names: Sequence[str]
            ) -> dict[str, dict[str, dict[str, float]]]:
  """name -> figure -> summary of the per-round ratio to ``names[0]`` (same figure)."""
  ratios: dict[str, dict[str, dict[str, float]]] = {}
  ref = names[0]
  for name in names[1:]:
    for key, vals in values[name].items():
      base = values[ref].get(key)
      if base and len(base) == len(vals) and all(b != 0 for b in base):
        ratios.setdefault(name, {})[key] = _summary([v / b for v, b in zip(vals, base)])
  return ratios


def alternate(fns: Mapping[str, Callable[[], Any]], repeats: int,
              block: Callable[[Any], Any] = lambda out: out, warmup: int = 1
              ) -> dict[str, Any]:
  """Times zero-argument functions in one process, in alternation (A B, B A, ...).

  Args:
    fns: name -> function; the first is the reference of the ratios.
    repeats: timed calls of each (>= 1), after ``warmup`` untimed calls of each
      (compilation).
    block: applied to each result before the clock stops (``jax.block_until_ready``
      for asynchronously dispatched JAX work).
  Returns:
    ``{"machine", "repeats", "load" (1-minute load average before the timing), "values"
    (name -> {"s": per-call seconds}), "summary" (name -> {"s": median/min/max/n}),
    "ratios" (name -> {"s": per-repeat ratio to the first})}``; ``seconds(result)`` gives
    name -> median seconds.
  Raises:
    ValueError: no functions or repeats < 1.
  """
  names = list(fns)
  if not names or int(repeats) < 1:
    raise ValueError(f"need at least one function and one repeat; got {names}, {repeats}.")
  for _ in range(int(warmup)):
    for fn in fns.values():
      block(fn())
  load = _load()
  values: dict[str, dict[str, list[float]]] = {n: {"s": []} for n in names}
  for r in range(int(repeats)):
    for name in names[r % len(names):] + names[:r % len(names)]:
      start = time.perf_counter()
      block(fns[name]())
      values[name]["s"].append(time.perf_counter() - start)
  return {"machine": machine(), "repeats": int(repeats), "load": load, "values": values,
          "summary": {n: {"s": _summary(v["s"])} for n, v in values.items()},
          "ratios": _ratios(values, names)}


def seconds(result: Mapping[str, Any]) -> dict[str, float]:
  """name -> median seconds of an :func:`alternate` result."""
  return {name: s["s"]["median"] for name, s in result["summary"].items()}


def measure(candidates: Mapping[str, Sequence[str]], rounds: int = 5,
            env: Mapping[str, str] | None = None, timeout: float = 3600.0,
            candidate_env: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
  """Runs every candidate once per round, in alternating order, each in its own process.

  Args:
    candidates: name -> argv; the first is the reference of the ratios.
    rounds: rounds (>= 1); round ``r`` runs the candidates rotated by ``r``.
    env: extra environment variables for every process.
    candidate_env: name -> extra environment variables of that candidate's processes
      only (on top of ``env``; e.g. its ``XLA_FLAGS``).
  Returns:
    ``{"machine", "rounds", "order" (per round), "load" (1-minute load average before
    each process, per round), "values" (name -> figure -> per-round values), "summary"
    (name -> figure -> median/min/max/n), "ratios" (name -> figure -> median/min/max of
    the per-round ratio to the first candidate)}``.
  Raises:
    ValueError: no candidates or rounds < 1. CandidateError: a candidate failed.
  """
  names = list(candidates)
  if not names or int(rounds) < 1:
    raise ValueError(f"need at least one candidate and one round; got {names}, {rounds}.")
  values: dict[str, dict[str, list[float]]] = {n: {} for n in names}
  order, load = [], []
  start = time.time()
  for r in range(int(rounds)):
    turn = names[r % len(names):] + names[:r % len(names)]
    order.append(turn)
    load.append({})
    for name in turn:
      load[-1][name] = _load()
      own = {**(env or {}), **((candidate_env or {}).get(name) or {})}
      for key, value in run_once(candidates[name], own or None, timeout).items():
        if isinstance(value, (int, float)):
          values[name].setdefault(key, []).append(float(value))
  summary = {n: {k: _summary(v) for k, v in figs.items()} for n, figs in values.items()}
  ratios = _ratios(values, names)
  return {"machine": machine(), "rounds": int(rounds),
          "order": order, "load": load, "values": values, "summary": summary,
          "ratios": ratios, "wall_s": time.time() - start,
          "candidates": {n: portable(a) for n, a in candidates.items()},
          "candidate_env": {n: dict(e) for n, e in (candidate_env or {}).items()}}


def markdown(result: Mapping[str, Any], figure: str) -> str:
  """One table: per candidate the median (min-max) of ``figure`` and its ratio to the
  first candidate, then the machine and the load averages seen."""
  names = list(result["summary"])
  lines = [f"| candidate | {figure}: median (min - max) | ratio to {names[0]}: median"
           " (min - max) |", "|---|---|---|"]
  for name in names:
    s = result["summary"][name].get(figure)
    cell = f"{s['median']:.4g} ({s['min']:.4g} - {s['max']:.4g})" if s else "—"
    r = result["ratios"].get(name, {}).get(figure)
    ratio = f"{r['median']:.3f} ({r['min']:.3f} - {r['max']:.3f})" if r else "1"
    lines.append(f"| {name} | {cell} | {ratio} |")
  loads = [v for rnd in result["load"] for v in rnd.values() if v is not None]
  m = result["machine"]
  lines += ["", f"{result['rounds']} rounds, candidates alternating in separate processes;"
            f" {m['cpu']}, {m['cpu_count']} cores; 1-minute load average before each"
            f" process {min(loads):.2f}-{max(loads):.2f}." if loads else ""]
  return "\n".join(lines) + "\n"

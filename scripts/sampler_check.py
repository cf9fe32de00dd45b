r"""Does a cheaper sampler rank the variants as the reference sampler does?

Reads two ``metrics.json`` files written by ``launch/evaluate.py`` for the same runs
(one per sampler) and prints, per spectral metric, the variants ordered best first
under each sampler, whether the orders agree, and the values side by side::

    python scripts/sampler_check.py \
        --reference=docs/study/dtd16/sampler_check/ddpm/metrics.json \
        --candidate=docs/study/dtd16/sampler_check/ddim100/metrics.json

A run is named by the directory above its workdir's last component
(``runs/dtd16/white/seed2`` -> ``white``), or by its ``run`` field without a workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# (key, label, lower is better)
METRICS = (("slope_abs_error", "\\|slope error\\|", True), ("band_jsd", "band JSD", True),
           ("lsd", "LSD", True), ("band_corr", "band corr.", False))


def _name(row: dict) -> str:
  workdir = row.get("workdir")
  if workdir:
    return os.path.basename(os.path.dirname(os.path.normpath(workdir)))
  return str(row.get("run"))


def _values(path: str) -> dict[str, dict[str, float]]:
  """variant -> metric -> value, from one evaluate report."""
  with open(path) as f:
    rows = json.load(f)
  out = {}
  for row in rows:
    spectral = row.get("spectral")
    if not isinstance(spectral, dict):
      raise SystemExit(f"{path}: run {_name(row)} has no spectral metrics ({spectral!r}).")
    out[_name(row)] = {"slope_abs_error": abs(spectral["slope_error"]),
                       "band_jsd": spectral["band_jsd"], "lsd": spectral["lsd"],
                       "band_corr": spectral["band_corr"]}
  return out


def compare(reference: dict, candidate: dict) -> list[dict]:
  """Per metric: ``{"metric", "reference", "candidate" (orders, best first), "same"}``."""
  names = [n for n in reference if n in candidate]
  if len(names) < 2:
    raise SystemExit(f"need at least two runs in both files; common: {names}.")
  out = []
  for key, label, lower in METRICS:
    def order(vals, key=key, lower=lower):
      return sorted(names, key=lambda n: vals[n][key] if lower else -vals[n][key])
    ref, cand = order(reference), order(candidate)
    out.append({"metric": label, "key": key, "reference": ref, "candidate": cand,
                "same": ref == cand})
  return out


def main(argv=None) -> None:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--reference", required=True, help="metrics.json of the reference sampler")
  p.add_argument("--candidate", required=True, help="metrics.json of the cheaper sampler")
  args = p.parse_args(argv)
  ref, cand = _values(args.reference), _values(args.candidate)
  rows = compare(ref, cand)
  print("| metric | reference sampler, best first | candidate sampler, best first |"
        " same ranking |\n|---|---|---|---|")
  for r in rows:
    print(f"| {r['metric']} | {' < '.join(r['reference'])} | {' < '.join(r['candidate'])} |"
          f" {'yes' if r['same'] else 'no'} |")
  print("\n| run | " + " | ".join(f"{label} (ref / cand)" for _, label, _ in METRICS)
        + " |\n|---|" + "---|" * len(METRICS))
  for name in rows[0]["reference"]:
    print(f"| {name} | " + " | ".join(f"{ref[name][k]:.4g} / {cand[name][k]:.4g}"
                                      for k, _, _ in METRICS) + " |")


if __name__ == "__main__":
  sys.exit(main())

r"""One learning curve from studies that trained the same runs for longer.

``:curves`` (125-1000 steps) and ``:plateau`` (1000-8000 steps) train the same runs at a
constant rate, so together they trace each run from 125 to 8000 steps. This joins their
``results.json`` curves (the longer study's point wins at a shared step), draws them on
log-log axes and writes a markdown table with the plateau test (the issue's criterion:
the change between the last two points against the spread over seeds)::

    python scripts/joined_curves.py --dataset=pltb_gauss16 \
        --results=docs/study/curves/results.json --results=docs/study/plateau/results.json \
        --out=docs/study/plateau/joined

writes ``<out>.png`` and ``<out>.md`` (and prints the markdown).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fans_jax.study import curves  # noqa: E402  pylint: disable=wrong-import-position


def _cell(stat) -> str:
  if not stat:
    return "—"
  std = stat.get("std")
  spread = f" ± {std:.3g}" if std is not None else ""
  return f"{stat['mean']:.3g}{spread} ({stat['n']})"


def markdown(joined: dict, dataset: str, sources: list[str]) -> str:
  """Per metric: variants x steps (mean ± std (seeds)), then the plateau test."""
  lines = [f"# {dataset}: learning curves joined from {len(sources)} studies", "",
           "Sources, in order (a later study's point replaces an earlier one's at the same"
           " step): " + ", ".join(f"[{i}] `{s}`" for i, s in enumerate(sources)) + ".",
           "Cells: mean ± std over seeds (number of seeds); a step header names the sources its"
           " points come from.", ""]
  labels = dict(curves.CURVE_METRICS)
  keys = [k for k, _ in curves.CURVE_METRICS if any(k in e["metrics"] for e in joined.values())]
  for key in keys:
    steps = sorted({s for e in joined.values() if key in e["metrics"] for s in e["steps"]})
    source: dict = {}
    for e in joined.values():
      for step, i in zip(e["steps"], e["sources"]):
        source.setdefault(step, set()).add(i)
    header = " | ".join(f"{s} [{', '.join(map(str, sorted(source[s])))}]" for s in steps)
    lines += [f"## {labels[key]}", "",
              f"| variant | {header} | plateau |",
              "|---|" + "---|" * (len(steps) + 1)]
    for variant, e in joined.items():
      if key not in e["metrics"]:
        continue
      by_step = dict(zip(e["steps"], e["metrics"][key]))
      check = curves.plateau_check(e["metrics"][key], e["steps"])
      if check is None:
        verdict = "—"
      elif check["plateaued"] is None:
        verdict = (f"n/a (one seed): {check['from_step']}->{check['to_step']}"
                   f" changed {check['change']:.3g}")
      else:
        verdict = (f"{'yes' if check['plateaued'] else 'no'}: {check['from_step']}->"
                   f"{check['to_step']} changed {check['change']:.3g}, seed std"
                   f" {check['seed_std']:.3g}")
      lines.append(f"| {variant} | " + " | ".join(_cell(by_step.get(s)) for s in steps)
                   + f" | {verdict} |")
    lines.append("")
  return "\n".join(lines)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--results", action="append", required=True,
                      help="a study's results.json, shortest budget first (repeat)")
  parser.add_argument("--dataset", required=True)
  parser.add_argument("--out", required=True, help="output path without extension")
  args = parser.parse_args(argv)
  summaries = []
  for path in args.results:
    with open(path) as f:
      by_dataset = json.load(f).get("curves") or {}
    if args.dataset not in by_dataset:
      raise SystemExit(f"{path} has no learning curves for {args.dataset!r}"
                       f" (has: {sorted(by_dataset) or 'none'}).")
    summaries.append(by_dataset[args.dataset])
  joined = curves.join_summaries(summaries)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  steps = sorted({s for e in joined.values() for s in e["steps"]})
  curves.plot_curves(joined, args.dataset, args.out + ".png", log_y=True,
                     title=f"{args.dataset}: learning curves, steps {steps[0]}-{steps[-1]}"
                           " (mean ± std over seeds)")
  text = markdown(joined, args.dataset, args.results)
  with open(args.out + ".md", "w") as f:
    f.write(text + "\n")
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())

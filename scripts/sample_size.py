r"""How many samples a metric needs to rank two models: spread over sampling seeds.

    python scripts/sample_size.py --workdir=W1 --workdir=W2 --sizes=128,512,2048 \
        --seeds=0,1,2 --output=docs/evaluation/sample_size

For each run (workdir), sample size N and sampling seed: draws N samples (DDIM-100,
eta 1, x0 clipped), evaluates them with ``fans_jax.evaluation.evaluate_run``
against the run's dataset, and reports per metric the mean and std over seeds, and
whether the gap between the two runs' means exceeds the spread (|gap| > 2 x the larger
std): the N at which that metric can rank them. FID needs N >= 2049 (a full-rank 2048-d
covariance), so it is reported only there; KID and the spectral metrics work at any N.
Writes ``<output>.json`` and ``<output>.md``.
"""

import json
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_WORKDIRS = flags.DEFINE_multi_string("workdir", [], "Two (or more) training workdirs.")
_SIZES = flags.DEFINE_list("sizes", ["128", "512", "2048"], "Sample sizes N.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Sampling seeds.")
_STEPS = flags.DEFINE_integer("num_steps", 100, "DDIM steps.")
_NREF = flags.DEFINE_integer("num_reference", 10000, "Reference images.")
_OUT = flags.DEFINE_string("output", "docs/evaluation/sample_size", "Output path (no suffix).")
_METRICS = flags.DEFINE_enum(
    "metrics", "auto", ["auto", "spectral"],
    "auto: spectral, KID, FID (N >= 2049) and FD-ResNet20 (CIFAR-10); spectral: the spectral"
    " metrics only (the synthetic sets, where Inception features mean little).")

METRICS = (("fid", "FID"), ("kid", "KID x 1e3"), ("fd_resnet20", "FD-ResNet20"),
           ("slope_abs_error", "\\|slope error\\|"), ("band_jsd", "band JSD"), ("lsd", "LSD"))


def _value(row, key):
  if key == "kid":
    return 1e3 * row["kid"]["mean"] if isinstance(row.get("kid"), dict) else None
  if key in ("fid", "fd_resnet20"):
    return float(row[key]) if isinstance(row.get(key), (int, float)) else None
  return float(row["spectral"][key])


def main(argv):
  del argv
  from fans_jax.utils import host  # pylint: disable=import-outside-toplevel
  host.force_cpu_devices(-1)
  import numpy as np  # pylint: disable=import-outside-toplevel
  from fans_jax import sample_files, sampling  # pylint: disable=import-outside-toplevel
  from fans_jax import evaluation  # pylint: disable=import-outside-toplevel
  from fans_jax.utils import logs  # pylint: disable=import-outside-toplevel
  logs.quiet()
  sizes = [int(n) for n in _SIZES.value]
  seeds = [int(s) for s in _SEEDS.value]
  results = {"num_steps": _STEPS.value, "sizes": sizes, "seeds": seeds, "runs": {}}
  for workdir in _WORKDIRS.value:
    run = sampling.load_run(workdir)
    name = f"{'/'.join(pathlib.Path(workdir).parts[-2:])}@{run.step}"  # e.g. white/seed0@1000
    per = results["runs"].setdefault(name, {"workdir": workdir, "step": run.step,
                                            "noise": run.config.noise.name, "values": {}})
    for seed in seeds:
      settings = sample_files.SamplerSettings("ddim", _STEPS.value, 1.0, True, seed)
      images = sampling.generate_with(run, max(sizes), settings, progress=False)
      for n in sizes:  # nested prefixes of one draw: sample i depends on (seed, i) only
        metrics = "spectral,kid" + (",fid" if n >= 2049 else "")
        if run.config.data.name.startswith("cifar10") and n >= 65:
          metrics += ",fd_resnet20"
        if _METRICS.value == "spectral":
          metrics = "spectral"
        options = evaluation.EvalOptions(metrics=metrics, num_reference=_NREF.value,
                                         kid_subsets=100, kid_subset_size=min(n, 1000))
        sample_set = evaluation.SampleSet(evaluation.quantize(images[:n]),
                                          settings.resolved(run.schedule.num_timesteps),
                                          "sample_size")
        try:
          row = evaluation.evaluate_run(workdir, options=options, run=run,
                                        sample_set=sample_set).row
        except FileNotFoundError as e:  # no Inception weights: spectral + FD only
          logging.warning("%s", e)
          options = evaluation.EvalOptions(
              metrics=",".join(m for m in metrics.split(",") if m not in ("fid", "kid")),
              num_reference=_NREF.value)
          row = evaluation.evaluate_run(workdir, options=options, run=run,
                                        sample_set=sample_set).row
        for key, _ in METRICS:
          per["values"].setdefault(key, {}).setdefault(str(n), []).append(_value(row, key))
        logging.info("%s N=%d seed=%d: %s", name, n, seed,
                     {k: per["values"][k][str(n)][-1] for k, _ in METRICS})
  names = list(results["runs"])
  command = " ".join(["python scripts/sample_size.py"] + sys.argv[1:])
  results["command"] = command
  described = ", ".join(f"`{n}` ({results['runs'][n]['noise']})" for n in names)
  lines = [f"Runs: {described};"
           f" DDIM-{_STEPS.value} (eta 1, x0 clipped), sampling seeds {seeds}, nested"
           " prefixes of one draw per seed. 'ranks them?': the gap between the two runs'"
           " means exceeds twice the larger std over seeds. Produced by"
           f" `{command}`.", "",
           "| metric | N | " + " | ".join(f"{n} (mean ± std over {len(seeds)} seeds)"
                                         for n in names) + " | ranks them? |",
           "|---|---|" + "---|" * len(names) + "---|"]
  for key, label in METRICS:
    for n in sizes:
      stats = []
      for name in names:
        vals = [v for v in results["runs"][name]["values"].get(key, {}).get(str(n), [])
                if v is not None]
        stats.append((float(np.mean(vals)), float(np.std(vals, ddof=1))) if len(vals) > 1
                     else None)
      if not all(stats):
        continue
      gap = abs(stats[0][0] - stats[1][0]) if len(stats) >= 2 else 0.0
      ranks = gap > 2 * max(s[1] for s in stats)
      lines.append(f"| {label} | {n} | " + " | ".join(f"{m:.4g} ± {s:.2g}" for m, s in stats)
                   + f" | {'yes' if ranks else 'no'} (gap {gap:.3g}) |")
  out = pathlib.Path(_OUT.value)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
  out.with_suffix(".md").write_text("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  app.run(main)

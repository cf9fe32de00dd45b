r"""How many samples a metric needs to rank two models: spread over sampling seeds.

    python scripts/sample_size.py --workdir=W1 --workdir=W2 --sizes=128,512,2048 \
        --seeds=0,1,2 --output=docs/evaluation/sample_size

For each run (workdir), sample size N and sampling seed: draws N samples (DDIM-100,
eta 1, x0 clipped), evaluates them with ``fans_jax.evaluation.evaluate_run``
against the run's dataset, and reports per metric the mean and std over seeds, and
whether the gap between the two runs' means exceeds the spread (|gap| > 2 x the larger
std): the N at which that metric can rank them. FID needs N >= 2049 (a full-rank 2048-d
covariance), so it is reported only there; KID and the spectral metrics work at any N.
Writes ``<output>.json`` and ``<output>.md`` after every (seed, run), seed by seed; rerun
the same command to resume (finished seeds are skipped), or with more ``--seeds`` to add.
"""

import json
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Only when run as a script: importing this module (the tests do) must not add
  flags such as --workdir beside launch/'s."""
  flags.DEFINE_multi_string("workdir", [], "Two (or more) training workdirs.")
  flags.DEFINE_list("sizes", ["128", "512", "2048"], "Sample sizes N.")
  flags.DEFINE_list("seeds", ["0", "1", "2"], "Sampling seeds.")
  flags.DEFINE_integer("num_steps", 100, "DDIM steps.")
  flags.DEFINE_integer("num_reference", 10000, "Reference images.")
  flags.DEFINE_string("output", "docs/evaluation/sample_size", "Output path (no suffix).")
  flags.DEFINE_enum(
      "metrics", "auto", ["auto", "spectral"],
      "auto: spectral, KID, FID (N >= 2049) and FD-ResNet20 (CIFAR-10); spectral: the"
      " spectral metrics only (the synthetic sets, where Inception features mean little).")


METRICS = (("fid", "FID"), ("kid", "KID x 1e3"), ("fd_resnet20", "FD-ResNet20"),
           ("slope_abs_error", "\\|slope error\\|"), ("band_jsd", "band JSD"), ("lsd", "LSD"))


def _value(row, key):
  if key == "kid":
    return 1e3 * row["kid"]["mean"] if isinstance(row.get("kid"), dict) else None
  if key in ("fid", "fd_resnet20"):
    return float(row[key]) if isinstance(row.get(key), (int, float)) else None
  return float(row["spectral"][key])


def saved_draw(workdir, settings, num_timesteps: int, step: int, num: int):
  """uint8 ``[>= num, H, W, C]`` samples already drawn for this run with exactly these
  resolved settings at this step (the study's ``samples.npz`` or a ``launch/sample.py``
  file), else None: sample i depends on (seed, i) only, so a saved draw is the draw."""
  from fans_jax import sample_files  # pylint: disable=import-outside-toplevel
  from fans_jax.study import planning  # pylint: disable=import-outside-toplevel
  stem = sample_files.sample_file_stem(settings, num_timesteps, step)
  for path in (pathlib.Path(workdir) / planning.SAMPLES_FILE,
               pathlib.Path(workdir) / "samples" / f"{stem}.npz"):
    if not path.exists():
      continue
    try:
      saved = sample_files.read_samples(path)
    except ValueError:
      continue
    if (saved.settings == settings and saved.info.get("step") == int(step)
        and len(saved.images) >= num):
      logging.info("reusing %d samples from %s", num, path)
      return saved.images[:num]
  return None


def report(results: dict) -> list[str]:
  """The markdown table of ``results`` (what has finished so far): per metric and N,
  mean ± std over the sampling seeds each run has finished, and whether the gap between
  the first two runs' means exceeds twice the larger std."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  names = list(results["runs"])
  described = ", ".join(f"`{n}` ({results['runs'][n]['noise']}, sampling seeds"
                        f" {results['runs'][n].get('done_seeds', results.get('seeds'))})"
                        for n in names)
  lines = [f"Runs: {described};"
           f" DDIM-{results['num_steps']} (eta 1, x0 clipped), nested prefixes of one draw"
           " per seed. 'ranks them?': the gap between the two runs' means exceeds twice the"
           f" larger std over seeds. Produced by `{results['command']}`.", "",
           "| metric | N | " + " | ".join(f"{n} (mean ± std over seeds)" for n in names)
           + " | ranks them? |",
           "|---|---|" + "---|" * len(names) + "---|"]
  for key, label in METRICS:
    for n in results["sizes"]:
      stats = []
      for name in names:
        vals = [v for v in results["runs"][name]["values"].get(key, {}).get(str(n), [])
                if v is not None]
        stats.append((float(np.mean(vals)), float(np.std(vals, ddof=1)), len(vals))
                     if len(vals) > 1 else None)
      if not stats or not all(stats):
        continue
      gap = abs(stats[0][0] - stats[1][0]) if len(stats) >= 2 else 0.0
      ranks = gap > 2 * max(s[1] for s in stats)
      lines.append(f"| {label} | {n} | " + " | ".join(f"{m:.4g} ± {s:.2g} ({k})"
                                                        for m, s, k in stats)
                   + f" | {'yes' if ranks else 'no'} (gap {gap:.3g}) |")
  return lines


def _load_results(path: pathlib.Path, num_steps: int, sizes: list[int]) -> dict | None:
  """An earlier invocation's results with the same DDIM steps and sizes (resume)."""
  if not path.exists():
    return None
  old = json.loads(path.read_text())
  if old.get("num_steps") == num_steps and old.get("sizes") == sizes:
    return old
  raise SystemExit(f"{path} holds results for num_steps={old.get('num_steps')}, sizes="
                   f"{old.get('sizes')}; pass another --output or delete it.")


def main(argv):
  del argv
  from fans_jax.utils import host  # pylint: disable=import-outside-toplevel
  host.force_cpu_devices(-1)
  from fans_jax import sample_files, sampling  # pylint: disable=import-outside-toplevel
  from fans_jax import evaluation  # pylint: disable=import-outside-toplevel
  from fans_jax.utils import logs  # pylint: disable=import-outside-toplevel
  logs.quiet()
  sizes = [int(n) for n in FLAGS.sizes]
  seeds = [int(s) for s in FLAGS.seeds]
  out = pathlib.Path(FLAGS.output)
  out.parent.mkdir(parents=True, exist_ok=True)
  results = (_load_results(out.with_suffix(".json"), FLAGS.num_steps, sizes)
             or {"num_steps": FLAGS.num_steps, "sizes": sizes, "runs": {}})
  results["seeds"] = sorted(set(results.get("seeds", [])) | set(seeds))
  results["command"] = " ".join(["python scripts/sample_size.py"] + sys.argv[1:])
  runs = {}
  for workdir in FLAGS.workdir:
    run = sampling.load_run(workdir)
    name = f"{'/'.join(pathlib.Path(workdir).parts[-2:])}@{run.step}"  # e.g. white/seed0@1000
    runs[name] = (workdir, run)
    results["runs"].setdefault(name, {"workdir": workdir, "step": run.step,
                                      "noise": run.config.noise.name, "done_seeds": [],
                                      "values": {}})
  for seed in seeds:  # seed by seed, so a run stopped early has every run's first seeds
    for name, (workdir, run) in runs.items():
      per = results["runs"][name]
      if seed in per["done_seeds"]:
        logging.info("%s seed %d: done in %s", name, seed, out.with_suffix(".json"))
        continue
      settings = sample_files.SamplerSettings("ddim", FLAGS.num_steps, 1.0, True, seed).resolved(
          run.schedule.num_timesteps)
      images = saved_draw(workdir, settings, run.schedule.num_timesteps, run.step, max(sizes))
      if images is None:
        images = sampling.generate_with(run, max(sizes), settings, progress=False)
      for n in sizes:  # nested prefixes of one draw: sample i depends on (seed, i) only
        metrics = "spectral,kid" + (",fid" if n >= 2049 else "")
        if run.config.data.name.startswith("cifar10") and n >= 65:
          metrics += ",fd_resnet20"
        if FLAGS.metrics == "spectral":
          metrics = "spectral"
        options = evaluation.EvalOptions(metrics=metrics, num_reference=FLAGS.num_reference,
                                         kid_subsets=100, kid_subset_size=min(n, 1000))
        sample_set = evaluation.SampleSet(evaluation.quantize(images[:n]), settings,
                                          "sample_size")
        try:
          row = evaluation.evaluate_run(workdir, options=options, run=run,
                                        sample_set=sample_set).row
        except FileNotFoundError as e:  # no Inception weights: spectral + FD only
          logging.warning("%s", e)
          options = evaluation.EvalOptions(
              metrics=",".join(m for m in metrics.split(",") if m not in ("fid", "kid")),
              num_reference=FLAGS.num_reference)
          row = evaluation.evaluate_run(workdir, options=options, run=run,
                                        sample_set=sample_set).row
        for key, _ in METRICS:
          per["values"].setdefault(key, {}).setdefault(str(n), []).append(_value(row, key))
        logging.info("%s N=%d seed=%d: %s", name, n, seed,
                     {k: per["values"][k][str(n)][-1] for k, _ in METRICS})
      per["done_seeds"].append(seed)
      out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
      out.with_suffix(".md").write_text("\n".join(report(results)) + "\n")
  print("\n".join(report(results)))


if __name__ == "__main__":
  _define_flags()
  app.run(main)

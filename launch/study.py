r"""Runs the FANS study (configs/study.py): train, sample, evaluate, one results table.

    python launch/study.py --config=configs/study.py:quick --outdir=workdirs/fans_study_quick
    python launch/study.py --config=configs/study.py --outdir=studies/cpu
    python launch/study.py --config=configs/study.py:gpu --outdir=studies/gpu

Writes ``<outdir>/results.json``, ``results.md``, ``record.json``, ``figures/`` and
one directory per run under ``runs/``. Rerunning the same command skips finished
runs and resumes partly trained ones; ``--aggregate_only`` rewrites the results from
the runs on disk without running anything; ``--import_results=OLD/results.json``
continues a study whose run directories are gone from its committed results;
``--recompute_curves=all`` evaluates the learning curves of the finished runs again
from their checkpoints (``=excess_direct``: only those whose curves lack that measure),
then goes on as usual.
Budget overrides:
``--config.run.train.num_train_steps=3000 --config.seeds=0,1,2``
(see configs/study.py and docs/study_design.md).
"""

import os
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the `configs` package

_CONFIG = config_flags.DEFINE_config_file("config", None, "Study config file.",
                                          lock_config=True)
_OUTDIR = flags.DEFINE_string("outdir", None, "Where runs, results and figures go.")
_AGGREGATE_ONLY = flags.DEFINE_bool("aggregate_only", False,
                                    "Only rewrite results and figures from the runs on disk.")
_IMPORT = flags.DEFINE_multi_string(
    "import_results", [],
    "results.json of an earlier study directory whose run directories are gone (a study"
    " split over sessions, its results committed): its finished runs with the same run"
    " keys are counted as finished here, with their learning curves (their samples are"
    " not, so figures leave them out). Repeatable.")
_RECOMPUTE = flags.DEFINE_string(
    "recompute_curves", "",
    "'all': first evaluate the learning curve of every finished run again from its"
    " checkpoints (imported runs and runs without the curve checkpoints keep theirs);"
    " a curve point key (e.g. 'excess_direct'): only the runs whose curve lacks it. Then"
    " go on (train what is left, aggregate; with --aggregate_only, only aggregate).")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", -1,
    "Split the host CPU into N XLA devices (as launch/train.py; -1: the largest power of"
    " two <= min(cores, 8) unless XLA_FLAGS sets a count; 0: leave XLA alone). The device"
    " count changes float rounding, so keep it fixed within a study.")
_JIT_CACHE = flags.DEFINE_string(
    "jit_cache", str(pathlib.Path.home() / ".cache" / "fans_jax" / "jit"),
    "Persistent compilation cache ('' to disable).")
flags.mark_flags_as_required(["config", "outdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from fans_jax.utils import host  # pylint: disable=import-outside-toplevel
  host.force_cpu_devices(_CPU_DEVICES.value)
  import jax  # pylint: disable=import-outside-toplevel  (after XLA_FLAGS)
  if _JIT_CACHE.value:
    jax.config.update("jax_compilation_cache_dir", _JIT_CACHE.value)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

  from fans_jax import study  # pylint: disable=import-outside-toplevel
  from fans_jax.utils import logs  # pylint: disable=import-outside-toplevel
  logs.quiet()
  for path in _IMPORT.value:
    names = study.import_runs(_CONFIG.value, _OUTDIR.value, path)
    logging.info("imported %d run(s) from %s: %s", len(names), path, ", ".join(names) or "none")
  if _RECOMPUTE.value:
    lacking = None if _RECOMPUTE.value == "all" else _RECOMPUTE.value
    done = study.recompute_curves(_CONFIG.value, _OUTDIR.value, lacking=lacking, argv=sys.argv)
    logging.info("curves recomputed for %d run(s), kept for %d: %s", len(done["recomputed"]),
                 len(done["kept"]), ", ".join(done["kept"]) or "none")
  if _AGGREGATE_ONLY.value:
    study.aggregate(_CONFIG.value, _OUTDIR.value)
  else:
    study.run_study(_CONFIG.value, _OUTDIR.value, argv=sys.argv)
  logging.info("results: %s", os.path.join(_OUTDIR.value, study.RESULTS_MD))


if __name__ == "__main__":
  app.run(main)

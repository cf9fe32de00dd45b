"""The FANS study: every dataset x noise variant x seed trained, sampled, evaluated.

One study config (``configs/study.py``) names the datasets, the noise variants (DDPM's
``white``, the published ``blog`` recipe, ``matched``, ``annealed``...), the seeds and
one shared budget (model, optimiser, steps, sampler, sample count). Every run of a
dataset differs from the others only by its noise variant and seed.

:func:`run_study` runs the plan, run by run, into ``<outdir>/runs/<dataset>/<variant>/
seed<k>/``:

1. ``train.train_and_evaluate`` (checkpoints, ``config.json``; a partly trained run
   resumes from its newest checkpoint);
2. ``samples.npz``: ``evaluation.num_samples`` uint8 samples of the EMA weights
   (reused if present and drawn with the same settings from the same step);
3. ``metrics.json``: the row of :func:`fans_jax.evaluation.evaluate_run`
   (spectral metrics; FD-ResNet20 on CIFAR-10; FID/KID only with Inception weights),
   the run's key (its config and evaluation settings) and its timings.

A run with a ``metrics.json`` is finished and skipped on a rerun. A run that raises
(a schedule that breaks the forward chain, a NaN loss, ...) writes ``failed.json``
(phase, error, traceback) and the study goes on; ``retry_failed`` retries it on the
next invocation. A run whose saved config differs from the current study's stops the
study before anything runs (one ValueError listing them): change the budget with a
new ``outdir``.

:func:`aggregate` then writes ``<outdir>/results.json`` (metrics only, so that a
rerun with the same seeds on the same machine reproduces it byte for byte),
``results.md`` (the table in the published post's format with the post's numbers
beside ours, slope MAE per variant, every run, failures, machine and times),
``record.json`` (machine, command lines, wall-clock times of every invocation) and
``figures/``.

Modules, in import order: :mod:`~fans_jax.study.planning` (the runs, their configs and
evaluation settings, the files of a study directory), :mod:`~fans_jax.study.stats`,
:mod:`~fans_jax.study.published` (the post's numbers, from ``published.json``),
:mod:`~fans_jax.study.curves` (learning curves, Gaussian ground truth),
:mod:`~fans_jax.study.figures`, :mod:`~fans_jax.study.report` (``results.md``),
:mod:`~fans_jax.study.aggregation` and :mod:`~fans_jax.study.runner`. This package
re-exports the names callers use.
"""

from fans_jax.study import (aggregation, curves, figures, planning, published, report,
                            runner, stats)
from fans_jax.study.aggregation import aggregate
from fans_jax.study.planning import (FAILED_FILE, FIGURES_DIR, METRICS_FILE, RECORD_FILE,
                                     RANKING_SAMPLES, RANKING_TABLES, RESULTS_JSON,
                                     RESULTS_MD, RUNS_DIR,
                                     SAMPLE_SIZE_TABLE, SAMPLES_FILE, TABLE_METRICS, RunSpec,
                                     check_outdir, datasets_of, evaluation_options,
                                     num_reference, parse_names,
                                     parse_seeds, plan, planned_metrics, read_record,
                                     run_config, run_key,
                                     sample_seed, sample_size_warnings, sampler_settings,
                                     select_metrics,
                                     spectral_settings, variants_of)
from fans_jax.study.published import (PUBLISHED, PUBLISHED_SLOPE_MAE, PUBLISHED_SOURCE,
                                      PUBLISHED_T_TEST, published_slope_errors)
from fans_jax.study.report import main_table, results_markdown
from fans_jax.study.runner import (StudyInterrupted, draw_samples, execute_run, import_runs,
                                   recompute_curves, run_study)
from fans_jax.study.stats import paired_t_test

__all__ = [
    "FAILED_FILE", "FIGURES_DIR", "METRICS_FILE", "PUBLISHED", "PUBLISHED_SLOPE_MAE",
    "PUBLISHED_SOURCE", "PUBLISHED_T_TEST", "RANKING_SAMPLES", "RANKING_TABLES", "RECORD_FILE",
    "RESULTS_JSON", "RESULTS_MD", "RUNS_DIR", "SAMPLE_SIZE_TABLE", "SAMPLES_FILE",
    "TABLE_METRICS", "RunSpec", "StudyInterrupted", "aggregate", "aggregation",
    "check_outdir", "curves", "datasets_of", "draw_samples", "evaluation_options",
    "execute_run", "figures", "import_runs", "main_table", "num_reference", "paired_t_test",
    "parse_names",
    "parse_seeds", "plan", "planned_metrics", "planning", "published",
    "published_slope_errors", "read_record", "recompute_curves",
    "report", "results_markdown", "run_config", "run_key", "run_study", "runner",
    "sample_seed", "sample_size_warnings", "sampler_settings", "select_metrics",
    "spectral_settings", "stats", "variants_of",
]

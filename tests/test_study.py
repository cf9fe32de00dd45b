"""The FANS study (the fans_jax.study package, configs/study.py:quick) end to end.

One module-scoped run of the ``:quick`` study (CIFAR-10 local, 24 steps, DDIM-10, 72
samples) with the four variants plus a fifth, ``broken``, whose annealed schedule
(gamma 2 -> 0 on the uncapped spectrum) breaks the forward chain, placed second so
that the study must go on after it. The later tests rerun the study (everything
skipped), resume a run whose last checkpoint and results were deleted (it must
retrain from step 12 and reproduce its row exactly) and refuse a changed budget.
Runtime on the 2 shared cores: ~2 minutes with a warm compilation cache, ~4 cold.
"""

import json
import math
import os
import pathlib
import shutil
import time

import ml_collections
import numpy as np
import pytest

from configs import study as study_config
from fans_jax import study
from fans_jax import evaluation
from fans_jax import train
from fans_jax.metrics import inception, spectral
from fans_jax.study import curves as study_curves

REAL_VARIANTS = ("white", "blog", "matched", "annealed")


def quick_study() -> ml_collections.ConfigDict:
  """configs/study.py:quick plus the ``broken`` variant (second in the run order)."""
  cfg = ml_collections.ConfigDict(study_config.get_config("quick").to_dict())
  cfg.variants.broken = ml_collections.ConfigDict(dict(
      family="annealed", options=dict(gamma_T=2.0, gamma_0=0.0, max_ratio=None),
      published_as="", description="gamma 2 -> 0, uncapped: breaks the forward chain"))
  cfg.variant_names = "white,broken,blog,matched,annealed"
  cfg.lock()
  return cfg


@pytest.fixture(scope="module")
def finished(tmp_path_factory, shared_data_dir):
  """The quick study, run once; its results and what the files held after it."""
  del shared_data_dir  # needs the offline CIFAR-10 copy
  root = tmp_path_factory.mktemp("study")
  env = pytest.MonkeyPatch()
  env.setenv("FANS_CACHE_DIR", str(root / "cache"))  # spectra and features computed here
  env.setenv(inception.WEIGHTS_ENV, str(root / "missing" / "pt_inception.npz"))
  outdir = root / "out"
  start = time.perf_counter()
  results = study.run_study(quick_study(), outdir, argv=["test_study"])
  seconds = time.perf_counter() - start
  yield {"outdir": outdir, "results": results, "seconds": seconds,
         "results_json": (outdir / study.RESULTS_JSON).read_bytes()}
  env.undo()


def _main_row(markdown: str, label_start: str) -> list[str]:
  for line in markdown.splitlines():
    if line.startswith(f"| {label_start}"):
      return [c.strip() for c in line.strip().strip("|").split("|")]
  raise AssertionError(f"no table row starting with {label_start!r}")


@pytest.mark.slow
def test_every_column_filled_from_real_runs(finished):
  results, outdir = finished["results"], finished["outdir"]
  markdown = (outdir / study.RESULTS_MD).read_text()
  header = _main_row(markdown, "dataset")
  cells = dict(zip(header, _main_row(markdown, "CIFAR-10")))
  assert len(cells) == 2 + len(study.TABLE_METRICS) * 5
  assert math.isfinite(float(cells["data slope"]))
  for _, label, _ in study.TABLE_METRICS:
    for v in REAL_VARIANTS:
      assert math.isfinite(float(cells[f"{label} {v}"])), (label, v, cells[f"{label} {v}"])
    assert cells[f"{label} broken"] == "—"
  post = dict(zip(header, _main_row(markdown, "↳ post: CIFAR-10")))
  assert post["data slope"] == "2.848" and post["slope white"] == "2.733"
  assert post["slope blog"] == "2.512"

  # The numbers are the runs' own: recomputed from each run's saved samples.
  reference = None
  slopes = []
  for v in REAL_VARIANTS:
    spec = study.RunSpec("cifar10", v, 0)
    record = json.loads((spec.workdir(outdir) / study.METRICS_FILE).read_text())
    row = record["row"]
    assert row["num_samples"] == 72 and row["steps"] == 10 and row["sampler"] == "ddim"
    assert isinstance(row["fd_resnet20"], float)
    assert row["fid"].startswith("not computed")
    with np.load(spec.workdir(outdir) / study.SAMPLES_FILE) as f:
      images = evaluation.quantize(f["images"])
    if reference is None:
      import fans_jax.data as data  # pylint: disable=import-outside-toplevel
      cfg = study.run_config(quick_study(), spec)
      source = data.get_source(cfg.data)
      reference = evaluation.quantize(source.get_batch(np.arange(row["num_reference"])))
    again = spectral.spectral_metrics(images, reference, study.spectral_settings(quick_study()))
    for key in ("slope_gen", "slope_ref", "band_jsd", "band_corr", "lsd"):
      assert again[key] == pytest.approx(row["spectral"][key], rel=1e-6, abs=1e-9), key
      stat = results["table"]["cifar10"]["variants"][v].get(key)
      if stat is not None:
        assert stat["n"] == 1 and stat["mean"] == row["spectral"][key]
    slopes.append(row["spectral"]["slope_gen"])
  assert len(set(slopes)) == len(slopes)  # four different models, four different spectra
  for name in ("cifar10_spectra", "cifar10_band_powers", "cifar10_samples_data",
               "cifar10_samples_white", "datasets_psd"):
    assert (outdir / study.FIGURES_DIR / f"{name}.png").stat().st_size > 1000
  assert "Intel" in markdown or "CPU core" in markdown  # the machine record


@pytest.mark.slow
def test_failing_run_is_recorded_and_the_study_goes_on(finished):
  outdir = finished["outdir"]
  failed = json.loads((study.RunSpec("cifar10", "broken", 0).workdir(outdir)
                       / study.FAILED_FILE).read_text())
  assert failed["status"] == "failed" and failed["phase"] == "train"
  assert "breaks the forward chain" in failed["error"]
  statuses = {r["variant"]: r["status"] for r in finished["results"]["runs"]}
  assert statuses == {"white": "done", "broken": "failed", "blog": "done", "matched": "done",
                      "annealed": "done"}
  assert "`cifar10/broken/seed0`: failed while train: ForwardChainError" in (
      outdir / study.RESULTS_MD).read_text()


@pytest.mark.slow
def test_rerun_skips_finished_runs_and_reproduces_results(finished):
  outdir = finished["outdir"]
  metrics = study.RunSpec("cifar10", "white", 0).workdir(outdir) / study.METRICS_FILE
  mtime = metrics.stat().st_mtime_ns
  start = time.perf_counter()
  study.run_study(quick_study(), outdir, argv=["test_study", "rerun"])
  seconds = time.perf_counter() - start
  record = json.loads((outdir / study.RECORD_FILE).read_text())
  assert record["invocations"][-1]["runs"] == []  # nothing executed (failed: not retried)
  assert metrics.stat().st_mtime_ns == mtime
  assert (outdir / study.RESULTS_JSON).read_bytes() == finished["results_json"]
  assert seconds < finished["seconds"] / 2, (seconds, finished["seconds"])


@pytest.mark.slow
def test_partly_trained_run_resumes_and_reproduces_its_row(finished):
  outdir = finished["outdir"]
  workdir = study.RunSpec("cifar10", "annealed", 0).workdir(outdir)
  before = json.loads((workdir / study.METRICS_FILE).read_text())
  (workdir / study.METRICS_FILE).unlink()
  (workdir / study.SAMPLES_FILE).unlink()
  shutil.rmtree(workdir / "checkpoints" / "24")
  study.run_study(quick_study(), outdir, argv=["test_study", "resume"])
  after = json.loads((workdir / study.METRICS_FILE).read_text())
  assert after["timing"]["resumed_from_step"] == 12 and after["timing"]["trained_steps"] == 12
  assert not after["timing"]["samples_reused"]
  assert after["row"] == before["row"]
  assert (outdir / study.RESULTS_JSON).read_bytes() == finished["results_json"]


@pytest.mark.slow
def test_changed_budget_is_refused_before_running(finished):
  cfg = ml_collections.ConfigDict(quick_study().to_dict())
  cfg.run.train.num_train_steps = 30
  record = finished["outdir"] / study.RECORD_FILE
  count = len(json.loads(record.read_text())["invocations"])
  with pytest.raises(ValueError, match="num_train_steps: 24 != 30"):
    study.run_study(cfg, finished["outdir"])
  assert len(json.loads(record.read_text())["invocations"]) == count  # nothing ran


@pytest.mark.slow
def test_study_continues_from_committed_results(finished, tmp_path):
  """A study whose run directories are gone continues from its results.json: the
  finished runs are imported (not rerun), the table is the same, figures leave them out,
  and results of another budget are refused."""
  committed = tmp_path / "committed"
  committed.mkdir()
  for name in (study.RESULTS_JSON, study.RECORD_FILE):
    shutil.copy(finished["outdir"] / name, committed / name)
  outdir = tmp_path / "continued"
  other = ml_collections.ConfigDict(quick_study().to_dict())
  other.run.train.num_train_steps = 30
  with pytest.raises(ValueError, match="num_train_steps: 24 != 30"):
    study.import_runs(other, outdir, committed / study.RESULTS_JSON)
  assert not (outdir / study.RUNS_DIR).exists()  # nothing half-imported
  curves = ml_collections.ConfigDict(quick_study().to_dict())
  curves.evaluation.curve_steps = "12,24"
  with pytest.raises(ValueError, match="curve_steps"):  # another evaluation plan
    study.import_runs(curves, outdir, committed / study.RESULTS_JSON)
  saved = json.loads((committed / study.RESULTS_JSON).read_text())
  saved["study"]["evaluation"]["curve_steps"] = "12,24"  # same plan, but no curves kept
  (tmp_path / "no_curves.json").write_text(json.dumps(saved))
  with pytest.raises(ValueError, match="no learning curve for 4 run"):
    study.import_runs(curves, outdir, tmp_path / "no_curves.json")
  assert not (outdir / study.RUNS_DIR).exists()
  names = study.import_runs(quick_study(), outdir, committed / study.RESULTS_JSON)
  assert names == [f"cifar10/{v}/seed0" for v in REAL_VARIANTS]  # not the failed run
  assert study.import_runs(quick_study(), outdir, committed / study.RESULTS_JSON) == []
  study.check_outdir(quick_study(), outdir)  # the same keys as a run of this config
  record = json.loads((study.RunSpec("cifar10", "white", 0).workdir(outdir)
                       / study.METRICS_FILE).read_text())
  assert record["timing"]["trained_steps"] == 24  # from the committed record.json
  results = study.aggregate(quick_study(), outdir)
  assert results["table"] == finished["results"]["table"]
  assert results["paired_over_seeds"] == finished["results"]["paired_over_seeds"]
  assert {r["variant"]: r["status"] for r in results["runs"]}["broken"] == "missing"
  markdown = (outdir / study.RESULTS_MD).read_text()
  assert "4 finished run(s) were imported" in markdown
  figures = outdir / study.FIGURES_DIR
  assert (figures / "cifar10_samples_data.png").exists()
  assert not (figures / "cifar10_samples_white.png").exists()  # no samples on disk


def _fake_point(rng, step, with_excess):
  point = {"step": step, "spectral": {k: float(rng.uniform()) for k in
                                      ("slope_abs_error", "band_jsd", "lsd")},
           "eps_loss": float(rng.uniform()), "excess_loss": float(rng.uniform()),
           "excess_direct": float(rng.uniform()), "fd_resnet20": None, "fid": None}
  if with_excess:
    optimal = rng.uniform(size=(3, 4))
    excess = rng.normal(size=(3, 4))
    point["excess"] = {"excess": excess.tolist(), "optimal": optimal.tolist(),
                       "model": (excess + optimal).tolist(), "t_edges": [0, 3, 6, 10],
                       "band_edges": [0.0, 0.1, 0.2, 0.3, 0.5],
                       "direct": rng.uniform(size=(3, 4)).tolist(),
                       "optimal_mc": rng.uniform(size=(3, 4)).tolist()}
  return point


def test_curves_rebuilt_from_a_summary_reaggregate_to_it():
  """A results.json that holds only the curve summary (a study continued from
  committed results) gives back per-run curves whose aggregate is the same summary;
  a metric some seed lacks is left out, not guessed."""
  rng = np.random.default_rng(0)
  steps = (10, 20, 40)
  curves = {("d", v, s): [_fake_point(rng, step, step == steps[-1]) for step in steps]
            for v in ("white", "matched") for s in (0, 1, 2)}
  del curves[("d", "matched", 1)][1]["eps_loss"]  # seed 1 lacks one point's eps loss
  summary = study_curves.aggregate_curves(curves)
  results = {"runs": [{"dataset": d, "variant": v, "seed": s, "status": "done"}
                      for (d, v, s) in curves], "curves": summary, "seeds": [0, 1, 2]}
  rebuilt = study_curves.curves_from_summary(results)
  assert set(rebuilt) == set(curves)
  again = study_curves.aggregate_curves(rebuilt)
  want = json.loads(json.dumps(summary))
  want["d"]["matched"]["metrics"]["eps_loss"][1] = None  # n = 2 of 3: left out
  assert json.loads(json.dumps(again)) == want
  assert rebuilt[("d", "white", 2)][0]["spectral"]["lsd"] == curves[("d", "white", 2)][0][
      "spectral"]["lsd"]
  assert all(p["rebuilt"] for points in rebuilt.values() for p in points)
  final = summary["d"]["white"]["excess_final"]  # both estimators, averaged over seeds
  np.testing.assert_allclose(final["direct"], np.mean(
      [curves[("d", "white", s)][-1]["excess"]["direct"] for s in (0, 1, 2)], axis=0))
  assert summary["d"]["white"]["metrics"]["excess_direct"][-1]["n"] == 3
  # a seed whose record predates the direct estimator: the mean is over the others,
  # and a rebuilt curve does not hand that mean to the seed that never had it
  del curves[("d", "matched", 2)][-1]["excess"]["direct"]
  partial = study_curves.aggregate_curves(curves)["d"]["matched"]["excess_final"]
  assert partial["direct_n"] == 2 and partial["n"] == 3
  np.testing.assert_allclose(partial["direct"], np.mean(
      [curves[("d", "matched", s)][-1]["excess"]["direct"] for s in (0, 1)], axis=0))
  results["curves"]["d"]["matched"]["excess_final"] = partial
  assert "direct" not in study_curves.curves_from_summary(results)[("d", "matched", 0)][-1][
      "excess"]
  # The ceiling (computed by the first seed's run only) goes back to that run.
  results["ceiling"] = {"d": {"white": {"main": {"lsd": {"mean": 0.01, "std": None, "n": 1,
                                                         "values": [0.01]}}}}}
  assert study_curves.ceilings_from_summary(results) == {("d", "white", 0):
                                                         {"main": {"lsd": 0.01}}}


def test_configs_build_and_plan():
  default = study_config.get_config()
  specs = study.plan(default)
  assert len(specs) == 5 * 5 * 2 and len(set(specs)) == len(specs)
  assert [s.seed for s in specs[:25]] == [0] * 25  # seed-major: seed 0's table comes first
  for spec in specs:
    cfg = study.run_config(default, spec)
    assert cfg.data.image_size == 32 and cfg.train.seed == spec.seed
    assert cfg.noise.name == default.variants[spec.variant].family
  curves = study_config.get_config("curves")
  first = study.run_config(curves, study.plan(curves)[0])
  assert first.data.normalize == "dataset" and first.data.image_size == 16  # Gaussian PLTB
  assert first.optim.decay == "constant" and curves.datasets.pltb_gauss16.gaussian
  # :plateau is :curves trained longer: the same run identity (its first 1000 steps are
  # :curves' runs), 8000 steps, curve points doubling up to the last.
  plateau = study_config.get_config("plateau")
  longer = study.run_config(plateau, study.plan(plateau)[0])
  assert train.run_identity(longer) == train.run_identity(first)
  assert longer.train.num_train_steps == 8000
  assert plateau.evaluation.curve_steps == "1000,2000,4000"
  # :plateau16: the same budget on a natural 16x16 set; every curve point keeps its
  # checkpoint (checkpoints every 500 steps, 16 kept: all of an 8000-step run's).
  natural = study_config.get_config("plateau16")
  specs16 = study.plan(natural)
  assert [(s.dataset, s.variant, s.seed) for s in specs16[:3]] == [
      ("galaxy16", v, 0) for v in ("white", "matched", "annealed")]
  run16 = study.run_config(natural, specs16[0])
  assert run16.data.image_size == 16 and run16.optim.decay == "constant"
  assert run16.train.num_train_steps == 8000 and not natural.datasets.galaxy16.gaussian
  points = study_curves.parse_steps(natural.evaluation.curve_steps, 8000)
  every = run16.train.checkpoint_every_steps
  assert points == (500, 1000, 2000, 4000, 8000) and all(p % every == 0 for p in points)
  assert run16.train.keep_checkpoints >= 8000 // every
  gpu = study_config.get_config("gpu")
  assert study.run_config(gpu, study.plan(gpu)[0]).model.channels == 64
  with pytest.raises(ValueError, match="unknown study variant 'tiny'"):
    study_config.get_config("tiny")
  for name, family in (("dtd16", "dtd_local"), ("galaxy16", "galaxy_zoo_local")):
    cfg = study.run_config(default, study.RunSpec(name, "white", 0))
    assert cfg.data.image_size == 16 and cfg.data.name == family


def test_data_grid_spans_a_class_sorted_set():
  from fans_jax.study import figures  # pylint: disable=g-import-not-at-top
  shown = figures.spread_indices(10_000, 64)  # CIFAR-10 here: 1000 images per class, sorted
  assert len(shown) == 64 and shown[0] == 0 and shown[-1] >= 9_000  # first and last class
  assert set(np.bincount(shown // 1000, minlength=10)) <= {6, 7}  # every class, evenly
  np.testing.assert_array_equal(figures.spread_indices(5, 64), np.arange(5))
  with pytest.raises(ValueError, match="n >= 1"):
    figures.spread_indices(10, 0)


def test_bad_names_and_seeds():
  with pytest.raises(ValueError, match=r"unknown \['cifar'\]"):
    study.parse_names("pltb,cifar", ["pltb", "cifar10"], "dataset_names")
  with pytest.raises(ValueError, match="is empty"):
    study.parse_names(" , ", ["pltb"], "dataset_names")
  with pytest.raises(ValueError, match="repeats"):
    study.parse_names("pltb,pltb", ["pltb"], "dataset_names")
  assert study.parse_seeds("0, 2") == (0, 2) and study.parse_seeds(3) == (3,)
  for bad in ("0,a", "1,1", "-1", ""):
    with pytest.raises(ValueError, match="seeds"):
      study.parse_seeds(bad)


def test_published_constants_match_the_post_summary():
  # The post's table has 3 decimals (each entry +-5e-4), so its MAE recomputed from the
  # table differs from the printed MAE by at most 1e-3.
  errors = study.published_slope_errors()
  for name, printed in study.PUBLISHED_SLOPE_MAE.items():
    assert abs(np.mean(errors[name]) - printed) <= 1e-3


def _ranking_n(table: dict, key: str):
  """The smallest N of ``table`` from which the gap of its two runs' means exceeds twice
  the larger std over sampling seeds, at that N and every larger one; None: not
  measured there (no values); inf: measured, but ranked them at no N."""
  runs = list(table["runs"].values())
  ranks = {}
  for n in table["sizes"]:
    vals = [np.asarray([v for v in r["values"].get(key, {}).get(str(n), []) if v is not None],
                       float) for r in runs]
    if any(len(v) < 2 for v in vals):
      continue
    ranks[n] = abs(vals[0].mean() - vals[1].mean()) > 2 * max(v.std(ddof=1) for v in vals)
  sizes = sorted(ranks)
  if not sizes:
    return None
  return next((n for i, n in enumerate(sizes) if all(ranks[m] for m in sizes[i:])), math.inf)


def test_sample_size_thresholds_are_the_measured_tables():
  # RANKING_SAMPLES must be what the sample-size JSON files say: per metric the largest,
  # over the tables that measured it, of the smallest N from which it ranked their pair.
  root = pathlib.Path(__file__).parents[1]
  tables = {name: json.loads((root / path).read_text())
            for name, path in study.RANKING_TABLES.items()}
  for table in tables.values():
    assert len(table["runs"]) == 2 and len(table["seeds"]) >= 3
  for key, (_, threshold, source) in study.RANKING_SAMPLES.items():
    found = {name: _ranking_n(t, key) for name, t in tables.items()}
    measured = {name: n for name, n in found.items() if n is not None}
    assert measured, key
    assert threshold == max(measured.values()), (key, found)
    assert found[source] == threshold, (key, found)


def test_study_warns_below_the_sample_size_table(finished, caplog):
  assert study.sample_size_warnings(2100) == []
  low = study.sample_size_warnings(256)  # below 2048 (slope), 512 (JSD, LSD, FD), 2100 (FID)
  assert [w.split(" by ")[1].split(" (")[0] for w in low] == [
      "|slope error|", "band JSD", "LSD", "FID", "FD-ResNet20"]
  assert len(study.sample_size_warnings(72)) == 6  # the quick study's 72 < 128 (KID)
  text = (finished["outdir"] / study.RESULTS_MD).read_text()
  assert "**Warning: too few samples to rank.**" in text and "72 samples per run" in text
  cfg = quick_study()
  with caplog.at_level("WARNING"):
    study.run_study(cfg, finished["outdir"])  # every run finished: only the warnings
  # the quick study computes the spectral metrics and FD-ResNet20, not FID/KID (72 < 2049)
  assert sum("TOO FEW SAMPLES TO RANK" in r.getMessage() for r in caplog.records) == 4


def test_planned_metrics_follow_the_datasets_and_sample_count():
  from fans_jax.metrics import inception  # pylint: disable=import-outside-toplevel
  cfg = quick_study()
  assert study.planned_metrics(cfg) == ("slope_abs_error", "band_jsd", "lsd", "fd_resnet20")
  big = ml_collections.ConfigDict(cfg.to_dict())
  big.evaluation.num_samples = 2100
  weights = os.path.exists(inception.default_weights_path())  # plan_metrics' own rule
  assert study.planned_metrics(big)[4:] == (("fid", "kid") if weights else ())
  big.dataset_names = "pltb"
  assert "fd_resnet20" not in study.planned_metrics(big)
  assert study.sample_size_warnings(256, study.planned_metrics(cfg))[-1].split(" by ")[1] \
      .startswith("FD-ResNet20")


def test_fid_and_kid_reach_the_table_and_the_paired_tests():
  from fans_jax.study import aggregation, report  # pylint: disable=import-outside-toplevel
  cfg = study_config.get_config("quick")
  rows = {s: {"fid": 150.0 + s, "kid": {"mean": 0.1 + s / 100, "std": 0.01},
              "fd_resnet20": 12.0,
              "spectral": dict.fromkeys(("slope_abs_error", "band_jsd", "band_corr", "lsd"), 0.1)}
          for s in (0, 1, 2)}
  assert aggregation._metric(rows[0], "fid") == 150.0
  assert aggregation._metric(rows[1], "kid") == pytest.approx(0.11)
  assert aggregation._metric({"fid": "not computed: 72 samples"}, "fid") is None
  done = {("cifar10", v, s): dict(r, fid=r["fid"] + (10.0 * s if v == "matched" else 0.0))
          for v in ("white", "matched") for s, r in rows.items()}
  paired = aggregation._paired_over_seeds(done, ["cifar10"], ["white", "matched"], (0, 1, 2),
                                          "white")
  assert paired["cifar10"]["matched"]["fid"]["diff"] == pytest.approx(10.0)  # 0, 10, 20
  assert paired["cifar10"]["matched"]["kid"]["diff"] == 0.0
  stat = {"mean": 151.0, "std": 1.0, "n": 3, "values": [150.0, 151.0, 152.0]}
  kid = {"mean": 0.11, "std": 0.01, "n": 3, "values": [0.1, 0.11, 0.12]}
  results = {"variants": ["white", "matched"], "seeds": [0, 1, 2], "datasets": ["cifar10"],
             "table": {"cifar10": {"label": "CIFAR-10", "published": "CIFAR-10", "variants": {
                 "white": {"fid": stat, "kid": kid}, "matched": {"fid": None, "kid": None}}}}}
  table = report.frechet_table(cfg, results)
  assert "| CIFAR-10 | white | 151.0 ± 1.0 | 0.1100 ± 0.0100 | 16.07 |" in table, table
  assert "| CIFAR-10 | matched | — | — |  |" in table, table
  results["table"]["cifar10"]["variants"]["white"] = {"fid": None, "kid": None}
  assert report.frechet_table(cfg, results) == ""  # no FID anywhere: no table


def test_fid_left_out_when_weights_exist_but_samples_are_too_few(tmp_path, monkeypatch):
  cfg = study_config.get_config("quick")  # 72 samples < 2049
  spec = study.plan(cfg)[0]
  run = study.run_config(cfg, spec)
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "missing.npz"))
  assert study.select_metrics(cfg, run, 10000) == ("auto", None)  # the table says why
  weights = tmp_path / "pt_inception.npz"
  weights.write_bytes(b"")  # only its existence matters here
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(weights))
  metrics, note = study.select_metrics(cfg, run, 10000)
  assert metrics == "spectral,fd_resnet20" and "72 samples" in note and "2049" in note
  evaluation.EvalOptions(metrics=metrics).requested()  # a valid explicit list


def gaussian_curve_study() -> ml_collections.ConfigDict:
  """configs/study.py:curves shrunk to seconds: two variants, one seed, 8 steps."""
  cfg = ml_collections.ConfigDict(study_config.get_config("curves").to_dict())
  cfg.variant_names = "white,matched"
  cfg.seeds = "0"
  cfg.run.train.batch_size = 16
  cfg.run.train.num_train_steps = 8
  cfg.run.train.checkpoint_every_steps = 4
  cfg.run.train.log_every_steps = 4
  cfg.run.optim.warmup_steps = 2
  ev = cfg.evaluation
  ev.num_samples = ev.curve_num_samples = ev.held_images = 16
  ev.sampler, ev.num_steps, ev.curve_num_steps = "ddim", 10, 10
  ev.num_reference = 256
  ev.curve_steps = "4"
  ev.gaussian_buckets = 2
  cfg.lock()
  return cfg


def test_gaussian_curves_carry_both_excess_estimators_and_recompute(tmp_path, monkeypatch):
  """The Gaussian curve path end to end: each curve point has the closed-form and the
  direct excess, the report and heat map show both; ``recompute_curves`` rebuilds a
  curve from the checkpoints, repeating every value of the first evaluation."""
  monkeypatch.setenv("FANS_CACHE_DIR", str(tmp_path / "cache"))
  cfg, outdir = gaussian_curve_study(), tmp_path / "out"
  results = study.run_study(cfg, outdir, argv=["test"])
  summary = results["curves"]["pltb_gauss16"]
  for v in ("white", "matched"):
    final = summary[v]["excess_final"]
    direct = np.asarray(final["direct"])
    assert direct.shape == np.asarray(final["mean"]).shape == (2, 8)
    assert np.all(direct >= 0) and np.all(np.isfinite(direct))
    # after 8 steps the network is far from the optimum: both estimators see it
    assert np.nanmean(direct) > 0.01 and np.nanmean(final["mean"]) > 0.01
    assert summary[v]["metrics"]["excess_direct"][-1]["n"] == 1
  markdown = (outdir / study.RESULTS_MD).read_text()
  assert "| white | distance |" in markdown and "| white | loss - optimum |" in markdown
  assert (outdir / study.FIGURES_DIR / "pltb_gauss16_excess_eps_loss.png").exists()

  # A record written before the direct estimator existed: recomputing brings it back.
  spec = study.RunSpec("pltb_gauss16", "white", 0)
  path = spec.workdir(outdir) / study.METRICS_FILE
  first = json.loads(path.read_text())
  old = json.loads(path.read_text())
  for point in old["curve"]:
    del point["excess_direct"], point["excess"]["direct"], point["excess"]["optimal_mc"]
  path.write_text(json.dumps(old))
  done = study.recompute_curves(cfg, outdir)
  assert done == {"recomputed": ["pltb_gauss16/white/seed0", "pltb_gauss16/matched/seed0"],
                  "kept": []}
  again = json.loads(path.read_text())
  assert "curve_recomputed" in again and again["row"] == first["row"]
  last = json.loads((outdir / study.RECORD_FILE).read_text())["invocations"][-1]
  assert last["recomputed_curves"] == done["recomputed"] and last["runs"] == []
  for a, b in zip(again["curve"], first["curve"]):
    assert a["spectral"] == b["spectral"] and a["eps_loss"] == pytest.approx(b["eps_loss"])
    np.testing.assert_allclose(a["excess"]["direct"], b["excess"]["direct"], rtol=1e-6)
  # runs that have the measure already are left alone when only the lacking are asked
  assert study.recompute_curves(cfg, outdir, lacking="excess_direct")["recomputed"] == []
  with pytest.raises(ValueError, match="not a curve point measure"):  # a typo recomputes nothing
    study.recompute_curves(cfg, outdir, lacking="excess_drect")
  # an imported run (no checkpoints here) keeps its curve
  again["imported_from"] = "elsewhere/results.json"
  path.write_text(json.dumps(again))
  assert study.recompute_curves(cfg, outdir)["kept"] == ["pltb_gauss16/white/seed0"]

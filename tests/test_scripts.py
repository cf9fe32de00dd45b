"""Small checks of the report scripts in scripts/ on inputs whose answer is known."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import colour_stats  # noqa: E402  pylint: disable=wrong-import-position
import joined_curves  # noqa: E402  pylint: disable=wrong-import-position
import sample_size  # noqa: E402  pylint: disable=wrong-import-position
import sampler_check  # noqa: E402  pylint: disable=wrong-import-position

from fans_jax import sample_files  # noqa: E402  pylint: disable=wrong-import-position


def test_colour_stats_on_known_images():
  rng = np.random.default_rng(0)
  level = rng.integers(0, 256, size=(64, 1, 1, 1))
  grey = np.broadcast_to(level, (64, 4, 4, 3)).astype(np.uint8)
  s = colour_stats.colour_stats(grey)
  assert s["mean_chroma"] == 0.0 and s["corr_rg"] == pytest.approx(1.0)
  opposite = grey.copy()
  opposite[..., 2] = 255 - opposite[..., 0]  # blue falls as red rises
  s = colour_stats.colour_stats(opposite)
  assert s["corr_rb"] == pytest.approx(-1.0) and s["corr_rg"] == pytest.approx(1.0)
  # one image of (255, 0, 0): its mean colour is 170 from grey (85) in R, 85 in G and B.
  red = np.zeros((2, 2, 2, 3), np.uint8)
  red[..., 0] = 255
  assert colour_stats.colour_stats(red)["mean_chroma"] == pytest.approx(
      np.sqrt(170.0**2 + 2 * 85.0**2))
  with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
    colour_stats.colour_stats(np.zeros((2, 4, 4), np.uint8))


def test_colour_stats_command_reads_sample_files(tmp_path):
  rng = np.random.default_rng(1)
  data = rng.integers(0, 256, size=(16, 8, 8, 3), dtype=np.uint8)
  np.savez(tmp_path / "data.npz", images=data)
  run = tmp_path / "runs" / "d" / "white" / "seed0"
  run.mkdir(parents=True)
  sample_files.write_samples(run / "samples.npz", data[:8])
  out = tmp_path / "out" / "colour"
  subprocess.run([sys.executable, str(ROOT / "scripts" / "colour_stats.py"),
                  f"--reference={tmp_path / 'data.npz'}", f"--samples={run / 'samples.npz'}",
                  f"--output={out}"], check=True, cwd=ROOT, capture_output=True)
  rows = json.loads(out.with_suffix(".json").read_text())["rows"]
  assert rows["data"] == colour_stats.colour_stats(data)
  assert rows["d/white/seed0"] == colour_stats.colour_stats(data[:8])
  assert "| d/white/seed0 | 8 |" in out.with_suffix(".md").read_text()


def test_sample_size_reuses_only_the_identical_saved_draw(tmp_path):
  # The study's samples.npz (or a launch/sample.py file) is reused only when every
  # setting, the step and the count match; anything else means drawing again.
  settings = sample_files.SamplerSettings("ddim", 100, 1.0, True, 1).resolved(1000)
  images = np.random.default_rng(2).integers(0, 256, size=(12, 4, 4, 3), dtype=np.uint8)
  sample_files.write_samples(tmp_path / "samples.npz", images, settings, step=600)
  got = sample_size.saved_draw(tmp_path, settings, 1000, 600, 10)
  np.testing.assert_array_equal(got, images[:10])
  other_seed = sample_files.SamplerSettings("ddim", 100, 1.0, True, 2).resolved(1000)
  noclip = sample_files.SamplerSettings("ddim", 100, 1.0, False, 1).resolved(1000)
  assert sample_size.saved_draw(tmp_path, other_seed, 1000, 600, 10) is None
  assert sample_size.saved_draw(tmp_path, noclip, 1000, 600, 10) is None
  assert sample_size.saved_draw(tmp_path, settings, 1000, 400, 10) is None  # another step
  assert sample_size.saved_draw(tmp_path, settings, 1000, 600, 13) is None  # too few
  # a launch/sample.py file, named by its settings, is found too
  (tmp_path / "samples.npz").unlink()
  stem = sample_files.sample_file_stem(other_seed, 1000, 600)
  sample_files.write_samples(tmp_path / "samples" / f"{stem}.npz", images, other_seed, step=600)
  np.testing.assert_array_equal(sample_size.saved_draw(tmp_path, other_seed, 1000, 600, 12),
                                images)


def test_sample_size_report_ranks_by_the_spread_over_seeds():
  # fid: means 10 and 20, stds 1 -> gap 10 > 2 x 1: ranks; lsd: gap 0.1 < 2 x 0.5: does not.
  results = {"num_steps": 100, "sizes": [2100], "command": "python scripts/sample_size.py",
             "runs": {"a@600": {"noise": "white", "done_seeds": [0, 1, 2],
                                "values": {"fid": {"2100": [9.0, 10.0, 11.0]},
                                           "lsd": {"2100": [0.5, 1.0, 1.5]}}},
                      "b@400": {"noise": "white", "done_seeds": [0, 1, 2],
                                "values": {"fid": {"2100": [19.0, 20.0, 21.0]},
                                           "lsd": {"2100": [0.6, 1.1, 1.6]}}}}}
  lines = sample_size.report(results)
  fid = next(line for line in lines if line.startswith("| FID |"))
  lsd = next(line for line in lines if line.startswith("| LSD |"))
  assert "10 ± 1 (3)" in fid and "20 ± 1 (3)" in fid and "| yes (gap 10) |" in fid
  assert "| no (gap 0.1) |" in lsd
  assert not any(line.startswith("| KID") for line in lines)  # no values, no row
  # a run with one finished seed has no std yet: no row
  results["runs"]["b@400"]["values"]["fid"]["2100"] = [20.0]
  assert not any(line.startswith("| FID |") for line in sample_size.report(results))


def test_sample_size_resumes_only_the_same_table(tmp_path):
  path = tmp_path / "table.json"
  assert sample_size._load_results(path, 100, [128]) is None  # pylint: disable=protected-access
  path.write_text(json.dumps({"num_steps": 100, "sizes": [128], "runs": {"a": {}}}))
  assert sample_size._load_results(path, 100, [128])["runs"] == {"a": {}}  # pylint: disable=protected-access
  with pytest.raises(SystemExit, match="num_steps=100"):
    sample_size._load_results(path, 50, [128])  # pylint: disable=protected-access


def _evaluate_rows(values):
  """launch/evaluate.py's metrics.json rows: variant -> (slope error, JSD, LSD, corr)."""
  return [{"run": "seed2", "workdir": f"studies/x/runs/x/{name}/seed2",
           "spectral": {"slope_error": e, "band_jsd": j, "lsd": l, "band_corr": c}}
          for name, (e, j, l, c) in values.items()]


def test_sampler_check_orders_best_first_and_compares(tmp_path, capsys):
  ref = {"white": (-0.3, 0.002, 0.26, 0.99), "blog": (0.1, 0.001, 0.17, 0.995),
         "matched": (0.2, 0.004, 0.18, 0.999)}
  cand = dict(ref, matched=(0.05, 0.004, 0.18, 0.98))  # better |slope error|, worse corr.
  (tmp_path / "ref.json").write_text(json.dumps(_evaluate_rows(ref)))
  (tmp_path / "cand.json").write_text(json.dumps(_evaluate_rows(cand)))
  rows = {r["key"]: r for r in sampler_check.compare(
      sampler_check._values(str(tmp_path / "ref.json")),  # pylint: disable=protected-access
      sampler_check._values(str(tmp_path / "cand.json")))}  # pylint: disable=protected-access
  # |slope error| uses the absolute value: white's -0.3 is the worst.
  assert rows["slope_abs_error"]["reference"] == ["blog", "matched", "white"]
  assert rows["slope_abs_error"]["candidate"] == ["matched", "blog", "white"]
  assert not rows["slope_abs_error"]["same"]
  assert rows["lsd"]["reference"] == ["blog", "matched", "white"] and rows["lsd"]["same"]
  assert rows["band_corr"]["reference"][0] == "matched"  # higher is better
  assert rows["band_corr"]["candidate"][0] == "blog" and not rows["band_corr"]["same"]
  sampler_check.main([f"--reference={tmp_path / 'ref.json'}",
                      f"--candidate={tmp_path / 'cand.json'}"])
  out = capsys.readouterr().out
  assert "| LSD | blog < matched < white | blog < matched < white | yes |" in out


def _curve_results(steps, means, stds, n=3) -> dict:
  """A results.json with one dataset's curves: variant -> slope-error stats per step
  (a std of None: one seed)."""
  return {"curves": {"d": {v: {"steps": steps, "metrics": {"slope_abs_error": [
      {"mean": m, "std": sd, "n": 1 if sd is None else n, "values": [m] * (1 if sd is None else n)}
      for m, sd in zip(means[v], stds[v])]}}
      for v in means}}}


def test_joined_curves_joins_and_tests_the_plateau(tmp_path, capsys):
  short = _curve_results([125, 250, 500, 1000], {"white": [1.0, 0.6, 0.2, 0.07]},
                         {"white": [0.05, 0.05, 0.02, 0.01]})
  long = _curve_results([1000, 2000, 4000, 8000],
                        {"white": [0.066, 0.03, 0.02, 0.015], "matched": [0.05, 0.03, 0.02, 0.0],
                         "blog": [0.2, 0.1, 0.08, 0.06]},
                        {"white": [0.01, 0.01, 0.008, 0.01], "matched": [0.0, 0.0, 0.0, 0.0],
                         "blog": [None] * 4})
  joined = joined_curves.curves.join_summaries([short["curves"]["d"], long["curves"]["d"]])
  assert joined["white"]["steps"] == [125, 250, 500, 1000, 2000, 4000, 8000]
  assert joined["white"]["sources"] == [0, 0, 0, 1, 1, 1, 1]  # the longer run's 1000 wins
  assert joined["white"]["metrics"]["slope_abs_error"][3]["mean"] == 0.066
  assert joined["matched"]["steps"] == [1000, 2000, 4000, 8000]
  for name, obj in (("a.json", short), ("b.json", long)):
    (tmp_path / name).write_text(json.dumps(obj))
  joined_curves.main([f"--results={tmp_path / 'a.json'}", f"--results={tmp_path / 'b.json'}",
                      "--dataset=d", f"--out={tmp_path / 'out' / 'joined'}"])
  text = capsys.readouterr().out
  assert (tmp_path / "out" / "joined.png").stat().st_size > 10_000
  assert (tmp_path / "out" / "joined.md").read_text().strip() == text.strip()
  # white: 4000 -> 8000 changed 0.005 < its seed std 0.01: plateaued; matched's zero
  # spread can never show a plateau (the criterion needs a spread), and a missing step
  # is a dash.
  assert "| white | 1 ± 0.05 (3) |" in text
  assert "yes: 4000->8000 changed 0.005, seed std 0.01" in text
  assert "| matched | — | — | — | 0.05 ± 0 (3) |" in text
  assert "no: 4000->8000 changed 0.02, seed std 0" in text
  assert "| blog | — | — | — | 0.2 (1) |" in text  # one seed: no std, and no verdict
  assert "n/a (one seed): 4000->8000 changed 0.02 |" in text
  with pytest.raises(SystemExit, match="no learning curves for 'x'"):
    joined_curves.main([f"--results={tmp_path / 'a.json'}", "--dataset=x",
                        f"--out={tmp_path / 'y'}"])

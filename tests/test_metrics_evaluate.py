"""launch/evaluate.py and fans_jax.evaluation on two tiny trained runs.

Two runs (DDPM and FANS ``matched``) are trained for 2 steps on the offline CIFAR-10
copy (T = 100): their samples are noise, which is what the metrics must say. Runtime
on 2 cores: ~1 minute (two train-step and two sampler compilations).
"""

import importlib.util
import json
import pathlib
import shutil

import numpy as np
import pytest

from fans_jax import evaluation
from fans_jax.metrics import inception

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tiny_config(noise: str):
  from configs import base  # pylint: disable=import-outside-toplevel
  c = base.get_config()
  base.tiny(c)
  c.data.name = "cifar10_local"
  c.train.num_train_steps = 2
  c.train.batch_size = 8
  c.train.log_every_steps = 1
  c.train.checkpoint_every_steps = 2
  c.train.async_checkpoints = False
  c.sample.every_steps = 0
  c.noise.num_timesteps = 100
  c.noise.spectrum_images = 200
  if noise != "white":
    base.set_fans(c, noise)
  c.eval.num_samples = 72  # >= 65 for FD-ResNet20
  c.eval.sampler = "ddim"
  c.eval.num_steps = 2
  c.eval.seed = 3
  c.lock()
  return c


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data_dir):
  del shared_data_dir  # needs the offline CIFAR-10 copy
  from fans_jax import train  # pylint: disable=import-outside-toplevel
  root = tmp_path_factory.mktemp("runs")
  out = {}
  for noise in ("white", "matched"):
    train.train_and_evaluate(_tiny_config(noise), root / noise)
    out[noise] = str(root / noise)
  return out


@pytest.fixture
def no_inception(tmp_path, monkeypatch):
  path = tmp_path / "missing" / "pt_inception.npz"
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(path))
  return path


def _options(tmp_path, **kwargs):
  return evaluation.EvalOptions(num_reference=200, cache_dir=str(tmp_path / "features"),
                                data_cache_dir=str(tmp_path / "spectra"), **kwargs)


def _save_real_samples(path, shared_data_dir, n=80):
  with np.load(shared_data_dir / "cifar10_test_uint8.npz") as data:
    images = data["images"][:n]
  from fans_jax import sample_files  # pylint: disable=import-outside-toplevel
  return sample_files.write_samples(
      path, images, sample_files.SamplerSettings(sampler="ddpm", num_steps=100, seed=7))


def test_evaluate_two_runs(runs, tmp_path, no_inception, shared_data_dir):
  # Both runs are sampled (DDIM, 2 steps, after 2 training steps: noise). Then the
  # FANS run is evaluated again on a samples file holding real CIFAR-10 test images,
  # whose metrics must be far better.
  samples = _save_real_samples(tmp_path / "real.npz", shared_data_dir)
  out = tmp_path / "report"
  rows = evaluation.evaluate([runs["white"], runs["matched"]], [], _options(tmp_path),
                             output_dir=str(out))
  noise_row = rows[0]
  real_row = evaluation.evaluate_run(runs["matched"], str(samples), _options(tmp_path)).row
  assert noise_row["sampler"] == "ddim" and noise_row["steps"] == 2 and noise_row["seed"] == 3
  assert noise_row["num_samples"] == 72 and noise_row["resolution"] == "32x32x3"
  assert noise_row["schedule"].startswith("white") and "T=100" in noise_row["schedule"]
  assert rows[1]["schedule"].startswith("matched, linear betas")  # default options
  assert (real_row["sampler"], real_row["steps"], real_row["seed"]) == ("ddpm", 100, 7)
  # Real images against the data: near-perfect spectra and a small FD; noise: not.
  assert abs(real_row["spectral"]["slope_error"]) < 0.1 < abs(noise_row["spectral"]["slope_error"])
  assert real_row["spectral"]["band_jsd"] < noise_row["spectral"]["band_jsd"]
  assert 0 < real_row["fd_resnet20"] < noise_row["fd_resnet20"]
  for row in (noise_row, real_row):
    assert row["fid"] == f"not computed: weights missing at {no_inception}"
    assert row["kid"] == row["fid"]
  stored = json.loads((out / "metrics.json").read_text())
  assert [r["dataset"] for r in stored] == ["cifar10_local"] * 2
  assert isinstance(stored[0]["spectral"]["band_rel_error"], list)
  table = (out / "metrics.md").read_text().splitlines()
  assert table[0].startswith("| run | dataset | resolution | noise schedule | sampler | steps |"
                             " clip x0 | seed |")
  assert table[2].startswith("| white | cifar10_local | 32x32x3 | white, linear betas, T=100"
                             " | ddim | 2 | True | 3 | 72 |")
  assert "not computed: weights missing" in table[3]
  for name in ("spectra_cifar10_local_32x32x3.png", "samples_0_white.png"):
    assert (out / name).stat().st_size > 5000


def test_evaluate_errors(runs, tmp_path, no_inception, shared_data_dir):
  options = _options(tmp_path)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    evaluation.evaluate([str(tmp_path / "nowhere")], [], options, str(tmp_path / "o"))
  empty = tmp_path / "no_checkpoints"
  empty.mkdir()
  shutil.copy(pathlib.Path(runs["white"]) / "config.json", empty / "config.json")
  with pytest.raises(FileNotFoundError, match="cannot sample .* no checkpoint"):
    evaluation.evaluate_run(str(empty), options=options)
  # Saved samples need the run's config (dataset, schedule) but no checkpoint.
  real = _save_real_samples(tmp_path / "real.npz", shared_data_dir)
  row = evaluation.evaluate_run(str(empty), str(real), options).row
  assert row["step"] == "unknown" and row["schedule"].startswith("white")
  # A sample file that records its checkpoint step (launch/sample.py --step) names it.
  from fans_jax import sample_files  # pylint: disable=import-outside-toplevel
  saved = sample_files.read_samples(real)
  stepped = sample_files.write_samples(tmp_path / "stepped.npz", saved.images, saved.settings,
                                       step=1234)
  assert evaluation.evaluate_run(str(empty), str(stepped), options).row["step"] == 1234
  small = tmp_path / "small.npz"
  np.savez(small, images=np.zeros((80, 16, 16, 3), np.uint8))
  with pytest.raises(ValueError, match="sample sets must have the shape"):
    evaluation.evaluate_run(runs["white"], str(small), options)
  with pytest.raises(ValueError, match="needs at least 65 samples"):  # before sampling
    evaluation.evaluate_run(runs["white"], options=_options(tmp_path, num_samples=10))
  with pytest.raises(FileNotFoundError, match=str(no_inception)):
    evaluation.evaluate_run(runs["white"], options=_options(tmp_path, metrics="fid"))
  with pytest.raises(ValueError, match="one samples file per workdir"):
    evaluation.evaluate([runs["white"], runs["matched"]], [str(small)], options, "x")
  with pytest.raises(ValueError, match="metrics="):
    evaluation.evaluate([runs["white"]], [], _options(tmp_path, metrics="fid,psnr"), "x")


def test_plan_metrics(tmp_path, monkeypatch):
  weights = tmp_path / "incep.npz"
  weights.write_bytes(b"present")  # only its existence matters to the plan
  opts = evaluation.EvalOptions(inception_weights=str(weights))
  plan = evaluation.plan_metrics("cifar10_local", (32, 32, 3), 5000, 10000, opts)
  assert plan == {"spectral": None, "fd_resnet20": None, "fid": None, "kid": None}
  plan = evaluation.plan_metrics("dtd_local", (64, 64, 3), 5000, 2400,
                                 evaluation.EvalOptions(inception_weights=str(weights)))
  assert plan["fd_resnet20"] == "not computed: CIFAR-10 32x32 only"
  # "auto": FID/KID wait for enough images (a note); asked for explicitly: an error
  few = evaluation.plan_metrics("dtd_local", (64, 64, 3), 5000, 2000, opts)
  assert few["fid"] == few["kid"] == ("not computed: 2000 reference images; a 2048-d"
                                      " Frechet distance needs 2049")
  with pytest.raises(ValueError, match="needs at least 2049 reference images"):
    evaluation.plan_metrics("dtd_local", (64, 64, 3), 5000, 2000, evaluation.EvalOptions(
        inception_weights=str(weights), metrics="fid"))
  gray = evaluation.plan_metrics("textures_gray_local", (64, 64, 1), 10, 10,
                                 evaluation.EvalOptions(inception_weights=str(weights)))
  assert gray == {"spectral": None, "fd_resnet20": "not computed: CIFAR-10 32x32 only",
                  "fid": "not computed: RGB only", "kid": "not computed: RGB only"}
  with pytest.raises(ValueError, match="fd_resnet20 needs CIFAR-10"):
    evaluation.plan_metrics("dtd_local", (64, 64, 3), 100, 100,
                            evaluation.EvalOptions(metrics="fd_resnet20"))
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "absent.npz"))
  plan = evaluation.plan_metrics("cifar10_local", (32, 32, 3), 70, 70, evaluation.EvalOptions())
  assert plan["fid"] == f"not computed: weights missing at {tmp_path / 'absent.npz'}"


def test_launch_evaluate(runs, tmp_path, no_inception, shared_data_dir):
  spec = importlib.util.spec_from_file_location("launch_evaluate", ROOT / "launch" / "evaluate.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  samples = _save_real_samples(tmp_path / "real.npz", shared_data_dir)
  out = tmp_path / "cli"
  module.FLAGS([
      "evaluate.py", f"--workdir={runs['matched']}", f"--samples={samples}",
      f"--output_dir={out}", "--num_reference=100", "--num_bands=6", "--figures=false",
      f"--cache_dir={tmp_path / 'features'}"])
  try:
    module.main(["evaluate.py"])
  finally:
    module.FLAGS.unparse_flags()
  stored = json.loads((out / "metrics.json").read_text())
  assert len(stored) == 1 and stored[0]["num_samples"] == 80
  assert stored[0]["spectral"]["settings"]["num_bands"] == 6
  assert "| matched" in (out / "metrics.md").read_text()


def test_feature_metrics_fd_and_kid(tmp_path, shared_data_dir):
  # The FD/KID evaluators FID uses, run with the ResNet-20 features: two disjoint sets
  # of real test images, then noise against the same reference.
  del shared_data_dir
  import dataclasses  # pylint: disable=import-outside-toplevel
  import fans_jax.data as data  # pylint: disable=import-outside-toplevel
  from fans_jax.metrics import evaluators  # pylint: disable=import-outside-toplevel
  cfg = data.with_overrides(None, name="cifar10_local", split="test")
  src = data.get_source(cfg)
  reference = evaluators.Reference(
      name=src.name, split="test", fingerprint=src.fingerprint(), image_shape=(32, 32, 3),
      num_images=100, images=lambda: src.get_batch(np.arange(100)), spectrum=None,
      cache_dir=str(tmp_path / "features"))
  fd = evaluators.FrechetEvaluator("fd_resnet20", "resnet20_cifar10")
  kid_eval = evaluators.KernelEvaluator("kid", "resnet20_cifar10", num_subsets=5, subset_size=50)
  real = evaluators.Samples(evaluation.quantize(src.get_batch(np.arange(100, 200))))
  out, kid = fd.run(real, reference), kid_eval.run(real, reference)
  assert isinstance(out, evaluators.FrechetResult) and out.value > 0
  assert (kid.num_subsets, kid.subset_size) == (5, 50)
  assert np.isfinite(kid.mean) and kid.std > 0
  assert list(real.features) == ["resnet20_cifar10"]  # one feature pass for both
  noise = evaluators.Samples(evaluation.quantize(
      np.random.default_rng(0).integers(0, 256, (100, 32, 32, 3), np.uint8)))
  far, far_kid = fd.run(noise, reference), kid_eval.run(noise, reference)
  assert far.value > out.value and far_kid.mean > kid.mean + 3 * kid.std
  assert dataclasses.asdict(far_kid)["subset_size"] == 50
  with pytest.raises(ValueError, match="not one of"):
    evaluators.get("psnr", evaluation.EvalOptions())


def test_evaluate_files_embeds_a_reference_file_once(tmp_path, shared_data_dir, monkeypatch):
  # Two sample files against one reference file: the reference is embedded once per
  # process; a reference file with new content is embedded again.
  del shared_data_dir
  from fans_jax import sample_files  # pylint: disable=import-outside-toplevel
  from fans_jax.metrics import features  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(4)
  for name in ("a", "b", "ref"):
    sample_files.write_samples(tmp_path / f"{name}.npz",
                               rng.integers(0, 256, (70, 32, 32, 3), np.uint8))
  seen = []
  real = features.get_feature_network

  class Counting:  # the network, counting the images of each call

    def __init__(self, network):
      self.network, self.name = network, network.name

    def __call__(self, images, **kwargs):
      seen.append(len(images))
      return self.network(images, **kwargs)

  def counting(name, weights=None, **kw):
    return Counting(real(name, weights, **kw))

  monkeypatch.setattr(features, "get_feature_network", counting)
  monkeypatch.setattr(evaluation, "_FILE_FEATURES", {})
  options = evaluation.EvalOptions(metrics="fd_resnet20", num_reference=None)
  fd_a = evaluation.evaluate_files(str(tmp_path / "a.npz"), str(tmp_path / "ref.npz"),
                                   options)["fd_resnet20"]
  fd_b = evaluation.evaluate_files(str(tmp_path / "b.npz"), str(tmp_path / "ref.npz"),
                                   options)["fd_resnet20"]
  assert seen == [70, 70, 70]  # a, ref, b: the reference once
  assert fd_a > 0 and fd_b > 0 and fd_a != fd_b
  sample_files.write_samples(tmp_path / "ref.npz", rng.integers(0, 256, (80, 32, 32, 3), np.uint8))
  evaluation.evaluate_files(str(tmp_path / "a.npz"), str(tmp_path / "ref.npz"), options)
  assert seen[-2:] == [70, 80]  # the new reference file is embedded


def test_run_names_tell_workdirs_apart():
  # The study's layout: every run directory is called seedN, under its variant.
  assert evaluation.run_names(["s/runs/d/white/seed2", "s/runs/d/blog/seed2"]) == [
      "white/seed2", "blog/seed2"]
  assert evaluation.run_names(["a/white", "b/matched"]) == ["white", "matched"]
  assert evaluation.run_names(["x/seed0", "x/seed0/"]) == ["x/seed0", "x/seed0"]
  assert evaluation.run_names(["/r/white/seed2", "/q/white/seed2", "/r/blog/seed2"]) == [
      "r/white/seed2", "q/white/seed2", "blog/seed2"]
  assert evaluation.run_names(["/abs/run"]) == ["run"]


def test_evaluate_names_runs_whose_workdirs_share_a_last_component(runs, tmp_path,
                                                                    no_inception,
                                                                    shared_data_dir):
  # The study's layout (runs/<dataset>/<variant>/seedN): two workdirs called seed0.
  for variant, noise in (("white", "white"), ("matched", "matched")):
    (tmp_path / "runs" / variant).mkdir(parents=True)
    (tmp_path / "runs" / variant / "seed0").symlink_to(runs[noise])
  dirs = [str(tmp_path / "runs" / v / "seed0") for v in ("white", "matched")]
  samples = _save_real_samples(tmp_path / "real.npz", shared_data_dir)
  out = tmp_path / "report"
  rows = evaluation.evaluate(dirs, [str(samples)] * 2, _options(tmp_path, metrics="spectral"),
                             output_dir=str(out))
  assert [r["run"] for r in rows] == ["white/seed0", "matched/seed0"]
  table = (out / "metrics.md").read_text().splitlines()
  assert table[2].startswith("| white/seed0 |") and table[3].startswith("| matched/seed0 |")
  # Sample grids are files in the report directory, not in a white/ subdirectory.
  assert (out / "samples_0_white_seed0.png").stat().st_size > 5000
  assert (out / "samples_1_matched_seed0.png").stat().st_size > 5000

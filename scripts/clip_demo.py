r"""What clipping x0 changes: one 400-step CIFAR-10 model, sampled clipped and unclipped.

    python scripts/clip_demo.py --workdir=workdirs/clip_demo --output_dir=docs/evaluation

Trains (or resumes) ``configs/cifar_ddpm.py:tiny`` for 400 steps on the offline CIFAR-10
subset, draws the same ``--num_samples`` samples (same seed, DDIM-100, eta 1) with and
without clipping the predicted x0 to [-1, 1] at every step, and writes both grids
(first 64 images), the fraction of saturated pixels (uint8 0 or 255) of each set and of
the data, FD-ResNet20 and, when the Inception weights are installed and there are
enough samples, FID and KID against the 10k CIFAR-10 test images, to
``<output_dir>/clip_demo.json`` and ``clip_demo.md``. Uses the project's CLIs' library
calls only; every number in docs/evaluation.md's clipping section comes from here.
"""

import json
import os
import pathlib
import sys
import time

from absl import app
from absl import flags
from absl import logging

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_WORKDIR = flags.DEFINE_string("workdir", "workdirs/clip_demo", "Training workdir.")
_OUT = flags.DEFINE_string("output_dir", "docs/evaluation", "Where the grids and numbers go.")
_STEPS = flags.DEFINE_integer("train_steps", 400, "Training steps.")
_NUM = flags.DEFINE_integer("num_samples", 2100, "Samples per setting (FID needs >= 2049).")
_SAMPLER_STEPS = flags.DEFINE_integer("num_steps", 100, "DDIM steps.")
_NREF = flags.DEFINE_integer("num_reference", 2100, "CIFAR-10 test images for FID/KID (spread"
                             " evenly over the set; FD-ResNet20 uses all 10k).")


def main(argv):
  del argv
  from fans_jax.utils import host  # pylint: disable=import-outside-toplevel
  host.force_cpu_devices(-1)
  import numpy as np  # pylint: disable=import-outside-toplevel
  from configs import cifar_ddpm  # pylint: disable=import-outside-toplevel
  import fans_jax.data as data  # pylint: disable=import-outside-toplevel
  from fans_jax import sample_files, sampling, train  # pylint: disable=import-outside-toplevel
  from fans_jax import evaluation  # pylint: disable=import-outside-toplevel
  from fans_jax.metrics import features, inception  # pylint: disable=import-outside-toplevel
  from fans_jax.utils import images as image_utils, logs  # pylint: disable=import-outside-toplevel
  logs.quiet()

  config = cifar_ddpm.get_config("tiny")
  config.unlock()
  config.train.num_train_steps = _STEPS.value
  config.train.checkpoint_every_steps = _STEPS.value
  config.sample.every_steps = 0
  config.lock()
  t0 = time.perf_counter()
  train.train_and_evaluate(config, _WORKDIR.value)
  train_s = time.perf_counter() - t0
  run = sampling.load_run(_WORKDIR.value)
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  test_cfg = data.with_overrides(None, name="cifar10_local", split="test")
  reference = data.get_source(test_cfg)
  ref_images = reference.get_batch(np.arange(len(reference)))
  ref_path = pathlib.Path(_WORKDIR.value) / "cifar10_test.npz"
  sample_files.write_samples(ref_path, ref_images)
  saturated = lambda u8: float(np.mean((u8 == 0) | (u8 == 255)))  # noqa: E731
  result = {"model": "configs/cifar_ddpm.py:tiny (0.28M UNet), offline CIFAR-10 train 10k",
            "train_steps": int(run.step), "train_s": train_s,
            "data_saturated_fraction": saturated(ref_images), "settings": {}}
  def write():
    (out / "clip_demo.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    lines = ["| setting | saturated pixels | FD-ResNet20 | FID | KID x 1e3 |",
             "|---|---|---|---|---|",
             f"| data (CIFAR-10 test) | {100 * result['data_saturated_fraction']:.2f}% | | | |"]
    for name, r in result["settings"].items():
      fid = f"{r['fid']:.1f}" if "fid" in r else "not computed"
      kid = (f"{1e3 * r['kid']['mean']:.1f} ± {1e3 * r['kid']['std']:.1f}" if "kid" in r
             else "not computed")
      lines.append(f"| {name} | {100 * r['saturated_fraction']:.2f}% |"
                   f" {r.get('fd_resnet20', float('nan')):.2f} | {fid} | {kid} |")
    (out / "clip_demo.md").write_text("\n".join(lines) + "\n")
    return lines

  image_utils.save_grid(ref_images[np.linspace(0, len(ref_images) - 1, 64).astype(int)],
                        out / "clip_demo_data.png")
  paths = {}
  for clip in (False, True):  # 1. samples, grids, saturation, FD-ResNet20 (cheap)
    name = "clip" if clip else "noclip"
    settings = sample_files.SamplerSettings("ddim", _SAMPLER_STEPS.value, 1.0, clip, 0)
    stem = sample_files.sample_file_stem(settings, run.schedule.num_timesteps, run.step)
    path = pathlib.Path(_WORKDIR.value) / "samples" / (stem + ".npz")
    t0 = time.perf_counter()
    if path.exists() and len(sample_files.read_samples(path).images) == _NUM.value:
      u8 = sample_files.read_samples(path).images
    else:
      samples = sampling.generate_with(run, _NUM.value, settings)
      sample_files.write_samples(path, samples, settings, step=run.step)
      u8 = features.images_to_uint8(samples)
    paths[name] = str(path)
    image_utils.save_grid(u8[:64], out / f"clip_demo_{name}.png")
    scores = evaluation.evaluate_files(
        str(path), str(ref_path), evaluation.EvalOptions(metrics="fd_resnet20",
                                                         num_reference=None))
    result["settings"][name] = {"sampler_settings": settings.to_json(),
                                "num_samples": _NUM.value, "sample_s": time.perf_counter() - t0,
                                "saturated_fraction": saturated(u8),
                                "fd_resnet20": scores["fd_resnet20"]}
    logging.info("%s: %s", stem, result["settings"][name])
    write()
  if os.path.exists(inception.default_weights_path()) and min(_NUM.value, _NREF.value) >= 2049:
    result["fid_reference_images"] = _NREF.value
    for name, path in paths.items():  # 2. FID / KID (the Inception pass is the slow part)
      scores = evaluation.evaluate_files(path, str(ref_path), evaluation.EvalOptions(
          metrics="fid,kid", num_reference=_NREF.value))
      result["settings"][name].update(fid=scores["fid"], kid=scores["kid"])
      write()
  print("\n".join(write()))


if __name__ == "__main__":
  app.run(main)

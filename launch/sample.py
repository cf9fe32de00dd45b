r"""Draws samples from a trained run: a PNG grid and a sample file (.npz).

    python launch/sample.py --workdir=workdirs/pltb_fans_tiny --num_samples=64
    python launch/sample.py --workdir=workdirs/cifar_fans --sampler=ddpm --num_samples=10000 \
        --step=800000 --seed=1 --output=samples/cifar_fans_ddpm

Loads the EMA weights of the newest (or ``--step``) checkpoint, samples in batches
sharded over the local devices (one jitted scan per batch, progress bar), and writes
``<output>.png`` (the first ``--grid`` images) and ``<output>.npz`` in the project's
sample format (``fans_jax.sample_files``: ``images`` uint8 [N, H, W, C] and the
settings), which ``launch/evaluate.py --samples=`` reads. The default output name
carries every setting that changes the samples, e.g.
``<workdir>/samples/ddim100_eta1_clip_seed0_step600``.

The predicted x0 is clipped to [-1, 1] at every step (Ho et al.'s sampler, diffusers'
``clip_sample=True``); ``--noclip_x0`` turns that off for research on the unclipped
reverse process (under-trained models then give saturated samples). Sample i depends on
--seed and i only, not on the batch size.
"""

import os
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's fans_jax, not another installed one

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_NUM = flags.DEFINE_integer("num_samples", 64, "Number of images.")
_SAMPLER = flags.DEFINE_enum("sampler", "ddim", ["ddpm", "ddim"],
                             "ddpm (ancestral, T steps) or ddim.")
_STEPS = flags.DEFINE_integer("num_steps", 100, "DDIM steps (ignored by ddpm).")
_ETA = flags.DEFINE_float("eta", 1.0, "DDIM eta in [0, 1] (0: deterministic; needs a"
                          " well-trained network, see docs/training.md).")
_SEED = flags.DEFINE_integer("seed", 0, "Sample i uses fold_in(key(seed), i).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Images per jitted call (default <= 256).")
_CLIP = flags.DEFINE_bool("clip_x0", True, "Clip the predicted x0 to [-1, 1] at each step"
                          " (--noclip_x0: off).")
_GRID = flags.DEFINE_integer("grid", 256, "Images in the PNG grid (the first ones).")
_OUTPUT = flags.DEFINE_string("output", None,
                              "Output path without suffix (default: <workdir>/samples/"
                              "<sampler><steps>[_eta<eta>]_<clip|noclip>_seed<seed>_step<step>).")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0,
                                    "Split the host CPU into N XLA devices (0: as is).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if _CPU_DEVICES.value:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={_CPU_DEVICES.value}")
  from etils import epath  # pylint: disable=import-outside-toplevel
  from fans_jax import sample_files, sampling  # pylint: disable=import-outside-toplevel
  from fans_jax.utils import images, logs  # pylint: disable=import-outside-toplevel
  logs.quiet()

  settings = sample_files.SamplerSettings(sampler=_SAMPLER.value, num_steps=_STEPS.value,
                                          eta=_ETA.value, clip_x0=_CLIP.value,
                                          seed=_SEED.value)
  run = sampling.load_run(_WORKDIR.value, step=_STEP.value)
  settings = settings.resolved(run.schedule.num_timesteps)
  samples = sampling.generate_with(run, _NUM.value, settings, batch_size=_BATCH.value)
  stem = sample_files.sample_file_stem(settings, run.schedule.num_timesteps, run.step)
  output = str(_OUTPUT.value or epath.Path(run.workdir) / "samples" / stem)
  path = sample_files.write_samples(output, samples, settings, step=run.step,
                                    workdir=str(run.workdir), noise=run.config.noise.name,
                                    dataset=run.config.data.name,
                                    image_shape=list(run.image_shape))
  grid = output[:-4] if output.endswith(".npz") else output
  images.save_grid(samples[:_GRID.value], epath.Path(grid + ".png"))
  logging.info("wrote %s.png and %s (%d images, %s, step %d)", grid, path, len(samples),
               settings, run.step)


if __name__ == "__main__":
  app.run(main)

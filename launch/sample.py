r"""Draws samples from a trained run: a PNG grid and an .npz of the images.

    python launch/sample.py --workdir=workdirs/pltb_fans_tiny --num_samples=64
    python launch/sample.py --workdir=workdirs/cifar_fans --sampler=ddpm --num_samples=10000 \
        --step=800000 --seed=1 --output=samples/cifar_fans_ddpm

Loads the EMA weights of the newest (or ``--step``) checkpoint, samples in batches
sharded over the local devices (one jitted scan per batch, progress bar), and writes
``<output>.png`` (the first ``--grid`` images) and ``<output>.npz`` (``samples``:
float32 [N, H, W, C] in model units, [-1, 1] the data range, not clipped; plus the
settings). Sample i depends on --seed and i only, not on the batch size.
"""

import io
import json
import os

from absl import app
from absl import flags
from absl import logging

_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_NUM = flags.DEFINE_integer("num_samples", 64, "Number of images.")
_SAMPLER = flags.DEFINE_string("sampler", "ddim", "ddpm (ancestral, T steps) or ddim.")
_STEPS = flags.DEFINE_integer("num_steps", 100, "DDIM steps (ignored by ddpm).")
_ETA = flags.DEFINE_float("eta", 1.0, "DDIM eta in [0, 1] (0: deterministic; needs a"
                          " well-trained network, see docs/training.md).")
_SEED = flags.DEFINE_integer("seed", 0, "Sample i uses fold_in(key(seed), i).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Images per jitted call (default <= 256).")
_CLIP = flags.DEFINE_bool("clip_x0", False, "Clip the predicted x0 to [-1, 1] at each step.")
_GRID = flags.DEFINE_integer("grid", 256, "Images in the PNG grid (the first ones).")
_OUTPUT = flags.DEFINE_string("output", None,
                              "Output path without suffix (default:"
                              " <workdir>/samples/<sampler><steps>_step<step>_seed<seed>).")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 0,
                                    "Split the host CPU into N XLA devices (0: as is).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  del argv
  if _CPU_DEVICES.value:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={_CPU_DEVICES.value}")
  import numpy as np  # pylint: disable=import-outside-toplevel  (after XLA_FLAGS)
  from etils import epath  # pylint: disable=import-outside-toplevel
  from fans_jax import sampling  # pylint: disable=import-outside-toplevel
  from fans_jax.utils import images, logs  # pylint: disable=import-outside-toplevel
  logs.quiet()

  run = sampling.load_run(_WORKDIR.value, step=_STEP.value)
  samples = sampling.generate(run, _NUM.value, sampler=_SAMPLER.value, num_steps=_STEPS.value,
                              eta=_ETA.value, seed=_SEED.value, batch_size=_BATCH.value,
                              clip_x0=_CLIP.value)
  steps = _STEPS.value if _SAMPLER.value == "ddim" else run.schedule.num_timesteps
  output = epath.Path(_OUTPUT.value or epath.Path(run.workdir) / "samples" / (
      f"{_SAMPLER.value}{steps}_step{run.step}_seed{_SEED.value}"))
  output.parent.mkdir(parents=True, exist_ok=True)
  settings = dict(workdir=str(run.workdir), step=run.step, sampler=_SAMPLER.value,
                  num_steps=steps, eta=_ETA.value, seed=_SEED.value, clip_x0=_CLIP.value,
                  noise=run.config.noise.name, dataset=run.config.data.name,
                  image_shape=list(run.image_shape))
  buffer = io.BytesIO()
  np.savez(buffer, samples=samples, settings=json.dumps(settings))
  (output.parent / (output.name + ".npz")).write_bytes(buffer.getvalue())  # local or gs://
  images.save_grid(samples[:_GRID.value], output.parent / (output.name + ".png"))
  logging.info("wrote %s.png and %s.npz (%d images, %s)", output, output, len(samples), settings)


if __name__ == "__main__":
  app.run(main)

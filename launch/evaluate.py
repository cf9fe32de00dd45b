r"""Evaluates trained runs: spectral fidelity, FD-ResNet20 (CIFAR-10), FID / KID.

Samples each run (or reads saved samples) and writes ``metrics.json``, ``metrics.md``
(one row per run: dataset, resolution, noise schedule, sampler, steps, seed, sample
count and the metrics) and figures to ``--output_dir``.

  # one run, 1000 DDIM-50 samples (written to <workdir>/eval); unset sampling flags
  # take the run's config.eval values
  python launch/evaluate.py --workdir=workdirs/fans_cifar --num_samples=1000 \
      --sampler=ddim --num_steps=50

  # FANS against DDPM on the same dataset, one table
  python launch/evaluate.py --workdir=workdirs/ddpm --workdir=workdirs/fans \
      --output_dir=workdirs/compare --num_samples=10000

  # samples saved by launch/sample.py, one file per workdir (same order)
  python launch/evaluate.py --workdir=workdirs/fans \
      --samples=workdirs/fans/samples/ddim100_eta1_clip_seed0_step600.npz

  # FID and KID between two image files (any uint8 [N, H, W, 3] array in each)
  python launch/evaluate.py --samples=A.npz --reference=B.npz --metrics=fid,kid \
      --output_dir=D                                  # writes D/metrics.json

Sampling clips the predicted x0 to [-1, 1] at every step unless ``--noclip_x0`` (or the
run's ``config.eval.clip_x0``) says otherwise. FID/KID need the Inception weights
(docs/evaluation.md); without them the table says "not computed: weights missing at
<path>" (``--metrics=fid,kid`` makes it an error).
"""

import dataclasses
import pathlib
import sys

from absl import app
from absl import flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # this checkout first

from fans_jax import evaluation  # pylint: disable=wrong-import-position
from fans_jax.metrics import spectral  # pylint: disable=wrong-import-position
from fans_jax.utils import logs  # pylint: disable=wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("workdir", [], "Training workdir(s) to evaluate.")
flags.DEFINE_multi_string("samples", [], "Sample files (.npz, launch/sample.py's format or"
                          " any uint8 [N, H, W, C] array), one per workdir.")
flags.DEFINE_string("reference", None, "With one --samples and no --workdir: the reference"
                    " image file the samples are compared with (FID/KID of two files).")
flags.DEFINE_string("output_dir", None, "Where to write the report (default <workdir>/eval).")
# Sampling flags left unset take each run's config.eval values.
flags.DEFINE_integer("num_samples", None, "Samples per run (default: config.eval).")
flags.DEFINE_enum("sampler", None, ["ddpm", "ddim"], "Sampler (default: config.eval).")
flags.DEFINE_integer("num_steps", None, "DDIM steps (default: config.eval; 0: all T).")
flags.DEFINE_float("eta", None, "DDIM eta (default: config.eval).")
flags.DEFINE_integer("seed", None, "Sampling seed (default: config.eval).")
flags.DEFINE_bool("clip_x0", None, "Clip the predicted x0 to [-1, 1] at every step (default:"
                  " config.eval, else on); --noclip_x0 turns it off.")
flags.DEFINE_integer("batch_size", None, "Sampling batch size (default: automatic).")
flags.DEFINE_integer("num_reference", 10000, "Reference images (spread evenly over the dataset;"
                     " with --reference: the first ones, 0: all).")
flags.DEFINE_string("reference_split", "", "Split of the reference images ('': the run's).")
flags.DEFINE_string("metrics", "auto", "'auto' or a comma-separated subset of "
                    f"{','.join(evaluation.METRICS)} (then required).")
flags.DEFINE_integer("num_bands", 8, "Radial bands of the band-power metrics.")
flags.DEFINE_enum("band_spacing", "linear", ["linear", "log"], "Band edge spacing.")
flags.DEFINE_float("fit_f_lo", None, "Lowest frequency of the slope fit (cycles/px).")
flags.DEFINE_float("fit_f_hi", 0.5, "Highest frequency of the slope fit (cycles/px).")
flags.DEFINE_string("inception_weights", None, "Inception .npz (default "
                    "$FANS_INCEPTION_WEIGHTS or ~/.cache/fans_jax/pt_inception-2015-12-05.npz).")
flags.DEFINE_string("cache_dir", None, "Cache of reference features.")
flags.DEFINE_integer("kid_subsets", 100, "KID subsets.")
flags.DEFINE_integer("kid_subset_size", 1000, "KID subset size.")
flags.DEFINE_bool("figures", True, "Write spectra and sample figures.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logs.quiet()
  options = evaluation.EvalOptions(
      num_samples=FLAGS.num_samples, sampler=FLAGS.sampler, num_steps=FLAGS.num_steps,
      eta=FLAGS.eta, seed=FLAGS.seed, clip_x0=FLAGS.clip_x0, batch_size=FLAGS.batch_size,
      num_reference=FLAGS.num_reference, reference_split=FLAGS.reference_split,
      metrics=FLAGS.metrics,
      spectral=spectral.SpectralSettings(num_bands=FLAGS.num_bands,
                                         band_spacing=FLAGS.band_spacing,
                                         fit_f_lo=FLAGS.fit_f_lo, fit_f_hi=FLAGS.fit_f_hi),
      inception_weights=FLAGS.inception_weights, cache_dir=FLAGS.cache_dir,
      kid_subsets=FLAGS.kid_subsets, kid_subset_size=FLAGS.kid_subset_size)
  if FLAGS.reference is not None:
    if FLAGS.workdir or len(FLAGS.samples) != 1:
      raise app.UsageError("--reference compares one --samples file with a reference file;"
                           " give exactly one --samples and no --workdir.")
    if FLAGS.output_dir is None:
      raise app.UsageError("--reference needs --output_dir (where metrics.json goes).")
    options = dataclasses.replace(
        options, num_reference=FLAGS.num_reference or None,
        metrics="fid,kid" if FLAGS.metrics == "auto" else FLAGS.metrics)
    out = evaluation.evaluate_files(FLAGS.samples[0], FLAGS.reference, options,
                                    FLAGS.output_dir)
    print({k: out[k] for k in out if k in evaluation.FILE_METRICS})
    return
  rows = evaluation.evaluate(FLAGS.workdir, FLAGS.samples, options, FLAGS.output_dir,
                             figures=FLAGS.figures)
  print(evaluation.markdown_table(rows))


if __name__ == "__main__":
  app.run(main)

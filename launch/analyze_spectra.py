r"""Spectral statistics of datasets: alpha fit, band powers, PSD and variance figures.

  python launch/analyze_spectra.py --config=configs/cifar_fans.py \
      --output_dir=workdirs/spectra                      # uses config.data
  python launch/analyze_spectra.py --datasets=pltb,egm,cifar10_local,dtd_local \
      --config.image_size=32 --num_images=2000 --output_dir=workdirs/spectra

``--config`` is a data config or an experiment config whose ``.data`` is one (default:
``fans_jax/data/config.py``, i.e. ``fans_jax.data.default_config()``); override fields
as ``--config.<field>=...`` (``--config.data.<field>`` for an experiment config). Writes
``<output_dir>/<dataset>/spectra.json``, ``psd.png``, ``running_variance.png`` and, for
several datasets, ``comparison_psd.png`` and ``comparison.json``. Results are cached
(``--cache_dir``, default ``$FANS_CACHE_DIR`` or ``~/.cache/fans_jax/spectra``).
"""

import pathlib

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from fans_jax import data
from fans_jax import spectra
from fans_jax.data import analysis

_DEFAULT_CONFIG = pathlib.Path(data.config.__file__)  # the bare data config
config_flags.DEFINE_config_file("config", str(_DEFAULT_CONFIG),
                                "Data config, or experiment config with .data.",
                                lock_config=False)
flags.DEFINE_list("datasets", [], "Dataset names to analyse (default: the config's).")
flags.DEFINE_integer("num_images", None, "Images per dataset (default: all).")
flags.DEFINE_integer("num_bands", 8, "Number of radial bands for the band powers.")
flags.DEFINE_enum("band_spacing", "linear", ["linear", "log"], "Band edge spacing.")
flags.DEFINE_float("f_lo", None, "Lowest fitted frequency (default: first non-DC bin).")
flags.DEFINE_float("f_hi", 0.5, "Highest fitted frequency, cycles/px.")
flags.DEFINE_string("output_dir", "spectra_out", "Where JSON and figures go.")
flags.DEFINE_string("cache_dir", None, "Spectrum cache directory.")
flags.DEFINE_bool("use_cache", True, "Read/write the spectrum cache.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  cfg = FLAGS.config
  reports = analysis.analyze(
      cfg, FLAGS.datasets, FLAGS.num_images,
      spectra.BandSpec(num_bands=FLAGS.num_bands, spacing=FLAGS.band_spacing),
      FLAGS.output_dir, FLAGS.cache_dir, FLAGS.use_cache, FLAGS.f_lo, FLAGS.f_hi)
  logging.info("spectra written to %s", FLAGS.output_dir)
  print(analysis.markdown_table(reports))


if __name__ == "__main__":
  app.run(main)

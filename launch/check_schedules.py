r"""Which noise schedules keep the forward chain valid on which datasets.

For each dataset spectrum, builds every registered family with its default options
(and a grid of annealed gamma paths, capped and uncapped) and reports the smallest
margin ``min sigma2_(t|t-1) / sigma2_t`` or the first step that breaks the chain.
This is the measurement behind docs/method.md §3 and the README's schedule table.

  python launch/check_schedules.py --datasets=pltb,cifar10_local --image_size=32 \
      --output=docs/schedule_validity.md
"""

from __future__ import annotations

import itertools

from absl import app, flags, logging

from fans_jax import data, schedules

FLAGS = flags.FLAGS
flags.DEFINE_list("datasets", ["pltb", "egm", "cifar10_local", "dtd_local", "galaxy_zoo_local"],
                  "Dataset names (fans_jax.data registry).")
flags.DEFINE_integer("image_size", 32, "Resolution.")
flags.DEFINE_integer("num_timesteps", 1000, "T.")
flags.DEFINE_list("beta_schedules", ["linear", "cosine"], "Beta schedules to check.")
flags.DEFINE_integer("num_images", 2000,
                     "Images used to estimate each spectrum (at most the whole set).")
flags.DEFINE_list("gammas", ["-0.5", "0", "1", "2"], "Gamma values for the annealed path grid.")
flags.DEFINE_string("output", "", "Write the markdown report here (default: print only).")


def _numbers(values) -> bool:
  try:
    return all(float(v) == float(v) for v in values)  # parses, and is not NaN
  except ValueError:
    return False


flags.register_validator("gammas", _numbers,
                         message="--gammas takes comma-separated numbers, e.g. -0.5,0,1,2.")


def check(name, beta_schedule, psd, band_powers, **options) -> str:
  """'valid (margin)' or 'breaks at t=...'."""
  try:
    sched = schedules.make_schedule(name, FLAGS.num_timesteps, beta_schedule,
                                    (FLAGS.image_size, FLAGS.image_size), data_psd=psd,
                                    **options)
    return f"valid ({sched.min_margin:.1e})"
  except schedules.ForwardChainError as e:
    return f"breaks at t={e.t}"


def main(argv):
  del argv
  lines = [f"# Forward-chain validity of the noise schedules ({FLAGS.image_size}x"
           f"{FLAGS.image_size}, T={FLAGS.num_timesteps})", "",
           "Each cell: `valid (m)` with m = min over t, k of sigma2_(t|t-1) / sigma2_t, or the"
           " first t where the per-frequency log-SNR stops decreasing. Produced by"
           " `python launch/check_schedules.py`"
           f" `--datasets={','.join(FLAGS.datasets)} --image_size={FLAGS.image_size}`"
           f" (spectra from up to {FLAGS.num_images} images, spread evenly over each set).", ""]
  stats = {}
  for name in FLAGS.datasets:
    cfg = data.default_config()
    cfg.name, cfg.image_size = name, FLAGS.image_size
    logging.info("spectrum of %s", name)
    source = data.get_source(cfg)
    num_images = min(FLAGS.num_images, len(source))
    stats[name] = data.dataset_spectrum(cfg, num_images=num_images, source=source)

  families = schedules.spectrum_family_names()
  lines += ["## Every family with its default options", "",
            "| dataset | beta | " + " | ".join(families) + " |",
            "|---|---|" + "---|" * len(families)]
  for name, beta in itertools.product(FLAGS.datasets, FLAGS.beta_schedules):
    cells = [check(f, beta, stats[name].psd, None) for f in families]
    lines.append(f"| {name} | {beta} | " + " | ".join(cells) + " |")

  gammas = [float(g) for g in FLAGS.gammas]
  paths = [(g_T, g_0) for g_T in gammas for g_0 in gammas if g_T != g_0]
  lines += ["", "## Annealed gamma paths (linear in t), gamma_T -> gamma_0", "",
            "Cap = `max_ratio` on the noise spectrum S_t itself, after the power"
            " gamma(t), at every t: max S_t / min S_t <= cap (default 1e3); `none` = the raw"
            " radial spectrum to the power gamma(t).", "",
            "| dataset | beta | cap | " + " | ".join(f"{a:g}->{b:g}" for a, b in paths) + " |",
            "|---|---|---|" + "---|" * len(paths)]
  for name, beta, cap in itertools.product(FLAGS.datasets, FLAGS.beta_schedules, [1e3, None]):
    cells = [check("annealed", beta, stats[name].psd, None, gamma_T=a, gamma_0=b, max_ratio=cap)
             for a, b in paths]
    lines.append(f"| {name} | {beta} | {cap if cap else 'none'} | " + " | ".join(cells) + " |")
  report = "\n".join(lines) + "\n"
  print(report)
  if FLAGS.output:
    with open(FLAGS.output, "w") as f:
      f.write(report)


if __name__ == "__main__":
  app.run(main)

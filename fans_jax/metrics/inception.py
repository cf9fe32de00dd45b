"""Inception-v3 pool features (2048-d) for FID and KID, in Flax NNX.

The network is the TensorFlow FID Inception graph (``inception-2015-12-05``) as ported
to PyTorch by pytorch-fid (``pt_inception-2015-12-05-6726825d.pth``, Seitzer 2020),
block for block: torchvision's Inception-v3 with pytorch-fid's FID patches (average
pools that do not count the zero padding; max pooling in the last block ``Mixed_7c``),
BatchNorm eps 1e-3, 1008 classes. Input handling follows pytorch-fid: ``uint8``
images are scaled to [0, 1], resized bilinearly to 299x299 (half-pixel centres, no
antialiasing: ``F.interpolate(mode="bilinear", align_corners=False)``), mapped to
[-1, 1]; the features are the global average pool of ``Mixed_7c``.

Weights are read from a local ``.npz`` holding the pytorch-fid ``state_dict`` arrays
under their PyTorch names. Nothing is downloaded. To make that file on a machine with
internet (docs/evaluation.md)::

    wget https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    python -m fans_jax.metrics.inception convert pt_inception-2015-12-05-6726825d.pth \\
        ~/.cache/fans_jax/pt_inception-2015-12-05.npz        # needs torch (CPU is fine)

and point ``$FANS_INCEPTION_WEIGHTS`` at it (or put it at the default path,
:func:`default_weights_path`). Without it :func:`load_inception` raises a
FileNotFoundError saying where to put it: FID is never faked or silently skipped.
With ``pytorch-fid`` installed, ``python -m fans_jax.metrics.inception verify FILE``
compares this port's features with pytorch-fid's on random images.
"""

from __future__ import annotations

import os
import pathlib
import sys
from typing import Sequence

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fans_jax.metrics import features as features_lib

WEIGHTS_ENV = "FANS_INCEPTION_WEIGHTS"
WEIGHTS_FILE = "pt_inception-2015-12-05.npz"
SOURCE_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
              "pt_inception-2015-12-05-6726825d.pth")
FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299


def _pair(v) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv2d(nnx.Module):
  """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, PyTorch-style explicit padding."""

  def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, *, rngs: nnx.Rngs):
    ph, pw = _pair(padding)
    self.conv = nnx.Conv(cin, cout, _pair(kernel), strides=_pair(stride),
                         padding=((ph, ph), (pw, pw)), use_bias=False, rngs=rngs)
    self.bn = nnx.BatchNorm(cout, use_running_average=True, epsilon=1e-3, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return jax.nn.relu(self.bn(self.conv(x)))


def _max_pool(x: jax.Array, stride: int = 2, padding: int = 0) -> jax.Array:
  pad = ((padding, padding), (padding, padding))
  return linen.max_pool(x, (3, 3), (stride, stride), pad)


def _avg_pool_same(x: jax.Array) -> jax.Array:
  """3x3 average pool, stride 1, padding 1, zeros not counted (TensorFlow's SAME pool)."""
  return linen.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


class InceptionA(nnx.Module):
  """``Mixed_5b/5c/5d`` (FIDInceptionA)."""

  def __init__(self, cin: int, pool_features: int, *, rngs: nnx.Rngs):
    self.branch1x1 = BasicConv2d(cin, 64, 1, rngs=rngs)
    self.branch5x5_1 = BasicConv2d(cin, 48, 1, rngs=rngs)
    self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2, rngs=rngs)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1, rngs=rngs)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1, rngs=rngs)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1, rngs=rngs)
    self.branch_pool = BasicConv2d(cin, pool_features, 1, rngs=rngs)

  def __call__(self, x):
    b1 = self.branch1x1(x)
    b5 = self.branch5x5_2(self.branch5x5_1(x))
    b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    bp = self.branch_pool(_avg_pool_same(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nnx.Module):
  """``Mixed_6a``: grid reduction 35 -> 17."""

  def __init__(self, cin: int, *, rngs: nnx.Rngs):
    self.branch3x3 = BasicConv2d(cin, 384, 3, stride=2, rngs=rngs)
    self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1, rngs=rngs)
    self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1, rngs=rngs)
    self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2, rngs=rngs)

  def __call__(self, x):
    b3 = self.branch3x3(x)
    bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
    return jnp.concatenate([b3, bd, _max_pool(x)], axis=-1)


class InceptionC(nnx.Module):
  """``Mixed_6b..6e`` (FIDInceptionC): factorised 7x7 convolutions."""

  def __init__(self, cin: int, channels_7x7: int, *, rngs: nnx.Rngs):
    c7 = channels_7x7
    self.branch1x1 = BasicConv2d(cin, 192, 1, rngs=rngs)
    self.branch7x7_1 = BasicConv2d(cin, c7, 1, rngs=rngs)
    self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1, rngs=rngs)
    self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch_pool = BasicConv2d(cin, 192, 1, rngs=rngs)

  def __call__(self, x):
    b1 = self.branch1x1(x)
    b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
    bd = x
    for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                  self.branch7x7dbl_4, self.branch7x7dbl_5):
      bd = layer(bd)
    bp = self.branch_pool(_avg_pool_same(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nnx.Module):
  """``Mixed_7a``: grid reduction 17 -> 8."""

  def __init__(self, cin: int, *, rngs: nnx.Rngs):
    self.branch3x3_1 = BasicConv2d(cin, 192, 1, rngs=rngs)
    self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2, rngs=rngs)
    self.branch7x7x3_1 = BasicConv2d(cin, 192, 1, rngs=rngs)
    self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3), rngs=rngs)
    self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0), rngs=rngs)
    self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2, rngs=rngs)

  def __call__(self, x):
    b3 = self.branch3x3_2(self.branch3x3_1(x))
    b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
    return jnp.concatenate([b3, b7, _max_pool(x)], axis=-1)


class InceptionE(nnx.Module):
  """``Mixed_7b`` (average pool) and ``Mixed_7c`` (max pool): FIDInceptionE_1 / _2."""

  def __init__(self, cin: int, pool: str, *, rngs: nnx.Rngs):
    if pool not in ("avg", "max"):
      raise ValueError(f"pool={pool!r} is not 'avg' or 'max'.")
    self.pool = pool
    self.branch1x1 = BasicConv2d(cin, 320, 1, rngs=rngs)
    self.branch3x3_1 = BasicConv2d(cin, 384, 1, rngs=rngs)
    self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
    self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
    self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1, rngs=rngs)
    self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1, rngs=rngs)
    self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1), rngs=rngs)
    self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0), rngs=rngs)
    self.branch_pool = BasicConv2d(cin, 192, 1, rngs=rngs)

  def __call__(self, x):
    b1 = self.branch1x1(x)
    b3 = self.branch3x3_1(x)
    b3 = jnp.concatenate([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], axis=-1)
    bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
    bd = jnp.concatenate([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], axis=-1)
    pooled = _avg_pool_same(x) if self.pool == "avg" else _max_pool(x, stride=1, padding=1)
    return jnp.concatenate([b1, b3, bd, self.branch_pool(pooled)], axis=-1)


def resize_bilinear(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """``[B, H, W, C]`` float -> ``[B, size, size, C]``, as PyTorch's
  ``F.interpolate(mode="bilinear", align_corners=False)`` (half-pixel centres, no
  antialiasing, edge samples clamped)."""
  if images.shape[1:3] == (size, size):
    return images
  shape = (images.shape[0], size, size, images.shape[3])
  return jax.image.resize(images, shape, method="bilinear", antialias=False)


class InceptionV3(nnx.Module):
  """The FID Inception-v3; ``features`` gives the 2048-d pool features."""

  def __init__(self, *, rngs: nnx.Rngs):
    self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2, rngs=rngs)
    self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3, rngs=rngs)
    self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1, rngs=rngs)
    self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1, rngs=rngs)
    self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3, rngs=rngs)
    self.Mixed_5b = InceptionA(192, 32, rngs=rngs)
    self.Mixed_5c = InceptionA(256, 64, rngs=rngs)
    self.Mixed_5d = InceptionA(288, 64, rngs=rngs)
    self.Mixed_6a = InceptionB(288, rngs=rngs)
    self.Mixed_6b = InceptionC(768, 128, rngs=rngs)
    self.Mixed_6c = InceptionC(768, 160, rngs=rngs)
    self.Mixed_6d = InceptionC(768, 160, rngs=rngs)
    self.Mixed_6e = InceptionC(768, 192, rngs=rngs)
    self.Mixed_7a = InceptionD(768, rngs=rngs)
    self.Mixed_7b = InceptionE(1280, "avg", rngs=rngs)
    self.Mixed_7c = InceptionE(2048, "max", rngs=rngs)
    self.fc = nnx.Linear(2048, NUM_CLASSES, rngs=rngs)

  def preprocess(self, images: jax.Array) -> jax.Array:
    """``uint8 [B, H, W, 3]`` -> ``[B, 299, 299, 3]`` in [-1, 1] (pytorch-fid's order:
    scale to [0, 1], resize, then ``2 x - 1``)."""
    x = images.astype(jnp.float32) / 255.0
    return 2.0 * resize_bilinear(x) - 1.0

  def pool_features(self, x: jax.Array) -> jax.Array:
    """Preprocessed ``[B, 299, 299, 3]`` -> ``[B, 2048]``."""
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = _max_pool(x)
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = _max_pool(x)
    for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                  self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b,
                  self.Mixed_7c):
      x = block(x)
    return jnp.mean(x, axis=(1, 2))

  def features(self, images: jax.Array) -> jax.Array:
    """``uint8 [B, H, W, 3]`` (any size) -> pool features ``[B, 2048]``."""
    return self.pool_features(self.preprocess(images))

  def __call__(self, images: jax.Array) -> jax.Array:
    """Logits ``[B, 1008]`` (the TensorFlow graph's classes; not used by FID)."""
    return self.fc(self.features(images))


def default_weights_path() -> str:
  """``$FANS_INCEPTION_WEIGHTS``, else ``~/.cache/fans_jax/pt_inception-2015-12-05.npz``."""
  env = os.environ.get(WEIGHTS_ENV)
  if env:
    return env
  return os.fspath(pathlib.Path.home() / ".cache" / "fans_jax" / WEIGHTS_FILE)


def missing_weights_message(path: str) -> str:
  return (
      f"Inception-v3 FID weights not found at {path}. FID/KID need the pytorch-fid weights"
      f" converted to .npz: download {SOURCE_URL} on a machine with internet, run `python -m"
      " fans_jax.metrics.inception convert pt_inception-2015-12-05-6726825d.pth"
      f" {path}` (needs torch), and put the file at {path} or set ${WEIGHTS_ENV} to its"
      " path (see docs/evaluation.md).")


def load_inception(weights_path: str | None = None) -> InceptionV3:
  """The FID Inception-v3 with weights from a local ``.npz``.

  Raises:
    FileNotFoundError: no weights at the path (the message says how to make them).
    ValueError: the file does not hold the pytorch-fid state dict.
  """
  path = weights_path or default_weights_path()
  if not os.path.exists(path):
    raise FileNotFoundError(missing_weights_message(path))
  return features_lib.module_from_torch_state(lambda: InceptionV3(rngs=nnx.Rngs(0)),
                                              features_lib.read_npz(path), source=path)


@features_lib.register_feature_network("inception_v3")
def inception_feature_network(weights_path: str | None = None) -> features_lib.FeatureExtractor:
  """The FID / KID feature network (any image size; RGB)."""
  path = weights_path or default_weights_path()
  return features_lib.FeatureExtractor(
      name="inception_v3", metric_name="FID", dim=FEATURE_DIM, weights_path=path,
      module=load_inception(path))


# ----------------------------------------------------------------------------------
# Conversion and verification (need torch; run on a machine that has it)
# ----------------------------------------------------------------------------------


def convert_pytorch_fid_weights(src: str, dst: str) -> dict[str, np.ndarray]:
  """Converts pytorch-fid's ``pt_inception-2015-12-05-*.pth`` to an ``.npz``.

  The ``.npz`` holds the same arrays under the same names (float32), which
  :func:`load_inception` maps onto the NNX layout; the result is checked by loading
  it (strict names and shapes) before it is written.
  """
  import torch  # pylint: disable=g-import-not-at-top
  state = torch.load(src, map_location="cpu", weights_only=True)
  arrays = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()
            if not k.endswith("num_batches_tracked")}
  features_lib.module_from_torch_state(lambda: InceptionV3(rngs=nnx.Rngs(0)), arrays, source=src)
  os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
  np.savez(dst, **arrays)
  return arrays


def verify_against_pytorch_fid(weights_path: str, num_images: int = 4, size: int = 64,
                               seed: int = 0) -> float:
  """Largest absolute feature difference between this port and pytorch-fid.

  Builds pytorch-fid's ``InceptionV3`` structure with the same weights (needs
  ``torch``, ``torchvision`` and ``pytorch-fid``), runs both on random ``uint8``
  images of ``size x size`` and returns ``max |f_jax - f_torch|``.
  """
  import torch  # pylint: disable=g-import-not-at-top
  from pytorch_fid import inception as pf  # pylint: disable=g-import-not-at-top
  state = features_lib.read_npz(weights_path)
  net = pf._inception_v3(num_classes=NUM_CLASSES, aux_logits=False, weights=None)  # pylint: disable=protected-access
  net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
  net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
  net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
  net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
  net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
  net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
  net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
  net.Mixed_7b = pf.FIDInceptionE_1(1280)
  net.Mixed_7c = pf.FIDInceptionE_2(2048)
  missing, unexpected = net.load_state_dict(
      {k: torch.from_numpy(v) for k, v in state.items()}, strict=False)
  if [k for k in missing if not k.endswith("num_batches_tracked")] or unexpected:
    raise ValueError(f"pytorch-fid rejects {weights_path}: missing {missing}, unexpected"
                     f" {unexpected}.")
  net.eval()
  # pytorch-fid's wrapper minus the weight download: the same blocks in the same order.
  model = pf.InceptionV3.__new__(pf.InceptionV3)
  torch.nn.Module.__init__(model)
  model.resize_input, model.normalize_input = True, True
  model.output_blocks, model.last_needed_block = [3], 3
  model.blocks = torch.nn.ModuleList([
      torch.nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3,
                          torch.nn.MaxPool2d(kernel_size=3, stride=2)),
      torch.nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3,
                          torch.nn.MaxPool2d(kernel_size=3, stride=2)),
      torch.nn.Sequential(net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b,
                          net.Mixed_6c, net.Mixed_6d, net.Mixed_6e),
      torch.nn.Sequential(net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
                          torch.nn.AdaptiveAvgPool2d(output_size=(1, 1)))])
  model.eval()
  images = np.random.default_rng(seed).integers(0, 256, (num_images, size, size, 3), np.uint8)
  with torch.no_grad():
    x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    ref = model(x)[0].squeeze(-1).squeeze(-1).numpy()
  ours = inception_feature_network(weights_path)(images, batch_size=num_images)
  return float(np.max(np.abs(ours - ref)))


def main(argv: Sequence[str]) -> int:
  usage = ("usage: python -m fans_jax.metrics.inception convert SRC.pth DST.npz\n"
           "       python -m fans_jax.metrics.inception verify WEIGHTS.npz")
  if len(argv) == 3 and argv[0] == "convert":
    arrays = convert_pytorch_fid_weights(argv[1], argv[2])
    print(f"wrote {argv[2]}: {len(arrays)} arrays,"
          f" {sum(a.size for a in arrays.values()) / 1e6:.1f}M parameters")
    return 0
  if len(argv) == 2 and argv[0] == "verify":
    diff = verify_against_pytorch_fid(argv[1])
    print(f"max |features(fans_jax) - features(pytorch-fid)| = {diff:.3g}")
    return 0
  print(usage, file=sys.stderr)
  return 2


__all__ = [
    "FEATURE_DIM", "InceptionV3", "convert_pytorch_fid_weights", "default_weights_path",
    "inception_feature_network", "load_inception", "missing_weights_message",
    "resize_bilinear", "verify_against_pytorch_fid",
]

if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

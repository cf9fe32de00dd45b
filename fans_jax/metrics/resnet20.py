"""ResNet-20 for CIFAR-10 (He et al. 2016, section 4.2) in Flax NNX, as a feature network.

A port of akamaster/pytorch_resnet_cifar10 (``resnet20``, BSD-2-Clause), whose
pretrained weights ship offline as ``../shared/data/resnet20_cifar10_akamaster.npz``
(PyTorch names and layouts). Architecture: a 3x3 conv to 16 channels, three stages of
three basic blocks (16, 32, 64 channels; stride 2 at the start of stages 2 and 3),
BatchNorm (eps 1e-5) after every conv, "option A" shortcuts (stride-2 subsampling
plus zero-padded channels, no parameters), global average pooling to 64 features, a
linear classifier. Inputs: ``x / 255`` normalised with mean (0.485, 0.456, 0.406) and
std (0.229, 0.224, 0.225).

Its 64-d pooled features give a CIFAR-specific Frechet distance, reported as
``FD-ResNet20``. It is *not* FID (different network, 64-d features, trained on
CIFAR-10 only) and its values are not comparable to published FIDs.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
from flax import nnx

from fans_jax.metrics import features as features_lib

WEIGHTS_FILE = "resnet20_cifar10_akamaster.npz"
WEIGHTS_SHA256 = "ef390b25c0bd77a1d993ba3e82815a15587ea4ba6d00f99503aecbeccd137822"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
FEATURE_DIM = 64
METRIC_NAME = "FD-ResNet20"


def _conv3x3(cin: int, cout: int, stride: int, rngs: nnx.Rngs) -> nnx.Conv:
  # PyTorch padding=1 on both sides (XLA's "SAME" pads (0, 1) for stride 2).
  return nnx.Conv(cin, cout, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)),
                  use_bias=False, rngs=rngs)


def _bn(channels: int, rngs: nnx.Rngs) -> nnx.BatchNorm:
  return nnx.BatchNorm(channels, use_running_average=True, epsilon=1e-5, momentum=0.9,
                       rngs=rngs)


class BasicBlock(nnx.Module):
  """Two 3x3 convs with BatchNorm; option-A identity shortcut."""

  def __init__(self, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs):
    self.conv1 = _conv3x3(cin, cout, stride, rngs)
    self.bn1 = _bn(cout, rngs)
    self.conv2 = _conv3x3(cout, cout, 1, rngs)
    self.bn2 = _bn(cout, rngs)
    self.subsample = stride != 1 or cin != cout
    self.pad = cout // 4

  def __call__(self, x: jax.Array) -> jax.Array:
    out = jax.nn.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    shortcut = x
    if self.subsample:
      shortcut = jnp.pad(x[:, ::2, ::2, :], ((0, 0), (0, 0), (0, 0), (self.pad, self.pad)))
    return jax.nn.relu(out + shortcut)


class ResNet20(nnx.Module):
  """ResNet-20 for 32x32 RGB images; ``features`` gives the 64-d pooled features."""

  def __init__(self, num_classes: int = 10, *, rngs: nnx.Rngs):
    self.conv1 = _conv3x3(3, 16, 1, rngs)
    self.bn1 = _bn(16, rngs)
    stages = []
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
      blocks = []
      for i in range(3):
        blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1, rngs=rngs))
        cin = cout
      stages.append(nnx.List(blocks))
    self.layer1, self.layer2, self.layer3 = stages
    self.linear = nnx.Linear(64, num_classes, rngs=rngs)

  def preprocess(self, images: jax.Array) -> jax.Array:
    """``uint8 [B, 32, 32, 3]`` -> normalised float32."""
    x = images.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(MEAN, jnp.float32)) / jnp.asarray(STD, jnp.float32)

  def features(self, images: jax.Array) -> jax.Array:
    """``uint8 [B, 32, 32, 3]`` -> pooled features ``[B, 64]`` (after the last ReLU)."""
    x = jax.nn.relu(self.bn1(self.conv1(self.preprocess(images))))
    for stage in (self.layer1, self.layer2, self.layer3):
      for block in stage:
        x = block(x)
    return jnp.mean(x, axis=(1, 2))

  def __call__(self, images: jax.Array) -> jax.Array:
    """Class logits ``[B, num_classes]``."""
    return self.linear(self.features(images))


def default_weights_path() -> str:
  """``$FANS_DATA_DIR/resnet20_cifar10_akamaster.npz`` (default ``../shared/data``)."""
  return os.fspath(features_lib.shared_data_dir() / WEIGHTS_FILE)


def load_resnet20(weights_path: str | None = None, verify: bool = True) -> ResNet20:
  """ResNet-20 with the pretrained CIFAR-10 weights.

  Args:
    weights_path: the ``.npz`` (default :func:`default_weights_path`).
    verify: check the file's SHA-256 when it is the shipped file name.
  Raises:
    FileNotFoundError: no file there. ValueError: a damaged or mismatched file.
  """
  path = weights_path or default_weights_path()
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"ResNet-20 CIFAR-10 weights not found at {path}. They ship in the project's"
        f" shared data folder as {WEIGHTS_FILE} (set FANS_DATA_DIR to the folder holding it,"
        " or pass the file's path).")
  if verify and os.path.basename(path) == WEIGHTS_FILE:
    digest = features_lib.sha256(path)
    if digest != WEIGHTS_SHA256:
      raise ValueError(f"{path} is damaged: SHA-256 {digest}, expected {WEIGHTS_SHA256}.")
  return features_lib.module_from_torch_state(lambda: ResNet20(rngs=nnx.Rngs(0)),
                                              features_lib.read_npz(path), source=path)


@features_lib.register_feature_network("resnet20_cifar10")
def resnet20_feature_network(weights_path: str | None = None) -> features_lib.FeatureExtractor:
  """The ``FD-ResNet20`` feature network (32x32 RGB only)."""
  path = weights_path or default_weights_path()
  return features_lib.FeatureExtractor(
      name="resnet20_cifar10", metric_name=METRIC_NAME, dim=FEATURE_DIM, weights_path=path,
      module=load_resnet20(path), image_shapes=((32, 32, 3),))


__all__ = ["FEATURE_DIM", "METRIC_NAME", "ResNet20", "default_weights_path", "load_resnet20",
           "resnet20_feature_network"]

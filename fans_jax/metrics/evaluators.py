"""Evaluators, chosen by name: each ``run(samples, reference) -> typed result``.

As big_vision's evaluators: the caller (``fans_jax.evaluation``, the study)
knows nothing of what an evaluator computes; it asks the registry for the names in its
config (``config.eval`` / ``--metrics``: ``spectral``, ``fd_resnet20``, ``fid``,
``kid``) and puts each typed result into its row with ``result.to_json()``.

* :class:`Samples`: images (float32 ``[N, H, W, C]`` in [-1, 1], already quantised
  through uint8 like the reference) and a feature memo, so FID and KID share one
  Inception pass.
* :class:`Reference`: one dataset's images (read lazily), its spectrum statistics
  (cached on disk by :mod:`fans_jax.data`) and its feature statistics (cached by
  :mod:`fans_jax.metrics.reference`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import numpy as np

from fans_jax import spectra
from fans_jax.metrics import features as features_lib
from fans_jax.metrics import frechet
from fans_jax.metrics import reference as reference_lib
from fans_jax.metrics import spectral as spectral_lib


@dataclasses.dataclass
class Samples:
  """Samples to evaluate: ``images`` float32 ``[N, H, W, C]`` in [-1, 1] (uint8-quantised)."""
  images: np.ndarray
  features: dict = dataclasses.field(default_factory=dict)  # network name -> [N, d]


@dataclasses.dataclass
class Reference:
  """The data samples are compared with.

  Attributes:
    name, split: the dataset. fingerprint: its identity (for feature caches).
    image_shape: ``(H, W, C)``. num_images: how many reference images.
    images: ``() -> [num_images, H, W, C]`` (uint8 or [-1, 1] floats), read on first use.
    spectrum: ``(band_spec) -> DatasetSpectrum`` of those images (cached on disk).
    cache_dir: feature-statistics cache (None: the default).
    feature_batch_size: images per feature-network batch.
  """
  name: str
  split: str
  fingerprint: Any
  image_shape: tuple
  num_images: int
  images: Callable[[], np.ndarray]
  spectrum: Callable[[spectra.BandSpec], spectra.DatasetSpectrum]
  cache_dir: str | None = None
  feature_batch_size: int = 256
  _memo: dict = dataclasses.field(default_factory=dict, repr=False)

  def read_images(self) -> np.ndarray:
    if "images" not in self._memo:
      self._memo["images"] = self.images()
    return self._memo["images"]

  def features(self, network) -> reference_lib.ReferenceFeatures:
    key = ("features", network.name)
    if key not in self._memo:
      self._memo[key] = reference_lib.reference_features(
          network, self.read_images, name=self.name,
          dataset={"fingerprint": self.fingerprint, "split": self.split},
          num_images=self.num_images, image_shape=self.image_shape, cache_dir=self.cache_dir,
          batch_size=self.feature_batch_size)
    return self._memo[key]


@dataclasses.dataclass(frozen=True)
class SpectralResult:
  """Spectral fidelity (:func:`fans_jax.metrics.spectral.compare_summaries`)."""
  comparison: dict
  reference_summary: spectral_lib.SpectralSummary
  sample_summary: spectral_lib.SpectralSummary

  def to_json(self) -> dict:
    return self.comparison


@dataclasses.dataclass(frozen=True)
class FrechetResult:
  """A Frechet distance between feature Gaussians (FID, FD-ResNet20)."""
  value: float
  network: str

  def to_json(self) -> float:
    return float(self.value)


@dataclasses.dataclass(frozen=True)
class KernelResult:
  """KID: unbiased MMD^2 with the cubic polynomial kernel, mean +- std over subsets."""
  mean: float
  std: float
  num_subsets: int
  subset_size: int

  def to_json(self) -> dict:
    return {"mean": self.mean, "std": self.std, "num_subsets": self.num_subsets,
            "subset_size": self.subset_size}


class Evaluator(Protocol):
  name: str

  def run(self, samples: Samples, reference: Reference) -> Any:
    ...


@dataclasses.dataclass(frozen=True)
class SpectralEvaluator:
  settings: spectral_lib.SpectralSettings = dataclasses.field(
      default_factory=spectral_lib.SpectralSettings)
  name: str = "spectral"

  def run(self, samples: Samples, reference: Reference) -> SpectralResult:
    stats = reference.spectrum(self.settings.band_spec())
    ref = spectral_lib.summary_from_dataset_spectrum(stats, reference.image_shape,
                                                     self.settings)
    gen = spectral_lib.spectral_summary(samples.images, self.settings)
    return SpectralResult(spectral_lib.compare_summaries(gen, ref), ref, gen)


def _sample_features(network, samples: Samples, batch_size: int) -> np.ndarray:
  if network.name not in samples.features:
    samples.features[network.name] = network(samples.images, batch_size=batch_size,
                                             progress=True)
  return samples.features[network.name]


@dataclasses.dataclass(frozen=True)
class FrechetEvaluator:
  """``fid`` (Inception-v3 pool features) or ``fd_resnet20`` (CIFAR-10 ResNet-20)."""
  name: str = "fid"
  network: str = "inception_v3"
  weights: str | None = None
  batch_size: int = 256

  def run(self, samples: Samples, reference: Reference) -> FrechetResult:
    network = features_lib.get_feature_network(self.network, self.weights)
    feats = _sample_features(network, samples, self.batch_size)
    value = frechet.frechet_distance(frechet.feature_statistics(feats, network.name),
                                     reference.features(network).stats)
    return FrechetResult(float(value), network.name)


@dataclasses.dataclass(frozen=True)
class KernelEvaluator:
  """``kid`` on the Inception-v3 pool features, fixed subsets (seed 0)."""
  name: str = "kid"
  network: str = "inception_v3"
  weights: str | None = None
  batch_size: int = 256
  num_subsets: int = 100
  subset_size: int = 1000

  def run(self, samples: Samples, reference: Reference) -> KernelResult:
    network = features_lib.get_feature_network(self.network, self.weights)
    feats = _sample_features(network, samples, self.batch_size)
    kid = frechet.kernel_distance(feats, reference.features(network).features,
                                  self.num_subsets, self.subset_size, seed=0)
    return KernelResult(kid.mean, kid.std, kid.num_subsets, kid.subset_size)


_REGISTRY: dict[str, Callable[..., Evaluator]] = {}


def register(name: str):
  """Registers ``factory(options) -> Evaluator`` under ``name``."""
  def wrap(factory):
    _REGISTRY[name] = factory
    return factory
  return wrap


def names() -> tuple[str, ...]:
  return tuple(_REGISTRY)


def get(name: str, options) -> Evaluator:
  """The evaluator ``name`` configured from ``options`` (``evaluation.EvalOptions``)."""
  if name not in _REGISTRY:
    raise ValueError(f"evaluator {name!r} is not one of {names()}.")
  return _REGISTRY[name](options)


register("spectral")(lambda o: SpectralEvaluator(o.spectral))
register("fd_resnet20")(lambda o: FrechetEvaluator("fd_resnet20", "resnet20_cifar10",
                                                   o.resnet20_weights, o.feature_batch_size))
register("fid")(lambda o: FrechetEvaluator("fid", "inception_v3", o.inception_weights,
                                           o.feature_batch_size))
register("kid")(lambda o: KernelEvaluator("kid", "inception_v3", o.inception_weights,
                                          o.feature_batch_size, o.kid_subsets,
                                          o.kid_subset_size))

__all__ = ["Evaluator", "FrechetEvaluator", "FrechetResult", "KernelEvaluator",
           "KernelResult", "Reference", "Samples", "SpectralEvaluator", "SpectralResult",
           "get", "names", "register"]

"""Evaluation metrics: spectral fidelity, Frechet distances (FID, FD-ResNet20) and KID.

Modules: :mod:`spectral` (slope error, log-spectral distance, band-power divergences),
:mod:`frechet` (Frechet distance, KID), :mod:`features` (feature-network registry),
:mod:`resnet20` (CIFAR-10 ResNet-20, ``FD-ResNet20``), :mod:`inception` (Inception-v3
pool features, FID/KID), :mod:`reference` (cached reference features),
:mod:`evaluators` (the evaluators by name), :mod:`gaussian` (the exact denoiser of a
Gaussian field). Trained runs -> metrics.json: :mod:`fans_jax.evaluation` (the run
layer above these; ``launch/evaluate.py``).

Definitions, units and the Inception weights: ``docs/evaluation.md``.
"""

import importlib

from fans_jax.metrics import features, frechet, reference, resnet20, spectral
from fans_jax.metrics.features import (get_feature_network, images_to_float,
                                       images_to_uint8)
from fans_jax.metrics.frechet import (FeatureStats, feature_statistics, frechet_distance,
                                      kernel_distance)
from fans_jax.metrics.spectral import (SpectralSettings, spectral_metrics,
                                       spectral_summary)



def __getattr__(name: str):
  """``inception`` is imported on first use, so that ``python -m
  fans_jax.metrics.inception`` (its command line) runs it as ``__main__`` only."""
  if name == "inception":
    return importlib.import_module("fans_jax.metrics.inception")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FeatureStats", "SpectralSettings", "feature_statistics", "features",
    "frechet", "frechet_distance", "get_feature_network", "images_to_float", "images_to_uint8",
    "inception", "kernel_distance", "reference", "resnet20", "spectral", "spectral_metrics",
    "spectral_summary",
]

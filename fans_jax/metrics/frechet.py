"""Frechet distance and kernel distance (KID) between two sets of features.

Everything here is NumPy float64 on the host: feature sets are small (``N x d`` with
``d`` = 64 for ResNet-20, 2048 for Inception-v3) and the matrix algebra wants float64.

* :func:`frechet_distance` between Gaussians fitted to the features,
  ``||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^1/2 S_2 S_1^1/2)^1/2)``
  (Dowson & Landau 1982; Heusel et al. 2017). The cross term uses the symmetric form,
  whose square root is taken by eigendecomposition of a symmetric PSD matrix: no
  complex arithmetic, no ``sqrtm`` iteration, no ``+ eps I`` fix-up. It equals
  ``tr(sqrtm(S_1 S_2))`` because ``S_1 S_2`` is similar to ``S_1^1/2 S_2 S_1^1/2``.
* :func:`kernel_distance` (KID, Binkowski et al. 2018): the unbiased estimator of the
  squared MMD with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3``, averaged
  over random subsets as in the authors' code.
"""

from __future__ import annotations

import dataclasses
import os
from typing import NamedTuple

import numpy as np


# ----------------------------------------------------------------------------------
# Feature statistics
# ----------------------------------------------------------------------------------


def min_samples_for_frechet(feature_dim: int) -> int:
  """Smallest sample count this module accepts for a Frechet distance: ``d + 1``.

  ``N`` samples give a sample covariance of rank at most ``N - 1``; with ``N < d + 1``
  it is singular and the distance is dominated by the missing directions.
  """
  return int(feature_dim) + 1


def _check_features(features, name: str) -> np.ndarray:
  f = np.asarray(features)
  if f.ndim != 2:
    raise ValueError(f"{name} must be a [N, d] array of feature vectors; got shape {f.shape}.")
  if not np.issubdtype(f.dtype, np.number):
    raise ValueError(f"{name} must be numeric; got dtype {f.dtype}.")
  f = f.astype(np.float64)
  if not np.all(np.isfinite(f)):
    raise ValueError(f"{name} holds non-finite values (NaN or inf); check the images.")
  return f


@dataclasses.dataclass(frozen=True)
class FeatureStats:
  """Mean and covariance of a feature set (float64).

  Attributes:
    mu: ``[d]``.
    sigma: ``[d, d]`` unbiased sample covariance (``1 / (N - 1)``).
    count: ``N``.
    name: what the features are (e.g. ``"resnet20_cifar10"``), for error messages.
  """
  mu: np.ndarray
  sigma: np.ndarray
  count: int
  name: str = ""

  @property
  def dim(self) -> int:
    return int(self.mu.shape[0])

  def save(self, path: str | os.PathLike) -> None:
    """Writes an ``.npz`` with ``mu``, ``sigma``, ``count`` and ``name``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, mu=self.mu, sigma=self.sigma, count=np.asarray(self.count),
             name=np.asarray(self.name))
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str | os.PathLike) -> "FeatureStats":
    with np.load(os.fspath(path)) as data:
      return cls(mu=np.asarray(data["mu"], np.float64),
                 sigma=np.asarray(data["sigma"], np.float64), count=int(data["count"]),
                 name=str(data["name"]))


def feature_statistics(features, name: str = "", full_rank: bool = True) -> FeatureStats:
  """Mean and unbiased covariance of ``features [N, d]`` (float64).

  Args:
    features: ``[N, d]``.
    name: a label kept with the statistics.
    full_rank: require ``N >= d + 1`` (:func:`min_samples_for_frechet`), so the
      covariance can be of full rank. Turn off only for illustrations.
  Raises:
    ValueError: bad shape, non-finite values, or too few samples (naming how many
      are needed).
  """
  f = _check_features(features, "features")
  n, d = f.shape
  needed = min_samples_for_frechet(d) if full_rank else 2
  if n < needed:
    raise ValueError(
        f"a Frechet distance on {d}-dimensional features{f' ({name})' if name else ''}"
        f" needs at least {needed} samples (d + 1, so that the covariance can have full"
        f" rank); got {n}. Use more samples (tens of thousands are standard for FID).")
  mu = f.mean(axis=0)
  centred = f - mu
  sigma = centred.T @ centred / (n - 1)
  return FeatureStats(mu=mu, sigma=sigma, count=n, name=name)


# ----------------------------------------------------------------------------------
# Frechet distance
# ----------------------------------------------------------------------------------


def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
  """Principal square root of a symmetric positive semi-definite matrix (float64).

  Symmetrises, eigendecomposes, clips round-off negative eigenvalues to 0.
  """
  a = np.asarray(matrix, np.float64)
  a = 0.5 * (a + a.T)
  w, v = np.linalg.eigh(a)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
  """``tr((S_1 S_2)^1/2) = tr((S_1^1/2 S_2 S_1^1/2)^1/2)`` for PSD ``S_1, S_2``.

  The eigenvalues of the symmetric PSD matrix ``S_1^1/2 S_2 S_1^1/2`` are those of
  ``S_1 S_2``; the trace of the square root is the sum of their square roots.
  """
  root1 = sqrtm_psd(sigma1)
  m = root1 @ np.asarray(sigma2, np.float64) @ root1
  w = np.linalg.eigvalsh(0.5 * (m + m.T))
  return float(np.sum(np.sqrt(np.clip(w, 0.0, None))))


def frechet_distance(stats1: FeatureStats, stats2: FeatureStats) -> float:
  """Frechet distance between Gaussians ``N(mu_1, S_1)`` and ``N(mu_2, S_2)``.

  ``||mu_1 - mu_2||^2 + tr(S_1) + tr(S_2) - 2 tr((S_1^1/2 S_2 S_1^1/2)^1/2)``,
  float64, clipped at 0 (it can dip below by round-off for identical inputs).
  Raises:
    ValueError: statistics of different feature dimensions or networks.
  """
  if stats1.dim != stats2.dim:
    raise ValueError(f"feature dimensions differ: {stats1.dim} ({stats1.name or 'first'}) vs"
                     f" {stats2.dim} ({stats2.name or 'second'}).")
  if stats1.name and stats2.name and stats1.name != stats2.name:
    raise ValueError(f"statistics come from different feature networks: {stats1.name!r} vs"
                     f" {stats2.name!r}.")
  diff = stats1.mu - stats2.mu
  value = (diff @ diff + np.trace(stats1.sigma) + np.trace(stats2.sigma)
           - 2.0 * trace_sqrt_product(stats1.sigma, stats2.sigma))
  return float(max(value, 0.0))


def frechet_distance_from_features(features1, features2, name: str = "") -> float:
  """:func:`frechet_distance` between two ``[N_i, d]`` feature sets."""
  return frechet_distance(feature_statistics(features1, name), feature_statistics(features2, name))


# ----------------------------------------------------------------------------------
# Kernel distance (KID)
# ----------------------------------------------------------------------------------


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3,
                      gamma: float | None = None, coef0: float = 1.0) -> np.ndarray:
  """``k(x, y) = (gamma x.y + coef0)^degree``, ``gamma = 1 / d`` by default; ``[N, M]``."""
  gamma = 1.0 / x.shape[1] if gamma is None else gamma
  return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3) -> float:
  """Unbiased estimate of ``MMD^2`` between the laws of ``x [m, d]`` and ``y [n, d]``.

  ``sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
  - 2 sum_{i, j} k(x_i, y_j) / (m n)``: its expectation is exactly ``MMD^2``
  (it can be negative).
  """
  m, n = x.shape[0], y.shape[0]
  if m < 2 or n < 2:
    raise ValueError(f"an unbiased MMD^2 needs at least 2 samples per set; got {m} and {n}.")
  kxx = polynomial_kernel(x, x, degree)
  kyy = polynomial_kernel(y, y, degree)
  kxy = polynomial_kernel(x, y, degree)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
               - 2.0 * kxy.mean())


class KernelDistance(NamedTuple):
  """KID: mean and standard deviation of ``MMD^2`` over random subsets."""
  mean: float
  std: float
  num_subsets: int
  subset_size: int


def kernel_distance(features1, features2, num_subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0, degree: int = 3) -> KernelDistance:
  """KID between two feature sets (Binkowski et al. 2018).

  Each of ``num_subsets`` rounds draws ``m = min(subset_size, N_1, N_2)`` vectors
  from each set without replacement and computes :func:`mmd2_unbiased`; the mean over
  rounds is unbiased for ``MMD^2`` and the standard deviation says how noisy it is.
  Args:
    features1, features2: ``[N_i, d]``.
    num_subsets: rounds.
    subset_size: vectors per set per round (1000 as in the paper and torch-fidelity).
    seed: seed of the subset draws.
    degree: polynomial degree (3 for KID).
  """
  x = _check_features(features1, "features1")
  y = _check_features(features2, "features2")
  if x.shape[1] != y.shape[1]:
    raise ValueError(f"feature dimensions differ: {x.shape[1]} vs {y.shape[1]}.")
  m = min(int(subset_size), x.shape[0], y.shape[0])
  if m < 2:
    raise ValueError(f"KID needs at least 2 samples per set; got {x.shape[0]} and {y.shape[0]}.")
  if int(num_subsets) < 1:
    raise ValueError(f"num_subsets={num_subsets} must be >= 1.")
  rng = np.random.default_rng(seed)
  values = np.array([
      mmd2_unbiased(x[rng.choice(x.shape[0], m, replace=False)],
                    y[rng.choice(y.shape[0], m, replace=False)], degree)
      for _ in range(int(num_subsets))])
  std = float(values.std(ddof=1)) if values.size > 1 else 0.0
  return KernelDistance(float(values.mean()), std, int(num_subsets), m)


__all__ = [
    "FeatureStats", "KernelDistance", "feature_statistics", "frechet_distance",
    "frechet_distance_from_features", "kernel_distance", "min_samples_for_frechet",
    "mmd2_unbiased", "polynomial_kernel", "sqrtm_psd", "trace_sqrt_product",
]

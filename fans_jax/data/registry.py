"""Datasets chosen by name: ``get_source(cfg)`` looks ``cfg.name`` up in a registry.

A dataset is registered with a factory ``fn(cfg) -> ImageSource``::

  @registry.register("my_set")
  def _my_set(cfg): return MySource(cfg)
"""

from __future__ import annotations

from typing import Callable

import ml_collections

from fans_jax.data import base
from fans_jax.data import config as config_lib

_REGISTRY: dict[str, Callable[[ml_collections.ConfigDict], base.ImageSource]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str = ""):
  """Decorator registering ``factory(cfg) -> ImageSource`` under ``name``."""

  def wrap(factory):
    if name in _REGISTRY:
      raise ValueError(f"dataset {name!r} is already registered.")
    _REGISTRY[name] = factory
    _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
    return factory

  return wrap


def list_datasets() -> dict[str, str]:
  """Registered dataset names with a one-line description each."""
  return dict(sorted(_DESCRIPTIONS.items()))


def get_source(cfg: ml_collections.ConfigDict) -> base.ImageSource:
  """The random-access source of ``cfg.name``: ``src[i] -> uint8 [H, W, C]``.

  Args:
    cfg: a data config (see :func:`fans_jax.data.default_config`); fields it lacks
      take their defaults.
  Raises:
    ValueError: unknown name or invalid option; FileNotFoundError: missing data.
  """
  cfg = config_lib.with_overrides(cfg)
  base.check_common_options(cfg)
  if cfg.name not in _REGISTRY:
    raise ValueError(f"unknown dataset name={cfg.name!r}; registered: {sorted(_REGISTRY)}.")
  return _REGISTRY[cfg.name](cfg)

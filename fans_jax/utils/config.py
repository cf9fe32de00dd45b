"""Config sections (``ml_collections.ConfigDict``) to typed, frozen dataclasses.

The library never reads flags; configs enter it as ``ConfigDict`` objects and each
section is converted once, where it is used, into a frozen dataclass. The conversion
is where a misspelt or unknown key is caught, with one clear ``ValueError``.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from typing import Any, TypeVar

import ml_collections

T = TypeVar("T")


def to_dict(cfg: Any) -> Any:
  """A plain (JSON-friendly) copy of a ConfigDict / FrozenConfigDict / dict."""
  if isinstance(cfg, (ml_collections.ConfigDict, ml_collections.FrozenConfigDict)):
    cfg = cfg.to_dict()
  if isinstance(cfg, dict):
    return {str(k): to_dict(v) for k, v in cfg.items()}
  if isinstance(cfg, (list, tuple)):
    return [to_dict(v) for v in cfg]
  return cfg


def _fields(cls) -> dict[str, dataclasses.Field]:
  return {f.name: f for f in dataclasses.fields(cls)}


def check_keys(given, valid, section: str) -> None:
  """Raises a ValueError naming every key of ``given`` that is not in ``valid``."""
  unknown = sorted(set(given) - set(valid))
  if unknown:
    hints = []
    for key in unknown:
      close = difflib.get_close_matches(key, sorted(valid), n=1)
      hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ValueError(f"unknown key(s) in config.{section}: {', '.join(hints)}; valid keys are"
                     f" {sorted(valid)}.")


def from_config(cls: type[T], cfg: Any, section: str, ignore: tuple[str, ...] = ()) -> T:
  """Builds the frozen dataclass ``cls`` from a config section.

  Tuples stay tuples (ConfigDict may hand back lists); keys in ``ignore`` are
  skipped (e.g. ``name``, used for the registry look-up).
  Raises:
    ValueError: unknown keys in the section.
  """
  values = {k: v for k, v in to_dict(cfg).items() if k not in ignore}
  fields = _fields(cls)
  check_keys(values, fields, section)
  out = {}
  for key, value in values.items():
    if isinstance(value, list):
      value = tuple(value)
    out[key] = value
  return cls(**out)


def fingerprint(cfg_dict: dict) -> str:
  """A short stable hash of a JSON-friendly dict (sorted keys)."""
  text = json.dumps(cfg_dict, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def diff(a: dict, b: dict, prefix: str = "") -> list[str]:
  """Readable differences between two nested dicts, ``['model.channels: 32 != 64', ...]``."""
  out = []
  for key in sorted(set(a) | set(b)):
    name = f"{prefix}{key}"
    if key not in a or key not in b:
      out.append(f"{name}: {'absent' if key not in a else a[key]!r} != "
                 f"{'absent' if key not in b else b[key]!r}")
    elif isinstance(a[key], dict) and isinstance(b[key], dict):
      out.extend(diff(a[key], b[key], name + "."))
    elif a[key] != b[key]:
      out.append(f"{name}: {a[key]!r} != {b[key]!r}")
  return out

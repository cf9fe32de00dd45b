"""File digests: the one place a file is hashed (weights, data sets, reference files).

Imports nothing of the project.
"""

from __future__ import annotations

import hashlib
import os


def digest(path: str | os.PathLike, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
  """Hex digest of the file at ``path`` with ``hashlib``'s ``algorithm``, read in
  ``chunk``-byte blocks (constant memory for multi-GB files)."""
  h = hashlib.new(algorithm)
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(chunk), b""):
      h.update(block)
  return h.hexdigest()

"""fans_jax/utils/files.py: the one file hasher (weights, data sets, reference files)."""

import hashlib

from fans_jax.utils import files


def test_digest_is_hashlibs_across_chunk_boundaries(tmp_path):
  data = bytes(range(256)) * 41  # 10,496 bytes: not a multiple of the chunk
  path = tmp_path / "blob.bin"
  path.write_bytes(data)
  for algorithm in ("sha256", "sha1"):
    expected = hashlib.new(algorithm, data).hexdigest()
    assert files.digest(path, algorithm) == expected
    assert files.digest(str(path), algorithm, chunk=1000) == expected


def test_empty_file(tmp_path):
  path = tmp_path / "empty"
  path.write_bytes(b"")
  assert files.digest(path) == hashlib.sha256(b"").hexdigest()

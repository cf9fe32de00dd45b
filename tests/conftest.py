"""Test set-up: several CPU devices (before JAX is imported) and a compilation cache."""

import os
import pathlib
import sys

_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
  sys.path.insert(0, str(ROOT))

_CACHE = pathlib.Path(os.environ.get("FANS_TEST_JIT_CACHE",
                                     pathlib.Path.home() / ".cache" / "fans_jax_test_jit"))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)

SHARED_DATA = pathlib.Path(os.environ.get("FANS_DATA_DIR", ROOT.parent / "shared" / "data"))


@pytest.fixture
def rng():
  return np.random.default_rng(0)


@pytest.fixture(scope="session")
def shared_data_dir():
  """The offline real-image sets (../shared/data); tests needing them skip, saying why."""
  if not (SHARED_DATA / "SHA256SUMS").exists():
    pytest.skip(f"offline datasets not found at {SHARED_DATA} (set FANS_DATA_DIR)")
  return SHARED_DATA

# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
# ---

# %%
# Install fans_jax where it is not importable (a fresh Colab runtime): clone the repository
# (the training cells use its configs/) and `pip install -e` it. Its requirements are
# ranges with no TensorFlow, so pip adds what is missing and leaves Colab's TensorFlow,
# NumPy and JAX as they are when they meet the floors (pyproject.toml); the cell says if
# pip changed one of them. Elsewhere (a clone installed with `pip install -e .`) it does
# nothing.
import importlib.metadata, importlib.util, os, pathlib, subprocess, sys
FANS_JAX_REPO = os.environ.get("FANS_JAX_REPO", "REPO_URL")  # or upload a copy to /content/fans_jax
CLONE = pathlib.Path("/content/fans_jax")
ON_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ
if importlib.util.find_spec("fans_jax") is None:
  if not ON_COLAB:
    raise ModuleNotFoundError("fans_jax is not installed in this kernel's environment: run"
                              " `pip install -e .` in the repository (README), then restart it.")
  def _versions(names=("jax", "jaxlib", "numpy", "tensorflow")):
    found = {}
    for name in names:
      try:
        found[name] = importlib.metadata.version(name)
      except importlib.metadata.PackageNotFoundError:
        pass
    return found
  before = _versions()
  if not (CLONE / "pyproject.toml").exists():
    subprocess.check_call(["git", "clone", "-q", "--depth=1", FANS_JAX_REPO, str(CLONE)])
  subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "-e", str(CLONE)])
  sys.path.insert(0, str(CLONE))
  after = _versions()
  changed = {k: f"{v} -> {after.get(k)}" for k, v in before.items() if after.get(k) != v}
  if changed:
    print("pip changed", changed, "- if a GPU/TPU runtime's JAX changed, reinstall its build"
          " (JAX's installation guide) and restart the session.")
# The repository root (for configs/): the clone, or a parent of this notebook's folder.
REPO_DIR = next((p for p in [CLONE, pathlib.Path.cwd(), *pathlib.Path.cwd().parents]
                 if (p / "configs" / "base.py").exists()), None)
if REPO_DIR is not None and str(REPO_DIR) not in sys.path:
  sys.path.insert(0, str(REPO_DIR))

# %%
# %matplotlib inline
import os
# SMALL: settings that run top to bottom on a CPU in minutes (the test suite sets
# FANS_NOTEBOOK_SMALL=1). Set SMALL = False for the full-size figures.
SMALL = os.environ.get("FANS_NOTEBOOK_SMALL", "0") == "1"

import numpy as np
import jax
import jax.numpy as jnp
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import fans_jax.data as data
from fans_jax import plotting, schedules, spectra
from fans_jax.metrics import spectral
print("JAX devices:", jax.devices(), "| SMALL =", SMALL)


def try_source(label, *candidates):
  """The first data config among ``candidates`` (dicts of overrides) whose source
  loads: the offline copies here, tensorflow-datasets (with download) on Colab."""
  for overrides in candidates:
    cfg = data.with_overrides(None, **overrides)
    try:
      return cfg, data.get_source(cfg)
    except (FileNotFoundError, ValueError, ImportError, RuntimeError) as e:
      print(f"{label}: {overrides['name']} not available ({type(e).__name__}: {str(e)[:120]})")
  return None

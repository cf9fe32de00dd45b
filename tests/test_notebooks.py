"""The Colab notebooks run end to end on small settings.

Each notebook is executed top to bottom with nbclient in a fresh kernel, with
``FANS_NOTEBOOK_SMALL=1`` (the notebooks' small-settings switch), caches in a
temporary folder and no Inception weights. Runtime on 2 CPU cores: about 1-3 minutes
for all three (notebook 3 trains two tiny runs for 10 steps).
"""

import importlib.util
import os
import pathlib
import subprocess
import sys
import types

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = pathlib.Path(__file__).resolve().parents[1]
COLABS = ROOT / "colabs"
NOTEBOOKS = ["01_dataset_spectra.ipynb", "02_forward_process_fourier.ipynb",
             "03_samples_and_metrics.ipynb"]


def test_notebooks_match_their_builder():
  sys.path.insert(0, str(COLABS))
  try:
    import build_notebooks  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(COLABS))
  assert sorted(build_notebooks.NOTEBOOKS) == NOTEBOOKS
  for name, built in build_notebooks.NOTEBOOKS.items():
    stored = nbformat.read(COLABS / name, as_version=4)
    assert [c.source for c in stored.cells] == [c.source for c in built.cells], (
        f"{name} is out of date: run `python colabs/build_notebooks.py`.")
    assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code"), (
        f"{name} is stored with outputs; rebuild it.")


def _builder():
  sys.path.insert(0, str(COLABS))
  try:
    import build_notebooks  # pylint: disable=import-outside-toplevel
  finally:
    sys.path.remove(str(COLABS))
  return build_notebooks


def test_notebooks_open_in_colab():
  """Each notebook's first cell and the README link to its Open-in-Colab address."""
  builder = _builder()
  readme = (ROOT / "README.md").read_text()
  for name in NOTEBOOKS:
    url = builder.colab_url(name)
    assert url.startswith("https://colab.research.google.com/github/") and url.endswith(
        f"/blob/{builder.GITHUB_BRANCH}/colabs/{name}")
    stored = nbformat.read(COLABS / name, as_version=4)
    assert builder.colab_badge(name) in stored.cells[0].source
    assert url in readme, f"README has no Colab link to {name}"


def _run_install_cell(monkeypatch, *, importable: bool, colab: bool) -> tuple[list, dict]:
  """Executes the install cell here with subprocess calls recorded, not run."""
  builder = _builder()
  calls = []
  monkeypatch.setattr(subprocess, "check_call", lambda cmd, **kw: calls.append(cmd) or 0)
  monkeypatch.setattr(sys, "path", list(sys.path))
  monkeypatch.chdir(COLABS)  # where a notebook's kernel starts
  monkeypatch.delenv("FANS_JAX_REPO", raising=False)
  monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
  if colab:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
  else:
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
  if not importable:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "fans_jax" else real(name, *a))
  namespace = {}
  exec(compile(builder.INSTALL, "install_cell", "exec"), namespace)  # pylint: disable=exec-used
  return calls, namespace


def test_install_cell_does_nothing_where_fans_jax_is_installed(monkeypatch):
  calls, ns = _run_install_cell(monkeypatch, importable=True, colab=False)
  assert calls == [] and ns["REPO_DIR"] == ROOT  # found from the notebook's folder
  calls, _ = _run_install_cell(monkeypatch, importable=True, colab=True)
  assert calls == []


def test_install_cell_on_colab_clones_and_installs_without_pins(monkeypatch):
  builder = _builder()
  calls, _ = _run_install_cell(monkeypatch, importable=False, colab=True)
  assert calls == [["git", "clone", "-q", "--depth=1", builder.REPO_URL, "/content/fans_jax"],
                   [sys.executable, "-m", "pip", "install", "-q", "-e", "/content/fans_jax"]]
  with pytest.raises(ModuleNotFoundError, match="pip install -e ."):
    _run_install_cell(monkeypatch, importable=False, colab=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes(name, tmp_path, monkeypatch, shared_data_dir):
  monkeypatch.setenv("FANS_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("FANS_DATA_DIR", str(shared_data_dir))
  monkeypatch.setenv("FANS_CACHE_DIR", str(tmp_path / "cache"))
  monkeypatch.setenv("FANS_INCEPTION_WEIGHTS", str(tmp_path / "no_inception.npz"))
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  # One device, as on Colab (the conftest's 4 forced CPU devices are for the library's
  # sharding tests; the kernel is a separate process).
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebooks use the inline backend
  cache = os.environ.get("FANS_TEST_JIT_CACHE",
                         str(pathlib.Path.home() / ".cache" / "fans_jax_test_jit"))
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", cache)
  nb = nbformat.read(COLABS / name, as_version=4)
  # Notebook 3 trains its tiny runs in this test's temporary folder.
  monkeypatch.setenv("FANS_NOTEBOOK_RUN_DIR", str(tmp_path / "runs"))
  client = NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": str(COLABS)}})
  client.execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
  errors = [o for o in outputs if o.get("output_type") == "error"]
  assert not errors
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) >= 3, f"{name} displayed {len(images)} figures"

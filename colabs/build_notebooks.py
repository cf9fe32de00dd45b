"""Builds the Colab notebooks of ``colabs/`` from their jupytext sources in ``colabs/src/``.

    python colabs/build_notebooks.py          # rewrites colabs/*.ipynb (without outputs)

Each notebook's cells live in ``colabs/src/<name>.py`` (jupytext "percent" format: open
it in Jupyter with jupytext, or edit it as Python); the cells every notebook shares,
an install cell and a set-up cell, live in ``colabs/src/common.py``. The notebooks
import ``fans_jax`` (never copy it). Each opens with an Open-in-Colab badge
(:data:`GITHUB_REPO`), then the install cell (it clones and installs the repository on
Colab when ``fans_jax`` is not importable, and does nothing elsewhere), then the set-up
cell with a ``SMALL`` switch read from ``$FANS_NOTEBOOK_SMALL`` (the test suite runs
them with ``FANS_NOTEBOOK_SMALL=1``, on a CPU in a few minutes). Edit the sources, not
the ``.ipynb`` files, and rebuild.
"""

from __future__ import annotations

import pathlib

import jupytext
import nbformat

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = HERE / "src"

# The public repository: the install cell clones it on Colab, and the Open-in-Colab links
# point at its notebooks. This checkout names no public URL (no git remote, none in the
# README): set OWNER here once the repository is published, and rebuild.
GITHUB_REPO = "OWNER/fans_jax"
GITHUB_BRANCH = "main"
REPO_URL = f"https://github.com/{GITHUB_REPO}"


def colab_url(name: str) -> str:
  """The Open-in-Colab address of ``colabs/<name>``."""
  return f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/{GITHUB_BRANCH}/colabs/{name}"


def colab_badge(name: str) -> str:
  return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          f"({colab_url(name)})")



NOTEBOOK_NAMES = ("01_dataset_spectra.ipynb", "02_forward_process_fourier.ipynb",
                  "03_samples_and_metrics.ipynb")


def _read_source(name: str) -> nbformat.NotebookNode:
  return jupytext.read(SOURCES / name, fmt="py:percent")


def _common_cells() -> list:
  """The install cell (with this repository's URL) and the set-up cell."""
  install, setup = _read_source("common.py").cells
  install.source = install.source.replace("REPO_URL", REPO_URL)
  return [install, setup]


# The shared cells' code (tests/test_notebooks.py executes the install cell).
INSTALL, SETUP_COMMON = (cell.source for cell in _common_cells())


def build(name: str) -> nbformat.NotebookNode:
  """The notebook ``colabs/<name>`` from ``colabs/src/<stem>.py`` (no outputs)."""
  source = _read_source(name.replace(".ipynb", ".py"))
  title, *cells = source.cells
  title.source = f"{colab_badge(name)}\n\n{title.source}"
  nb = nbformat.v4.new_notebook()
  nb.metadata = {
      "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
      "language_info": {"name": "python"},
      "colab": {"provenance": []},
  }
  nb.cells = []
  for i, cell in enumerate([title, *_common_cells(), *cells]):
    make = (nbformat.v4.new_markdown_cell if cell.cell_type == "markdown"
            else nbformat.v4.new_code_cell)
    nb.cells.append(make(cell.source, id=f"cell-{i:02d}"))  # stable ids: rebuilds do not churn
  return nb


NOTEBOOKS = {name: build(name) for name in NOTEBOOK_NAMES}


def main() -> None:
  for name, nb in NOTEBOOKS.items():
    nbformat.validate(nb)
    nbformat.write(nb, HERE / name)
    print(f"wrote {HERE / name}")


if __name__ == "__main__":
  main()

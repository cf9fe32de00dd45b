"""Host set-up shared by the launch scripts; must run before JAX creates its backends."""

import os

import jax


def cpu_device_count(requested: int) -> int:
  """The number of XLA host devices to force (0: leave XLA alone).

  Args:
    requested: ``-1`` picks the largest power of two <= min(cores, 8) (one XLA:CPU
      device keeps only ~1.3 cores busy, so splitting the host trains faster); ``>= 0``
      is taken as is. Either way 0 is returned when ``XLA_FLAGS`` already sets a count
      (``--xla_force_host_platform_device_count``: the user's choice wins).
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return 0
  if requested >= 0:
    return requested
  cores = min(os.cpu_count() or 1, 8)
  return 1 << (cores.bit_length() - 1)


def force_cpu_devices(requested: int) -> int:
  """Splits the host CPU into :func:`cpu_device_count` XLA devices with
  ``jax.config.update("jax_num_cpu_devices", n)``; only the CPU backend is affected.
  Returns the count set (0: none).

  Raises:
    RuntimeError: JAX's backends already exist (call this before the first JAX
      computation, as the launch scripts do).
  """
  count = cpu_device_count(requested)
  if count:
    jax.config.update("jax_num_cpu_devices", count)
  return count


def cpu_name() -> str:
  """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
  import platform  # pylint: disable=import-outside-toplevel
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()

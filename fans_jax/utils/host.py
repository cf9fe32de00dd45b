"""Host set-up shared by the launch scripts; must run before JAX creates its backends."""

import os


def cpu_device_count(requested: int) -> int:
  """The number of XLA host devices to force (0: leave XLA alone).

  Args:
    requested: ``-1`` picks the largest power of two <= min(cores, 8) (one XLA:CPU
      device keeps only ~1.3 cores busy, so splitting the host trains faster); ``>= 0``
      is taken as is. Either way 0 is returned when ``XLA_FLAGS`` already sets a count.
  """
  if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
    return 0
  if requested >= 0:
    return requested
  cores = min(os.cpu_count() or 1, 8)
  return 1 << (cores.bit_length() - 1)


def force_cpu_devices(requested: int) -> int:
  """Appends ``--xla_force_host_platform_device_count`` to ``XLA_FLAGS`` as
  :func:`cpu_device_count` decides; call before the first JAX computation. Returns the
  count set (0: none)."""
  count = cpu_device_count(requested)
  if count:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={count}").strip()
  return count

r"""Trains a diffusion model: flags, distributed set-up, one library call.

    python launch/train.py --config=configs/pltb_fans.py:tiny --workdir=workdirs/pltb_fans_tiny

Any config field can be overridden (``--config.train.batch_size=256``); a misspelt
one fails. Rerunning the same command resumes from the newest checkpoint.

Several processes (one per host of a TPU pod slice, or one per GPU node): run the
same command on every host. ``jax.distributed.initialize`` is called when
``--coordinator_address`` is given, or when the environment is a multi-process
job (SLURM with more than one task, a multi-host TPU slice); see
launch/tpu_pod.sh, launch/slurm_example.sbatch and docs/training.md.
"""

import os
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the `configs` package

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, logs and samples go.")
_DISTRIBUTED = flags.DEFINE_enum(
    "distributed", "auto", ["auto", "yes", "no"],
    "Call jax.distributed.initialize: 'auto' when a coordinator is given or the"
    " environment is a multi-process job (SLURM_NTASKS > 1, multi-host TPU).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (jax.distributed).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Total processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
_CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", -1,
    "Split the host CPU into N XLA devices and shard the batch over them (one XLA CPU"
    " device keeps only ~1.3 cores busy; 2 devices on 2 cores train ~1.3x faster)."
    " -1: the largest power of two <= min(cores, 8), unless XLA_FLAGS already sets a"
    " count; 0: leave XLA alone. Only the CPU backend is affected (GPU/TPU runs use"
    " their accelerators as usual).")
_JIT_CACHE = flags.DEFINE_string(
    "jit_cache", str(pathlib.Path.home() / ".cache" / "fans_jax" / "jit"),
    "Persistent compilation cache ('' to disable): restarts skip recompiling.")
flags.mark_flags_as_required(["config", "workdir"])


def _multi_process_environment() -> bool:
  if int(os.environ.get("SLURM_NTASKS", "1")) > 1:
    return True
  hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
  return "," in hosts


def main(argv):
  del argv
  from fans_jax.utils import host  # pylint: disable=import-outside-toplevel
  host.force_cpu_devices(_CPU_DEVICES.value)
  import jax  # pylint: disable=import-outside-toplevel  (after XLA_FLAGS)

  if _DISTRIBUTED.value == "yes" or (_DISTRIBUTED.value == "auto" and (
      _COORDINATOR.value or _multi_process_environment())):
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  if _JIT_CACHE.value:
    jax.config.update("jax_compilation_cache_dir", _JIT_CACHE.value)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  logging.info("process %d of %d, %d local devices", jax.process_index(), jax.process_count(),
               jax.local_device_count())

  from fans_jax import train  # pylint: disable=import-outside-toplevel
  from fans_jax.utils import logs  # pylint: disable=import-outside-toplevel
  logs.quiet()
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)

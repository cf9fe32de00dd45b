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
import signal
import sys

# SIGTERM outside train_and_evaluate (which handles it from its first line to its last):
# during the imports and flag parsing of a start, nothing has been written yet.
_PHASE = ["before"]


def _sigterm_outside_training(signum, frame):  # pylint: disable=unused-argument
  if _PHASE[0] != "before":  # the process is exiting already, with its own status
    sys.stderr.write("launch/train.py: SIGTERM after training returned; exiting.\n")
    return
  sys.stderr.write("launch/train.py: SIGTERM before training started: nothing was written;"
                   " exiting.\n")
  sys.stderr.flush()
  # Not SystemExit: raised inside the import of a C extension (jaxlib) it can leave a
  # half-built module whose teardown crashes the interpreter. Nothing needs cleaning up.
  os._exit(0)  # pylint: disable=protected-access


signal.signal(signal.SIGTERM, _sigterm_outside_training)  # first, before the slow imports

# pylint: disable=wrong-import-position
import ast  # noqa: E402
import pathlib  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402
# pylint: enable=wrong-import-position

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
  logs.one_line_errors()  # a failed save is reported once, below, not in every Orbax thread
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except train.Terminated:
    # SIGTERM during start-up: the library released the lock and said what is kept.
    # Exit at once: the signal may have cut an import of a C extension short (see
    # _sigterm_outside_training), and nothing is left to clean up.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # pylint: disable=protected-access
  except (FileNotFoundError, train.data.MissingPackageError) as e:
    # Missing data, file or package: the message says what to do; no traceback.
    sys.exit(f"launch/train.py: {e}")
  except train.USER_ERRORS as e:
    # A bad config value, a busy or foreign workdir, a failed save, a NaN loss: the
    # message names the value or file and what to do (traceback with --verbosity=1).
    logging.debug("traceback of the error below", exc_info=True)
    sys.exit(f"launch/train.py: {e}")
  finally:
    _PHASE[0] = "after"


def _parse_flags(argv):
  """absl's flag parsing; a config override that ml_collections cannot apply (a
  misspelt field) ends in one line naming it, not in a chain of three tracebacks."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # as absl reports it, but a config file's traceback cut short
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    text = (f"{lines[0]} {lines[-1]}" if any(line.startswith("Traceback") for line in lines)
            else str(e))
    sys.exit(f"FATAL Flags parsing error: {text}\nPass --helpshort or --helpfull to see help"
             " on flags.")
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    text = str(e.args[0] if e.args else e)
    for _ in range(3):  # ml_collections re-raises KeyError(str(KeyError(...))): unquote
      try:
        inner = ast.literal_eval(text)
      except (SyntaxError, ValueError):
        break
      if not isinstance(inner, str):
        break
      text = inner
    text = " ".join(text.split())
    overrides = [a.split("=", 1)[0] for a in argv[1:] if a.startswith("--config.")]
    named = [o for o in overrides if o.rsplit(".", 1)[-1] in text] or overrides
    sys.exit(f"launch/train.py: bad config override {', '.join(named) or '--config'}: {text}")


def _run_and_exit(fn) -> None:
  """Runs ``fn`` and exits with its status. After a failure, threads left running by a
  failed checkpoint save (Orbax) must not keep the process alive: they get 2 s (the
  library has already waited for every save it could), then the process exits without
  them."""
  code = 0
  try:
    fn()
  except SystemExit as e:
    code = e.code
  except BaseException:  # pylint: disable=broad-except  (a bug: show where)
    traceback.print_exc()
    code = 1
  if isinstance(code, str):
    sys.stderr.write(code + "\n")
    code = 1
  if code:
    deadline = time.monotonic() + 2.0
    for thread in threading.enumerate():
      if thread is not threading.main_thread() and not thread.daemon:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.main_thread()):
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(code)  # pylint: disable=protected-access
  sys.exit(code)


if __name__ == "__main__":
  _run_and_exit(lambda: app.run(main, flags_parser=_parse_flags))

"""TensorBoard event files are written and read back without TensorFlow."""

import json
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fans_jax.utils import metric_writers

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_training_writer_needs_no_tensorflow(tmp_path):
  """In a process where ``import tensorflow`` fails, the training module imports and its
  writer's event files hold what was written (read back by our reader and by the
  ``tensorboard`` package's own loader)."""
  script = textwrap.dedent(f"""
      import json, sys
      sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
      import numpy as np
      import fans_jax.train  # noqa: F401  (the loop's imports, writer included)
      from fans_jax.utils import metric_writers
      w = metric_writers.create_default_writer({str(tmp_path)!r})
      w.write_hparams({{"optim.learning_rate": "0.0002", "train.batch_size": "64"}})
      for step in (10, 20, 30):
        w.write_scalars(step, {{"loss": 1.0 / step, "learning_rate": 2e-4}})
      w.write_images(30, {{"samples": np.full((1, 6, 8, 3), 200, np.uint8)}})
      w.close()
      ev = metric_writers.read_events({str(tmp_path)!r})
      from tensorboard.backend.event_processing import event_accumulator
      acc = event_accumulator.EventAccumulator({str(tmp_path)!r}).Reload()
      print(json.dumps({{"scalars": ev.scalars, "images": ev.images, "hparams": ev.hparams,
                        "tb_loss": [(e.step, e.value) for e in acc.Scalars("loss")],
                        "tb_images": acc.Tags()["images"],
                        "modules": sorted(m for m, mod in sys.modules.items() if mod is not None
                                          and m.split(".")[0] in ("tensorflow", "clu"))}}))
  """)
  res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                       timeout=300, cwd=ROOT, check=False)
  assert res.returncode == 0, res.stderr[-3000:]
  out = json.loads(res.stdout.strip().splitlines()[-1])
  assert out["modules"] == []  # neither TensorFlow nor clu was imported
  assert [s for s, _ in out["scalars"]["loss"]] == [10, 20, 30]
  np.testing.assert_allclose([v for _, v in out["scalars"]["loss"]], [0.1, 0.05, 1 / 30],
                             rtol=1e-6)  # float32 in the file
  np.testing.assert_allclose([v for _, v in out["tb_loss"]], [0.1, 0.05, 1 / 30], rtol=1e-6)
  assert out["images"] == {"samples": [30]} and out["tb_images"] == ["samples"]
  assert out["hparams"] == {"optim.learning_rate": "0.0002", "train.batch_size": "64"}
  assert len(list(tmp_path.glob(metric_writers.EVENT_FILE_GLOB))) == 1


def test_report_progress_writes_rate_at_its_steps(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path)
  progress = metric_writers.ReportProgress(num_train_steps=12, writer=writer, every_steps=5)
  for step in range(1, 13):
    progress(step)
  writer.close()
  scalars = metric_writers.read_events(tmp_path).scalars
  assert [s for s, _ in scalars["steps_per_sec"]] == [5, 10, 12]  # and the last step
  assert all(v > 0 for _, v in scalars["steps_per_sec"])
  uptimes = [v for _, v in scalars["uptime"]]
  assert uptimes == sorted(uptimes) and uptimes[0] >= 0


def test_console_only_writer_writes_no_file(tmp_path):
  writer = metric_writers.create_default_writer(tmp_path / "run", just_logging=True)
  writer.write_scalars(1, {"loss": 1.0})
  writer.close()
  assert not (tmp_path / "run").exists()


def test_reader_checks_records(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path)
  writer.write_scalars(1, {"loss": 0.5})
  writer.write_scalars(2, {"loss": 0.25})
  writer.close()
  path = next(tmp_path.glob(metric_writers.EVENT_FILE_GLOB))
  data = path.read_bytes()
  path.write_bytes(data[:-3])  # a torn last record (a killed writer): the rest is read
  assert metric_writers.read_events(tmp_path).scalars["loss"] == [(1, 0.5)]
  broken = bytearray(data)
  broken[-6] ^= 0xFF  # a flipped bit inside the last payload
  path.write_bytes(bytes(broken))
  with pytest.raises(ValueError, match="corrupt record"):
    metric_writers.read_events(tmp_path)
  with pytest.raises(FileNotFoundError, match="no TensorBoard event files"):
    metric_writers.read_events(tmp_path / "empty")


def test_images_must_be_nhwc(tmp_path):
  writer = metric_writers.MetricWriter(tmp_path)
  with pytest.raises(ValueError, match=r"\[N, H, W, 1 or 3\]"):
    writer.write_images(0, {"x": np.zeros((4, 4, 3), np.uint8)})
  writer.write_images(0, {"gray": np.zeros((2, 4, 4, 1), np.uint8)})
  writer.close()
  assert metric_writers.read_events(tmp_path).images == {"gray": [0]}

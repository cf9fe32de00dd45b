"""benchmarks/bench_gpu.py on the CPU (--quick, tiny UNet, 16x16): the sections that
exercise the project's API (train step builder, sharded step, sampler) run and land in
the JSON, so the script is ready for the first minutes of a GPU lease. The throughput
and largest-batch sections reuse the same step builder; they are left out here to keep
CI short (each compile costs seconds on 2 cores)."""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_gpu  # noqa: E402  pylint: disable=wrong-import-position


def test_quick_run_writes_its_sections(tmp_path):
  out = tmp_path / "gpu.json"
  record = bench_gpu.main(["--quick", f"--output={out}", "--budget_s=1200",
                           "--sections=fans_overhead,sharded_equality,sampling"])
  saved = json.loads(out.read_text())
  assert list(saved["sections"]) == ["fans_overhead", "sharded_equality", "sampling"]
  for name, section in saved["sections"].items():
    assert "error" not in section and "skipped" not in section, (name, section)
  over = saved["sections"]["fans_overhead"]
  assert over["white_ms"] > 0 and over["fans_ms"] > 0
  assert len(over["blocks_ms"]["white"]) == 5
  eq = saved["sections"]["sharded_equality"]
  assert eq["passed"] and eq["moved"] > 1e-4, eq
  assert eq["losses"] == eq["losses"] and len(eq["losses"]) == 3
  assert saved["sections"]["sampling"]["ms_per_step"] > 0
  assert saved["image_size"] == 16 and record["machine"]["platform"] == "cpu"


def test_budget_skips_later_sections_and_names_are_checked(tmp_path):
  record = bench_gpu.main(["--quick", "--budget_s=0", "--sections=throughput,sampling"])
  assert all("skipped" in s for s in record["sections"].values())
  try:
    bench_gpu.main(["--quick", "--sections=throughput,nonsense"])
  except SystemExit as e:
    assert "nonsense" in str(e)
  else:
    raise AssertionError("an unknown section must stop the script")

"""benchmarks/harness.py: candidates alternate in separate processes; medians and ratios."""

import json
import pathlib
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import harness  # noqa: E402  pylint: disable=wrong-import-position


def _candidate(tmp_path, name, value):
  """A process that appends its name to a log (the order it ran in) and prints JSON."""
  log = tmp_path / "log.txt"
  code = (f"import json, os; open({str(log)!r}, 'a').write({name!r} + ' ' + str(os.getpid())"
          f" + '\\n'); print('noise'); print(json.dumps({{'x': {value}, 'label': 'a'}}))")
  return [sys.executable, "-c", code]


def test_alternating_separate_processes_medians_and_ratios(tmp_path):
  result = harness.measure({"a": _candidate(tmp_path, "a", 2.0),
                            "b": _candidate(tmp_path, "b", 1.0)}, rounds=4)
  runs = [line.split() for line in (tmp_path / "log.txt").read_text().splitlines()]
  assert [name for name, _ in runs] == ["a", "b", "b", "a", "a", "b", "b", "a"]
  assert len({pid for _, pid in runs}) == 8  # a fresh process every time
  assert result["order"] == [["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]]
  assert result["summary"]["a"]["x"] == {"median": 2.0, "min": 2.0, "max": 2.0, "n": 4}
  assert result["ratios"]["b"]["x"]["median"] == pytest.approx(0.5)
  assert "label" not in result["values"]["a"]  # only numbers are figures
  assert len(result["load"]) == 4 and set(result["load"][0]) == {"a", "b"}
  table = harness.markdown(result, "x")
  assert "| b | 1 (1 - 1) | 0.500 (0.500 - 0.500) |" in table
  json.dumps(result)  # the whole record is JSON


def test_a_failing_candidate_is_an_error(tmp_path):
  with pytest.raises(harness.CandidateError, match="exited 3"):
    harness.measure({"bad": [sys.executable, "-c", "import sys; sys.exit(3)"]}, rounds=1)
  with pytest.raises(harness.CandidateError, match="not JSON"):
    harness.measure({"bad": [sys.executable, "-c", "print('done')"]}, rounds=1)
  with pytest.raises(ValueError, match="at least one candidate"):
    harness.measure({}, rounds=1)


def test_candidate_env_reaches_only_its_candidate():
  code = "import json, os; print(json.dumps({'n': int(os.environ.get('FANS_BENCH_N', '0'))}))"
  result = harness.measure({"a": [sys.executable, "-c", code], "b": [sys.executable, "-c", code]},
                           rounds=2, env={"FANS_BENCH_N": "1"},
                           candidate_env={"b": {"FANS_BENCH_N": "7"}})
  assert result["values"]["a"]["n"] == [1.0, 1.0]
  assert result["values"]["b"]["n"] == [7.0, 7.0]
  assert result["candidate_env"] == {"b": {"FANS_BENCH_N": "7"}}


def test_record_names_no_machine_paths():
  script = str(pathlib.Path(harness.__file__).resolve())
  assert harness.portable([sys.executable, script, "--x=1"]) == [
      "python", "benchmarks/harness.py", "--x=1"]


def test_alternate_in_process_medians_ratios_and_order():
  calls = []

  def make(name, cost):
    def fn():
      calls.append(name)
      time.sleep(cost)
      return name
    return fn

  blocked = []
  result = harness.alternate({"fast": make("fast", 0.001), "slow": make("slow", 0.02)},
                             repeats=4, block=blocked.append)
  assert calls[:2] == ["fast", "slow"]  # the warm-up
  assert calls[2:] == ["fast", "slow", "slow", "fast", "fast", "slow", "slow", "fast"]
  assert len(blocked) == len(calls)  # every result was blocked on before the clock stopped
  assert result["summary"]["slow"]["s"]["n"] == 4
  secs = harness.seconds(result)
  assert secs["slow"] >= 0.02 > secs["fast"]
  assert result["ratios"]["slow"]["s"]["median"] > 2
  with pytest.raises(ValueError):
    harness.alternate({}, repeats=1)

"""benchmarks/train_steps.py: the one train step bench_train and bench_gpu both time."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))
import bench_train  # noqa: E402  pylint: disable=wrong-import-position
import model_configs  # noqa: E402  pylint: disable=wrong-import-position
import train_steps  # noqa: E402  pylint: disable=wrong-import-position


@pytest.mark.parametrize("noise", ["white", "fans"])
def test_step_trains_and_reports_its_cost(noise):
  arch = model_configs.architecture("tiny")
  run, info = train_steps.build_step(arch, batch=4, size=16, noise=noise, cost=True)
  losses = [run(1) for _ in range(3)]
  assert all(np.isfinite(losses))
  assert info["params"] == 280_755  # the :tiny UNet of configs/base.py
  assert info["flops"] > 0 and info["compile_s"] > 0


def test_unknown_noise_is_an_error():
  with pytest.raises(ValueError, match="not one of"):
    train_steps.build_step(model_configs.architecture("tiny"), batch=4, size=16, noise="pink")


def test_bench_train_child_times_the_shared_step():
  r = bench_train.run_child("framework", 1, model="tiny", framework="jax", batch=4, size=16,
                            repeats=2, timeout=600)
  assert r["params"] == 280_755
  assert r["ms_per_step"] > 0 and r["img_per_s"] == pytest.approx(4e3 / r["ms_per_step"])
  # CPU seconds per step (all threads; the `devices` section reports it beside the
  # wall clock): positive, and at most the cores' worth of the wall clock plus the
  # compile-free warm-up call's share, with a wide margin for timer granularity.
  assert 0 < r["cpu_ms_per_step"] < 4 * (os.cpu_count() or 1) * r["ms_per_step"] + 50


def test_profile_step_sums_the_trace_by_op_kind():
  import profile_step  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  out = profile_step.trace_section(batch=jax.device_count(), size=16, steps=2)
  kinds = out["ms_per_step_by_kind"]
  # The step's convolutions run as YNNPACK fusions or XLA convolutions: some kind must
  # name them, and every time is a positive duration.
  assert any(k.startswith(("ynn_fusion", "convolution")) for k in kinds), sorted(kinds)
  assert all(v > 0 for v in kinds.values()) and out["wall_ms_per_step"] > 0

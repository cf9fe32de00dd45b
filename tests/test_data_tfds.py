"""tfds code paths with tfds.testing.mock_data (no network, no TensorFlow needed), and
what a user sees without tfds or without the prepared data."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

import fans_jax.data as data
from fans_jax.data import base

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tfds_cfg(name, **kw):
  return data.with_overrides(name=name, **kw)


def test_cifar10_through_the_pipeline():
  with tfds.testing.mock_data(num_examples=24):
    src = data.get_source(tfds_cfg("cifar10", image_size=16))
    assert len(src) == 24
    raw = tfds.data_source("cifar10", split="train")[5]["image"]
    np.testing.assert_array_equal(src[5], base.area_downsample(np.asarray(raw), 2))
    its = [data.make_iterator(src, 8, seed=0, process_index=p, process_count=2)
           for p in range(2)]
    batches = [next(it) for it in its]
    assert all(b.shape == (4, 16, 16, 3) and b.dtype == np.uint8 for b in batches)
    state = its[0].get_state()
    want = next(its[0])
    its[0].set_state(state)
    np.testing.assert_array_equal(next(its[0]), want)


def test_dtd_crops_and_gray():
  with tfds.testing.mock_data(num_examples=6):
    raw = np.asarray(tfds.data_source("dtd", split="train")[2]["image"])  # odd sizes
    center = data.get_source(tfds_cfg("dtd", image_size=8))
    np.testing.assert_array_equal(center[2], base.crop_resize(raw, 8, "center", 1.0))
    rand = data.get_source(tfds_cfg("dtd", image_size=8, crop="random", crop_scale=0.8))
    e0, e1 = rand.get_batch([2], epoch=0), rand.get_batch([2], epoch=1)
    np.testing.assert_array_equal(
        e1[0], base.crop_resize(raw, 8, "random", 0.8, base.crop_rng(0, 1, 2)))
    np.testing.assert_array_equal(e0, rand.get_batch([2], epoch=0))
    gray = data.get_source(tfds_cfg("dtd", image_size=8, channels=1))
    assert gray[0].shape == (8, 8, 1)
    spec = data.dataset_spectrum(tfds_cfg("dtd", image_size=8), use_cache=False)
    assert spec.count == 6 and spec.psd.shape == (8, 5)


def test_generic_tfds_and_exact_policy():
  with tfds.testing.mock_data(num_examples=4):
    src = data.get_source(tfds_cfg("tfds", tfds_name="mnist", image_size=28, channels=1))
    assert src[0].shape == (28, 28, 1) and src.name == "tfds_mnist"
    exact = data.get_source(tfds_cfg("dtd", image_size=8, size_policy="exact"))
    with pytest.raises(ValueError, match="size_policy='exact'"):
      exact[0]


def test_unprepared_dataset_names_offline_alternative(tmp_path):
  for name, alt in (("cifar10", "cifar10_local"), ("dtd", "dtd_local")):
    with pytest.raises(FileNotFoundError, match=alt):
      data.get_source(tfds_cfg(name, tfds_data_dir=str(tmp_path)))
  with pytest.raises(ValueError, match="tfds_name"):
    data.get_source(tfds_cfg("tfds"))


def test_missing_tfds_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # as if not installed
  with pytest.raises(data.MissingPackageError, match=r"cifar10_local.*fans_jax\[tfds\]"):
    data.get_source(tfds_cfg("cifar10"))


def test_train_without_prepared_data_stops_first_and_writes_nothing(tmp_path):
  """launch/train.py on the tfds config without the data: one short message that starts
  with the dataset and its fix, no traceback, and no workdir."""
  workdir = tmp_path / "run"
  cmd = [sys.executable, str(ROOT / "launch" / "train.py"), "--config=configs/cifar_fans.py",
         f"--workdir={workdir}", f"--config.data.tfds_data_dir={tmp_path / 'no_tfds'}",
         "--jit_cache="]
  res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
  assert res.returncode == 1, res.stderr[-3000:]
  last = res.stderr.strip().splitlines()[-1]
  assert last.startswith("launch/train.py: tfds dataset 'cifar10' (split 'train') is not"
                         " prepared"), last
  assert "name='cifar10_local'" in last and "fans_jax[tfds]" in last
  assert "Traceback" not in res.stderr and len(res.stderr.splitlines()) < 10, res.stderr
  assert not workdir.exists()

"""Multimodal Universe cutouts from local HDF5 and parquet files."""

import sys

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fans_jax.data as data
from fans_jax.data import multimodal_universe as mmu

BANDS = ["DES-G", "DES-R", "DES-I", "DES-Z"]


def write_hdf5(path, flux):
  path.parent.mkdir(parents=True, exist_ok=True)
  with h5py.File(path, "w") as f:
    f["image_array"] = flux
    f["image_band"] = np.array([[b.encode() for b in BANDS]] * len(flux))


def mmu_cfg(path, **kw):
  return data.with_overrides(name="mmu", path=str(path), **{"image_size": 8, **kw})


def expected_uint8(flux, s=0.1, lo=-0.05, hi=50.0):
  y = np.arcsinh(np.clip(flux, lo, hi) / s)
  return np.floor((y - np.arcsinh(lo / s)) / (np.arcsinh(hi / s) - np.arcsinh(lo / s)) * 255
                  + 0.5).astype(np.uint8)


def test_hdf5_and_parquet_bands_stretch_and_resize(tmp_path):
  rng = np.random.default_rng(0)
  flux = rng.lognormal(-2, 1.5, (3, 4, 16, 16)).astype(np.float32) - 0.1
  write_hdf5(tmp_path / "healpix=1" / "001-of-001.hdf5", flux)
  rows = [{"band": BANDS, "flux": f.tolist()} for f in flux[:2]]
  pq.write_table(pa.table({"image": rows}), tmp_path / "z.parquet")
  src = data.get_source(mmu_cfg(tmp_path, mmu_bands="g,r,z"))
  assert len(src) == 5 and src.band_names == ["DES-G", "DES-R", "DES-Z"]
  # Area-average 16 -> 8 in flux space, then clip and stretch.
  binned = flux[:, [0, 1, 3]].reshape(3, 3, 8, 2, 8, 2).mean(axis=(3, 5))
  want = expected_uint8(np.moveaxis(binned, 1, -1))
  np.testing.assert_array_equal(src.get_batch(range(3)), want)
  np.testing.assert_array_equal(src.get_batch([3, 4]), want[:2])  # parquet rows
  by_index = data.get_source(mmu_cfg(tmp_path, mmu_bands="0,1,3"))
  np.testing.assert_array_equal(by_index.get_batch(range(5)), src.get_batch(range(5)))


def test_nonfinite_objects_are_skipped_or_raise(tmp_path):
  flux = np.ones((3, 4, 8, 8), np.float32)
  flux[1, 2, 3, 3] = np.nan
  write_hdf5(tmp_path / "a.hdf5", flux)
  src = data.get_source(mmu_cfg(tmp_path, mmu_bands="g,i,z"))  # band i holds the NaN
  assert len(src) == 2 and src.skipped == [f"{tmp_path / 'a.hdf5'}[1]"]
  assert len(data.get_source(mmu_cfg(tmp_path, mmu_bands="g,r,z"))) == 3  # not selected
  with pytest.raises(ValueError, match="non-finite"):
    data.get_source(mmu_cfg(tmp_path, mmu_bands="g,i,z", on_corrupt="error"))


def test_mmu_bad_input(tmp_path):
  write_hdf5(tmp_path / "a.hdf5", np.ones((2, 4, 8, 8), np.float32))
  with pytest.raises(ValueError, match="hub"):
    data.get_source(data.with_overrides(name="mmu"))
  with pytest.raises(FileNotFoundError):
    data.get_source(mmu_cfg(tmp_path / "missing"))
  with pytest.raises(ValueError, match="matches 0"):
    data.get_source(mmu_cfg(tmp_path, mmu_bands="g,r,u"))
  with pytest.raises(ValueError, match="names 2 bands"):
    data.get_source(mmu_cfg(tmp_path, mmu_bands="g,r"))
  with pytest.raises(ValueError, match="crop='center'"):
    data.get_source(mmu_cfg(tmp_path, crop="random"))
  with pytest.raises(ValueError, match="no dataset 'flux'"):
    data.get_source(mmu_cfg(tmp_path, mmu_image_key="flux"))
  with pytest.raises(ValueError, match="mmu_flux_range"):
    data.get_source(mmu_cfg(tmp_path, mmu_flux_range=(1.0, 0.0)))


def test_stretch_is_monotone_and_clips():
  f = np.array([-1.0, -0.05, 0.0, 0.1, 1.0, 50.0, 1e4])
  u = mmu.stretch(f, 0.1, (-0.05, 50.0))
  assert u[0] == u[1] == 0 and u[-1] == u[-2] == 255 and np.all(np.diff(u.astype(int)) >= 0)


@pytest.mark.parametrize("module", ["h5py", "pyarrow"])
def test_missing_reader_names_the_extra(tmp_path, monkeypatch, module):
  write_hdf5(tmp_path / "a.hdf5", np.ones((2, 4, 8, 8), np.float32))
  pq.write_table(pa.table({"image": [{"band": BANDS, "flux": np.ones((4, 8, 8)).tolist()}]}),
                 tmp_path / "b.parquet")
  monkeypatch.setitem(sys.modules, module, None)  # as if not installed
  with pytest.raises(data.MissingPackageError, match=rf"'{module}'.*fans_jax\[mmu\]"):
    data.get_source(mmu_cfg(tmp_path))

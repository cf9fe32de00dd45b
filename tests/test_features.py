"""Feature networks: the ResNet-20 port (accuracy), Inception-v3 (architecture, loading,
missing weights), image conversion and cached reference features.

The Inception test uses random weights and checks shapes, weight names and plumbing
only: the real weights cannot be downloaded here. (Its numerics were checked once
against pytorch-fid with shared random weights, see docs/evaluation.md.)
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fans_jax.metrics import features, frechet, inception, reference, resnet20


@pytest.fixture(scope="module")
def cifar_test(shared_data_dir):
  with np.load(shared_data_dir / "cifar10_test_uint8.npz") as data:
    return data["images"], data["labels"]


@pytest.fixture(scope="module")
def resnet(shared_data_dir):
  return features.get_feature_network("resnet20_cifar10",
                                      str(shared_data_dir / resnet20.WEIGHTS_FILE))


def test_resnet20_accuracy_on_shared_cifar_test_set(cifar_test, resnet):
  # All 10000 images (~15 s on 2 cores). The shared data's README states 81.0% for a
  # NumPy forward pass of the same weights on this JPEG-damaged test set; float32
  # convolutions in another order flip at most a handful of borderline images,
  # so +-0.3% (30 images).
  images, labels = cifar_test
  fn, state = features.make_apply(resnet.module, "__call__")
  logits = features.batched_apply(fn, state, images, batch_size=500)
  accuracy = float(np.mean(np.argmax(logits, axis=1) == labels))
  assert abs(accuracy - 0.810) <= 0.003, accuracy


def test_resnet20_features_and_frechet_distance(cifar_test, resnet, shared_data_dir):
  images, _ = cifar_test
  with np.load(shared_data_dir / "cifar10_train10k_uint8.npz") as data:
    train = data["images"][::5]  # 2000 images, 200 per class
  test = images[:2000]
  f_test, f_train = resnet(test), resnet(train)
  assert f_test.shape == (2000, resnet20.FEATURE_DIM) and resnet.metric_name == "FD-ResNet20"
  # Pooled after a ReLU: features are non-negative.
  assert f_test.min() >= 0
  stats_test = frechet.feature_statistics(f_test, resnet.name)
  stats_train = frechet.feature_statistics(f_train, resnet.name)
  fd_real = frechet.frechet_distance(stats_test, stats_train)
  # Degrading the images moves the distance the right way: 4x4 block averaging (a
  # strong blur) of the train images puts them farther from the test images than the
  # train images themselves.
  blurred = np.repeat(np.repeat(
      train.reshape(-1, 8, 4, 8, 4, 3).mean(axis=(2, 4)), 4, axis=1), 4, axis=2)
  fd_blur = frechet.frechet_distance(
      stats_test, frechet.feature_statistics(resnet(blurred.round().astype(np.uint8))))
  assert 0 < fd_real < fd_blur
  assert frechet.frechet_distance(stats_test, stats_test) < 1e-8
  with pytest.raises(ValueError, match=r"takes images of shape \[\(32, 32, 3\)\]"):
    resnet(np.zeros((2, 64, 64, 3), np.uint8))


def test_resnet20_missing_or_damaged_weights(tmp_path, shared_data_dir):
  with pytest.raises(FileNotFoundError, match="FANS_DATA_DIR"):
    resnet20.load_resnet20(str(tmp_path / resnet20.WEIGHTS_FILE))
  state = features.read_npz(shared_data_dir / resnet20.WEIGHTS_FILE)
  del state["layer3.2.bn2.running_var"]
  bad = tmp_path / "bad.npz"
  np.savez(bad, **state)
  with pytest.raises(ValueError, match=r"1 missing \['layer3.2.bn2.running_var'\]"):
    resnet20.load_resnet20(str(bad))


def _random_torch_state(module_fn, seed=0):
  """Random weights under the PyTorch names and shapes the module expects."""
  shapes = features.torch_state_shapes(nnx.eval_shape(module_fn))
  rng = np.random.default_rng(seed)
  state = {}
  for key, shape in shapes.items():
    if key.endswith("conv.weight"):
      state[key] = rng.normal(size=shape) * np.sqrt(2.0 / np.prod(shape[1:]))
    elif key.endswith("running_var"):
      state[key] = 1.0 + 0.1 * np.abs(rng.normal(size=shape))
    elif key.endswith("bn.weight"):
      state[key] = 1.0 + 0.1 * rng.normal(size=shape)
    else:
      state[key] = 0.1 * rng.normal(size=shape)
  return {k: v.astype(np.float32) for k, v in state.items()}


def test_inception_architecture_names_and_shapes():
  model = nnx.eval_shape(lambda: inception.InceptionV3(rngs=nnx.Rngs(0)))
  shapes = features.torch_state_shapes(model)
  # Names and shapes of pytorch-fid's FID Inception state dict (torchvision's
  # Inception3 with num_classes=1008, no aux head): a few from each stage.
  assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
  assert shapes["Conv2d_4a_3x3.bn.running_var"] == (192,)
  assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
  assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
  assert shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
  assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
  assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
  assert shapes["fc.weight"] == (1008, 2048)
  # 94 conv+BN layers (5 BN arrays each) plus fc weight and bias.
  assert len(shapes) == 94 * 5 + 2
  graphdef, state = nnx.split(model)
  for size in (32, 299, 512):
    out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s).features(x), state,
                         jax.ShapeDtypeStruct((2, size, size, 3), jnp.uint8))
    assert out.shape == (2, inception.FEATURE_DIM)


def test_inception_loads_npz_and_runs(tmp_path):
  # Random weights: checks loading and the forward pass, not the values of FID.
  state = _random_torch_state(lambda: inception.InceptionV3(rngs=nnx.Rngs(0)))
  path = tmp_path / "incep.npz"
  np.savez(path, **state)
  net = inception.inception_feature_network(str(path))
  assert net.metric_name == "FID"
  model = net.module
  np.testing.assert_array_equal(  # OIHW -> HWIO
      np.asarray(model.Mixed_6b.branch7x7_2.conv.kernel[...]),
      np.transpose(state["Mixed_6b.branch7x7_2.conv.weight"], (2, 3, 1, 0)))
  images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), np.uint8)
  f = net(images, batch_size=4)  # padded to the batch size, then cut
  assert f.shape == (3, 2048) and np.all(np.isfinite(f)) and f.std() > 0
  np.testing.assert_allclose(net(images[:1], batch_size=4)[0], f[0], rtol=1e-5, atol=1e-6)


def test_inception_missing_weights_says_where(tmp_path, monkeypatch):
  target = tmp_path / "nowhere" / "pt_inception.npz"
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(target))
  assert inception.default_weights_path() == str(target)
  with pytest.raises(FileNotFoundError) as err:
    features.get_feature_network("inception_v3")
  msg = str(err.value)
  assert str(target) in msg and "convert" in msg and inception.WEIGHTS_ENV in msg
  with pytest.raises(ValueError, match="not one of"):
    features.get_feature_network("vgg")


def test_resize_matches_pytorch_bilinear_align_corners_false():
  # NumPy transcription of PyTorch's upsample_bilinear2d (align_corners=False):
  # src = max((dst + 0.5) * in / out - 0.5, 0), neighbours clamped at the last pixel.
  def torch_resize_1d(x, out):
    n = x.shape[0]
    scale = n / out
    res = np.empty((out,) + x.shape[1:])
    for i in range(out):
      src = max((i + 0.5) * scale - 0.5, 0.0)
      i0 = min(int(np.floor(src)), n - 1)
      i1 = min(i0 + 1, n - 1)
      lam = src - i0
      res[i] = (1 - lam) * x[i0] + lam * x[i1]
    return res

  rng = np.random.default_rng(0)
  for n, out in ((5, 13), (13, 5), (7, 7 * 3)):
    img = rng.uniform(size=(n, n, 2)).astype(np.float32)
    ref = torch_resize_1d(np.moveaxis(torch_resize_1d(img, out), 0, 1), out)
    ref = np.moveaxis(ref, 0, 1)
    ours = np.asarray(inception.resize_bilinear(jnp.asarray(img[None]), out))[0]
    np.testing.assert_allclose(ours, ref, atol=2e-6)


def test_image_conversions():
  u = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
  np.testing.assert_array_equal(features.images_to_uint8(features.images_to_float(u)), u)
  x = np.array([-1.5, -1.0, 0.0, 1.0, 2.0], np.float32).reshape(1, 1, 5, 1)
  np.testing.assert_array_equal(features.images_to_uint8(x).ravel(), [0, 0, 128, 255, 255])
  with pytest.raises(ValueError, match="non-finite"):
    features.images_to_uint8(np.full((1, 2, 2, 3), np.nan, np.float32))
  with pytest.raises(ValueError, match="uint8 or float"):
    features.images_to_uint8(np.zeros((1, 2, 2, 3), np.int32))


def test_reference_features_are_cached(tmp_path, resnet, cifar_test):
  images, _ = cifar_test
  calls = []

  def load():
    calls.append(1)
    return images[:100]

  kwargs = dict(name="cifar10_local", dataset={"split": "test"}, num_images=100,
                image_shape=(32, 32, 3), cache_dir=tmp_path)
  first = reference.reference_features(resnet, load, **kwargs)
  second = reference.reference_features(resnet, load, **kwargs)
  assert len(calls) == 1 and first.path == second.path and first.path.exists()
  np.testing.assert_array_equal(first.features, second.features)
  np.testing.assert_allclose(second.stats.sigma, np.cov(first.features.astype(np.float64),
                                                        rowvar=False), rtol=1e-10)
  with np.load(first.path) as data:
    key = json.loads(str(data["cache_key"]))
  assert key["network"] == "resnet20_cifar10" and key["weights_sha256"] == resnet20.WEIGHTS_SHA256
  # Another dataset description is another cache entry.
  reference.reference_features(resnet, load, **{**kwargs, "dataset": {"split": "train"}})
  assert len(calls) == 2 and len(os.listdir(tmp_path)) == 2

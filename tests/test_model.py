"""The UNet: Ho et al.'s parameter count, shapes, time embedding, dropout, dtypes."""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from fans_jax import models
from fans_jax.models import unet

CIFAR = dict(name="unet", channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
             attention_resolutions=(16,), dropout=0.1)
TINY = dict(name="unet", channels=16, channel_mult=(1, 2), num_res_blocks=1,
            attention_resolutions=(8,), dropout=0.1, num_groups=8)


def make_cfg(**kw):
  return ml_collections.ConfigDict(kw)


def reference_param_count(ch, mult, num_res_blocks, attn_res, image_size, in_ch=3,
                          resample_with_conv=True):
  """Parameters of Ho et al.'s UNet, counted layer by layer from their model.py."""
  conv3 = lambda i, o: 9 * i * o + o  # noqa: E731
  dense = lambda i, o: i * o + o  # noqa: E731
  gn = lambda c: 2 * c  # noqa: E731
  temb = 4 * ch

  def res(i, o):
    return gn(i) + conv3(i, o) + dense(temb, o) + gn(o) + conv3(o, o) + (dense(i, o) if i != o else 0)

  def attn(c):
    return gn(c) + 4 * dense(c, c)  # q, k, v, proj_out (NIN layers)

  n = dense(ch, temb) + dense(temb, temb) + conv3(in_ch, ch)
  skips, width = [ch], ch
  for level, m in enumerate(mult):
    size = image_size // 2**level
    for _ in range(num_res_blocks):
      n += res(width, ch * m)
      width = ch * m
      n += attn(width) if size in attn_res else 0
      skips.append(width)
    if level != len(mult) - 1:
      n += conv3(width, width) if resample_with_conv else 0
      skips.append(width)
  n += 2 * res(width, width) + attn(width)
  for level in reversed(range(len(mult))):
    size = image_size // 2**level
    for _ in range(num_res_blocks + 1):
      n += res(width + skips.pop(), ch * mult[level])
      width = ch * mult[level]
      n += attn(width) if size in attn_res else 0
    if level != 0:
      n += conv3(width, width) if resample_with_conv else 0
  return n + gn(width) + conv3(width, in_ch)


def abstract_model(cfg, shape=(32, 32, 3)):
  return nnx.eval_shape(lambda: models.get_model(cfg, shape, nnx.Rngs(0)))


def test_cifar_unet_has_ho_et_al_parameter_count():
  model = abstract_model(make_cfg(**CIFAR))  # shapes only, nothing allocated
  n = models.count_params(model)
  assert n == reference_param_count(128, (1, 2, 2, 2), 2, (16,), 32)
  assert round(n / 1e6, 1) == 35.7  # "35.7M" in Ho et al. (2020), Table/appendix B


@pytest.mark.parametrize("kw,shape", [
    (TINY, (16, 16, 3)),
    (dict(TINY, channel_mult=(1, 2, 2), attention_resolutions=(4, 8)), (16, 32, 1)),
    (dict(TINY, num_res_blocks=2, attention_resolutions=(), resample_with_conv=False),
     (8, 8, 2)),
])
def test_param_count_matches_reference_for_other_sizes(kw, shape):
  model = abstract_model(make_cfg(**kw), shape)
  assert models.count_params(model) == reference_param_count(
      kw["channels"], kw["channel_mult"], kw["num_res_blocks"], kw["attention_resolutions"],
      shape[0], shape[2], kw.get("resample_with_conv", True))


def randomized(graphdef, params, scale=0.05, seed=1):
  """The parameters, every one perturbed (the zero-initialised output layers would
  otherwise make every output 0)."""
  @jax.jit
  def perturb(params):
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [p + scale * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)]
    return jax.tree.unflatten(treedef, leaves)

  return graphdef, perturb(params)


@pytest.fixture(scope="module")
def tiny():
  graphdef, params = randomized(*models.init(make_cfg(**TINY), (16, 16, 3), jax.random.key(0)))

  @functools.partial(jax.jit, static_argnames="train")
  def apply(params, x, t, key=None, train=False):
    return nnx.merge(graphdef, params)(x, t, train=train, rngs=key)

  return apply, params


def apply_jit(graphdef, params, x, t):
  return jax.jit(lambda p, x, t: nnx.merge(graphdef, p)(x, t))(params, x, t)


def test_output_shape_dtype_and_zero_init():
  graphdef, params = models.init(make_cfg(**TINY), (16, 16, 3), jax.random.key(0))
  x = jnp.ones((2, 16, 16, 3))
  out = apply_jit(graphdef, params, x, jnp.array([0, 999]))
  assert out.shape == (2, 16, 16, 3) and out.dtype == jnp.float32
  assert float(jnp.max(jnp.abs(out))) == 0.0  # DDPM zero-initialises the output conv


def test_examples_are_independent_and_t_matters(tiny):
  apply, params = tiny
  x = jax.random.normal(jax.random.key(0), (4, 16, 16, 3))
  t = jnp.array([0, 10, 500, 999])
  out = apply(params, x, t)
  alone = apply(params, x[1:2], t[1:2])
  np.testing.assert_allclose(out[1:2], alone, rtol=1e-4, atol=1e-5)  # GroupNorm is per example
  other_t = apply(params, x, jnp.array([999, 10, 500, 0]))
  assert float(jnp.mean(jnp.abs(other_t[0] - out[0]))) > 1e-3


def test_dropout_is_keyed_and_off_at_eval(tiny):
  apply, params = tiny
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  t = jnp.array([3, 700])
  eval_a, eval_b = apply(params, x, t), apply(params, x, t)
  np.testing.assert_array_equal(eval_a, eval_b)
  k1, k2 = jax.random.key(1), jax.random.key(2)
  train_1 = apply(params, x, t, k1, True)
  np.testing.assert_array_equal(train_1, apply(params, x, t, k1, True))
  assert float(jnp.mean(jnp.abs(train_1 - apply(params, x, t, k2, True)))) > 1e-4
  assert float(jnp.mean(jnp.abs(train_1 - eval_a))) > 1e-4


def test_timestep_embedding_matches_ho_formula():
  t = np.array([0, 1, 17, 999])
  dim = 32
  half = dim // 2
  freqs = np.exp(-math.log(10000) * np.arange(half) / (half - 1))
  ref = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], axis=1)
  # float32 arguments up to 999 rad: rounding of t * w is ~6e-5 absolute.
  np.testing.assert_allclose(unet.timestep_embedding(jnp.asarray(t), dim), ref, atol=2e-4)


def test_bfloat16_compute_is_close_to_float32():
  cfg32 = make_cfg(**TINY)
  cfg16 = make_cfg(**dict(TINY, dtype="bfloat16"))
  graphdef32, params = randomized(*models.init(cfg32, (16, 16, 3), jax.random.key(0)))
  graphdef16, params16 = models.init(cfg16, (16, 16, 3), jax.random.key(0))
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params16))  # params stay f32
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  t = jnp.array([5, 600])
  out32 = apply_jit(graphdef32, params, x, t)
  out16 = apply_jit(graphdef16, params, x, t)
  assert out16.dtype == jnp.float32
  # bfloat16 keeps 8 mantissa bits (relative rounding 2^-9 ~ 2e-3 per op); a few
  # dozen layers accumulate to ~1e-2 relative, far below the output scale.
  rel = float(jnp.linalg.norm(out16 - out32) / jnp.linalg.norm(out32))
  assert 0 < rel < 5e-2


@pytest.mark.parametrize("change,match", [
    (dict(attention_resolutions=(12,)), "not a resolution"),
    (dict(num_groups=5), "num_groups=5"),
    (dict(channel_mult=(1, 2, 2, 2, 2, 2)), "multiples of 32"),
    (dict(dropout=1.0), "dropout"),
    (dict(dtype="float8"), "dtype"),
])
def test_bad_sizes_raise_one_clear_error(change, match):
  with pytest.raises(ValueError, match=match):
    abstract_model(make_cfg(**dict(TINY, **change)), (16, 16, 3))


def test_unknown_model_name_or_key():
  with pytest.raises(ValueError, match="not one of"):
    abstract_model(make_cfg(**dict(TINY, name="resnet")))
  with pytest.raises(ValueError, match="did you mean 'num_res_blocks'"):
    abstract_model(make_cfg(**dict(TINY, num_res_block=2)))


def test_wrong_input_shape_raises():
  graphdef, params = models.init(make_cfg(**TINY), (16, 16, 3), jax.random.key(0))
  with pytest.raises(ValueError, match="expected"):
    apply_jit(graphdef, params, jnp.ones((2, 16, 16, 1)), jnp.zeros((2,), jnp.int32))

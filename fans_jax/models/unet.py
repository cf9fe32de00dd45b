"""The DDPM UNet (Ho et al. 2020, ``diffusion_tf/models/unet.py``) in Flax NNX.

A standard denoiser that knows nothing about FANS: ``(x [B, H, W, C], t [B] int)
-> [B, H, W, C]``. Every size comes from :class:`UNetConfig`; the CIFAR-10 values
(``channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
attention_resolutions=(16,), dropout=0.1``) give Ho et al.'s 35.7M parameters.

Structure (as in the reference implementation):

* sinusoidal embedding of ``t`` -> Dense(4ch) -> swish -> Dense(4ch);
* a 3x3 input conv, then per resolution level ``num_res_blocks`` residual blocks
  (GroupNorm, swish, conv, + Dense(time), GroupNorm, swish, dropout, conv; a 1x1
  shortcut when the width changes), self-attention after each block at the
  resolutions in ``attention_resolutions``, and a strided 3x3 conv down-sampler;
* a middle of residual block, attention, residual block;
* the mirror-image up path with ``num_res_blocks + 1`` blocks per level, each fed the
  matching skip activation (concatenated on channels), nearest-neighbour up-sampling
  followed by a 3x3 conv;
* GroupNorm, swish and a zero-initialised 3x3 output conv.

Layout is NHWC throughout (the native layout of XLA on CPU, GPU and TPU). ``dtype``
sets the compute dtype (``bfloat16`` for mixed precision); parameters stay float32,
normalisation statistics, the softmax and the output are float32.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import nnx

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class UNetConfig:
  """Sizes of the UNet.

  Attributes:
    channels: base width ``ch``; level ``i`` has ``ch * channel_mult[i]`` channels.
    channel_mult: width multipliers, one per resolution level (the image is halved
      ``len(channel_mult) - 1`` times).
    num_res_blocks: residual blocks per level on the way down (``+1`` on the way up).
    attention_resolutions: spatial sizes (in pixels, e.g. ``(16,)``) at which a
      self-attention block follows each residual block.
    dropout: dropout rate inside residual blocks (training only).
    num_groups: GroupNorm groups (32 in DDPM; must divide every width).
    num_heads: attention heads (1 in DDPM; the parameter count does not change).
    resample_with_conv: 3x3 convs in the down/up-samplers (DDPM: True).
    dtype: compute dtype, ``float32`` or ``bfloat16``.
    out_channels: output channels; ``None`` means the input's.
  """
  channels: int = 128
  channel_mult: tuple[int, ...] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attention_resolutions: tuple[int, ...] = (16,)
  dropout: float = 0.1
  num_groups: int = 32
  num_heads: int = 1
  resample_with_conv: bool = True
  dtype: str = "float32"
  out_channels: int | None = None

  def check(self, image_shape: tuple[int, int, int]) -> None:
    """Raises a ValueError if these sizes cannot build a UNet for ``image_shape``."""
    height, width, _ = image_shape
    levels = len(self.channel_mult)
    if self.channels < 1 or levels < 1 or any(m < 1 for m in self.channel_mult):
      raise ValueError(f"channels={self.channels} and channel_mult={self.channel_mult} must be"
                       " positive (at least one level).")
    if self.num_res_blocks < 1:
      raise ValueError(f"num_res_blocks={self.num_res_blocks} must be >= 1.")
    factor = 2 ** (levels - 1)
    if height % factor or width % factor:
      raise ValueError(f"a UNet with {levels} levels halves the image {levels - 1} times, so"
                       f" H and W must be multiples of {factor}; got {height}x{width}.")
    widths = {self.channels * m for m in self.channel_mult}
    bad = sorted(w for w in widths if w % self.num_groups)
    if bad:
      raise ValueError(f"num_groups={self.num_groups} must divide every level's width;"
                       f" {bad} are not multiples of it (widths {sorted(widths)}).")
    sizes = [height // 2**i for i in range(levels)]
    stray = sorted(set(self.attention_resolutions) - set(sizes))
    if stray:
      raise ValueError(f"attention_resolutions={self.attention_resolutions}: {stray} is not a"
                       f" resolution of this UNet; for {height}x{width} images with {levels}"
                       f" levels the resolutions are {sizes}.")
    attn_widths = [self.channels * m for m, s in zip(self.channel_mult, sizes)
                   if s in self.attention_resolutions]
    attn_widths.append(self.channels * self.channel_mult[-1])  # the middle block
    if any(w % self.num_heads for w in attn_widths):
      raise ValueError(f"num_heads={self.num_heads} must divide the widths at which attention"
                       f" runs ({sorted(set(attn_widths))}).")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout={self.dropout} must lie in [0, 1).")
    if self.dtype not in DTYPES:
      raise ValueError(f"dtype={self.dtype!r} is not one of {sorted(DTYPES)}.")


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
  """Sinusoidal embedding of integer timesteps (Ho et al.'s ``get_timestep_embedding``).

  Args:
    t: ``[B]`` timesteps (any numeric dtype).
    dim: embedding size (even).
  Returns:
    ``[B, dim]`` float32: ``sin(t w_i)`` then ``cos(t w_i)``,
    ``w_i = max_period^(-i / (dim/2 - 1))``.
  """
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
  args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def _default_init(scale: float = 1.0):
  """DDPM's initialiser: variance scaling, fan average, uniform. Scale 0 gives zeros."""
  if scale == 0.0:
    return nnx.initializers.zeros_init()
  return nnx.initializers.variance_scaling(scale, "fan_avg", "uniform")


def _conv(cin: int, cout: int, rngs: nnx.Rngs, dtype, kernel: int = 3, stride: int = 1,
          scale: float = 1.0) -> nnx.Conv:
  return nnx.Conv(cin, cout, (kernel, kernel), strides=stride, padding="SAME", dtype=dtype,
                  kernel_init=_default_init(scale), rngs=rngs)


def _dense(cin: int, cout: int, rngs: nnx.Rngs, dtype, scale: float = 1.0) -> nnx.Linear:
  return nnx.Linear(cin, cout, dtype=dtype, kernel_init=_default_init(scale), rngs=rngs)


class GroupNorm(nnx.Module):
  """GroupNorm whose statistics are computed in float32 whatever the input dtype."""

  def __init__(self, channels: int, num_groups: int, rngs: nnx.Rngs):
    self.norm = nnx.GroupNorm(channels, num_groups=num_groups, epsilon=1e-6,
                              dtype=jnp.float32, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.norm(x.astype(jnp.float32)).astype(x.dtype)


class ResBlock(nnx.Module):
  """Residual block with a time-embedding bias: ``[B, H, W, cin] -> [B, H, W, cout]``."""

  def __init__(self, cin: int, cout: int, temb_dim: int, cfg: UNetConfig, rngs: nnx.Rngs):
    dtype = DTYPES[cfg.dtype]
    self.norm1 = GroupNorm(cin, cfg.num_groups, rngs)
    self.conv1 = _conv(cin, cout, rngs, dtype)
    self.temb_proj = _dense(temb_dim, cout, rngs, dtype)
    self.norm2 = GroupNorm(cout, cfg.num_groups, rngs)
    self.dropout = nnx.Dropout(cfg.dropout)
    self.conv2 = _conv(cout, cout, rngs, dtype, scale=0.0)
    self.shortcut = _dense(cin, cout, rngs, dtype) if cin != cout else None

  def __call__(self, x: jax.Array, temb: jax.Array, *, train: bool,
               rngs: jax.Array | None) -> jax.Array:
    h = self.conv1(nnx.swish(self.norm1(x)))
    h = h + self.temb_proj(nnx.swish(temb))[:, None, None, :]
    h = nnx.swish(self.norm2(h))
    h = self.dropout(h, deterministic=not train, rngs=rngs)
    h = self.conv2(h)
    if self.shortcut is not None:
      x = self.shortcut(x)
    return x + h


class AttnBlock(nnx.Module):
  """Self-attention over the ``H * W`` positions: ``[B, H, W, C] -> [B, H, W, C]``."""

  def __init__(self, channels: int, cfg: UNetConfig, rngs: nnx.Rngs):
    dtype = DTYPES[cfg.dtype]
    self.num_heads = cfg.num_heads
    self.norm = GroupNorm(channels, cfg.num_groups, rngs)
    self.qkv = _dense(channels, 3 * channels, rngs, dtype)
    self.proj_out = _dense(channels, channels, rngs, dtype, scale=0.0)

  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    qkv = self.qkv(self.norm(x)).reshape(b, h * w, 3, self.num_heads, c // self.num_heads)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [B, L, heads, head_dim]
    logits = jnp.einsum("bqnd,bknd->bnqk", q, k).astype(jnp.float32)
    weights = jax.nn.softmax(logits / math.sqrt(c // self.num_heads), axis=-1)
    out = jnp.einsum("bnqk,bknd->bqnd", weights.astype(v.dtype), v).reshape(b, h, w, c)
    return x + self.proj_out(out)


class Downsample(nnx.Module):
  """Halves H and W: a strided 3x3 conv (or 2x2 average pooling)."""

  def __init__(self, channels: int, cfg: UNetConfig, rngs: nnx.Rngs):
    self.conv = (_conv(channels, channels, rngs, DTYPES[cfg.dtype], stride=2)
                 if cfg.resample_with_conv else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.conv is not None:
      return self.conv(x)
    return nnx.avg_pool(x, (2, 2), strides=(2, 2))


class Upsample(nnx.Module):
  """Doubles H and W: nearest neighbour, then (optionally) a 3x3 conv."""

  def __init__(self, channels: int, cfg: UNetConfig, rngs: nnx.Rngs):
    self.conv = (_conv(channels, channels, rngs, DTYPES[cfg.dtype])
                 if cfg.resample_with_conv else None)

  def __call__(self, x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, h, 2, w, 2, c)).reshape(b, 2 * h, 2 * w, c)
    return self.conv(x) if self.conv is not None else x


class Level(nnx.Module):
  """The residual (and attention) blocks of one resolution level, in order."""

  def __init__(self, blocks: list[ResBlock], attns: list[AttnBlock | None]):
    self.blocks = nnx.List(blocks)
    self.attns = nnx.List(attns)


class UNet(nnx.Module):
  """The DDPM UNet; see the module docstring.

  Args:
    cfg: sizes.
    image_shape: ``(H, W, C)`` of the inputs.
    rngs: parameter initialisation keys (``nnx.Rngs(params=...)``).
  """

  def __init__(self, cfg: UNetConfig, image_shape: tuple[int, int, int], *, rngs: nnx.Rngs):
    cfg.check(tuple(image_shape))
    self.cfg = cfg
    self.image_shape = tuple(int(s) for s in image_shape)
    height, _, in_ch = self.image_shape
    dtype = DTYPES[cfg.dtype]
    ch = cfg.channels
    temb_dim = 4 * ch
    self.temb_dense0 = _dense(ch, temb_dim, rngs, dtype)
    self.temb_dense1 = _dense(temb_dim, temb_dim, rngs, dtype)
    self.conv_in = _conv(in_ch, ch, rngs, dtype)

    def attn_or_none(width, size):
      return AttnBlock(width, cfg, rngs) if size in cfg.attention_resolutions else None

    # Down path: remember the widths of the skip activations.
    skips = [ch]
    width = ch
    down, downsamplers = [], []
    for level, mult in enumerate(cfg.channel_mult):
      size = height // 2**level
      blocks, attns = [], []
      for _ in range(cfg.num_res_blocks):
        blocks.append(ResBlock(width, ch * mult, temb_dim, cfg, rngs))
        width = ch * mult
        attns.append(attn_or_none(width, size))
        skips.append(width)
      down.append(Level(blocks, attns))
      if level != len(cfg.channel_mult) - 1:
        downsamplers.append(Downsample(width, cfg, rngs))
        skips.append(width)
    self.down = nnx.List(down)
    self.downsamplers = nnx.List(downsamplers)

    self.mid_block1 = ResBlock(width, width, temb_dim, cfg, rngs)
    self.mid_attn = AttnBlock(width, cfg, rngs)
    self.mid_block2 = ResBlock(width, width, temb_dim, cfg, rngs)

    up, upsamplers = [], []
    for level in reversed(range(len(cfg.channel_mult))):
      size = height // 2**level
      out_width = ch * cfg.channel_mult[level]
      blocks, attns = [], []
      for _ in range(cfg.num_res_blocks + 1):
        blocks.append(ResBlock(width + skips.pop(), out_width, temb_dim, cfg, rngs))
        width = out_width
        attns.append(attn_or_none(width, size))
      up.append(Level(blocks, attns))
      if level != 0:
        upsamplers.append(Upsample(width, cfg, rngs))
    assert not skips
    self.up = nnx.List(up)
    self.upsamplers = nnx.List(upsamplers)

    self.norm_out = GroupNorm(width, cfg.num_groups, rngs)
    self.conv_out = _conv(width, cfg.out_channels or in_ch, rngs, dtype, scale=0.0)

  def __call__(self, x: jax.Array, t: jax.Array, *, train: bool = False,
               rngs: jax.Array | None = None) -> jax.Array:
    """Predicts the training target.

    Args:
      x: ``[B, H, W, C]`` noisy images (data range [-1, 1] plus noise).
      t: ``[B]`` integer timesteps in ``[0, T)``.
      train: enables dropout (then ``rngs``, a PRNG key, is required when
        ``dropout > 0``).
      rngs: dropout key.
    Returns:
      ``[B, H, W, out_channels]`` float32.
    """
    if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
      raise ValueError(f"UNet built for images {self.image_shape} got x of shape {x.shape}"
                       " (expected [B, H, W, C]).")
    if t.shape != (x.shape[0],):
      raise ValueError(f"t must have shape [B] = [{x.shape[0]}]; got {t.shape}.")
    dtype = DTYPES[self.cfg.dtype]
    keys = iter(jax.random.split(rngs, self._num_dropout_blocks())) if (
        train and rngs is not None) else None

    def res(block, h):
      return block(h, temb, train=train, rngs=next(keys) if keys is not None else None)

    temb = timestep_embedding(t, self.cfg.channels).astype(dtype)
    temb = self.temb_dense1(nnx.swish(self.temb_dense0(temb)))

    hs = [self.conv_in(x.astype(dtype))]
    for level, stage in enumerate(self.down):
      for block, attn in zip(stage.blocks, stage.attns):
        h = res(block, hs[-1])
        hs.append(attn(h) if attn is not None else h)
      if level < len(self.downsamplers):
        hs.append(self.downsamplers[level](hs[-1]))

    h = res(self.mid_block1, hs[-1])
    h = self.mid_attn(h)
    h = res(self.mid_block2, h)

    for level, stage in enumerate(self.up):
      for block, attn in zip(stage.blocks, stage.attns):
        h = res(block, jnp.concatenate([h, hs.pop()], axis=-1))
        if attn is not None:
          h = attn(h)
      if level < len(self.upsamplers):
        h = self.upsamplers[level](h)

    h = self.conv_out(nnx.swish(self.norm_out(h)))
    return h.astype(jnp.float32)

  def _num_dropout_blocks(self) -> int:
    levels = len(self.cfg.channel_mult)
    return levels * (2 * self.cfg.num_res_blocks + 1) + 2


__all__ = ["DTYPES", "UNet", "UNetConfig", "timestep_embedding"]

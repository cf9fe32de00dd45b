"""The DDPM UNet of fans_jax.models.unet, in PyTorch: a benchmark reference only.

Layer for layer the same network (same widths, blocks, attention, GroupNorm, time
embedding, zero-initialised output layers), so the parameter count matches the Flax
model exactly; ``bench_train.py`` checks that before timing. PyTorch is not a
dependency of fans_jax (``pip install torch==2.13.0`` for the CPU wheel).
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
  half = dim // 2
  freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
  args = t.float()[:, None] * freqs[None]
  return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _zero(module: nn.Module) -> nn.Module:
  for p in module.parameters():
    nn.init.zeros_(p)
  return module


class ResBlock(nn.Module):

  def __init__(self, cin: int, cout: int, temb: int, groups: int, dropout: float):
    super().__init__()
    self.norm1 = nn.GroupNorm(groups, cin, eps=1e-6)
    self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
    self.temb_proj = nn.Linear(temb, cout)
    self.norm2 = nn.GroupNorm(groups, cout, eps=1e-6)
    self.dropout = nn.Dropout(dropout)
    self.conv2 = _zero(nn.Conv2d(cout, cout, 3, padding=1))
    self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

  def forward(self, x, temb):
    h = self.conv1(F.silu(self.norm1(x)))
    h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
    h = self.conv2(self.dropout(F.silu(self.norm2(h))))
    return (self.shortcut(x) if self.shortcut is not None else x) + h


class AttnBlock(nn.Module):

  def __init__(self, ch: int, groups: int, heads: int = 1):
    super().__init__()
    self.heads = heads
    self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
    self.qkv = nn.Linear(ch, 3 * ch)
    self.proj_out = _zero(nn.Linear(ch, ch))

  def forward(self, x):
    b, c, h, w = x.shape
    y = self.norm(x).flatten(2).transpose(1, 2)                  # [B, L, C]
    q, k, v = self.qkv(y).reshape(b, h * w, 3, self.heads, c // self.heads).unbind(2)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                         v.transpose(1, 2))       # [B, heads, L, d]
    out = out.transpose(1, 2).reshape(b, h * w, c)
    return x + self.proj_out(out).transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
  """Arguments as in ``fans_jax.models.unet.UNetConfig``; NCHW input."""

  def __init__(self, image_size: int = 32, in_ch: int = 3, channels: int = 128,
               channel_mult=(1, 2, 2, 2), num_res_blocks: int = 2,
               attention_resolutions=(16,), dropout: float = 0.1, num_groups: int = 32,
               num_heads: int = 1):
    super().__init__()
    ch, temb = channels, 4 * channels
    self.ch = ch
    self.temb = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
    self.conv_in = nn.Conv2d(in_ch, ch, 3, padding=1)
    skips, width = [ch], ch
    self.down, self.down_attn, self.downsamplers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
    for level, mult in enumerate(channel_mult):
      size = image_size // 2**level
      for _ in range(num_res_blocks):
        self.down.append(ResBlock(width, ch * mult, temb, num_groups, dropout))
        width = ch * mult
        self.down_attn.append(AttnBlock(width, num_groups, num_heads)
                              if size in attention_resolutions else nn.Identity())
        skips.append(width)
      if level != len(channel_mult) - 1:
        self.downsamplers.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
        skips.append(width)
    self.mid1 = ResBlock(width, width, temb, num_groups, dropout)
    self.mid_attn = AttnBlock(width, num_groups, num_heads)
    self.mid2 = ResBlock(width, width, temb, num_groups, dropout)
    self.up, self.up_attn, self.upsamplers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
    for level in reversed(range(len(channel_mult))):
      size = image_size // 2**level
      for _ in range(num_res_blocks + 1):
        self.up.append(ResBlock(width + skips.pop(), ch * channel_mult[level], temb, num_groups,
                                dropout))
        width = ch * channel_mult[level]
        self.up_attn.append(AttnBlock(width, num_groups, num_heads)
                            if size in attention_resolutions else nn.Identity())
      if level != 0:
        self.upsamplers.append(nn.Conv2d(width, width, 3, padding=1))
    self.norm_out = nn.GroupNorm(num_groups, width, eps=1e-6)
    self.conv_out = _zero(nn.Conv2d(width, in_ch, 3, padding=1))
    self.levels, self.blocks = len(channel_mult), num_res_blocks

  def forward(self, x, t):
    temb = self.temb(timestep_embedding(t, self.ch))
    hs = [self.conv_in(x)]
    i = 0
    for level in range(self.levels):
      for _ in range(self.blocks):
        hs.append(self.down_attn[i](self.down[i](hs[-1], temb)))
        i += 1
      if level != self.levels - 1:
        hs.append(self.downsamplers[level](hs[-1]))
    h = self.mid2(self.mid_attn(self.mid1(hs[-1], temb)), temb)
    i = 0
    for level in range(self.levels):
      for _ in range(self.blocks + 1):
        h = self.up_attn[i](self.up[i](torch.cat([h, hs.pop()], dim=1), temb))
        i += 1
      if level != self.levels - 1:
        h = self.upsamplers[level](F.interpolate(h, scale_factor=2, mode="nearest"))
    return self.conv_out(F.silu(self.norm_out(h)))


def count_params(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())

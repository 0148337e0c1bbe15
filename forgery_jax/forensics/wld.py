"""Weber Local Descriptor (WLD) features of the chroma channels, jitted over a batch of images.

Recipe (Chen et al., "WLD: A Robust Local Image Descriptor", TPAMI 2010), applied as the
WLD + XGBoost forgery paper does to the Cb and Cr channels of YCbCr, where tampering leaves texture
inconsistencies that the luminance content hides:

* differential excitation  xi = arctan(sum_i (p_i - p_c) / p_c) over the 8 neighbours, in
  (-pi/2, pi/2); p_c = 0 is guarded as 1 (pixels are integers, so no other value changes);
* orientation  theta' = arctan2(v11, v10) + pi in [0, 2 pi], with v11 = p_below - p_above and
  v10 = p_left - p_right, quantised into T dominant directions
  t = floor(theta' / (2 pi / T) + 1/2) mod T;
* xi is cut into M equal bands, each into S equal bins; every interior pixel votes for (t, m, s);
* each channel's code map is divided into a grid of equal non-overlapping blocks and each block's
  T x M x S histogram is normalised to sum 1; the blocks of Cb then Cr are concatenated.

Length = 2 channels x blocks x T x M x S: the default 2 x (2 x 2) x 8 x 3 x 5 = 960 values (the
paper reports about 920).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class WldParams:
  orientations: int = 8      # T
  bands: int = 3             # M
  bins_per_band: int = 5     # S
  grid: tuple[int, int] = (2, 2)  # blocks per (row, column)

  @property
  def bins(self) -> int:
    return self.orientations * self.bands * self.bins_per_band

  def length(self, channels: int = 2) -> int:
    return channels * self.grid[0] * self.grid[1] * self.bins


def from_config(cfg) -> WldParams:
  return WldParams(cfg.orientations, cfg.bands, cfg.bins_per_band, tuple(cfg.grid))


def chroma(rgb: jax.Array) -> jax.Array:
  """(..., H, W, 3) uint8 RGB -> (..., 2, H, W) float32 Cb and Cr, rounded to integers as JPEG's."""
  x = rgb.astype(jnp.float32)
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  cb = 128.0 - 0.168736 * r - 0.331264 * g + 0.5 * b
  cr = 128.0 + 0.5 * r - 0.418688 * g - 0.081312 * b
  return jnp.clip(jnp.round(jnp.stack([cb, cr], axis=-3)), 0, 255)


def codes(channel: jax.Array, params: WldParams) -> jax.Array:
  """(..., H, W) float channel -> (..., H-2, W-2) int32 bin index t * M * S + m * S + s."""
  c = channel[..., 1:-1, 1:-1]
  h, w = c.shape[-2:]

  def at(dy, dx):
    return channel[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

  neighbours = sum(at(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
  xi = jnp.arctan((neighbours - 8.0 * c) / jnp.maximum(c, 1.0))
  theta = jnp.arctan2(at(1, 0) - at(-1, 0), at(0, -1) - at(0, 1)) + jnp.pi
  t_count, m_count, s_count = params.orientations, params.bands, params.bins_per_band
  t = jnp.floor(theta / (2 * jnp.pi / t_count) + 0.5).astype(jnp.int32) % t_count
  # xi in (-pi/2, pi/2) -> one of M*S equal bins (band m = bin // S, sub-bin s = bin % S).
  fine = jnp.clip(jnp.floor((xi + jnp.pi / 2) / jnp.pi * (m_count * s_count)), 0,
                  m_count * s_count - 1).astype(jnp.int32)
  return t * (m_count * s_count) + fine


def _block_histograms(code_map: jax.Array, params: WldParams) -> jax.Array:
  """(H, W) codes -> (blocks * bins,) per-block normalised histograms; edge rows/cols that do not
  fill a whole block are left out so every block has the same size."""
  gy, gx = params.grid
  h, w = code_map.shape
  bh, bw = h // gy, w // gx
  if bh == 0 or bw == 0:
    raise ValueError(f'WLD grid {params.grid} needs an image of at least {gy + 2}x{gx + 2} pixels')
  blocks = code_map[:gy * bh, :gx * bw].reshape(gy, bh, gx, bw).transpose(0, 2, 1, 3)
  blocks = blocks.reshape(gy * gx, bh * bw)
  offsets = (jnp.arange(gy * gx) * params.bins)[:, None]
  counts = jnp.bincount((blocks + offsets).reshape(-1), length=gy * gx * params.bins)
  return counts.astype(jnp.float32) / (bh * bw)


@functools.partial(jax.jit, static_argnums=1)
def features(images: jax.Array, params: WldParams = WldParams()) -> jax.Array:
  """(B, H, W, 3) uint8 RGB -> (B, params.length()) float32 WLD features of Cb and Cr."""
  code_maps = codes(chroma(images), params)  # (B, 2, H-2, W-2)

  def one_image(maps):
    return jnp.concatenate([_block_histograms(maps[k], params) for k in range(maps.shape[0])])

  return jax.vmap(one_image)(code_maps)


def extract(images: np.ndarray, params: WldParams = WldParams(), batch_size: int = 64) -> np.ndarray:
  """Features of a (N, H, W, 3) uint8 array, computed in jitted batches (the last one padded)."""
  out = []
  for start in range(0, len(images), batch_size):
    batch = images[start:start + batch_size]
    pad = batch_size - len(batch)
    if pad:
      batch = np.concatenate([batch, np.zeros((pad,) + batch.shape[1:], batch.dtype)])
    out.append(np.asarray(features(jnp.asarray(batch), params))[:batch_size - pad])
  return np.concatenate(out) if out else np.zeros((0, params.length()), np.float32)

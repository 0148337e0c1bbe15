"""Block DCT coefficients of decoded pixels against the quantisation steps the image sits on:
per block, how near each coefficient sits to that grid, and its value as histogram bins (the cue
CAT-Net's DCT stream reads, Kwon et al., IJCV 2022).

The steps are found from the image's own coefficients, per frequency, as the step whose
multiples they sit on most closely, so no file table is needed. Where an earlier save's steps
are multiples of the last one's, those are the earlier steps, and a region that did not share
that save (pasted from another photo, on another grid, or resampled) falls off the grid; double
quantisation also empties some coefficient values and crowds others. Everything is jnp, so the
features are computed inside the jitted model, after any on-device edit of the pixels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from forgery_jax.forensics import srm

BLOCK = 8
# The first AC frequencies in zig-zag order, as row-major indices into an 8 x 8 block.
ZIGZAG_AC = (1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40)
MAX_STEP = 48        # quantisation steps tried, 1..MAX_STEP (IJG quality >= 50 keeps these low)
MIN_COUNT = 16       # blocks a step must quantise to non-zero values to be judged
FREQUENCIES = 15     # AC frequencies read (zig-zag order)
BINS = 8             # histogram bins of |coefficient / step|: 0 .. BINS - 1 (and above)
ON_GRID = 0.25       # mean cos(2 pi c / step) over those blocks that accepts a step (step 2: ~0.3-0.4
                     # on CASIA v1's quality-90 files, step 1 ~0.05)


def dct_matrix() -> np.ndarray:
  x = np.arange(BLOCK)
  m = np.cos((2 * x[None, :] + 1) * x[:, None] * np.pi / (2 * BLOCK)) * np.sqrt(2 / BLOCK)
  m[0] /= np.sqrt(2)
  return m.astype(np.float32)  # orthonormal DCT-II: JPEG's 2-D transform is m @ block @ m.T


def block_dct(images: jax.Array) -> jax.Array:
  """(N, H, W, 3) uint8 RGB, H and W multiples of 8 -> the luma's block DCT (N, H/8, W/8, 64),
  row-major frequencies, as JPEG computes it (level-shifted by 128, the grid at (0, 0))."""
  y = srm.grey(images.astype(jnp.float32))[..., 0] - 128.0
  n, h, w = y.shape
  blocks = y.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 1, 3, 2, 4)
  m = jnp.asarray(dct_matrix())
  coef = jnp.einsum('ux,nabxy,vy->nabuv', m, blocks, m, precision=jax.lax.Precision.HIGHEST)
  return coef.reshape(n, h // BLOCK, w // BLOCK, BLOCK * BLOCK)


def quantisation_steps(coef: jax.Array) -> jax.Array:
  """(N, h, w, K) coefficients -> (N, K): per image and frequency, the step s in 1..MAX_STEP whose
  multiples the coefficients sit on most closely: the largest mean cos(2 pi c / s) over the blocks
  that s quantises to non-zero values (at least MIN_COUNT of them), and at least ON_GRID; 1 when
  no step reaches it. A step's divisors fit its multiples too, but the decoder's rounding is a
  larger part of a smaller step; a step one larger fits the values one step from zero nearly as
  well (cos(2 pi / 9) = 0.77), so the largest step that fits at all would be too large."""
  steps = jnp.arange(1, MAX_STEP + 1, dtype=jnp.float32)
  c = coef.reshape(coef.shape[0], -1, coef.shape[-1])[..., None]          # (N, B, K, 1)
  counted = (jnp.abs(c) > steps / 2).astype(jnp.float32)                   # (N, B, K, S)
  total = counted.sum(1)
  on_grid = (counted * jnp.cos(2 * jnp.pi * c / steps)).sum(1) / jnp.maximum(total, 1.0)
  fit = jnp.where(total >= MIN_COUNT, on_grid, -1.0)                       # (N, K, S)
  return jnp.where(fit.max(-1) >= ON_GRID, steps[jnp.argmax(fit, -1)], 1.0)


def coefficient_features(images: jax.Array, frequencies: int = FREQUENCIES, bins: int = BINS) -> jax.Array:
  """(N, H, W, 3) uint8 RGB -> (N, H/8, W/8, frequencies * (bins + 1)) float32: for each block and
  each of the first `frequencies` AC frequencies (zig-zag), cos(2 pi coefficient / step) (near 1
  where the block sits on the image's quantisation grid, as the blocks compressed with the rest of
  the photo do) and a one-hot of |coefficient / step| rounded and clipped to bins - 1 (the values
  whose local histogram shows double quantisation)."""
  if not 1 <= frequencies <= len(ZIGZAG_AC):
    raise ValueError(f'DCT frequencies {frequencies}: choose 1 to {len(ZIGZAG_AC)}')
  coef = block_dct(images)[..., jnp.asarray(ZIGZAG_AC[:frequencies])]
  units = coef / quantisation_steps(coef)[:, None, None, :]
  level = jnp.clip(jnp.round(jnp.abs(units)), 0, bins - 1).astype(jnp.int32)
  one_hot = jax.nn.one_hot(level, bins, dtype=jnp.float32)                 # (N, h, w, K, bins)
  on_grid = jnp.cos(2 * jnp.pi * units)[..., None]
  features = jnp.concatenate([on_grid, one_hot], -1)
  return features.reshape(*features.shape[:3], frequencies * (bins + 1))

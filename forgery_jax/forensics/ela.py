"""Error Level Analysis (ELA), the dual-branch paper's first input, on the host and on a device.

Recipe: the RGB image is re-encoded as JPEG at `quality` (90 by default), the
absolute difference to the original is taken, and each image is scaled by
255 / max so that its largest difference becomes 255 (a max of 0 counts as 1).
This matches PIL's `ImageChops.difference` followed by
`ImageEnhance.Brightness(255 / max)`, which truncates toward zero.

* `ela(rgb, quality)`: one image on the host, encoded in memory with OpenCV's libjpeg-turbo (the
  same bytes as PIL's) instead of through a temporary file, scaled through a lookup table; the
  builders store these planes.
* `ela_batch(images, quality)`: a batch inside jitted code, through `forgery_jax.jpeg` (libjpeg's
  arithmetic in JAX), at any quality, after any on-device edit of the pixels.
"""

from __future__ import annotations

import functools

import cv2
import jax
import jax.numpy as jnp
import numpy as np

from forgery_jax.image_io import jpeg_roundtrip_bgr

DEFAULT_QUALITY = 90


@functools.lru_cache(maxsize=256)
def _brighten_table(peak: int) -> np.ndarray:
  """PIL's blend with a factor > 1: float32(v * factor), truncated toward zero, capped at 255."""
  scaled = np.arange(256, dtype=np.float32) * np.float32(255.0 / peak)
  return np.minimum(scaled, 255).astype(np.uint8)


def ela(rgb: np.ndarray, quality: int = DEFAULT_QUALITY) -> np.ndarray:
  """ELA plane of an (H, W, 3) uint8 RGB image, as (H, W, 3) uint8."""
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f'ela() needs an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}')
  if not 1 <= quality <= 100:
    raise ValueError(f'JPEG quality must lie in [1, 100], got {quality}')
  # Work in OpenCV's BGR order: one encode, one decode, then vectorised uint8 operations.
  bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
  diff = cv2.absdiff(bgr, jpeg_roundtrip_bgr(bgr, quality))
  peak = int(cv2.minMaxLoc(diff.reshape(diff.shape[0], -1))[1]) or 1
  if peak != 255:
    diff = cv2.LUT(diff, _brighten_table(peak))
  return cv2.cvtColor(diff, cv2.COLOR_BGR2RGB)


# 255 / peak for every peak, as float32 the way `_brighten_table` rounds it.
_SCALES = np.array([np.float32(255.0 / p) for p in range(1, 256)], np.float32)


def ela_batch(images: jax.Array, quality=DEFAULT_QUALITY) -> jax.Array:
  """ELA planes of uint8 RGB images (N, H, W, 3) as uint8, inside jit on any device; `quality` a
  scalar or one per image. Equals `ela` wherever `forgery_jax.jpeg` equals libjpeg."""
  from forgery_jax import jpeg  # pylint: disable=g-import-not-at-top
  images = jnp.asarray(images)
  diff = jnp.abs(images.astype(jnp.int32) - jpeg.round_trip(images, quality).astype(jnp.int32))
  peak = jnp.maximum(diff.max(axis=(1, 2, 3)), 1)
  scale = jnp.asarray(_SCALES)[peak - 1][:, None, None, None]
  return jnp.minimum(jnp.floor(diff.astype(jnp.float32) * scale), 255).astype(jnp.uint8)

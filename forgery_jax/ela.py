"""Error Level Analysis (ELA), the dual-branch paper's first input.

Recipe: the RGB image is re-encoded as JPEG at `quality` (90 by default), the
absolute difference to the original is taken, and each image is scaled by
255 / max so that its largest difference becomes 255 (a max of 0 counts as 1).
This matches PIL's `ImageChops.difference` followed by
`ImageEnhance.Brightness(255 / max)`, which truncates toward zero, but encodes
in memory (OpenCV's libjpeg-turbo, the same bytes as PIL's) instead of through
a temporary file, and scales through a 256-entry lookup table.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from forgery_jax.codecs import jpeg_roundtrip_bgr

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

"""Error Level Analysis (ELA), the dual-branch paper's first input.

Recipe: the RGB image is re-encoded as JPEG at `quality` (90 by default), the
absolute difference to the original is taken, and each image is scaled by
255 / max so that its largest difference becomes 255 (a max of 0 counts as 1).
This matches PIL's `ImageChops.difference` followed by
`ImageEnhance.Brightness(255 / max)`, which truncates toward zero, but encodes
in memory instead of through a temporary file.
"""

from __future__ import annotations

import numpy as np

from forgery_jax.codecs import jpeg_roundtrip

DEFAULT_QUALITY = 90


def ela(rgb: np.ndarray, quality: int = DEFAULT_QUALITY) -> np.ndarray:
  """ELA plane of an (H, W, 3) uint8 RGB image, as (H, W, 3) uint8."""
  rgb = np.asarray(rgb)
  if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[-1] != 3:
    raise ValueError(f'ela() needs an (H, W, 3) uint8 RGB array, got {rgb.dtype} {rgb.shape}')
  if not 1 <= quality <= 100:
    raise ValueError(f'JPEG quality must lie in [1, 100], got {quality}')
  diff = np.abs(rgb.astype(np.int16) - jpeg_roundtrip(rgb, quality)).astype(np.uint8)
  peak = int(diff.max()) or 1
  if peak == 255:
    return diff
  # PIL's blend with a factor > 1 computes float32(diff * factor) and truncates.
  scaled = diff.astype(np.float32) * np.float32(255.0 / peak)
  return np.minimum(scaled, 255).astype(np.uint8)

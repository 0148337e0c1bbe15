"""JPEG quality estimated from a file's quantisation tables (no pixel is decoded).

Encoders derived from the IJG library scale two standard tables by the
quality q: scale = 5000 / q for q < 50, else 200 - 2 q; entry =
clip((standard * scale + 50) // 100, 1, 255). The estimate is the q whose
scaled luminance table is closest to the file's; `exact` says whether it
matches entry for entry (cameras and some editors use their own tables). The
tables themselves are a file property that can predict a dataset's labels
without looking at the image: see `baselines.py`.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image

# ITU-T T.81 Annex K, luminance, row-major.
_STANDARD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.int64)


@dataclasses.dataclass(frozen=True)
class JpegQuality:
  quality: int   # the closest IJG quality, 1..100
  exact: bool    # the luminance table is exactly the IJG table at `quality`
  table_hash: str  # identifies the luminance table, standard or not


@functools.cache
def _scaled_tables() -> np.ndarray:
  q = np.arange(1, 101)
  scale = np.where(q < 50, 5000 // q, 200 - 2 * q)
  return np.clip((_STANDARD_LUMA[None, :] * scale[:, None] + 50) // 100, 1, 255)


def estimate_from_table(luma_table) -> JpegQuality:
  """Quality from a 64-entry luminance table in row-major order."""
  table = np.asarray(luma_table, np.int64).reshape(64)
  errors = np.abs(_scaled_tables() - table[None, :]).sum(axis=1)
  best = int(errors.argmin())
  return JpegQuality(best + 1, bool(errors[best] == 0), table.tobytes().hex()[:16] + f'{table.sum():x}')


def estimate_from_image(im: Image.Image) -> JpegQuality | None:
  """Quality of an opened PIL image, or None if it is not a JPEG (or has no tables)."""
  tables = getattr(im, 'quantization', None)
  if im.format not in ('JPEG', 'MPO') or not tables:
    return None
  return estimate_from_table(tables[min(tables)])


def estimate(path: str) -> JpegQuality | None:
  """Quality of the JPEG at `path`, or None if it is not a JPEG (or has no tables)."""
  with Image.open(path) as im:
    return estimate_from_image(im)

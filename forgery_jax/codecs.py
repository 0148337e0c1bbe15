"""Image decoding and encoding used across forgery_jax: one place for codec choices."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
  """Encodes (H, W, 3) uint8 RGB as JPEG at `quality` in memory (PIL/libjpeg) and decodes it."""
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format='JPEG', quality=int(quality))
  buf.seek(0)
  with Image.open(buf) as decoded:
    return np.asarray(decoded.convert('RGB'))


def jpeg_roundtrip_bgr(bgr: np.ndarray, quality: int) -> np.ndarray:
  """The same round trip with OpenCV's codec on a BGR array: bit-identical output to
  `jpeg_roundtrip` (both are libjpeg-turbo with 4:2:0 subsampling) and several times faster."""
  ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  if not ok:
    raise ValueError(f'JPEG encoding failed for an array of shape {bgr.shape}')
  return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def load_rgb(path: str) -> np.ndarray:
  """Reads an image file as (H, W, 3) uint8 RGB, with a clear error naming the file."""
  try:
    with Image.open(path) as im:
      im.load()
      return np.asarray(im.convert('RGB'))
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise ValueError(f'cannot read image {path}: {e}') from e


def encode_png(array: np.ndarray) -> bytes:
  """Lossless PNG bytes of an (H, W, 3) RGB or (H, W[, 1]) grey uint8 array."""
  if array.ndim == 3 and array.shape[-1] == 3:
    array = array[..., ::-1]  # OpenCV writes BGR
  ok, buf = cv2.imencode('.png', np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 1])
  if not ok:
    raise ValueError(f'PNG encoding failed for an array of shape {array.shape}')
  return buf.tobytes()

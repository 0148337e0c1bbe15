"""A generated corpus of unusual and broken image files (nothing is downloaded).

`make_corpus(folder)` writes them and returns {file name: expected outcome}, where the outcome is
'ok' or a piece of the one-line error message expected for that file.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
from PIL import Image


def _photo(h: int = 40, w: int = 56, seed: int = 0) -> np.ndarray:
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
  return np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR))


def _chunk(kind: bytes, data: bytes) -> bytes:
  return (struct.pack('>I', len(data)) + kind + data
          + struct.pack('>I', zlib.crc32(kind + data) & 0xFFFFFFFF))


def _png_header_only(width: int, height: int) -> bytes:
  """A PNG that declares a huge image and holds a few bytes of pixel data (a decompression bomb's
  header: opening it must be refused before anything is allocated)."""
  ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + _chunk(b'IHDR', ihdr)
          + _chunk(b'IDAT', zlib.compress(b'\x00' * 64)) + _chunk(b'IEND', b''))


def make_corpus(folder: str) -> dict[str, str]:
  os.makedirs(folder, exist_ok=True)
  rgb = _photo()
  expected: dict[str, str] = {}

  def save(name: str, image: Image.Image, outcome: str = 'ok', **kwargs) -> None:
    image.save(os.path.join(folder, name), **kwargs)
    expected[name] = outcome

  def write(name: str, data: bytes, outcome: str) -> None:
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(data)
    expected[name] = outcome

  save('photo.jpg', Image.fromarray(rgb), quality=90)
  save('rgba.png', Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])))
  save('grey.png', Image.fromarray(rgb[..., 0]))
  save('palette.gif', Image.fromarray(rgb).convert('P'))
  save('cmyk.jpg', Image.fromarray(rgb).convert('CMYK'), quality=90)
  save('sixteen_bit.png', Image.fromarray((rgb[..., 1].astype(np.uint16) * 257)))
  save('photo.webp', Image.fromarray(rgb), quality=90)
  save('photo.bmp', Image.fromarray(rgb))
  save('photo.tif', Image.fromarray(rgb))
  exif = Image.Exif()
  exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
  save('exif_rotated.jpg', Image.fromarray(rgb), quality=90, exif=exif.tobytes())
  save('one_pixel.png', Image.fromarray(rgb[:1, :1]))
  save('three_by_three.png', Image.fromarray(rgb[:3, :3]))
  save('float_ok.tif', Image.fromarray(rgb[..., 0].astype(np.float32) / 255))
  nan = rgb[..., 0].astype(np.float32)
  nan[3, 3] = np.nan
  save('float_nan.tif', Image.fromarray(nan), 'NaN or Inf')
  write('zero_bytes.jpg', b'', 'cannot read image')
  with open(os.path.join(folder, 'photo.jpg'), 'rb') as f:
    jpeg = f.read()
  write('truncated.jpg', jpeg[:len(jpeg) // 3], 'cannot read image')
  write('jpeg_named.png', jpeg, 'ok')  # wrong extension: the bytes decide
  write('text.jpg', b'not an image, just text\n', 'cannot read image')
  write('bomb.png', _png_header_only(20000, 20000), 'too large')
  return expected

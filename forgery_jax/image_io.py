"""Reading and writing image files on the host: one place for codec choices.

Decoding any file a camera or editor writes (with its container format), the in-memory JPEG round
trips that ELA and the re-encoded dataset configs use, and PNG encoding of planes and masks. The
JPEG codec that runs inside jitted code on an accelerator is `forgery_jax.jpeg`.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings

import cv2
import numpy as np
from PIL import Image

from forgery_jax import atomic


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
  """Encodes (H, W, 3) uint8 RGB as JPEG at `quality` in memory (PIL/libjpeg) and decodes it."""
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format='JPEG', quality=int(quality))
  buf.seek(0)
  with Image.open(buf) as decoded:
    return np.asarray(decoded.convert('RGB'))


def jpeg_roundtrip_tables(rgb: np.ndarray, tables) -> np.ndarray:
  """The same round trip through given quantisation tables (PIL's `qtables`: one 64-entry table
  per component kind, luminance first, row-major), with 4:2:0 chroma subsampling."""
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format='JPEG', qtables=[list(t) for t in tables], subsampling=2)
  buf.seek(0)
  with Image.open(buf) as decoded:
    return np.asarray(decoded.convert('RGB'))


@contextlib.contextmanager
def opencv_threads(n: int):
  """OpenCV's own thread count inside the block (a process-wide setting, restored after).

  Where forgery_jax runs one image per worker thread (builds), OpenCV's parallel loops only add
  hand-offs, which on small images cost more than the work (`python -m benchmarks.run --only ela`).
  """
  previous = cv2.getNumThreads()
  cv2.setNumThreads(n)
  try:
    yield
  finally:
    cv2.setNumThreads(previous)


def jpeg_roundtrip_bgr(bgr: np.ndarray, quality: int) -> np.ndarray:
  """The same round trip with OpenCV's codec on a BGR array: bit-identical output to
  `jpeg_roundtrip` (both are libjpeg-turbo with 4:2:0 subsampling) and several times faster."""
  ok, buf = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
  if not ok:
    raise ValueError(f'JPEG encoding failed for an array of shape {bgr.shape}')
  return cv2.imdecode(buf, cv2.IMREAD_COLOR)


MAX_PIXELS = 150_000_000  # larger images are refused (PIL's decompression-bomb guard)
# The suffixes taken for image files where a folder is listed (predict's inputs, masks).
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp', '.webp', '.gif', '.jfif')


def is_image_name(folder: str, name: str) -> bool:
  """An image file by its suffix; hidden files (macOS's '._' companions among them) are not."""
  return (name.lower().endswith(IMAGE_SUFFIXES) and not name.startswith('.')
          and not os.path.isdir(os.path.join(folder, name)))


def image_files(folder: str, recursive: bool = False) -> list[str]:
  """The image files of a folder, sorted; with `recursive`, of every folder below it too (sorted
  by path; hidden folders and symbolic links to folders skipped)."""
  if not recursive:
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder)) if is_image_name(folder, n)]
  out = []
  for root, dirs, names in os.walk(folder):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    out += [os.path.join(root, n) for n in sorted(names) if is_image_name(root, n)]
  return out


def pil_to_rgb(im: Image.Image) -> np.ndarray:
  """Any PIL image as (H, W, 3) uint8 RGB.

  16- and 32-bit integer images are scaled from their bit depth, float images from [0, 1] (or
  clipped to [0, 255] if they exceed 1) and refused if they hold NaN or Inf; alpha is composited on
  white; palette, grey, CMYK and YCbCr images are converted.
  """
  mode = im.mode
  if mode.startswith('I;16') or mode == 'I':
    a = np.asarray(im).astype(np.float64)
    top = 65535.0 if mode.startswith('I;16') or a.max() <= 65535 else float(a.max())
    grey = np.clip(np.round(a / top * 255), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)
  if mode == 'F':
    a = np.asarray(im, np.float64)
    if not np.isfinite(a).all():
      raise ValueError('the float image holds NaN or Inf values')
    a = a * 255 if a.max() <= 1.0 else a
    grey = np.clip(np.round(a), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)
  if mode in ('RGBA', 'LA', 'PA') or (mode == 'P' and 'transparency' in im.info):
    rgba = im.convert('RGBA')
    white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert('RGB'))
  return np.asarray(im.convert('RGB'))


def open_image(path) -> Image.Image:
  """PIL's open (of a path or a binary file object) with the pixel limit enforced as an error (not
  a warning); a path that is not a regular file (a named pipe, a device: the read would block or
  never end) is refused unopened."""
  if isinstance(path, (str, os.PathLike)) and os.path.exists(path) and not os.path.isfile(path):
    raise ValueError('not a regular file')
  Image.MAX_IMAGE_PIXELS = MAX_PIXELS
  with warnings.catch_warnings():
    warnings.simplefilter('error', Image.DecompressionBombWarning)
    try:
      return Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
      raise ValueError(f'image too large: {e}') from e


# PIL's container names -> the `source_format` names of the datasets.
SOURCE_FORMATS = {'JPEG': 'jpeg', 'MPO': 'jpeg', 'TIFF': 'tiff', 'BMP': 'bmp', 'PNG': 'png',
                  'WEBP': 'webp', 'GIF': 'gif'}


EXIF_ORIENTATION = 0x0112  # the tag's number


def exif_orientation(im: Image.Image) -> int:
  """A PIL image's EXIF orientation, 1 to 8 (1, the pixels as stored, when absent or unreadable)."""
  try:
    o = int(im.getexif().get(EXIF_ORIENTATION, 1))
  except (TypeError, ValueError, OSError, SyntaxError):
    return 1
  return o if 1 <= o <= 8 else 1


_SHOWN = {  # EXIF orientation -> the stored (H, W, ...) array as a viewer shows it
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


def orient(array: np.ndarray, orientation: int) -> np.ndarray:
  """An (H, W, ...) array of a file's stored pixels (an image, a plane, a map) turned as its EXIF
  `orientation` says a viewer shows it: PIL's `ImageOps.exif_transpose`, for any array."""
  return np.ascontiguousarray(_SHOWN[orientation](np.asarray(array)))


def orient_points(xy: np.ndarray, stored_hw: tuple[int, int], orientation: int) -> np.ndarray:
  """(P, 2) x, y positions in the stored pixels of an (H, W) image: where `orient` puts them."""
  xy = np.asarray(xy, np.float64).reshape(-1, 2)
  h, w = stored_hw
  x, y = xy[:, 0], xy[:, 1]
  x, y = {1: (x, y), 2: (w - 1 - x, y), 3: (w - 1 - x, h - 1 - y), 4: (x, h - 1 - y),
          5: (y, x), 6: (h - 1 - y, x), 7: (h - 1 - y, w - 1 - x), 8: (y, w - 1 - x)}[orientation]
  return np.stack([x, y], -1)


def decode_with_orientation(path) -> tuple[np.ndarray, str, int]:
  """(H, W, 3) uint8 RGB as the file stores its pixels, the container format ('jpeg', 'png', ...;
  else PIL's name lowercased) and the EXIF orientation (1 to 8) of an image file (a path or a
  binary file object), read once; a clear error names the file. Forensic traces (the JPEG grid
  above all) lie in the stored pixels: analyse those, and turn what is shown with `orient`."""
  try:
    with open_image(path) as im:
      fmt = SOURCE_FORMATS.get(im.format, str(im.format).lower())
      im.load()
      return pil_to_rgb(im), fmt, exif_orientation(im)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f'cannot read image {path}: {e}') from e


def decode_file(path: str) -> tuple[np.ndarray, str]:
  """(H, W, 3) uint8 RGB as stored and the container format of an image file (see
  `decode_with_orientation`)."""
  return decode_with_orientation(path)[:2]


def load_rgb(path: str) -> np.ndarray:
  """Reads an image file as (H, W, 3) uint8 RGB, its pixels as stored (see
  `decode_with_orientation`)."""
  return decode_with_orientation(path)[0]


def encode_png(array: np.ndarray) -> bytes:
  """Lossless PNG bytes of an (H, W, 3) RGB or (H, W[, 1]) grey uint8 array."""
  if array.ndim == 3 and array.shape[-1] == 3:
    array = array[..., ::-1]  # OpenCV writes BGR
  ok, buf = cv2.imencode('.png', np.ascontiguousarray(array), [cv2.IMWRITE_PNG_COMPRESSION, 1])
  if not ok:
    raise ValueError(f'PNG encoding failed for an array of shape {array.shape}')
  return buf.tobytes()


def write_png(path: str, array: np.ndarray) -> None:
  """Writes an RGB or grey uint8 array as a PNG file (fast, lossless), replaced whole."""
  atomic.write_bytes(path, encode_png(array))

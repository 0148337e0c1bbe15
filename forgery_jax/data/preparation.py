"""How an image file becomes a detector's input planes: one description, used everywhere.

A `Preparation` is what a dataset's builder config says about its planes, and the same object
prepares a new image for `predict`, `evaluate` and the Python API, so a run's images and the
images it is later asked about go through identical steps:

1. decode (the container format and, for a JPEG, the quality of its quantisation tables are
   kept: they are file properties the shortcut baselines look at);
2. `recoding`: the pixels may first be re-encoded as JPEG (lossless sources at one quality, every
   file at a quality drawn from its name, or authentic files through a tampered-style history);
3. ELA at `ela_quality` and, when a detector reads it, the SIFT copy-move evidence, both at full
   resolution;
4. `geometry`: every plane resized to `resolution` (the paper), a native-resolution window of
   `resolution` pixels (on the tampered box where a mask shows it), or every plane kept at the
   file's own size (`native`, for localisation).

Nothing here imports TensorFlow, TFDS or scikit-learn: `predict` starts in about a second.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
from PIL import Image

from forgery_jax import image_io
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.forensics import jpeg_quality

GEOMETRIES = ('resize', 'crop', 'native')


@dataclasses.dataclass(frozen=True)
class Recoding:
  """What happens to a file's pixels before ELA: nothing, or JPEG re-encodings.

  * `normalise_quality`: lossless sources (TIFF, BMP, PNG) are saved as JPEG at this quality, so
    ELA cannot tell the container apart;
  * `randomise_qualities`: every file is saved once as JPEG at a quality drawn uniformly from this
    inclusive range, seeded by its name (independent of its class): the quantisation tables no
    longer tell the classes apart;
  * `history_from_tampered`: with `randomise_qualities`, authentic files are first saved
    through the quantisation tables of one of the release's own tampered JPEG files (drawn by the
    file's name, as often as the tampered files use them), so that they carry a tampered file's
    double-compression history: the history-matched control. The builder reads those tables
    (`history_tables`, each (luma, chroma), with `history_counts`) before it builds.
  """
  normalise_quality: int | None = None
  randomise_qualities: tuple[int, int] | None = None
  history_from_tampered: bool = False
  history_tables: tuple | None = None      # ((luma 64, chroma 64), ...): the tampered files' tables
  history_counts: tuple[int, ...] | None = None  # how many tampered files use each

  def quality(self, filename: str, source_format: str) -> int | None:
    """The JPEG quality `filename` is finally re-encoded at, or None to keep its pixels."""
    if self.randomise_qualities:
      lo, hi = self.randomise_qualities
      return int(np.random.default_rng(zlib.crc32(filename.encode())).integers(lo, hi + 1))
    if self.normalise_quality and source_format != 'jpeg':
      return self.normalise_quality
    return None

  @property
  def per_file(self) -> bool:
    """Whether the re-encoding depends on the file (then a new image is taken as it is)."""
    return bool(self.randomise_qualities)

  def history(self, filename: str):
    """The (luma, chroma) tables an authentic `filename` is first saved through (the control)."""
    if not self.history_tables:
      raise ValueError('the history-matched recoding needs the tampered files\' tables: none were '
                       'read (the release has no tampered JPEG file?)')
    p = np.asarray(self.history_counts, np.float64)
    pick = np.random.default_rng([zlib.crc32(filename.encode()), 1]).choice(len(p), p=p / p.sum())
    return self.history_tables[int(pick)]

  def apply(self, rgb: np.ndarray, filename: str, source_format: str,
            authentic: bool = False) -> tuple[np.ndarray, int | None]:
    """(pixels after recoding, the JPEG quality they were last saved at or None if unchanged)."""
    if self.history_from_tampered and authentic:
      rgb = image_io.jpeg_roundtrip_tables(rgb, self.history(filename))
    quality = self.quality(filename, source_format)
    return (image_io.jpeg_roundtrip(rgb, quality), quality) if quality else (rgb, None)

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> Recoding:
    d = dict(d)
    freeze = lambda v: tuple(freeze(x) for x in v) if isinstance(v, (list, tuple)) else v
    for k in ('randomise_qualities', 'history_tables', 'history_counts'):
      if d.get(k) is not None:
        d[k] = freeze(d[k])
    return cls(**d)


def read_image(path: str) -> tuple[np.ndarray, str, int]:
  """RGB pixels, container format and JPEG quality (0 if not a JPEG) of a file, decoded once."""
  try:
    with image_io.open_image(path) as im:
      fmt = image_io.SOURCE_FORMATS.get(im.format)
      if fmt is None:
        raise ValueError(f'unsupported image format {im.format}')
      quality = jpeg_quality.estimate_from_image(im) if fmt == 'jpeg' else None
      im.load()
      rgb = image_io.pil_to_rgb(im)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f'cannot read image {path}: {e}') from e
  return rgb, fmt, quality.quality if quality else 0


def read_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
  """A {0, 255} uint8 mask of `shape`; a transposed mask (a CASIA quirk) is turned back."""
  try:
    with Image.open(path) as im:
      mask = np.asarray(im.convert('L')) > 127
  except (OSError, ValueError, SyntaxError) as e:
    raise ValueError(f'cannot read mask {path}: {e}') from e
  if mask.shape == shape[::-1] and shape[0] != shape[1]:
    mask = mask.T
  if mask.shape != shape:
    raise ValueError(f'mask {path} is {mask.shape[1]}x{mask.shape[0]} but its image is '
                     f'{shape[1]}x{shape[0]}')
  return mask.astype(np.uint8) * 255


def crop_window(mask: np.ndarray | None, shape: tuple[int, int], size: int) -> tuple[int, int]:
  """Top-left corner of a size x size window: centred on the mask's tampered box, else the image."""
  h, w = shape
  if mask is not None and mask.any():
    rows, cols = np.nonzero(mask)
    cy, cx = (rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2
  else:
    cy, cx = h // 2, w // 2
  top = int(np.clip(cy - size // 2, 0, max(h - size, 0)))
  left = int(np.clip(cx - size // 2, 0, max(w - size, 0)))
  return top, left


def crop(plane: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
  """A size x size window; a plane smaller than the window is mirrored, never interpolated."""
  out = plane[top:top + size, left:left + size]
  pad = [(0, size - out.shape[0]), (0, size - out.shape[1])] + [(0, 0)] * (out.ndim - 2)
  if any(p[1] for p in pad):
    out = np.pad(out, pad, mode='reflect' if min(out.shape[:2]) > 1 else 'edge')
  return out


def _resize(plane: np.ndarray, size: int, resample) -> np.ndarray:
  return np.asarray(Image.fromarray(plane).resize((size, size), resample))


def full_resolution_planes(rgb: np.ndarray, ela_quality: int = ela_lib.DEFAULT_QUALITY,
                           with_copy_move: bool = True) -> dict[str, np.ndarray]:
  """`image`, its ELA and (when asked for) its copy-move evidence at full resolution."""
  full = {'image': rgb, 'ela': ela_lib.ela(rgb, ela_quality)}
  if with_copy_move:  # SIFT costs more than decoding and ELA together
    from forgery_jax.forensics import keypoints  # pylint: disable=g-import-not-at-top
    full['copy_move'] = keypoints.copy_move_evidence(rgb)
  return full


def fit_planes(full: dict[str, np.ndarray], geometry: str, resolution: int,
               mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """The planes in `geometry`: `image`, `ela` (r, r, 3) and `mask` (r, r, 1), all uint8 (the
  file's own size for `native`), and `copy_move` if given."""
  h, w = full['image'].shape[:2]
  planes = {'image': full['image'], 'ela': full['ela'],
            'mask': mask if mask is not None else np.zeros((h, w), np.uint8)}
  if geometry == 'crop':
    top, left = crop_window(mask, (h, w), resolution)
    planes = {k: crop(v, top, left, resolution) for k, v in planes.items()}
  elif geometry == 'resize':
    # PIL's bicubic resize, as the paper's Keras pipeline; the mask stays binary.
    planes = {k: _resize(v, resolution, Image.NEAREST if k == 'mask' else Image.BICUBIC)
              for k, v in planes.items()}
  elif geometry != 'native':
    raise ValueError(f'geometry must be one of {GEOMETRIES}, got {geometry!r}')
  planes['mask'] = planes['mask'][..., None]
  if 'copy_move' in full:
    planes['copy_move'] = full['copy_move']
  return planes


@dataclasses.dataclass(frozen=True)
class Preparation:
  """How a dataset's planes are made from a file (see the module docstring)."""
  geometry: str = 'resize'
  resolution: int = 128            # the side of a resized or cropped plane; unused for `native`
  recoding: Recoding = Recoding()
  ela_quality: int = ela_lib.DEFAULT_QUALITY

  def __post_init__(self):
    if self.geometry not in GEOMETRIES:
      raise ValueError(f'geometry must be one of {GEOMETRIES}, got {self.geometry!r}')

  @property
  def plane_side(self) -> int | None:
    """The side of every plane, or None for native-size planes."""
    return None if self.geometry == 'native' else self.resolution

  def describe(self) -> str:
    shape = ('at the file\'s own size' if self.geometry == 'native' else
             f'resized to {self.resolution}x{self.resolution}' if self.geometry == 'resize' else
             f'a native {self.resolution}x{self.resolution} window')
    return f'ELA at quality {self.ela_quality} at full resolution, planes {shape}'

  def for_inference(self) -> Preparation:
    """The preparation of a new image: a per-file re-encoding (meant to hide the training
    files' histories) is not applied to an image being checked; it is taken as it is."""
    if not self.recoding.per_file:
      return self
    return dataclasses.replace(
        self, recoding=Recoding(normalise_quality=self.recoding.normalise_quality))

  def planes(self, rgb: np.ndarray, *, filename: str = '', source_format: str = 'jpeg',
             authentic: bool = False, mask: np.ndarray | None = None,
             with_copy_move: bool = False) -> tuple[dict[str, np.ndarray], int | None]:
    """The planes of decoded pixels, and the JPEG quality they were re-encoded at (or None)."""
    rgb, recoded = self.recoding.apply(rgb, filename, source_format, authentic)
    full = full_resolution_planes(rgb, self.ela_quality, with_copy_move)
    return fit_planes(full, self.geometry, self.resolution, mask), recoded

  def to_dict(self) -> dict:
    return {'geometry': self.geometry, 'resolution': self.resolution,
            'recoding': self.recoding.to_dict(), 'ela_quality': self.ela_quality}

  @classmethod
  def from_dict(cls, d: dict) -> Preparation:
    return cls(d['geometry'], int(d['resolution']), Recoding.from_dict(d['recoding']),
               int(d['ela_quality']))

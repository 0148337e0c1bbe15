"""Deterministic synthetic forgeries from photographs shipped inside installed packages.

Gives a dataset that needs no download. Every photo is cut into a grid of
disjoint source regions and each region is given to exactly one split, so the
test split never sees a pixel of a train region; splicing donors come from the
same split as their host.

* authentic: a crop of a region, saved once as JPEG at a random high quality;
* copy_move: the crop is saved as JPEG (its earlier, web or camera history),
  a random shape over detailed content is copied inside it (optionally rotated
  and scaled, feathered edge) to an offset off the 8x8 JPEG grid, and the
  result re-saved at high quality;
* splicing: the same, but the shape comes from a detailed crop of another
  photo saved with its own, different JPEG history.

The last-save quality of authentic and tampered images is drawn from one
range, so the quantisation table alone does not give the class away.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import cv2
import numpy as np

from forgery_jax import image_io
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.data.labels import AUTHENTIC, COPY_MOVE, SPLICING

SPLITS = ('train', 'validation', 'test')
# (package, file): natural colour photographs bundled with scikit-image and scikit-learn.
PHOTOS = (
    ('skimage', 'astronaut.png'), ('skimage', 'chelsea.png'), ('skimage', 'coffee.png'),
    ('skimage', 'hubble_deep_field.jpg'), ('skimage', 'ihc.png'), ('skimage', 'rocket.jpg'),
    ('skimage', 'retina.jpg'), ('skimage', 'motorcycle_left.png'),
    ('sklearn', 'china.jpg'), ('sklearn', 'flower.jpg'),
)
# Last save of every image, authentic or not: an editor at high quality. ELA at 90 is nearly
# blind for images last saved at 88-90 (the re-save barely changes them), so the set stays above.
FINAL_QUALITY = (91, 100)
CAMERA_QUALITY = (60, 86)  # a tampered host was a JPEG before the edit (web or camera)
DONOR_QUALITY = (50, 86)   # the spliced region's own, different history
MIN_CROP_STD = 12.0        # skip near-flat crops
MAX_DARK_FRACTION = 0.3    # skip crops mostly of black sky or the retina's border
TEXTURE_CANDIDATES = 8     # places tried when choosing what a forger copies


@dataclasses.dataclass(frozen=True)
class Region:
  photo: str
  y: int
  x: int
  size: int

  @property
  def group(self) -> str:
    return f'{self.photo}/{self.y}_{self.x}'


def photo_path(package: str, filename: str) -> str:
  """Where an installed package keeps a bundled photo."""
  if package == 'skimage':
    import skimage.data as module  # pylint: disable=g-import-not-at-top
  else:
    import sklearn.datasets as module  # pylint: disable=g-import-not-at-top
    filename = os.path.join('images', filename)
  return os.path.join(os.path.dirname(module.__file__), filename)


@functools.cache
def load_photo(package: str, filename: str) -> np.ndarray:
  """One bundled photo as (H, W, 3) uint8 RGB."""
  return image_io.load_rgb(photo_path(package, filename))


def photo_name(package: str, filename: str) -> str:
  del package
  return os.path.splitext(filename)[0]


def split_regions(region_size: int, seed: int,
                  fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)) -> dict[str, list[Region]]:
  """Cuts every photo into disjoint regions and deals them to the splits.

  Each photo gives regions to every split it can (at least one to test and one
  to validation where it has three or more), so all splits see all kinds of
  content but never the same pixels.
  """
  out = {s: [] for s in SPLITS}
  rng = np.random.default_rng(seed)
  for package, name in PHOTOS:
    h, w = load_photo(package, name).shape[:2]
    regions = [Region(photo_name(package, name), y, x, region_size)
               for y in range(0, h - region_size + 1, region_size)
               for x in range(0, w - region_size + 1, region_size)]
    regions = [regions[i] for i in rng.permutation(len(regions))]
    n = len(regions)
    n_test = max(1, round(n * fractions[2])) if n >= 3 else 0
    n_val = max(1, round(n * fractions[1])) if n >= 3 else 0
    out['test'] += regions[:n_test]
    out['validation'] += regions[n_test:n_test + n_val]
    out['train'] += regions[n_test + n_val:]
  return out


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
  return image_io.jpeg_roundtrip(rgb, quality)


def _photo_of(region: Region) -> np.ndarray:
  for package, name in PHOTOS:
    if photo_name(package, name) == region.photo:
      return load_photo(package, name)
  raise KeyError(region.photo)


def _crop(region: Region, resolution: int, rng: np.random.Generator) -> np.ndarray:
  """A textured crop inside `region`, resampled to resolution x resolution."""
  photo = _photo_of(region)
  for _ in range(20):
    size = int(rng.integers(resolution, region.size + 1))
    y = region.y + int(rng.integers(0, region.size - size + 1))
    x = region.x + int(rng.integers(0, region.size - size + 1))
    crop = photo[y:y + size, x:x + size]
    if size != resolution:
      crop = cv2.resize(crop, (resolution, resolution), interpolation=cv2.INTER_AREA)
    if rng.random() < 0.5:
      crop = crop[:, ::-1]
    crop = np.rot90(crop, int(rng.integers(4)))
    if crop.std() >= MIN_CROP_STD and (crop.max(-1) < 16).mean() <= MAX_DARK_FRACTION:
      break
  return np.ascontiguousarray(crop)


def _random_shape(resolution: int, rng: np.random.Generator) -> np.ndarray:
  """A float mask in [0, 1] (feathered ellipse or polygon), centred in a square canvas."""
  canvas = np.zeros((resolution, resolution), np.uint8)
  c = resolution // 2
  r_lo, r_hi = 0.10 * resolution, 0.25 * resolution
  if rng.random() < 0.5:
    axes = (int(rng.uniform(r_lo, r_hi)), int(rng.uniform(r_lo, r_hi)))
    cv2.ellipse(canvas, (c, c), axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
  else:
    k = int(rng.integers(5, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, k))
    radii = rng.uniform(r_lo, r_hi, k)
    pts = np.stack([c + radii * np.cos(angles), c + radii * np.sin(angles)], -1)
    cv2.fillPoly(canvas, [pts.astype(np.int32)], 255)
  feather = float(rng.uniform(0.5, 2.0))
  return cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), feather)


def _pick_region(regions: list[Region], rng: np.random.Generator) -> Region:
  """A photo uniformly, then one of its regions: large photos do not dominate."""
  photos = sorted({r.photo for r in regions})
  photo = photos[int(rng.integers(len(photos)))]
  mine = [r for r in regions if r.photo == photo]
  return mine[int(rng.integers(len(mine)))]


def _shift(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
  """Translates an image (or alpha) by whole pixels, reflecting at the border."""
  h, w = image.shape[:2]
  return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h),
                        flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)


def _blend(host: np.ndarray, donor: np.ndarray, alpha: np.ndarray) -> np.ndarray:
  a = alpha[..., None]
  out = host.astype(np.float32) * (1 - a) + donor.astype(np.float32) * a
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _inside_shift(alpha: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
  """A random shift of the centred shape that keeps it wholly inside the image."""
  h, w = alpha.shape
  ys, xs = np.nonzero(alpha > 0.01)
  return (int(rng.integers(-ys.min(), h - ys.max())),
          int(rng.integers(-xs.min(), w - xs.max())))


def _transform(patch: np.ndarray, alpha: np.ndarray, centre: tuple[float, float],
               rng: np.random.Generator):
  """Optional rotation and scaling of a pasted region and its alpha about `centre` (x, y)."""
  if rng.random() < 0.5:
    return patch, alpha
  h, w = alpha.shape
  m = cv2.getRotationMatrix2D(centre, float(rng.uniform(-30, 30)), float(rng.uniform(0.8, 1.2)))
  return (cv2.warpAffine(patch, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT),
          cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR))


def _texture(rgb: np.ndarray) -> np.ndarray:
  """Local detail: blurred |Laplacian| of the grey image."""
  grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
  return cv2.GaussianBlur(np.abs(cv2.Laplacian(grey, cv2.CV_32F)), (0, 0), 2.0)


def _textured_shift(alpha: np.ndarray, texture: np.ndarray, rng: np.random.Generator,
                    candidates: int = TEXTURE_CANDIDATES) -> tuple[int, int]:
  """Of a few random inside shifts of the shape, the one covering the most detail.

  Forgers move objects, not empty sky: a flat region copied onto flat surroundings
  leaves no trace that any detector could see.
  """
  shifts = [_inside_shift(alpha, rng) for _ in range(candidates)]
  scores = [float((_shift(alpha, *sh) * texture).sum()) for sh in shifts]
  return shifts[int(np.argmax(scores))]


def _copy_move_offset(alpha: np.ndarray, texture: np.ndarray, rng: np.random.Generator):
  """Source (textured) and destination shifts, both inside, apart, off the 8x8 grid."""
  min_dist = alpha.shape[0] / 4
  src = _textured_shift(alpha, texture, rng)
  while True:
    dst = _inside_shift(alpha, rng)
    dy, dx = dst[0] - src[0], dst[1] - src[1]
    if (dy % 8 or dx % 8) and np.hypot(dy, dx) >= min_dist:
      return dst, (dy, dx)


def make_example(regions: list[Region], split: str, index: int, seed: int,
                 resolution: int, ela_quality: int = ela_lib.DEFAULT_QUALITY) -> dict:
  """Example `index` of `split`: a deterministic function of its arguments."""
  rng = np.random.default_rng([seed, SPLITS.index(split), index])
  forgery_type = (AUTHENTIC, COPY_MOVE, AUTHENTIC, SPLICING)[index % 4]
  host_region = _pick_region(regions, rng)
  crop = _crop(host_region, resolution, rng)
  quality = int(rng.integers(*FINAL_QUALITY))
  group = host_region.group
  mask = np.zeros((resolution, resolution), np.uint8)
  if forgery_type == AUTHENTIC:
    final = _jpeg(crop, quality)
  else:
    host = _jpeg(crop, int(rng.integers(*CAMERA_QUALITY)))
    alpha = _random_shape(resolution, rng)
    centre = resolution // 2
    if forgery_type == COPY_MOVE:
      dst, (dy, dx) = _copy_move_offset(alpha, _texture(host), rng)
      donor = _shift(host, dy, dx)  # the source region's pixels, moved onto the destination
    else:
      donor_region = _pick_region([r for r in regions if r.photo != host_region.photo], rng)
      # Forgers paste objects: the most detailed of a few crops of the donor region.
      donor_crops = [_crop(donor_region, resolution, rng) for _ in range(3)]
      donor = max(donor_crops, key=lambda c: float(_texture(c).mean()))
      donor = _jpeg(donor, int(rng.integers(*DONOR_QUALITY)))
      src = _textured_shift(alpha, _texture(donor), rng)
      dst = _inside_shift(alpha, rng)
      donor = _shift(donor, dst[0] - src[0], dst[1] - src[1])
    alpha = _shift(alpha, *dst)
    donor, alpha = _transform(donor, alpha, (centre + dst[1], centre + dst[0]), rng)
    composite = _blend(host, donor, alpha)
    final = _jpeg(composite, quality)
    mask = ((alpha > 0.5) * 255).astype(np.uint8)
  return {
      'image': final,
      'ela': ela_lib.ela(final, ela_quality),
      'mask': mask[..., None],
      'label': int(forgery_type != AUTHENTIC),
      'forgery_type': forgery_type,
      'group': group,
      'jpeg_quality': quality,
  }

"""What every builder of a real release shares: features, configs, decoding, ELA and the build report.

A release builder only names its lister in `forgery_jax.releases` (path, class, scene group,
mask and variant of each file). This module turns every listed file into one example:

* the file is decoded once; its container format (`source_format`, from the bytes, not the
  extension) and, for a JPEG, the quality estimated from its quantisation tables are recorded;
* the `jpeg_normalised` configs first re-encode lossless sources (TIFF, BMP, PNG) as JPEG at one
  fixed quality, so that ELA cannot tell a TIFF from a JPEG (CASIA V2's tampered files are mostly
  TIFF, its authentic ones never);
* the `jpeg_randomised` configs re-encode every file once as JPEG at a quality drawn uniformly
  from `RANDOMISE_QUALITIES` (seeded by the file name, so independent of the class): the
  quantisation-table shortcut (CASIA v1's classes were saved with different tables) is gone, and a
  header lookup falls to chance;
* ELA and the copy-move keypoint evidence (`forgery_jax.keypoints`) are computed at full
  resolution, then `image`, `ela` and `mask` are either resized to the
  config's resolution (the paper) or cropped at native resolution (noise residuals survive), the
  crop centred on the tampered region where a mask shows it;
* files that cannot be decoded or named are skipped and listed, with the reason, in the build
  report: the log and the dataset's `metadata.json` (`skipped`, `masks_ignored`, `counts`,
  `images_per_second`). An unusable mask drops the mask, not the image.

Decoding and ELA run in a pool of worker threads, one per core ($FORGERY_JAX_BUILD_WORKERS
sets another number).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import time
import zlib

from absl import logging
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from forgery_jax import codecs
from forgery_jax import ela as ela_lib
from forgery_jax import jpeg_quality
from forgery_jax import keypoints
from forgery_jax import labels
from forgery_jax.releases import LayoutError, SourceFile

SOURCE_FORMATS = tuple(dict.fromkeys(codecs.SOURCE_FORMATS.values()))  # jpeg, tiff, bmp, png, webp, gif
NORMALISE_QUALITY = 85  # the fixed JPEG quality of the jpeg_normalised configs
RANDOMISE_QUALITIES = (70, 95)  # the qualities (inclusive) of the jpeg_randomised configs


class ReleaseConfig(tfds.core.BuilderConfig):
  """How files become planes: resize or native crop, and the optional JPEG normalisation."""

  def __init__(self, *, resolution: int, crop: bool = False, normalise_quality: int | None = None,
               randomise_qualities: tuple[int, int] | None = None, **kwargs):
    super().__init__(**kwargs)
    self.resolution = resolution
    self.crop = crop
    self.normalise_quality = normalise_quality
    self.randomise_qualities = randomise_qualities

  @property
  def recoding(self) -> 'Recoding':
    return Recoding(self.normalise_quality, self.randomise_qualities)


CONFIGS = (
    ReleaseConfig(name='paper128', resolution=128,
                  description='The paper: ELA at full resolution, then image and ELA resized to 128x128.'),
    ReleaseConfig(name='crop128', resolution=128, crop=True,
                  description='A native-resolution 128x128 crop (on the tampered region when a mask '
                              'shows it): no resize, so noise residuals survive.'),
    ReleaseConfig(name='crop256', resolution=256, crop=True,
                  description='A native-resolution 256x256 crop.'),
    ReleaseConfig(name='jpeg_normalised128', resolution=128, normalise_quality=NORMALISE_QUALITY,
                  description=f'As paper128, but lossless sources (TIFF, BMP, PNG) are first saved '
                              f'as JPEG at quality {NORMALISE_QUALITY}: no file-format shortcut.'),
    ReleaseConfig(name='jpeg_randomised128', resolution=128, randomise_qualities=RANDOMISE_QUALITIES,
                  description='As paper128, but every file is first re-encoded once as JPEG at a '
                              'quality drawn uniformly from %d-%d, seeded by its name: no '
                              'quantisation-table or file-format shortcut.' % RANDOMISE_QUALITIES),
)


def plane(resolution: int) -> tfds.features.Tensor:
  """An (r, r, 3) uint8 plane stored as raw bytes: reading it costs no decode, so the input
  pipeline can feed an accelerator (PNG decoding capped it at about 1,000 examples/s on 14 threads).
  Noisy ELA and photo planes shrank only about 1.6x as PNG anyway."""
  return tfds.features.Tensor(shape=(resolution, resolution, 3), dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


def features(resolution: int) -> tfds.features.FeaturesDict:
  r = resolution
  return tfds.features.FeaturesDict({
      'image': plane(r),
      'ela': plane(r),
      'copy_move': tfds.features.Tensor(shape=(keypoints.NUM_FEATURES,), dtype=np.float32),
      'mask': tfds.features.Image(shape=(r, r, 1)),  # PNG; 255 = tampered, all 0 without a mask
      'has_mask': tfds.features.Scalar(dtype=np.bool_),
      'label': tfds.features.ClassLabel(names=list(labels.BINARY_LABELS)),
      'forgery_type': tfds.features.ClassLabel(names=list(labels.FORGERY_TYPES)),
      'group': tfds.features.Text(),
      'source_format': tfds.features.ClassLabel(names=list(SOURCE_FORMATS)),
      'jpeg_quality': tfds.features.Scalar(dtype=np.int32),  # 0: not a JPEG (after any re-encoding)
      'height': tfds.features.Scalar(dtype=np.int32),        # of the source file
      'width': tfds.features.Scalar(dtype=np.int32),
      'filename': tfds.features.Text(),
      'variant': tfds.features.Text(),
      'release': tfds.features.Text(),
  })


def _read(path: str) -> tuple[np.ndarray, str, int]:
  """RGB pixels, container format and JPEG quality (0 if not a JPEG) of a file."""
  try:
    with codecs.open_image(path) as im:
      fmt = codecs.SOURCE_FORMATS.get(im.format)
      if fmt is None:
        raise ValueError(f'unsupported image format {im.format}')
      quality = jpeg_quality.estimate_from_image(im) if fmt == 'jpeg' else None
      im.load()
      rgb = codecs.pil_to_rgb(im)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise ValueError(f'cannot read image {path}: {e}') from e
  return rgb, fmt, quality.quality if quality else 0


def _read_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
  """A {0, 255} mask of `shape`; a transposed mask (a CASIA V2 quirk) is turned back."""
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


def _crop_window(mask: np.ndarray | None, shape: tuple[int, int], size: int) -> tuple[int, int]:
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


def _crop(plane: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
  out = plane[top:top + size, left:left + size]
  pad = [(0, size - out.shape[0]), (0, size - out.shape[1])] + [(0, 0)] * (out.ndim - 2)
  if any(p[1] for p in pad):  # smaller than the window: mirror, never interpolate
    out = np.pad(out, pad, mode='reflect' if min(out.shape[:2]) > 1 else 'edge')
  return out


def _resize(plane: np.ndarray, size: int, resample) -> np.ndarray:
  return np.asarray(Image.fromarray(plane).resize((size, size), resample))


@dataclasses.dataclass(frozen=True)
class Recoding:
  """What happens to a file's pixels before ELA: nothing, or a JPEG re-encoding."""
  normalise_quality: int | None = None                   # lossless sources only
  randomise_qualities: tuple[int, int] | None = None     # every file, quality from its name

  def quality(self, filename: str, source_format: str) -> int | None:
    """The JPEG quality `filename` is re-encoded at, or None to keep its pixels."""
    if self.randomise_qualities:
      lo, hi = self.randomise_qualities
      return int(np.random.default_rng(zlib.crc32(filename.encode())).integers(lo, hi + 1))
    if self.normalise_quality and source_format != 'jpeg':
      return self.normalise_quality
    return None


def full_resolution_planes(rgb: np.ndarray, quality: int | None = None,
                           with_copy_move: bool = True) -> dict[str, np.ndarray]:
  """`image`, its ELA and (unless not asked for) its copy-move evidence at full resolution,
  re-encoded first at `quality` if given."""
  if quality:
    rgb = codecs.jpeg_roundtrip(rgb, quality)
  full = {'image': rgb, 'ela': ela_lib.ela(rgb)}
  if with_copy_move:  # SIFT costs more than decoding and ELA together
    full['copy_move'] = keypoints.copy_move_evidence(rgb)
  return full


def fit_planes(full: dict[str, np.ndarray], resolution: int, crop: bool,
               mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """The planes at `resolution`: a native window (on the mask's tampered box) or a resize.

  Returns `image`, `ela` (r, r, 3) and `mask` (r, r, 1), all uint8, and `copy_move` if given.
  """
  h, w = full['image'].shape[:2]
  planes = {'image': full['image'], 'ela': full['ela'],
            'mask': mask if mask is not None else np.zeros((h, w), np.uint8)}
  if crop:
    top, left = _crop_window(mask, (h, w), resolution)
    planes = {k: _crop(v, top, left, resolution) for k, v in planes.items()}
  else:
    # PIL's bicubic resize, as the paper's Keras pipeline; the mask stays binary.
    planes = {k: _resize(v, resolution, Image.NEAREST if k == 'mask' else Image.BICUBIC)
              for k, v in planes.items()}
  planes['mask'] = planes['mask'][..., None]
  if 'copy_move' in full:
    planes['copy_move'] = full['copy_move']
  return planes


def make_example(source: SourceFile, resolution: int, crop: bool,
                 recoding: Recoding = Recoding()) -> tuple[dict, str | None]:
  """The features of one file, and a note if its mask was unusable (the example is kept).

  Raises ValueError naming the file if the image itself cannot be used.
  """
  rgb, fmt, quality = _read(source.path)
  h, w = rgb.shape[:2]
  recode = recoding.quality(source.filename, fmt)
  if recode:  # the file now is a JPEG at that quality: what its header would say
    fmt, quality = 'jpeg', recode
  full = full_resolution_planes(rgb, recode)
  mask, note = None, None
  if source.mask_path:
    try:
      mask = _read_mask(source.mask_path, (h, w))
    except ValueError as e:
      note = f'{e}; {source.filename} kept without a mask'
  planes = fit_planes(full, resolution, crop, mask)
  example = {'image': planes['image'], 'ela': planes['ela'], 'copy_move': planes['copy_move'],
             'mask': codecs.encode_png(planes['mask'])}
  example.update(
      has_mask=mask is not None,
      label=labels.BINARY_LABELS[int(source.forgery_type != labels.AUTHENTIC)],
      forgery_type=source.forgery_type, group=source.group, source_format=fmt,
      jpeg_quality=quality, height=h, width=w, filename=source.filename,
      variant=source.variant, release=source.release)
  return example, note


def _make_or_error(args) -> tuple[dict | None, str | None, str | None]:
  """(example, mask note, None) or (None, None, error)."""
  try:
    return *make_example(*args), None
  except ValueError as e:
    return None, None, str(e)


WORKERS_ENV = 'FORGERY_JAX_BUILD_WORKERS'


def build_workers(num_files: int) -> int:
  """Worker threads for a build: $FORGERY_JAX_BUILD_WORKERS, else one per core (>= 16 files each)."""
  if os.environ.get(WORKERS_ENV):
    return max(1, int(os.environ[WORKERS_ENV]))
  return max(1, min(num_files // 16, os.cpu_count() or 1))


class ReleaseBuilder(tfds.core.GeneratorBasedBuilder):
  """Base of the real-release builders: subclasses set `list_release` and the docs."""

  VERSION = tfds.core.Version('2.2.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '2.0.0': '`image` and `ela` stored as raw uint8 (no decode when reading).',
                   '2.1.0': 'WebP and GIF sources are read; `source_format` names them.',
                   '2.2.0': '`copy_move` keypoint evidence; the jpeg_randomised128 config.'}
  BUILDER_CONFIGS = list(CONFIGS)
  DEFAULT_CONFIG_NAME = 'paper128'
  HOMEPAGE = ''

  # staticmethod(lister): (manual_dir, skipped) -> [SourceFile], from forgery_jax.releases.
  list_release = None

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=features(self.builder_config.resolution), supervised_keys=None,
        homepage=self.HOMEPAGE, metadata=tfds.core.MetadataDict())

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    try:
      manual_dir = os.fspath(dl_manager.manual_dir)
    except AssertionError as e:
      raise LayoutError(f'{self.name}: {e}') from e
    skipped: list[dict] = []
    files = self.list_release(manual_dir, skipped)
    if not files:
      raise LayoutError(f'{self.name}: no usable images under {manual_dir}')
    # The releases have no official splits: one `train` split; forgery_jax.splits makes the protocol's.
    return {'train': self._generate_examples(files, skipped)}

  def _generate_examples(self, files: list[SourceFile], skipped: list[dict]):
    cfg = self.builder_config
    jobs = [(f, cfg.resolution, cfg.crop, cfg.recoding) for f in files]
    counts: collections.Counter = collections.Counter()
    mask_problems: list[dict] = []
    start = time.perf_counter()
    workers = build_workers(len(jobs))
    # Threads, not processes: decoding, ELA (OpenCV) and resizing run in C with the GIL released,
    # and threads start at once (spawned processes spent seconds importing before any work).
    pool = concurrent.futures.ThreadPoolExecutor(workers) if workers > 1 else None

    def results():
      window = 32 * workers  # bounded: finished examples wait for the writer in small numbers
      for lo in range(0, len(jobs), window):
        chunk = jobs[lo:lo + window]
        yield from (pool.map(_make_or_error, chunk) if pool else map(_make_or_error, chunk))

    # One image per worker thread: OpenCV's own parallel loops would only add hand-offs.
    with codecs.opencv_threads(1) if pool else contextlib.nullcontext():
      try:
        for source, (example, note, error) in zip(files, results()):
          if note is not None:
            logging.warning('%s', note)
            mask_problems.append({'file': source.filename, 'reason': note})
          if error is not None:
            logging.warning('skipped %s', error)
            skipped.append({'file': source.filename, 'reason': error})
            continue
          counts[f"{source.release + '/' if source.release else ''}{source.forgery_type}"] += 1
          yield source.filename, example
      finally:
        if pool is not None:
          pool.shutdown()
    if not counts:
      reasons = '; '.join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
      raise LayoutError(f'{self.name}: no usable images among the {len(files)} listed ({reasons})')
    seconds = time.perf_counter() - start
    report = {'counts': dict(sorted(counts.items())), 'skipped': skipped,
              'masks_ignored': mask_problems, 'workers': workers,
              'seconds': round(seconds, 1),
              'images_per_second': round(sum(counts.values()) / max(seconds, 1e-9), 1)}
    self.info.metadata.update(report)
    logging.info('%s build report: %s images %s in %.1f s with %d workers (%.1f images/s); %d skipped',
                 self.name, sum(counts.values()), report['counts'], seconds, workers,
                 report['images_per_second'], len(skipped))
    for s in skipped:
      logging.warning('skipped %s: %s', s['file'], s['reason'])


def instructions(where: str, tree: str | None) -> str:
  """MANUAL_DOWNLOAD_INSTRUCTIONS: where the release comes from and the tree to put it in."""
  text = f'{where}\nPass its folder as --manual_dir (tfds build) or --config.dataset.manual_dir (main).'
  return f'{text}\nLayout:\n{tree}\n' if tree else f'{text}\n'

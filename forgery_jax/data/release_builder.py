"""What every builder of a real release shares: features, configs, the build loop and its report.

A release builder only names its lister in `forgery_jax.data.releases` (path, class, scene group,
mask and variant of each file). This module turns every listed file into one example through its
builder config's `Preparation` (`forgery_jax.data.preparation`: decoding, any JPEG re-encoding,
ELA and keypoint evidence at full resolution, then resize, native crop or native size):

* the container format (`source_format`, from the bytes, not the extension) and, for a JPEG, the
  quality estimated from its quantisation tables are recorded, after any re-encoding;
* files that cannot be decoded or named are skipped and listed, with the reason, in the build
  report: the log and the dataset's `metadata.json` (`skipped`, `masks_ignored`, `counts`,
  `images_per_second`). An unusable mask drops the mask, not the image.

Decoding, ELA and keypoints run in a pool of worker processes, one per core
($FORGERY_JAX_BUILD_WORKERS sets another number).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
import sys
import time

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from forgery_jax import image_io
from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax.data import build_lock
from forgery_jax.data import labels
from forgery_jax.data.preparation import Preparation, Recoding, read_image, read_mask
from forgery_jax.data.releases import LayoutError, SourceFile
from forgery_jax.forensics import keypoints

SOURCE_FORMATS = tuple(dict.fromkeys(image_io.SOURCE_FORMATS.values()))  # jpeg, tiff, bmp, png, webp, gif
NORMALISE_QUALITY = 85  # the fixed JPEG quality of the jpeg_normalised configs
RANDOMISE_QUALITIES = (70, 95)  # the qualities (inclusive) of the jpeg_randomised configs


class ReleaseConfig(tfds.core.BuilderConfig):
  """A builder config: the `Preparation` of its planes (geometry, resolution, recoding)."""

  def __init__(self, *, preparation: Preparation, **kwargs):
    super().__init__(**kwargs)
    self.preparation = preparation

  @property
  def resolution(self) -> int | None:
    """The side of every plane, or None for native-size planes."""
    return self.preparation.plane_side


_HISTORY = ('The history-matched control of %s: authentic files are first saved through the '
            'quantisation tables of one of the release\'s own tampered JPEG files (drawn by name, '
            'as often as the tampered files use them), then every file is re-encoded at the same '
            'random quality as there. An authentic file here carries a tampered file\'s history: '
            'a detector that reads histories flags it.')


def _config(name: str, description: str, **preparation) -> ReleaseConfig:
  return ReleaseConfig(name=name, preparation=Preparation(**preparation), description=description)


CONFIGS = (
    _config('paper128', 'The paper: ELA at full resolution, then image and ELA resized to 128x128.',
            geometry='resize', resolution=128),
    _config('crop128', 'A native-resolution 128x128 crop (on the tampered region when a mask shows '
            'it): no resize, so noise residuals survive.', geometry='crop', resolution=128),
    _config('crop256', 'A native-resolution 256x256 crop.', geometry='crop', resolution=256),
    _config('jpeg_normalised128', f'As paper128, but lossless sources (TIFF, BMP, PNG) are first '
            f'saved as JPEG at quality {NORMALISE_QUALITY}: no file-format shortcut.',
            geometry='resize', resolution=128,
            recoding=Recoding(normalise_quality=NORMALISE_QUALITY)),
    _config('jpeg_randomised128', 'As paper128, but every file is first re-encoded once as JPEG at '
            'a quality drawn uniformly from %d-%d, seeded by its name: no quantisation-table or '
            'file-format shortcut.' % RANDOMISE_QUALITIES, geometry='resize', resolution=128,
            recoding=Recoding(randomise_qualities=RANDOMISE_QUALITIES)),
    _config('history_matched128', _HISTORY % 'jpeg_randomised128', geometry='resize', resolution=128,
            recoding=Recoding(randomise_qualities=RANDOMISE_QUALITIES, history_from_tampered=True)),
    _config('native', "Image, ELA and mask at the file's own size (PNG), for localisation: pixel "
            'scores at the original resolution, training crops taken when read.', geometry='native'),
    _config('native_jpeg_randomised', 'As native, but every file is first re-encoded once as JPEG at '
            'a quality drawn uniformly from %d-%d, seeded by its name.' % RANDOMISE_QUALITIES,
            geometry='native', recoding=Recoding(randomise_qualities=RANDOMISE_QUALITIES)),
    _config('native_history_matched', _HISTORY % 'native_jpeg_randomised', geometry='native',
            recoding=Recoding(randomise_qualities=RANDOMISE_QUALITIES, history_from_tampered=True)),
)


def plane(resolution: int) -> tfds.features.Tensor:
  """An (r, r, 3) uint8 plane stored as raw bytes: reading it costs no decode, so the input
  pipeline can feed an accelerator (PNG decoding capped it at about 1,000 examples/s on 14 threads).
  Noisy ELA and photo planes shrank only about 1.6x as PNG anyway."""
  return tfds.features.Tensor(shape=(resolution, resolution, 3), dtype=np.uint8,
                              encoding=tfds.features.Encoding.BYTES)


def features(resolution: int | None) -> tfds.features.FeaturesDict:
  """The features of a release example; `resolution=None`: planes at each file's own size (PNG)."""
  if resolution is None:
    image, mask = tfds.features.Image(shape=(None, None, 3)), tfds.features.Image(shape=(None, None, 1))
    image_planes = {'image': image, 'ela': tfds.features.Image(shape=(None, None, 3))}
  else:
    image_planes = {'image': plane(resolution), 'ela': plane(resolution)}
    mask = tfds.features.Image(shape=(resolution, resolution, 1))
  return tfds.features.FeaturesDict({
      **image_planes,
      'copy_move': tfds.features.Tensor(shape=(keypoints.NUM_FEATURES,), dtype=np.float32),
      'mask': mask,  # PNG; 255 = tampered, all 0 without a mask
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


def make_example(source: SourceFile, preparation: Preparation) -> tuple[dict, str | None]:
  """The features of one file, and a note if its mask was unusable (the example is kept).

  Raises ValueError naming the file if the image itself cannot be used.
  """
  rgb, fmt, quality = read_image(source.path)
  h, w = rgb.shape[:2]
  mask, note = None, None
  if source.mask_path:
    try:
      mask = read_mask(source.mask_path, (h, w))
    except ValueError as e:
      note = f'{e}; {source.filename} kept without a mask'
  planes, recoded = preparation.planes(
      rgb, filename=source.filename, source_format=fmt,
      authentic=source.forgery_type == labels.AUTHENTIC, mask=mask, with_copy_move=True)
  if recoded:  # the file now is a JPEG at that quality: what its header would say
    fmt, quality = 'jpeg', recoded
  encode = image_io.encode_png if preparation.geometry == 'native' else (lambda a: a)
  example = {'image': encode(planes['image']), 'ela': encode(planes['ela']),
             'copy_move': planes['copy_move'], 'mask': image_io.encode_png(planes['mask'])}
  example.update(
      has_mask=mask is not None,
      label=labels.BINARY_LABELS[int(source.forgery_type != labels.AUTHENTIC)],
      forgery_type=source.forgery_type, group=source.group, source_format=fmt,
      jpeg_quality=quality, height=h, width=w, filename=source.filename,
      variant=source.variant, release=source.release)
  return example, note


def _history_report(preparation: Preparation) -> list[dict]:
  """The tables the control's authentic files were first saved through, with the quality their
  luminance table is closest to, and how many tampered files use them."""
  from forgery_jax.forensics import jpeg_quality  # pylint: disable=g-import-not-at-top
  r = preparation.recoding
  return [{'tampered_files': int(n), 'quality': jpeg_quality.estimate_from_table(luma).quality,
           'ijg_table': jpeg_quality.estimate_from_table(luma).exact}
          for (luma, _), n in zip(r.history_tables or (), r.history_counts or ())]


def tampered_tables(files: list[SourceFile]) -> dict[tuple, int]:
  """{(luma, chroma) tables: number of tampered JPEG files using them}, in file order."""
  counts: dict[tuple, int] = {}
  for f in files:
    if f.forgery_type == labels.AUTHENTIC:
      continue
    try:
      with image_io.open_image(f.path) as im:
        tables = getattr(im, 'quantization', None) if im.format in ('JPEG', 'MPO') else None
    except (OSError, ValueError, SyntaxError):
      continue  # the build reports the file
    if tables and len(tables) >= 2:
      key = (tuple(int(v) for v in tables[0]), tuple(int(v) for v in tables[1]))
      counts[key] = counts.get(key, 0) + 1
  return counts


def _make_or_error(args) -> tuple[dict | None, str | None, str | None]:
  """(example, mask note, None) or (None, None, error)."""
  try:
    return *make_example(*args), None
  except ValueError as e:
    return None, None, str(e)


WORKERS_ENV = 'FORGERY_JAX_BUILD_WORKERS'


def init_worker() -> None:
  """A build worker process: OpenCV on one thread (one image per process); it ends with the build
  (a build killed outright left its workers running)."""
  import cv2  # pylint: disable=g-import-not-at-top
  cv2.setNumThreads(1)
  runtime.exit_with_parent()


def build_workers(num_files: int) -> int:
  """Worker processes for a build: $FORGERY_JAX_BUILD_WORKERS, else one per core (>= 16 files
  each)."""
  if os.environ.get(WORKERS_ENV):
    return max(1, int(os.environ[WORKERS_ENV]))
  return max(1, min(num_files // 16, os.cpu_count() or 1))


class LocalDatasetInfo(tfds.core.DatasetInfo):
  """The `DatasetInfo` of these builders: none of their datasets is on the TFDS bucket, and the
  bucket lookup of an unbuilt dataset leaves an empty folder in the temporary directory for every
  builder made (thousands over a test run)."""

  def initialize_from_bucket(self) -> None:
    pass


def dataset_info(builder: tfds.core.DatasetBuilder, **kwargs) -> LocalDatasetInfo:
  """`builder.dataset_info_from_configs` (the description and citation of the builder's folder
  prevail), as a `LocalDatasetInfo`."""
  metadata = builder.get_metadata()
  if metadata.description:
    kwargs['description'] = metadata.description
  if metadata.citation:
    kwargs['citation'] = metadata.citation
  return LocalDatasetInfo(builder=builder, **kwargs)


class ReleaseBuilder(build_lock.LockedBuild, tfds.core.GeneratorBasedBuilder):
  """Base of the real-release builders: subclasses set `list_release` and the docs."""

  VERSION = tfds.core.Version('2.2.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '2.0.0': '`image` and `ela` stored as raw uint8 (no decode when reading).',
                   '2.1.0': 'WebP and GIF sources are read; `source_format` names them.',
                   '2.2.0': '`copy_move` keypoint evidence; the jpeg_randomised128 config.'}
  BUILDER_CONFIGS = list(CONFIGS)
  DEFAULT_CONFIG_NAME = 'paper128'
  HOMEPAGE = ''

  # staticmethod(lister): (manual_dir, skipped) -> [SourceFile], from forgery_jax.data.releases.
  list_release = None

  def _info(self) -> tfds.core.DatasetInfo:
    return dataset_info(
        self,
        description=f'{(sys.modules[type(self).__module__].__doc__ or self.name).strip()}\n\n'
                    f'This config ({self.builder_config.name}): {self.builder_config.description}',
        features=features(self.builder_config.resolution), supervised_keys=None,
        homepage=self.HOMEPAGE, metadata=tfds.core.MetadataDict())

  def preparation_for(self, files: list[SourceFile]) -> Preparation:
    """The config's preparation for these files; the history-matched control first reads the
    quantisation tables of the tampered JPEG files."""
    preparation = self.builder_config.preparation
    if not preparation.recoding.history_from_tampered:
      return preparation
    tables = tampered_tables(files)
    if not tables:
      raise LayoutError(f'{self.name}/{self.builder_config.name}: no tampered JPEG file to take '
                        'a history from')
    recoding = dataclasses.replace(preparation.recoding, history_tables=tuple(tables),
                                   history_counts=tuple(tables.values()))
    logging.info('history-matched control: %d table sets of %d tampered JPEG files',
                 len(tables), sum(tables.values()))
    return dataclasses.replace(preparation, recoding=recoding)

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
    preparation = self.preparation_for(files)
    jobs = [(f, preparation) for f in files]
    counts: collections.Counter = collections.Counter()
    mask_problems: list[dict] = []
    start = time.perf_counter()
    workers = build_workers(len(jobs))
    # Worker processes (spawned: this process has TensorFlow loaded): decoding and ELA release the
    # GIL, but SIFT matching and PNG encoding hold it, so threads shared one core for them.
    pool = (concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context('spawn'), initializer=init_worker)
            if workers > 1 else None)

    def results():
      window = 32 * workers  # bounded: finished examples wait for the writer in small numbers
      for lo in range(0, len(jobs), window):
        chunk = jobs[lo:lo + window]
        yield from (pool.map(_make_or_error, chunk, chunksize=4) if pool else map(_make_or_error, chunk))

    try:
      for source, (example, note, error) in progress.bar(
          zip(files, results()), total=len(files), desc=f'building {self.name}/{cfg.name}',
          unit='image'):
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
        pool.shutdown(cancel_futures=True)
    if not counts:
      reasons = '; '.join(f"{s['file']}: {s['reason']}" for s in skipped[:3])
      raise LayoutError(f'{self.name}: no usable images among the {len(files)} listed ({reasons})')
    seconds = time.perf_counter() - start
    report = {'counts': dict(sorted(counts.items())), 'skipped': skipped,
              'masks_ignored': mask_problems, 'workers': workers,
              'history_tables': _history_report(preparation),
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
  text = (f'{where}\nPass its folder as --manual_dir (tfds build, evaluate, predict) or '
          '--config.dataset.manual_dir (main).')
  return f'{text}\nLayout:\n{tree}\n' if tree else f'{text}\n'

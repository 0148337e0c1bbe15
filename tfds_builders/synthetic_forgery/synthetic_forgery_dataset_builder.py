"""synthetic_forgery: the embedded default dataset of forgery_jax.

Copy-move and splicing forgeries with masks, made deterministically from the
natural photographs that scikit-image and scikit-learn install, so that the
default training run needs no download. Train, validation and test use
disjoint regions of the photos (see `forgery_jax.data.synthetic`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing

import numpy as np
import tensorflow_datasets as tfds

from forgery_jax import image_io
from forgery_jax.data import build_lock
from forgery_jax.data import labels
from forgery_jax.data import release_builder
from forgery_jax.data import synthetic
from forgery_jax.data.preparation import Preparation


class SyntheticForgeryConfig(tfds.core.BuilderConfig):
  """Resolution and number of examples per split."""

  def __init__(self, *, resolution: int, num_examples: dict[str, int], seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.resolution = resolution
    self.num_examples = num_examples
    self.seed = seed
    # The examples are native-resolution crops of photos: a new image is cropped likewise.
    self.preparation = Preparation(geometry='crop', resolution=resolution)


def _config(name: str, resolution: int, train: int, validation: int, test: int, description: str):
  return SyntheticForgeryConfig(
      name=name, resolution=resolution, description=description,
      num_examples={'train': train, 'validation': validation, 'test': test})


def _encoded_example(*args, **kwargs) -> dict:
  """One synthetic example with its mask PNG-encoded (in the worker, not by TFDS)."""
  example = synthetic.make_example(*args, **kwargs)
  return dict(example, mask=image_io.encode_png(example['mask']))


class Builder(build_lock.LockedBuild, tfds.core.GeneratorBasedBuilder):
  """Synthetic copy-move and splicing forgeries with precomputed ELA planes."""

  VERSION = tfds.core.Version('2.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '2.0.0': '`image` and `ela` stored as raw uint8 (no decode when reading).'}
  BUILDER_CONFIGS = [
      _config('r128', 128, 4000, 300, 600, "128x128, the paper's input size (default)."),
      _config('r64', 64, 4000, 800, 1600, '64x64 crops.'),
      _config('r256', 256, 2000, 400, 800, '256x256 crops.'),
      _config('tiny', 32, 64, 32, 32, '32x32, a few examples: for tests.'),
  ]
  DEFAULT_CONFIG_NAME = 'r128'

  def _info(self) -> tfds.core.DatasetInfo:
    r = self.builder_config.resolution
    return release_builder.dataset_info(
        self, features=tfds.features.FeaturesDict({
            'image': release_builder.plane(r),
            'ela': release_builder.plane(r),
            'mask': tfds.features.Image(shape=(r, r, 1)),
            'label': tfds.features.ClassLabel(names=list(labels.BINARY_LABELS)),
            'forgery_type': tfds.features.ClassLabel(names=list(labels.FORGERY_TYPES)),
            'group': tfds.features.Text(),
            'jpeg_quality': tfds.features.Scalar(dtype=np.int32),
        }),
        supervised_keys=None,
        homepage='https://scikit-image.org/docs/stable/api/skimage.data.html',
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # Nothing to download: the photos ship with scikit-image and scikit-learn.
    cfg = self.builder_config
    regions = synthetic.split_regions(region_size=cfg.resolution * 5 // 4, seed=cfg.seed)
    return {split: self._generate_examples(split, regions[split], cfg.num_examples[split])
            for split in synthetic.SPLITS}

  def _generate_examples(self, split: str, regions, num_examples: int):
    cfg = self.builder_config
    make = functools.partial(_encoded_example, regions, split,
                             seed=cfg.seed, resolution=cfg.resolution)
    workers = max(1, min(num_examples // 64, multiprocessing.cpu_count()))
    if workers == 1:
      examples = map(make, range(num_examples))
      for i, ex in enumerate(examples):
        yield f'{split}_{i:06d}', ex
      return
    # 'spawn': the builder process has TensorFlow loaded, which must not be forked.
    ctx = multiprocessing.get_context('spawn')
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx,
                                                initializer=release_builder.init_worker) as pool:
      for i, ex in enumerate(pool.map(make, range(num_examples), chunksize=32)):
        yield f'{split}_{i:06d}', ex

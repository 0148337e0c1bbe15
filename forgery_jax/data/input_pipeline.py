"""grain input pipeline over TFDS array_record data sources (no TensorFlow).

All splits a builder wrote are pooled into one indexable table; the split
protocol of `config.dataset.split` (see `splits.py`) then picks train,
validation and test indices. A builder whose own `test` split is already
group-clean (the synthetic set) keeps its splits under the `grouped` protocol.

Training batches come from `shuffle(seed).repeat(epochs)`: a deterministic
shuffle that differs per epoch; each process reads its contiguous share of every
global batch, so the global batch is the concatenation of the processes' batches
and does not depend on the number of processes.
The iterator's state (its position) is saved in every checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

from absl import logging
import cv2
import grain
import numpy as np
import tensorflow_datasets as tfds

from forgery_jax import runtime
from forgery_jax.data import splits as splits_lib

META_KEYS = ('label', 'forgery_type', 'group')


class PooledSource:
  """One random-access table over several TFDS data sources (builder splits)."""

  def __init__(self, sources: dict):
    self._names = list(sources)
    self._sources = [sources[n] for n in self._names]
    self._offsets = np.cumsum([0] + [len(s) for s in self._sources])

  def __len__(self) -> int:
    return int(self._offsets[-1])

  def __getitem__(self, index: int) -> dict:
    k = int(np.searchsorted(self._offsets, index, side='right')) - 1
    return self._sources[k][int(index - self._offsets[k])]

  def builder_split_of(self, name: str) -> np.ndarray:
    k = self._names.index(name)
    return np.arange(self._offsets[k], self._offsets[k + 1])


class Subset:
  """The examples of `source` at `indices`, as a grain-compatible source."""

  def __init__(self, source, indices: np.ndarray):
    self._source = source
    self._indices = np.asarray(indices)

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, i: int) -> dict:
    return self._source[int(self._indices[i])]


@dataclasses.dataclass
class Dataset:
  """A prepared dataset split by the configured protocol."""
  source: PooledSource
  split: splits_lib.Split
  labels: np.ndarray          # the task's class per pooled example
  forgery_types: np.ndarray
  groups: list[str]
  class_names: tuple[str, ...]
  extra: dict[str, np.ndarray]  # other scalar features (e.g. jpeg_quality) per example
  filenames: list[str] | None = None   # per example, where the builder keeps them
  copy_move: np.ndarray | None = None  # (N, keypoints.NUM_FEATURES) evidence, where stored
  name: str = ''                       # the builder's full name, e.g. casia1/paper128/2.2.0
  preparation: object = None           # how its planes were made (data.preparation.Preparation)
  has_mask: np.ndarray | None = None   # per example: a ground-truth mask is stored
  fingerprint: str = ''                # `content_fingerprint` of every example, in pooled order

  def subset(self, name: str) -> Subset:
    return Subset(self.source, getattr(self.split, name))

  @property
  def split_fingerprint(self) -> str:
    """SHA-256 over which example (place, file name or group, forgery type) is in which split:
    what a run's scores rest on, recorded with it (`check_trained_on`)."""
    digest = hashlib.sha256()
    names = self.filenames or self.groups
    for part in ('train', 'validation', 'test'):
      digest.update(part.encode())
      for i in getattr(self.split, part):
        digest.update(f'{int(i)}:{names[i]}:{int(self.forgery_types[i])};'.encode())
    return digest.hexdigest()


def content_fingerprint(examples) -> str:
  """SHA-256 over every feature of every example, in order: two builds with the same examples
  have the same fingerprint, whatever their shard files' bytes (which differ from build to build).
  results.json records it, so that runs on two machines can say whether they read one dataset."""
  digest = hashlib.sha256()
  for example in examples:
    _add_example(digest, example)
  return digest.hexdigest()


def _add_example(digest, example: dict) -> None:
  """One example into a `content_fingerprint`: each feature's name, dtype, shape and bytes."""
  for key in sorted(example):
    value = example[key]
    if not isinstance(value, bytes):
      value = np.asarray(value)
      digest.update(f'{value.dtype.str}{value.shape}'.encode())
      value = value.tobytes()
    digest.update(key.encode() + len(value).to_bytes(8, 'little') + value)


def _metadata(builder) -> tuple[dict[str, np.ndarray], str]:
  """Every feature but the planes (scalars, names, small vectors such as `copy_move`) of every
  example of every builder split, read once without decoding an image, and the fingerprint of
  every feature (`content_fingerprint`; the planes as stored)."""
  plane_keys = {k for k, f in builder.info.features.items()
                if isinstance(f, (tfds.features.Image, tfds.features.Tensor)) and len(f.shape) >= 2}
  decoders = {k: tfds.decode.SkipDecoding() for k in plane_keys}
  pooled = PooledSource({s: builder.as_data_source(s, decoders=decoders) for s in builder.info.splits})
  columns: dict[str, list] = {}
  digest = hashlib.sha256()
  for i in range(len(pooled)):
    example = pooled[i]
    _add_example(digest, example)
    for k, v in example.items():
      if k not in plane_keys:
        columns.setdefault(k, []).append(v)
  return {k: np.asarray(v) for k, v in columns.items()}, digest.hexdigest()


def load(config, all_for_test: bool = False, **dataset_fields) -> Dataset:
  """`config.dataset` (with `dataset_fields` changed, e.g. another builder config), built first
  where needed (by process 0 while the others wait) and split by its protocol."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  if dataset_fields:
    config = ml_collections.ConfigDict(config.to_dict())
    config.dataset.update(dataset_fields)
  if jax.process_index() == 0:
    datasets.ensure_built(config.dataset)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(f'dataset {config.dataset.name} prepared')
  return load_dataset(datasets.ensure_built(config.dataset), config, all_for_test=all_for_test)


def load_dataset(builder, config, *, all_for_test: bool = False) -> Dataset:
  """Pools the builder's splits and applies the split protocol of `config.dataset`.

  `all_for_test` puts every example in `test` (cross-dataset evaluation).
  """
  dc = config.dataset
  meta, fingerprint = _metadata(builder)
  # The mask is not a model input: leave its PNG undecoded.
  decoders = {'mask': tfds.decode.SkipDecoding()} if 'mask' in builder.info.features else None
  sources = {s: builder.as_data_source(s, decoders=decoders) for s in builder.info.splits}
  pooled = PooledSource(sources)
  groups = [g.decode() if isinstance(g, bytes) else str(g) for g in meta['group']]
  forgery_types = meta['forgery_type'].astype(np.int64)
  if dc.num_classes == 2:
    labels = meta['label'].astype(np.int64)
    class_names = tuple(builder.info.features['label'].names)
  elif dc.num_classes == 3:
    labels = forgery_types
    class_names = tuple(builder.info.features['forgery_type'].names)
  else:
    raise ValueError(f'config.dataset.num_classes must be 2 or 3, got {dc.num_classes}')
  has_own_splits = {'train', 'test'} <= set(builder.info.splits)
  if all_for_test:
    none = np.arange(0)
    split = splits_lib.Split(none, none, np.arange(len(pooled)))
  elif dc.split == 'grouped' and has_own_splits:
    # The builder's own splits are group-clean by construction: keep them.
    train = pooled.builder_split_of('train')
    if 'validation' in builder.info.splits:
      validation = pooled.builder_split_of('validation')
    else:
      train, validation = splits_lib.hold_out(
          forgery_types, splits_lib.connected_groups(groups), round(1 / dc.validation_fraction),
          0, dc.split_seed + 1, train)
    split = splits_lib.Split(train, validation, pooled.builder_split_of('test'))
  else:
    split = splits_lib.make_split(
        forgery_types, groups, dc.split, seed=dc.split_seed, test_fraction=dc.test_fraction,
        validation_fraction=dc.validation_fraction, num_folds=dc.num_folds, fold=max(dc.fold, 0))
  if dc.train_classes and not all_for_test:
    from forgery_jax.data import labels as labels_lib  # pylint: disable=g-import-not-at-top
    kept = [labels_lib.FORGERY_TYPES.index(c) for c in dc.train_classes]
    keep = lambda idx: idx[np.isin(forgery_types[idx], kept)]
    split = splits_lib.Split(keep(split.train), keep(split.validation), split.test)
  if dc.get('train_fraction', 1.0) != 1.0 and not all_for_test:
    train = splits_lib.training_share(split.train, splits_lib.connected_groups(groups),
                                      dc.train_fraction, dc.split_seed + 2)
    split = splits_lib.Split(train, split.validation, split.test)
  extra = {k: v for k, v in meta.items()
           if k not in META_KEYS and v.ndim == 1 and v.dtype.kind in 'iuf'}
  filenames = ([f.decode() if isinstance(f, bytes) else str(f) for f in meta['filename']]
               if 'filename' in meta else None)
  return Dataset(pooled, split, labels, forgery_types, groups, class_names, extra,
                 filenames=filenames, copy_move=meta.get('copy_move'), name=builder.info.full_name,
                 preparation=getattr(builder.builder_config, 'preparation', None),
                 has_mask=meta.get('has_mask'), fingerprint=fingerprint)


def check_trained_on(dataset: Dataset, split_fingerprint: str, run: str) -> None:
  """DatasetError unless `dataset` is split as `run` split it (`split_fingerprint`, recorded when
  it trained; '' for a run that recorded none): a dataset rebuilt from other release files is
  split otherwise, so the run's test split would hold files it trained on and its scores would
  say nothing. Planes made by another JPEG library from the same files pass."""
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  actual = dataset.split_fingerprint if split_fingerprint else ''
  if actual != split_fingerprint:
    raise datasets.DatasetError(
        f'{run}: {dataset.name} is not split as when the run trained (split fingerprint '
        f'{actual[:12]}, the run\'s {split_fingerprint[:12]}): it was rebuilt '
        'from other release files, so its test split would hold files the run trained on; '
        'rebuild it from the release folder the run read, or train a new run')


def load_trained_on(detector, run: str) -> Dataset:
  """The dataset a finished run's `detector` trained on, as its config names it, refused
  (`check_trained_on`) if it is split otherwise now."""
  dataset = load(detector.config)
  check_trained_on(dataset, detector.split_fingerprint, run)
  return dataset


def training_sizes(dataset: Dataset) -> dict | None:
  """For a dataset whose planes keep each file's own size (`native`): how many files the fit
  reads (its training split) and the largest of them by pixel count, [height, width]. The export
  keeps it, so that `predict` can say which images are larger than anything the run learned
  from (a detector that scores whole files may answer differently there). None otherwise."""
  train = dataset.split.train
  if (dataset.preparation is None or dataset.preparation.geometry != 'native' or not len(train)
      or not {'height', 'width'} <= set(dataset.extra)):
    return None
  heights = dataset.extra['height'][train].astype(np.int64)
  widths = dataset.extra['width'][train].astype(np.int64)
  largest = int(np.argmax(heights * widths))
  return {'files': int(len(train)), 'largest': [int(heights[largest]), int(widths[largest])]}


def extra_authentic_specs(config) -> list[tuple[str, str, str]]:
  """`config.dataset.extra_authentic` ('NAME:CONFIG[:MANUAL_DIR]' each) as (name, builder
  config, release folder), checked before any data is read. Another release's files only: the
  run's own release would bring its validation and test files into training."""
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  out = []
  for spec in config.dataset.get('extra_authentic', ()):
    name, builder_config, manual_dir = (str(spec).split(':', 2) + ['', ''])[:3]
    if not name or not builder_config:
      raise ValueError(f'config.dataset.extra_authentic: {spec!r} is not NAME:CONFIG[:MANUAL_DIR]')
    if name == config.dataset.name:
      raise ValueError(f'config.dataset.extra_authentic: {spec!r} is the run\'s own release, '
                       f'whose validation and test files would join the training split')
    datasets.check_builder_config(name, builder_config, 'config.dataset.extra_authentic')
    out.append((name, builder_config, manual_dir))
  return out


def check_not_extra_authentic(config, name: str) -> None:
  """A release whose authentic files were training material is no cross-dataset test."""
  if name in {n for n, _, _ in extra_authentic_specs(config)}:
    raise ValueError(f'cross dataset {name!r}: its authentic files joined this run\'s training '
                     f'split (config.dataset.extra_authentic), so it cannot test the run')


def with_extra_authentic(dataset: Dataset, config) -> Dataset:
  """`dataset` with every authentic file of the `config.dataset.extra_authentic` releases added
  to its training split (more photographs to learn from and to forge from, with synthesis).
  Validation and test are unchanged and keep their indices; the others are appended after the
  run's own examples. Per-example fields the releases do not all have are left out."""
  specs = extra_authentic_specs(config)
  if not specs:
    return dataset
  parts, train = [dataset], [dataset.split.train]
  sources = {dataset.name: dataset.source}
  offset = len(dataset.source)
  for name, builder_config, manual_dir in specs:
    other = load(config, all_for_test=True, name=name, builder_config=builder_config,
                 manual_dir=manual_dir, train_classes=())
    mine, theirs = dataset.preparation, other.preparation
    if (mine.geometry, mine.plane_side) != (theirs.geometry, theirs.plane_side):
      raise ValueError(f'config.dataset.extra_authentic: {name}:{builder_config} has planes '
                       f'{theirs.describe()}, the run\'s dataset {mine.describe()}')
    authentic = np.flatnonzero(other.forgery_types == 0)
    if not len(authentic):
      raise ValueError(f'config.dataset.extra_authentic: {name}:{builder_config} has no '
                       f'authentic file')
    parts.append(_take(other, authentic, prefix=f'{name}/'))
    sources[f'{name}:{builder_config}'] = Subset(other.source, authentic)
    train.append(offset + np.arange(len(authentic)))
    offset += len(authentic)
  logging.info('training split: %d files, and %s authentic files of %s', len(dataset.split.train),
               [len(t) for t in train[1:]], [f'{n}:{c}' for n, c, _ in specs])
  both = lambda field: (None if any(getattr(p, field) is None for p in parts)
                        else np.concatenate([getattr(p, field) for p in parts]))
  if dataset.copy_move is not None and both('copy_move') is None:
    raise ValueError('config.dataset.extra_authentic: the run reads stored copy-move evidence, '
                     'which those releases\' builder configs do not hold')
  filenames = both('filenames')
  return dataclasses.replace(
      dataset, source=PooledSource(sources),
      split=splits_lib.Split(np.concatenate(train), dataset.split.validation, dataset.split.test),
      labels=np.concatenate([p.labels for p in parts]),
      forgery_types=np.concatenate([p.forgery_types for p in parts]),
      groups=[g for p in parts for g in p.groups],
      extra={k: np.concatenate([p.extra[k] for p in parts]) for k in dataset.extra
             if all(k in p.extra for p in parts)},
      filenames=None if filenames is None else list(filenames),
      copy_move=both('copy_move'), has_mask=both('has_mask'))


def _take(dataset: Dataset, indices: np.ndarray, prefix: str) -> Dataset:
  """The per-example fields of `dataset` at `indices` (groups and file names prefixed)."""
  at = lambda a: None if a is None else np.asarray(a)[indices]
  return dataclasses.replace(
      dataset, labels=dataset.labels[indices], forgery_types=dataset.forgery_types[indices],
      groups=[prefix + dataset.groups[i] for i in indices],
      extra={k: v[indices] for k, v in dataset.extra.items()},
      filenames=None if dataset.filenames is None else [prefix + dataset.filenames[i] for i in indices],
      copy_move=at(dataset.copy_move), has_mask=at(dataset.has_mask))


PLANES = ('image', 'ela', 'mask')  # spatial fields, cropped together


def decode_mask(value) -> np.ndarray:
  """A stored mask (PNG bytes, left undecoded when read) as (H, W, 1) uint8."""
  if isinstance(value, (bytes, np.bytes_)):
    return cv2.imdecode(np.frombuffer(value, np.uint8), cv2.IMREAD_GRAYSCALE)[..., None]
  return np.asarray(value)


def crop_planes(ex: dict, size: int, align: int, rng: np.random.Generator | None,
                on_region: bool = False) -> dict:
  """A size x size window of every plane of `ex`, at a position that is a multiple of `align`
  from the image's top-left (a JPEG file's block grid stays where it was): random with `rng`,
  else the centre. With `on_region` and a non-empty mask, the window holds part of the tampered
  region: random among the windows that do, else the one holding most of it (so that a tampered
  file's window is a tampered window). A smaller image is padded (edge pixels; the mask with 0)."""
  h, w = ex['image'].shape[:2]
  spare_y, spare_x = max(h - size, 0) // align, max(w - size, 0) // align
  cover = _region_cover(ex['mask'][..., 0] > 127, size, align, spare_y, spare_x) \
      if on_region and 'mask' in ex else None
  if cover is not None and cover.any():
    if rng is None:
      top, left = np.unravel_index(np.argmax(cover), cover.shape)
    else:
      holding = np.flatnonzero(cover)
      top, left = np.unravel_index(holding[rng.integers(len(holding))], cover.shape)
    top, left = align * int(top), align * int(left)
  elif rng is None:
    top, left = align * (spare_y // 2), align * (spare_x // 2)
  else:
    top, left = align * int(rng.integers(spare_y + 1)), align * int(rng.integers(spare_x + 1))
  out = dict(ex)
  for k in PLANES:
    if k in ex:
      window = ex[k][top:top + size, left:left + size]
      pad = [(0, size - window.shape[0]), (0, size - window.shape[1]), (0, 0)]
      if pad[0][1] or pad[1][1]:
        window = np.pad(window, pad, mode='constant' if k == 'mask' else 'edge')
      out[k] = window
  return out


def _region_cover(region: np.ndarray, size: int, align: int, spare_y: int,
                  spare_x: int) -> np.ndarray:
  """(spare_y + 1, spare_x + 1): tampered pixels in the window at each aligned position."""
  total = np.pad(np.cumsum(np.cumsum(region, 0, dtype=np.int64), 1), ((1, 0), (1, 0)))
  top = align * np.arange(spare_y + 1)[:, None]
  left = align * np.arange(spare_x + 1)[None, :]
  bottom = np.minimum(top + size, region.shape[0])
  right = np.minimum(left + size, region.shape[1])
  return total[bottom, right] - total[top, right] - total[bottom, left] + total[top, left]


class _ToModelInputs:
  """Keeps the planes the detector reads and the task's label; native-size planes are cropped
  (`config.input.crop`: at random positions for training, in the centre for evaluation)."""

  def __init__(self, config, keys: tuple[str, ...]):
    self._label_key = 'label' if config.dataset.num_classes == 2 else 'forgery_type'
    self._keys = tuple(keys)
    self._crop, self._align = config.input.crop, config.input.crop_align
    self._on_region = config.input.get('crop_on_region', False)  # runs made before it: off

  def map(self, ex: dict, rng: np.random.Generator | None = None) -> dict:
    missing = [k for k in self._keys if k not in ex]
    if missing:
      raise ValueError(f'the model reads {missing}, which this dataset does not have: rebuild it '
                       f'with a builder version that stores them, or change config.model')
    out = {k: decode_mask(ex[k]) if k == 'mask' else ex[k] for k in self._keys}
    if 'mask' in self._keys:
      out['has_mask'] = np.bool_(ex['has_mask']) if 'has_mask' in ex else np.bool_(True)
    if self._crop:
      on_region = (self._on_region and 'mask' in out and bool(ex[self._label_key])
                   and bool(out['has_mask']))
      out = crop_planes(out, self._crop, self._align, rng, on_region)
    out['label'] = np.int32(ex[self._label_key])
    return out


def _exit_with_parent(worker_index: int, worker_count: int) -> None:
  """In each batch worker process: exits once the training process is gone (killed outright, it
  left its workers running, about 400 MB each)."""
  del worker_index, worker_count
  runtime.exit_with_parent()


def _read_options(config) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=config.input.num_threads,
                           prefetch_buffer_size=config.input.prefetch)


def train_iterator(dataset: Dataset, config, keys: tuple[str, ...], *, process_index: int,
                   process_count: int):
  """Iterator over this process's share of each global batch, `num_epochs` epochs long.

  Its `get_state()` / `set_state()` give the position to checkpoint and resume.
  """
  if config.batch_size % process_count:
    raise ValueError(f'batch_size {config.batch_size} is not divisible by {process_count} processes')
  examples = (grain.MapDataset.source(dataset.subset('train'))
              .seed(config.seed)
              .shuffle()
              .repeat(config.num_epochs))
  # Process p reads rows [p * local, (p + 1) * local) of every global batch, so the global batch
  # (and the dropout mask each example meets) is the same for any number of processes.
  local = config.batch_size // process_count
  num_batches = len(examples) // config.batch_size

  to_inputs = _ToModelInputs(config, keys)

  def read(j: int) -> dict:
    batch, row = divmod(j, local)
    position = batch * config.batch_size + process_index * local + row  # in the global stream
    # Random crops drawn from the seed and the position: the same for any number of processes,
    # and again after a resume.
    rng = np.random.default_rng([config.seed, position]) if config.input.crop else None
    return to_inputs.map(examples[position], rng)

  ds = grain.MapDataset.range(num_batches * local).map(read)
  ds = ds.batch(local, drop_remainder=True)
  it = ds.to_iter_dataset(_read_options(config))
  if config.input.worker_processes:
    # Whole batches made in worker processes: past the GIL, for accelerators that outrun threads.
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.input.worker_processes),
                        worker_init_fn=_exit_with_parent)
  return iter(it)


def eval_batches(dataset: Dataset, indices: np.ndarray, config, keys: tuple[str, ...], *,
                 process_index: int, process_count: int):
  """This process's share of every global eval batch over `indices`, padded, with a `valid` flag
  of real rows."""
  n, global_batch = len(indices), config.eval_batch_size
  if global_batch % process_count:
    raise ValueError(f'eval_batch_size {global_batch} is not divisible by {process_count} processes')
  local = global_batch // process_count
  padded = math.ceil(n / global_batch) * global_batch
  # Rows of the padded table this process reads: its slice of every global batch.
  rows = np.arange(padded).reshape(-1, process_count, local)[:, process_index].reshape(-1)
  to_inputs = _ToModelInputs(config, keys)
  source = dataset.source

  def read(row: int) -> dict:
    ex = to_inputs.map(source[int(indices[row % n])])
    ex['valid'] = np.bool_(row < n)
    return ex

  ds = grain.MapDataset.source(rows).map(read).batch(local)
  yield from ds.to_iter_dataset(_read_options(config))

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
import math

import grain
import numpy as np
import tensorflow_datasets as tfds

from forgery_jax import splits as splits_lib

# Fields a model step needs; everything else stays on the host.
MODEL_KEYS = ('ela', 'image')


def model_keys(config) -> tuple[str, ...]:
  """The planes and vectors `config`'s model reads."""
  return MODEL_KEYS + (('copy_move',) if config.model.get('copy_move', False) else ())
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

  def subset(self, name: str) -> Subset:
    return Subset(self.source, getattr(self.split, name))


def _metadata(builder) -> dict[str, np.ndarray]:
  """Every feature but the planes (scalars, names, small vectors such as `copy_move`) of every
  example of every builder split, read once without decoding an image."""
  plane_keys = {k for k, f in builder.info.features.items()
                if isinstance(f, (tfds.features.Image, tfds.features.Tensor)) and len(f.shape) >= 2}
  decoders = {k: tfds.decode.SkipDecoding() for k in plane_keys}
  pooled = PooledSource({s: builder.as_data_source(s, decoders=decoders) for s in builder.info.splits})
  columns: dict[str, list] = {}
  for i in range(len(pooled)):
    for k, v in pooled[i].items():
      if k not in plane_keys:
        columns.setdefault(k, []).append(v)
  return {k: np.asarray(v) for k, v in columns.items()}


def load_dataset(builder, config, *, all_for_test: bool = False) -> Dataset:
  """Pools the builder's splits and applies the split protocol of `config.dataset`.

  `all_for_test` puts every example in `test` (cross-dataset evaluation).
  """
  dc = config.dataset
  meta = _metadata(builder)
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
  extra = {k: v for k, v in meta.items()
           if k not in META_KEYS and v.ndim == 1 and v.dtype.kind in 'iuf'}
  filenames = ([f.decode() if isinstance(f, bytes) else str(f) for f in meta['filename']]
               if 'filename' in meta else None)
  return Dataset(pooled, split, labels, forgery_types, groups, class_names, extra,
                 filenames=filenames, copy_move=meta.get('copy_move'))


class _ToModelInputs(grain.transforms.Map):
  """Keeps the planes the model reads and the task's label."""

  def __init__(self, config):
    self._label_key = 'label' if config.dataset.num_classes == 2 else 'forgery_type'
    self._keys = model_keys(config)

  def map(self, ex: dict) -> dict:
    missing = [k for k in self._keys if k not in ex]
    if missing:
      raise ValueError(f'the model reads {missing}, which this dataset does not have: rebuild it '
                       f'with a builder version that stores them, or change config.model')
    out = {k: ex[k] for k in self._keys}
    out['label'] = np.int32(ex[self._label_key])
    return out


def _read_options(config) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=config.input.num_threads,
                           prefetch_buffer_size=config.input.prefetch)


def train_iterator(dataset: Dataset, config, *, process_index: int, process_count: int):
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

  def pick(j: int):
    batch, row = divmod(j, local)
    return examples[batch * config.batch_size + process_index * local + row]

  ds = grain.MapDataset.range(num_batches * local).map(pick)
  ds = ds.map(_ToModelInputs(config))
  ds = ds.batch(local, drop_remainder=True)
  it = ds.to_iter_dataset(_read_options(config))
  if config.input.worker_processes:
    # Whole batches made in worker processes: past the GIL, for accelerators that outrun threads.
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=config.input.worker_processes))
  return iter(it)


def eval_batches(dataset: Dataset, split: str, config, *, process_index: int, process_count: int):
  """This process's share of every global eval batch, padded, with a `mask` of real rows."""
  indices = getattr(dataset.split, split)
  n, global_batch = len(indices), config.eval_batch_size
  if global_batch % process_count:
    raise ValueError(f'eval_batch_size {global_batch} is not divisible by {process_count} processes')
  local = global_batch // process_count
  padded = math.ceil(n / global_batch) * global_batch
  # Rows of the padded table this process reads: its slice of every global batch.
  rows = np.arange(padded).reshape(-1, process_count, local)[:, process_index].reshape(-1)
  to_inputs = _ToModelInputs(config)
  source = dataset.source

  def read(row: int) -> dict:
    ex = to_inputs.map(source[int(indices[row % n])])
    ex['mask'] = np.bool_(row < n)
    return ex

  ds = grain.MapDataset.source(rows).map(read).batch(local)
  yield from ds.to_iter_dataset(_read_options(config))

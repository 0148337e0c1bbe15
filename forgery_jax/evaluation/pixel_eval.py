"""The `pixel` evaluator's work: maps and original-resolution masks of a split, scored.

Masks come at the file's original resolution: from the dataset itself when its planes are native
(the `native*` builder configs, and the synthetic set, whose stored image is the whole file), else
from the release's `native` builder config, matched by file name.
"""

from __future__ import annotations

import numpy as np

from forgery_jax import progress
from forgery_jax.data import input_pipeline
from forgery_jax.data import labels as labels_lib
from forgery_jax.evaluation import intervals
from forgery_jax.evaluation import pixel_metrics

NATIVE_CONFIG = 'native'


def _whole_file_planes(dataset) -> bool:
  """Whether a dataset's stored mask covers the whole file at its own size."""
  p = dataset.preparation
  return dataset.filenames is None or (p is not None and p.geometry == 'native')


class MaskSource:
  """Original-resolution masks of a dataset's examples."""

  def __init__(self, config):
    self._config = config
    self._native = None  # filename -> index in the release's native dataset

  def _native_dataset(self):
    if self._native is None:
      dataset = input_pipeline.load(self._config, all_for_test=True, builder_config=NATIVE_CONFIG)
      self._native = (dataset, {f: i for i, f in enumerate(dataset.filenames)})
    return self._native

  def mask(self, dataset, index: int) -> np.ndarray:
    if _whole_file_planes(dataset):
      return input_pipeline.decode_mask(dataset.source[int(index)]['mask'])
    native, by_name = self._native_dataset()
    return input_pipeline.decode_mask(native.source[by_name[dataset.filenames[int(index)]]]['mask'])


def tampered_with_mask(dataset, indices: np.ndarray) -> np.ndarray:
  keep = dataset.forgery_types[indices] != 0
  if dataset.has_mask is not None:
    keep &= dataset.has_mask[indices].astype(bool)
  return indices[keep]


def training_mean_mask(dataset, masks: MaskSource) -> np.ndarray:
  """The mean mask of the training split's tampered images (the `mean_training_mask` baseline)."""
  train = tampered_with_mask(dataset, dataset.split.train)
  return pixel_metrics.mean_mask([masks.mask(dataset, i) for i in train])


def by_forgery_type(rows: list[dict]) -> dict[str, list[dict]]:
  """Per-image rows grouped as results.json names them: '' (all), 'copy_move/', 'splicing/'
  (the non-empty ones)."""
  groups = {'': rows}
  for t in (labels_lib.COPY_MOVE, labels_lib.SPLICING):
    of_type = [r for r in rows if r['forgery_type'] == t]
    if of_type:
      groups[f'{t}/'] = of_type
  return groups


def evaluate(detector, ctx, dataset, key: str, masks: MaskSource, training_mean: np.ndarray,
             saliency: bool) -> tuple[dict, list[dict]]:
  """(pixel scores of the detector's maps and of the baselines on `dataset`'s tampered test
  images, per-image rows {index, forgery_type, pixel_f1, f1_curve, ...})."""
  test = dataset.split.test
  chosen = tampered_with_mask(dataset, test)
  if not len(chosen):
    return {'pixel_images': 0}, []
  if saliency:
    if not _whole_file_planes(dataset) and dataset.preparation.geometry != 'resize':
      return {'pixel_images': 0}, []  # a map of a crop window: not the file
    maps = []
    for lo in progress.bar(range(0, len(chosen), 16), desc=f'saliency {dataset.name}',
                           unit='batch', leave=False):
      examples = [dataset.source[int(i)] for i in chosen[lo:lo + 16]]
      maps += [m / (m.max() or 1.0) for m in detector.saliency(examples).maps]
  elif key in ctx.cache and ctx.cache[key].maps is not None:  # scored with its maps already
    position = {int(i): k for k, i in enumerate(test)}
    maps = [ctx.cache[key].maps[position[int(i)]] for i in chosen]
  elif key.startswith('cross/'):  # a whole dataset, not in cross_dataset: only these maps
    maps = detector.score_split(dataset, chosen, desc=f'maps {dataset.name}').maps
  else:
    scores = ctx.scores(detector, dataset, test, key, f'{key} {dataset.name}')
    position = {int(i): k for k, i in enumerate(test)}
    maps = [scores.maps[position[int(i)]] for i in chosen]
  rows, baseline_rows = [], {}
  types = labels_lib.FORGERY_TYPES
  for i, tamper_map in zip(chosen, maps):
    mask = masks.mask(dataset, i)
    row = pixel_metrics.per_image(tamper_map, mask)
    rows.append(dict(row, index=int(i), forgery_type=types[int(dataset.forgery_types[i])]))
    shape = mask.shape[:2]
    for name, m in pixel_metrics.baseline_maps(shape, training_mean).items():
      baseline_rows.setdefault(name, []).append(pixel_metrics.per_image(m, mask))
  result = {}
  for group, of_group in by_forgery_type(rows).items():
    result.update({f'{group}{k}': v for k, v in pixel_metrics.summarise(of_group).items()})
    scenes = intervals.scenes_of(dataset, [r['index'] for r in of_group])
    result.update({f'{group}{k}': v for k, v in intervals.pixel(of_group, scenes).items()})
  for name, b_rows in baseline_rows.items():
    result.update({f'pixel_baseline/{name}/{k}': v for k, v in pixel_metrics.summarise(b_rows).items()
                   if k != 'pixel_images'})
  return result, rows


def best_and_worst(ctx, key: str = 'test', count: int = 4) -> list[dict]:
  """The `count` best and worst maps of a split by pixel F1: {image, mask, map, f1, name, rank}."""
  rows = ctx.cache.get(f'pixel_rows/{key}') or []
  scores = ctx.cache.get(key)
  if not rows or scores is None or scores.maps is None:
    return []
  dataset = ctx.dataset if key == 'test' else ctx.datasets[key]
  position = {int(i): k for k, i in enumerate(dataset.split.test)}
  masks = MaskSource(ctx.config)
  ordered = sorted(rows, key=lambda r: r['pixel_f1'], reverse=True)
  picked = [('best', r) for r in ordered[:count]] + [('worst', r) for r in ordered[::-1][:count]]
  out = []
  for rank, r in picked:
    example = dataset.source[r['index']]
    name = dataset.filenames[r['index']] if dataset.filenames is not None else str(r['index'])
    out.append({'image': np.asarray(example['image']), 'mask': masks.mask(dataset, r['index']),
                'map': scores.maps[position[r['index']]], 'f1': r['pixel_f1'], 'name': name,
                'rank': rank})
  return out


def best_and_worst_of(contexts, key: str = 'test', count: int = 4) -> list[dict]:
  """`best_and_worst` over every fold of a run (each fold's contexts, its own test split): the
  `count` best and worst maps of them all."""
  items = [item for ctx in contexts for item in best_and_worst(ctx, key, count)]
  best = sorted((i for i in items if i['rank'] == 'best'), key=lambda i: -i['f1'])[:count]
  worst = sorted((i for i in items if i['rank'] == 'worst'), key=lambda i: i['f1'])[:count]
  return best + worst

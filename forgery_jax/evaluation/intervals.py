"""95 % confidence intervals of a split's scores, by a bootstrap over its scenes.

A test split of a few hundred files leaves every score several points uncertain, and the files
of one scene are not independent draws (CASIA's authentic photo of a scene and the forgeries made
from it). So the split's scenes are resampled with replacement, `RESAMPLES` times from a fixed
seed (the same intervals on every call), the score is computed on each resample, and the
interval is the 2.5th and 97.5th percentile of those scores. results.json holds it beside its
score as `<score>_ci95: [low, high]`. A split of fewer than two scenes gets none. Two detectors
on the same files are compared by their differences (`paired_classification`, `paired_pixel`),
each resample drawing the same files for both.

A file's scene is the first id of its `group` (a CASIA forgery names its source scene first),
not the connected group a grouped split keeps apart: forgeries made from two scenes chain scenes
together, and on CASIA v1's test split one such chain holds 133 of the 343 files, which would
make every interval hinge on how often that one unit is drawn.
"""

from __future__ import annotations

import numpy as np

from forgery_jax.data import splits as splits_lib

RESAMPLES = 1000
SEED = 0
SUFFIX = '_ci95'
DESCRIPTION = f'percentiles of {RESAMPLES} bootstrap resamples of the split\'s scenes'


def as_text(bounds) -> str:
  """An interval as printed: `[low, high]` to three decimals ('' for none)."""
  return f'[{bounds[0]:.3f}, {bounds[1]:.3f}]' if bounds else ''


def scenes_of(dataset, indices) -> list[str]:
  """The scene of each example of `dataset` at `indices`: the first id of its group (the example
  itself where its group names none)."""
  return [dataset.groups[i].split(splits_lib.GROUP_SEPARATOR)[0] or f'#example{i}'
          for i in np.asarray(indices, np.int64).tolist()]


class Resamples:
  """`count` resamples of whole scenes, drawn with replacement from `seed`: which scene each
  example is in, and chunk by chunk how many times each scene is drawn (a chunk of resamples x
  scenes at a time, so that a large split needs no resamples x examples table)."""

  CHUNK = 100

  def __init__(self, scenes, count: int = RESAMPLES, seed: int = SEED):
    _, self.scene = np.unique(np.asarray(scenes), return_inverse=True)
    self.scenes = int(self.scene.max()) + 1 if len(self.scene) else 0
    self.count, self.seed = count, seed

  @property
  def usable(self) -> bool:
    """Two scenes or more: with one there is nothing to resample."""
    return self.scenes >= 2

  def per_scene(self):
    """(chunk, scenes) arrays: how many times each scene is drawn in each resample."""
    rng = np.random.default_rng(self.seed)
    for start in range(0, self.count, self.CHUNK):
      k = min(self.CHUNK, self.count - start)
      drawn = rng.integers(0, self.scenes, (k, self.scenes)) + self.scenes * np.arange(k)[:, None]
      yield np.bincount(drawn.ravel(), minlength=k * self.scenes).reshape(k, self.scenes)

  def per_example(self):
    """(chunk, examples) arrays: how many times each example is drawn in each resample."""
    for counts in self.per_scene():
      yield counts[:, self.scene]


def _percentiles(values: np.ndarray) -> list[float] | None:
  finite = values[np.isfinite(values)]
  if len(finite) < len(values) / 2:  # most resamples could not be scored (one class only)
    return None
  return [float(v) for v in np.percentile(finite, [2.5, 97.5])]


def _means(values, resamples: Resamples) -> np.ndarray:
  """The mean of per-example `values` in each resample (NaN values left out, as `np.nanmean`)."""
  values = np.asarray(values, np.float64)
  scored = np.isfinite(values)
  # Per scene: the sum of its scored values and how many there are; a resample's mean from those.
  sums = np.bincount(resamples.scene, np.where(scored, values, 0.0), resamples.scenes)
  sizes = np.bincount(resamples.scene, scored.astype(np.float64), resamples.scenes)
  with np.errstate(invalid='ignore', divide='ignore'):
    return np.concatenate([(c @ sums) / (c @ sizes) for c in resamples.per_scene()])


def of_mean(values, resamples: Resamples) -> list[float] | None:
  """The interval of the mean of per-example `values` (NaN values left out)."""
  return _percentiles(_means(values, resamples)) if resamples.usable else None


def _aucs(p_tampered: np.ndarray, tampered: np.ndarray, resamples: Resamples) -> np.ndarray:
  """The ROC AUC in each resample: the share of (tampered, authentic) pairs, each file counted as
  often as it is drawn, in which the tampered file scores higher (a tie counts a half)."""
  order = np.argsort(p_tampered, kind='stable')
  positive = tampered[order]
  # The tie block of each file in score order: where it starts and where it ends.
  _, start, block = np.unique(p_tampered[order], return_index=True, return_inverse=True)
  end = np.append(start[1:], len(order)) - 1
  values = []
  for counts in resamples.per_example():
    counts = counts[:, order]
    pos, neg = counts * positive, counts * ~positive
    upto = np.cumsum(neg, 1)                                  # authentic draws up to each file
    below = upto[:, start[block]] - neg[:, start[block]]       # strictly below its tie block
    tied = upto[:, end[block]] - below
    with np.errstate(invalid='ignore', divide='ignore'):
      values.append((pos * (below + 0.5 * tied)).sum(1) / (pos.sum(1) * neg.sum(1)))
  return np.concatenate(values)


def auc(p_tampered: np.ndarray, tampered: np.ndarray, resamples: Resamples) -> list[float] | None:
  """The interval of the ROC AUC of `p_tampered` against `tampered` (None with one class)."""
  p_tampered, tampered = np.asarray(p_tampered, np.float64), np.asarray(tampered, bool)
  if not resamples.usable or not 0 < tampered.sum() < len(tampered):
    return None
  return _percentiles(_aucs(p_tampered, tampered, resamples))


def classification(probabilities: np.ndarray, labels: np.ndarray, scenes) -> dict:
  """`accuracy_ci95` and, where both classes are present, `auc_ci95` (tampered against
  authentic, as `metrics.classification_metrics` scores them)."""
  probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels)
  resamples = Resamples(scenes)
  out = {f'accuracy{SUFFIX}': of_mean(probabilities.argmax(1) == labels, resamples),
         f'auc{SUFFIX}': auc(1.0 - probabilities[:, 0], labels != 0, resamples)}
  return {k: v for k, v in out.items() if v is not None}


def decision(called: np.ndarray, tampered: np.ndarray, scenes) -> dict:
  """`accuracy_ci95`, `false_alarm_rate_ci95` and `detection_rate_ci95` of fixed image-level
  decisions (`called`: called tampered), as `evaluators.decision_at` scores them."""
  called, tampered = np.asarray(called, bool), np.asarray(tampered, bool)
  resamples = Resamples(scenes)
  out = {f'accuracy{SUFFIX}': of_mean(called == tampered, resamples),
         f'false_alarm_rate{SUFFIX}': of_mean(np.where(tampered, np.nan, called), resamples),
         f'detection_rate{SUFFIX}': of_mean(np.where(tampered, called, np.nan), resamples)}
  return {k: v for k, v in out.items() if v is not None}


def pixel(rows: list[dict], scenes) -> dict:
  """`pixel_f1_ci95`, `pixel_auc_ci95` and `pixel_iou_ci95` of per-image pixel rows
  (`pixel_metrics.per_image`), each a mean over the images."""
  resamples = Resamples(scenes)
  out = {f'{k}{SUFFIX}': of_mean([r[k] for r in rows], resamples)
         for k in ('pixel_f1', 'pixel_auc', 'pixel_iou')}
  return {k: v for k, v in out.items() if v is not None}


def paired_classification(other: np.ndarray, base: np.ndarray, labels: np.ndarray, scenes) -> dict:
  """`accuracy` and `auc` of the class probabilities `other` minus those of `base` on the same
  files (`labels`), each with its interval from the same resamples for both, so that what the
  files share cancels (`<key>_ci95`)."""
  labels = np.asarray(labels)
  resamples = Resamples(scenes)
  right = [np.asarray(d).argmax(1) == labels for d in (other, base)]
  out = {'accuracy': float(right[0].mean() - right[1].mean()),
         f'accuracy{SUFFIX}': of_mean(right[0] * 1.0 - right[1], resamples)}
  tampered = labels != 0
  if 0 < tampered.sum() < len(tampered):
    p = [1.0 - np.asarray(d, np.float64)[:, 0] for d in (other, base)]
    from sklearn import metrics as skm  # pylint: disable=g-import-not-at-top  # 1 s: not at predict's start
    out['auc'] = float(skm.roc_auc_score(tampered, p[0]) - skm.roc_auc_score(tampered, p[1]))
    if resamples.usable:
      out[f'auc{SUFFIX}'] = _percentiles(_aucs(p[0], tampered, resamples)
                                         - _aucs(p[1], tampered, resamples))
  return {k: v for k, v in out.items() if v is not None}


def paired_pixel(other: list[dict], base: list[dict], scenes) -> dict:
  """`pixel_f1`, `pixel_auc` and `pixel_iou` of the per-image rows `other` minus those of `base`
  (the same images in the same order), each with its interval (`<key>_ci95`)."""
  resamples, out = Resamples(scenes), {}
  for k in ('pixel_f1', 'pixel_auc', 'pixel_iou'):
    a, b = (np.array([r[k] for r in rows], np.float64) for rows in (other, base))
    out[k] = float(np.nanmean(a) - np.nanmean(b))
    if resamples.usable:
      out[f'{k}{SUFFIX}'] = _percentiles(_means(a, resamples) - _means(b, resamples))
  return {k: v for k, v in out.items() if v is not None}

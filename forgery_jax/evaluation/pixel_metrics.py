"""Where is the forgery? Pixel-level scores of tamper maps against ground-truth masks.

Every score is computed per tampered image at the file's original resolution (a map made at
another size is resized to the mask's size first, bilinearly) and averaged over the tampered
images of the split, the protocol of CAT-Net, TruFor, MVSS-Net and IMDL-BenCo:

* `pixel_f1`: F1 of the map thresholded at 0.5 against the mask (0 for an empty prediction);
* `pixel_f1_best`: the same at the one threshold that is best over the whole split (optimistic:
  the threshold is chosen on the test images themselves);
* `pixel_auc`: ROC AUC over each image's pixels (tampered positive);
* `pixel_iou`: intersection over union at 0.5.

`device_f1_curves` and `curve_scores` give the same F1 scores of validation crops inside the
jitted step, to select a localiser's checkpoint by its maps.

`baseline_maps` gives the shortcut baselines every pixel score stands beside: the all-tampered
map, the centre prior and the mean training mask.
"""

from __future__ import annotations

import cv2
import jax.numpy as jnp
import numpy as np

KEYS = ('pixel_f1', 'pixel_f1_best', 'pixel_auc', 'pixel_iou')
THRESHOLDS = np.linspace(0.0, 1.0, 101)[1:-1]  # 0.01 ... 0.99, for pixel_f1_best
HALF = int(np.argmin(np.abs(THRESHOLDS - 0.5)))  # THRESHOLDS[HALF] == 0.5


def resize_to(plane: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
  """A float map resized (bilinear) to `shape` (h, w); unchanged if it already has it."""
  plane = np.asarray(plane, np.float32)
  if plane.shape[:2] == tuple(shape):
    return plane
  return cv2.resize(plane, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
  """ROC AUC of `scores` for the boolean labels `positive` (ties counted half), by ranks."""
  n_pos = int(positive.sum())
  n_neg = positive.size - n_pos
  if n_pos == 0 or n_neg == 0:
    return float('nan')
  order = np.argsort(scores, kind='stable')
  sorted_scores = scores[order]
  ranks = np.empty(scores.size, np.float64)
  # Average ranks for ties.
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  average = first + (counts - 1) / 2.0 + 1.0
  ranks[order] = np.repeat(average, counts)
  return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _f1_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
  tp = int(np.count_nonzero(pred & truth))
  fp = int(np.count_nonzero(pred & ~truth))
  fn = int(np.count_nonzero(~pred & truth))
  f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
  iou = tp / (tp + fp + fn) if tp else 0.0
  return f1, iou


def _plane(a: np.ndarray) -> np.ndarray:
  a = np.asarray(a)
  return a[..., 0] if a.ndim == 3 else a


def truth_of(mask: np.ndarray) -> np.ndarray:
  """A mask (uint8 0/255, or float 0-1), (H, W) or (H, W, 1), as booleans."""
  mask = _plane(mask)
  return mask > (127 if mask.dtype == np.uint8 else 0.5)


def per_image(tamper_map: np.ndarray, mask: np.ndarray) -> dict:
  """Scores of one map against one non-empty mask, and its F1 at every threshold of THRESHOLDS
  (there a pixel counts as tampered when the map is >= the threshold)."""
  truth = truth_of(mask)
  m = resize_to(_plane(tamper_map), truth.shape)
  f1, iou = _f1_iou(m > 0.5, truth)
  flat, t = m.ravel(), truth.ravel()
  # F1 at every threshold k / 100 from histograms of the map over tampered and other pixels.
  bins = np.clip(np.floor(flat * 100).astype(np.int64), 0, 100)
  pos = np.bincount(bins[t], minlength=101)[::-1].cumsum()[::-1]   # tampered pixels with bin >= k
  neg = np.bincount(bins[~t], minlength=101)[::-1].cumsum()[::-1]
  tp, fp = pos[1:100].astype(np.float64), neg[1:100].astype(np.float64)
  fn = t.sum() - tp
  with np.errstate(invalid='ignore', divide='ignore'):
    curve = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
  return {'pixel_f1': f1, 'pixel_iou': iou, 'pixel_auc': _auc(flat, t), 'f1_curve': curve}


def summarise(rows: list[dict]) -> dict:
  """Means over images of `per_image` rows; `pixel_f1_best` at the single best threshold."""
  if not rows:
    return {k: float('nan') for k in KEYS} | {'pixel_images': 0}
  curve = mean_f1_curve(rows)
  best = best_threshold(curve)
  return {'pixel_f1': float(np.mean([r['pixel_f1'] for r in rows])),
          'pixel_f1_best': float(curve[best]),
          'pixel_f1_best_threshold': float(THRESHOLDS[best]),
          'pixel_auc': float(np.nanmean([r['pixel_auc'] for r in rows])),
          'pixel_iou': float(np.mean([r['pixel_iou'] for r in rows])),
          'pixel_images': len(rows)}


def mean_f1_curve(rows: list[dict]) -> np.ndarray:
  """The mean over `per_image` rows of their F1 at each threshold of THRESHOLDS."""
  return np.mean([r['f1_curve'] for r in rows], 0)


def best_threshold(curve: np.ndarray) -> int:
  """The index in THRESHOLDS of a mean F1 curve's best threshold (the first of ties)."""
  return int(np.argmax(curve))


def at_threshold(rows: list[dict], index: int) -> dict:
  """Mean pixel F1 and IoU over `rows` with the map thresholded at THRESHOLDS[index] (map >= t);
  an image's IoU is F1 / (2 - F1)."""
  f1 = np.array([r['f1_curve'][index] for r in rows], np.float64)
  return {'pixel_f1': float(f1.mean()), 'pixel_iou': float((f1 / (2 - f1)).mean()),
          'pixel_images': len(rows)}


def pixel_scores(maps: list[np.ndarray], masks: list[np.ndarray]) -> dict:
  """The pixel scores of maps against masks (tampered images only: masks with any pixel set)."""
  return summarise([per_image(m, k) for m, k in zip(maps, masks)])


def device_f1_curves(maps, masks, tampered) -> tuple:
  """Per image of a batch, on the device: F1 at every threshold of THRESHOLDS (map >= t) of a
  map (N, H, W) against its mask (N, H, W, 1) uint8, as `per_image`'s curve; and whether the row
  is scored (a tampered row whose mask has a pixel set)."""
  truth = masks[..., 0] > 127
  above = maps[..., None] >= jnp.asarray(THRESHOLDS, maps.dtype)          # (N, H, W, T)
  tp = jnp.sum(above & truth[..., None], (1, 2)).astype(jnp.float32)
  fp = jnp.sum(above, (1, 2)).astype(jnp.float32) - tp
  fn = truth.sum((1, 2)).astype(jnp.float32)[:, None] - tp
  curve = jnp.where(tp > 0, 2 * tp / jnp.maximum(2 * tp + fp + fn, 1.0), 0.0)
  return curve, tampered & truth.any((1, 2))


def curve_scores(curves: np.ndarray, scored: np.ndarray) -> dict:
  """Mean F1 at 0.5 and at the best single threshold over the scored rows of
  `device_f1_curves` (NaN when none is scored)."""
  curves = np.asarray(curves, np.float64)[np.asarray(scored, bool)]
  if not len(curves):
    return {'pixel_f1': float('nan'), 'pixel_f1_best': float('nan'), 'pixel_images': 0}
  curve = curves.mean(0)
  best = best_threshold(curve)
  return {'pixel_f1': float(curve[HALF]), 'pixel_f1_best': float(curve[best]),
          'pixel_f1_best_threshold': float(THRESHOLDS[best]), 'pixel_images': int(len(curves))}


def centre_prior(shape: tuple[int, int]) -> np.ndarray:
  """1 at the centre falling linearly to 0 at the corners (elliptic distance)."""
  h, w = shape
  y = (np.arange(h) + 0.5) / h * 2 - 1
  x = (np.arange(w) + 0.5) / w * 2 - 1
  r = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2) / np.sqrt(2)
  return (1.0 - r).astype(np.float32)


MEAN_MASK_SIZE = 256


def mean_mask(masks: list[np.ndarray]) -> np.ndarray:
  """The mean of training masks (tampered and authentic alike), each resized to 256 x 256."""
  if not masks:
    return np.zeros((MEAN_MASK_SIZE, MEAN_MASK_SIZE), np.float32)
  acc = np.zeros((MEAN_MASK_SIZE, MEAN_MASK_SIZE), np.float64)
  for m in masks:
    m = truth_of(m).astype(np.float32)
    acc += resize_to(m, (MEAN_MASK_SIZE, MEAN_MASK_SIZE))
  return (acc / len(masks)).astype(np.float32)


def baseline_maps(shape: tuple[int, int], training_mean: np.ndarray) -> dict[str, np.ndarray]:
  """The shortcut baselines' maps for an image of `shape`."""
  return {'all_tampered': np.ones(shape, np.float32), 'centre_prior': centre_prior(shape),
          'mean_training_mask': resize_to(training_mean, shape)}

"""Does a detector survive the post-processing every shared image goes through?

Attacks are applied to the full-resolution source file (found through the dataset's `manual_dir`)
before ELA and the rest of the run's preparation, exactly where a re-saved or resized file would
change; for the synthetic set, which has no source files, to the stored native-resolution crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from forgery_jax import image_io
from forgery_jax import progress
from forgery_jax.data import datasets
from forgery_jax.data import input_pipeline
from forgery_jax.data import releases
from forgery_jax.data.preparation import read_mask
from forgery_jax.evaluation import metrics as metrics_lib
from forgery_jax.evaluation import pixel_metrics

ATTACKS = {  # kind -> strengths
    'jpeg': (50, 60, 70, 80, 90, 100),   # quality of one extra JPEG save
    'resize': (0.5, 0.75, 1.25, 1.5),    # scale factor (bicubic)
    'blur': (0.5, 1.0, 2.0),             # Gaussian sigma, pixels
    'noise': (2.0, 5.0, 10.0),           # Gaussian sigma, grey levels
}
ROW_KEYS = ('accuracy', 'balanced_accuracy', 'precision', 'recall', 'f1', 'auc')


def attack(rgb: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
  """One post-processing of an (H, W, 3) uint8 image."""
  if kind == 'jpeg':
    return image_io.jpeg_roundtrip(rgb, int(strength))
  if kind == 'resize':
    h, w = rgb.shape[:2]
    size = (max(1, round(w * strength)), max(1, round(h * strength)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
  if kind == 'blur':
    return cv2.GaussianBlur(rgb, (0, 0), strength)
  if kind == 'noise':
    return np.clip(rgb + rng.normal(0, strength, rgb.shape), 0, 255).astype(np.uint8)
  raise ValueError(f'unknown attack {kind!r}; choose one of {sorted(ATTACKS)}')


def _lister(config):
  """The release's file lister, or None for a builder that makes its examples (the synthetic
  set: no source files); ValueError when a real release's folder is not named."""
  lister = getattr(datasets.builder_class(config.dataset.name), 'list_release', None)
  if lister is not None and not config.dataset.manual_dir:
    raise ValueError(f'robustness on {config.dataset.name} needs its source files: the run\'s '
                     'config.dataset.manual_dir is empty')
  return lister


def check_sources(config) -> None:
  """Before training: the robustness evaluator will find the release's source files."""
  _lister(config)


def source_files(config) -> dict[str, releases.SourceFile] | None:
  """filename -> source file of a real release (None for the synthetic set)."""
  lister = _lister(config)
  return None if lister is None else {f.filename: f for f in lister(config.dataset.manual_dir, [])}


def row(probs: np.ndarray, labels: np.ndarray, class_names) -> dict:
  m = metrics_lib.classification_metrics(probs, labels, class_names)
  return {k: m[k] for k in ROW_KEYS} | {'num_examples': m['num_examples']}


def robustness(detector, config, dataset, batch_size: int = 16, max_examples: int = 0,
               seed: int = 0) -> list[dict]:
  """Metrics on the test split after every (attack, strength), plus the unattacked row; with the
  pixel scores (against the original masks) of a detector that localises."""
  idx = dataset.split.test[:max_examples or None]
  labels = dataset.labels[idx]
  preparation = dataset.preparation.for_inference()
  with_copy_move = 'copy_move' in detector.inputs(detector.config)
  sources = source_files(config)
  originals, masks = [], {}
  for k, i in enumerate(idx):
    ex = dataset.source[int(i)]
    if sources is None:
      originals.append((ex['image'], 'jpeg'))
      mask = input_pipeline.decode_mask(ex['mask'])
    else:
      name = ex['filename'].decode() if isinstance(ex['filename'], bytes) else ex['filename']
      originals.append(image_io.decode_file(sources[name].path))
      path = sources[name].mask_path
      mask = read_mask(path, originals[-1][0].shape[:2])[..., None] if path else None
    if detector.localises and labels[k] != 0 and mask is not None and mask.any():
      masks[k] = mask
  rng = np.random.default_rng(seed)
  rows = []
  cases = [('none', 0)] + [(kind, s) for kind, strengths in ATTACKS.items() for s in strengths]
  for kind, strength in progress.bar(cases, desc='robustness', unit='attack'):
    planes = []
    for rgb, fmt in originals:
      attacked = rgb if kind == 'none' else attack(rgb, kind, strength, rng)
      planes.append(preparation.planes(attacked, source_format='jpeg' if kind == 'jpeg' else fmt,
                                       with_copy_move=with_copy_move)[0])
    scores = [detector.score(planes[lo:lo + batch_size]) for lo in range(0, len(planes), batch_size)]
    probs = np.concatenate([s.probabilities for s in scores])
    rows.append({'attack': kind, 'strength': strength, **row(probs, labels, dataset.class_names)})
    if masks:
      maps = [m for s in scores for m in s.maps]
      pixel = pixel_metrics.pixel_scores([maps[k] for k in masks], list(masks.values()))
      rows[-1].update({k: pixel[k] for k in ('pixel_f1', 'pixel_auc')})
  return rows


def mean_over_folds(per_fold: list[list[dict]]) -> list[dict]:
  """The rows of `robustness` for several folds as one table: each attack's metrics averaged over
  the folds (None where a fold has none), its examples summed."""
  if len(per_fold) == 1:
    return per_fold[0]
  rows = []
  for same in zip(*per_fold):
    row = {'attack': same[0]['attack'], 'strength': same[0]['strength']}
    for key in dict.fromkeys(k for r in same for k in r if k not in row):
      values = [r.get(key) for r in same]
      if key == 'num_examples':
        row[key] = int(sum(values))
      elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        row[key] = float(np.mean(values))
      else:
        row[key] = None
    rows.append(row)
  return rows

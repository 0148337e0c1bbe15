"""How far can a decision rule on the copy-move keypoint map alone go? An in-sample ceiling.

    python -m experiments.keypoint_decision --release=micc_f220 \
        --manual_dir=../shared/datasets/micc_f220 [--limit=N] [--mirrored] [--verify] [--clusters]

Computes `forensics.keypoints.copy_move_map` of every file of a release (listed as its builder
lists it) and prints the accuracy of the map's own decision (p(tampered) > 0.5), then the best
accuracy of a threshold on the number of inlier pairs, and of a pair of thresholds on the inlier
count and the share of the image the map covers, each chosen on the very files it is scored on:
an upper bound for any rule fitted to those two numbers, not a result to report as one.
`--mirrored` computes the maps with `MapSettings(mirrored=True)` (regions copied mirror-wise too).

`--verify` adds a check that a copy reproduces the pixels: for each affine model behind the map,
the median zero-mean normalised correlation (over `VERIFY_WINDOW` pixels) between the analysed
grey image and its warp by the model, at the model's inlier keypoints (a copied region matches its
source there; a repeated structure such as a row of windows only resembles it). It prints the
in-sample accuracy of (inlier count, correlation) thresholds, and the out-of-sample accuracy of
the same thresholds chosen on the training folds of a grouped stratified 5-fold (scenes on one
side, as `dataset.split='kfold'` keeps them), over `CV_SEEDS` shuffles.

`--clusters` scores the 'clusters' decision (`MapSettings(decision='clusters')`: Amerini et al.'s
clusters of matched keypoints, at their published settings) and, beside it, the settings of
`CLUSTER_GRID` chosen in sample and on the training folds of the same grouped 5-fold.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

import experiments
from forgery_jax import image_io
from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax.data import labels
from forgery_jax.data import releases
from forgery_jax.forensics import keypoints

AREAS = (0.0, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.01, 0.015, 0.02)
VERIFY_WINDOW = 15
VERIFY_INLIERS = (4, 5, 6, 7, 8)
VERIFY_CORRELATIONS = (-1.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.96)
CV_SEEDS = 5
# (linkage, cutoff, more pairs than this join two clusters) tried beside the published settings.
CLUSTER_GRID = [(linkage, cutoff, pairs) for linkage in ('ward', 'single', 'centroid')
                for cutoff in (1.6, 1.8, 2.0, 2.2, 2.4, 2.6) for pairs in (1, 2, 3, 4, 5)]
PUBLISHED = (keypoints.CLUSTER_LINKAGE, keypoints.CLUSTER_CUTOFF, keypoints.CLUSTER_MIN_PAIRS)


def errors(called: np.ndarray, tampered: np.ndarray) -> str:
  """'false alarms F, misses M' of a decision."""
  return f'false alarms {int((called & ~tampered).sum())}, misses {int((~called & tampered).sum())}'


def best_rules(inliers: np.ndarray, area: np.ndarray, tampered: np.ndarray) -> dict:
  """The map's own decision, and the most accurate inlier-count and (count, area) thresholds."""
  def accuracy(called):
    return float((called == tampered).mean())
  counts = sorted(set(inliers.tolist()) | {keypoints.MAP_MIN_INLIERS})
  by_count = max((accuracy((inliers >= t) & (area > 0)), t) for t in counts)
  by_both = max((accuracy((inliers >= t) & (area > a)), t, a) for t in counts for a in AREAS)
  p = keypoints.map_probability(inliers, area > 0)
  return {'map_decision': accuracy(p > 0.5), 'map_errors': errors(p > 0.5, tampered),
          'inliers': by_count, 'inliers_and_area': by_both}


def anchor_correlations(pairs: keypoints.MapPairs, found: keypoints.CopyMoveMap
                        ) -> list[tuple[int, float]]:
  """(inlier count, median correlation at its inlier keypoints) of each model behind a map."""
  grey, (h, w) = pairs.grey, pairs.grey.shape
  out, start = [], 0
  for model, count in found.models:
    anchors = found.dst[start:start + count] * np.float32(pairs.scale)
    start += count
    warped = cv2.warpAffine(grey, model, (w, h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REFLECT)
    corr, _ = keypoints.local_correlation(grey, warped, VERIFY_WINDOW)
    ys = np.clip(anchors[:, 1].astype(int), 0, h - 1)
    xs = np.clip(anchors[:, 0].astype(int), 0, w - 1)
    out.append((count, float(np.median(corr[ys, xs]))))
  return out


def verified(models: list[list[tuple[int, float]]], min_inliers: int, min_corr: float) -> np.ndarray:
  """Files called copy-moved: some model with at least `min_inliers` pairs and `min_corr`."""
  return np.array([any(n >= min_inliers and c >= min_corr for n, c in m) for m in models])


def chosen_on_training_folds(grid: list, called, tampered: np.ndarray, groups: list[str],
                             prefer) -> list[float]:
  """Grouped stratified 5-fold accuracy of the rule of `grid` most accurate on the training folds
  (ties: the larger `prefer(rule)`), one figure per shuffle (`CV_SEEDS`). `called(idx, rule)`: the
  files of `idx` the rule calls tampered."""
  everything = np.arange(len(tampered))
  def accuracy(idx, rule):
    return float((called(idx, rule) == tampered[idx]).mean())
  scores = []
  for seed in range(CV_SEEDS):
    folds = StratifiedGroupKFold(5, shuffle=True, random_state=seed)
    out = np.zeros(len(tampered), bool)
    for train, test in folds.split(everything, tampered, groups):
      rule = max(grid, key=lambda r: (accuracy(train, r), prefer(r)))
      out[test] = called(test, rule)
    scores.append(float((out == tampered).mean()))
  return scores


def _cv_line(scores: list[float]) -> str:
  return 'mean {:.3f} (shuffles: {})'.format(np.mean(scores), ', '.join(f'{a:.3f}' for a in scores))


def verify_report(models: list, tampered: np.ndarray, groups: list[str]) -> None:
  """In-sample and grouped 5-fold accuracy of the (inliers, correlation) thresholds."""
  grid = [(n, c) for n in VERIFY_INLIERS for c in VERIFY_CORRELATIONS]
  def called(idx, rule):
    return verified([models[i] for i in idx], *rule)
  def accuracy(idx, rule):
    return float((called(idx, rule) == tampered[idx]).mean())
  everything = np.arange(len(models))
  print(f'correlation at the inliers ({VERIFY_WINDOW} px windows), in sample:')
  for n in VERIFY_INLIERS:
    print(f'  >= {n} pairs: ' + ', '.join(
        f'{c:g}: {accuracy(everything, (n, c)):.3f}' for c in VERIFY_CORRELATIONS))
  best = max(grid, key=lambda r: (accuracy(everything, r), -r[1]))
  print('  best: >= {} pairs and >= {:g}, accuracy {:.3f} ({})'.format(
      *best, accuracy(everything, best), errors(verified(models, *best), tampered)))
  # Ties: the lower correlation.
  scores = chosen_on_training_folds(grid, called, tampered, groups, prefer=lambda r: -r[1])
  print('thresholds chosen on the training folds, grouped 5-fold accuracy: ' + _cv_line(scores))


def cluster_report(pairs: list[tuple[np.ndarray, np.ndarray]], tampered: np.ndarray,
                   groups: list[str]) -> None:
  """The 'clusters' decision at the published settings, in-sample best of CLUSTER_GRID, and the
  grid's settings chosen on the training folds of a grouped 5-fold."""
  settings = dict.fromkeys(rule[:2] for rule in CLUSTER_GRID)  # each clustering once
  links = {(linkage, cutoff): np.array([keypoints.cluster_links(src, dst, linkage=linkage,
                                                                cutoff=cutoff) for src, dst in pairs])
           for linkage, cutoff in settings}
  def called(idx, rule):
    return links[rule[:2]][idx] > rule[2]
  def accuracy(idx, rule):
    return float((called(idx, rule) == tampered[idx]).mean())
  def prefer(rule):  # ties: the settings nearest the published ones
    return (rule[0] == PUBLISHED[0], -abs(rule[1] - PUBLISHED[1]), -abs(rule[2] - PUBLISHED[2]))
  everything = np.arange(len(pairs))
  print('clusters of matched keypoints, published settings ({} linkage, cutoff {:g}, more than {} '
        'pairs joining two clusters): accuracy {:.3f} ({})'.format(
            *PUBLISHED, accuracy(everything, PUBLISHED), errors(called(everything, PUBLISHED), tampered)))
  best = max(CLUSTER_GRID, key=lambda r: (accuracy(everything, r), prefer(r)))
  print('  best in sample: {} linkage, cutoff {:g}, more than {} pairs: accuracy {:.3f} ({})'.format(
      *best, accuracy(everything, best), errors(called(everything, best), tampered)))
  scores = chosen_on_training_folds(CLUSTER_GRID, called, tampered, groups, prefer)
  print('  settings chosen on the training folds, grouped 5-fold accuracy: ' + _cv_line(scores))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--release', default='micc_f220', choices=sorted(releases.LISTERS))
  parser.add_argument('--manual_dir', type=runtime.home, required=True)
  parser.add_argument('--limit', type=experiments.whole_number(0, '0: all'), default=0, help='the first N files only (0 = all)')
  parser.add_argument('--mirrored', action='store_true', help='match mirror-wise copies too')
  parser.add_argument('--verify', action='store_true',
                      help='also the correlation at the inliers, in sample and grouped 5-fold')
  parser.add_argument('--clusters', action='store_true',
                      help="also the 'clusters' decision, and its settings in sample and grouped 5-fold")
  args = parser.parse_args(argv)
  files = releases.LISTERS[args.release](args.manual_dir, [])
  files = files[:args.limit] if args.limit else files
  settings = keypoints.MapSettings(mirrored=args.mirrored)
  inliers, area, tampered, models, all_pairs = [], [], [], [], []
  for f in progress.bar(files, desc='keypoint maps', unit='image'):
    rgb, _ = image_io.decode_file(f.path)
    pairs = keypoints.map_pairs(rgb, settings)
    found = keypoints.map_from_pairs(rgb.shape, pairs, settings)  # = copy_move_map(rgb, settings)
    inliers.append(len(found.src))
    area.append(float(found.map.mean()))
    tampered.append(f.forgery_type != labels.AUTHENTIC)
    if args.verify:
      models.append(anchor_correlations(pairs, found))
    if args.clusters:  # every pair, as MapSettings(decision='clusters') clusters them
      all_pairs.append(pairs.every_pair())
  out = best_rules(np.array(inliers), np.array(area), np.array(tampered))
  print(f'{len(files)} files of {args.release} ({int(np.sum(tampered))} tampered)')
  print(f"the map's own decision (p > 0.5): accuracy {out['map_decision']:.3f} "
        f"({out['map_errors']})")
  print('best inlier-count threshold, in sample: accuracy {:.3f} at >= {}'.format(*out['inliers']))
  print('best inlier-count and area thresholds, in sample: accuracy {:.3f} at >= {} pairs and '
        'area > {}'.format(*out['inliers_and_area']))
  if args.verify:
    verify_report(models, np.array(tampered), [f.group for f in files])
  if args.clusters:
    cluster_report(all_pairs, np.array(tampered), [f.group for f in files])


if __name__ == '__main__':
  experiments.one_error_line(main)()

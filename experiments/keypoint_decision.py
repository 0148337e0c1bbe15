"""How far can a decision rule on the copy-move keypoint map alone go? An in-sample ceiling.

    python -m experiments.keypoint_decision --release=micc_f220 \
        --manual_dir=../shared/datasets/micc_f220 [--limit=N] [--mirrored]

Computes `forensics.keypoints.copy_move_map` of every file of a release (listed as its builder
lists it) and prints the accuracy of the map's own decision (p(tampered) > 0.5), then the best
accuracy of a threshold on the number of inlier pairs, and of a pair of thresholds on the inlier
count and the share of the image the map covers, each chosen on the very files it is scored on:
an upper bound for any rule fitted to those two numbers, not a result to report as one.
`--mirrored` computes the maps with `MapSettings(mirrored=True)` (regions copied mirror-wise too).
"""

from __future__ import annotations

import argparse

import numpy as np

from forgery_jax import image_io
from forgery_jax import progress
from forgery_jax.data import labels
from forgery_jax.data import releases
from forgery_jax.forensics import keypoints

AREAS = (0.0, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.008, 0.01, 0.015, 0.02)


def best_rules(inliers: np.ndarray, area: np.ndarray, tampered: np.ndarray) -> dict:
  """The map's own decision, and the most accurate inlier-count and (count, area) thresholds."""
  def accuracy(called):
    return float((called == tampered).mean())
  counts = sorted(set(inliers.tolist()) | {keypoints.MAP_MIN_INLIERS})
  by_count = max((accuracy((inliers >= t) & (area > 0)), t) for t in counts)
  by_both = max((accuracy((inliers >= t) & (area > a)), t, a) for t in counts for a in AREAS)
  p = keypoints.map_probability(inliers, area > 0)
  return {'map_decision': accuracy(p > 0.5), 'inliers': by_count, 'inliers_and_area': by_both}


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--release', default='micc_f220', choices=sorted(releases.LISTERS))
  parser.add_argument('--manual_dir', required=True)
  parser.add_argument('--limit', type=int, default=0, help='the first N files only (0 = all)')
  parser.add_argument('--mirrored', action='store_true', help='match mirror-wise copies too')
  args = parser.parse_args(argv)
  files = releases.LISTERS[args.release](args.manual_dir, [])
  files = files[:args.limit] if args.limit else files
  inliers, area, tampered = [], [], []
  for f in progress.bar(files, desc='keypoint maps', unit='image'):
    rgb, _ = image_io.decode_file(f.path)
    found = keypoints.copy_move_map(rgb, keypoints.MapSettings(mirrored=args.mirrored))
    inliers.append(len(found.src))
    area.append(float(found.map.mean()))
    tampered.append(f.forgery_type != labels.AUTHENTIC)
  out = best_rules(np.array(inliers), np.array(area), np.array(tampered))
  print(f'{len(files)} files of {args.release} ({int(np.sum(tampered))} tampered)')
  print(f"the map's own decision (p > 0.5): accuracy {out['map_decision']:.3f}")
  print('best inlier-count threshold, in sample: accuracy {:.3f} at >= {}'.format(*out['inliers']))
  print('best inlier-count and area thresholds, in sample: accuracy {:.3f} at >= {} pairs and '
        'area > {}'.format(*out['inliers_and_area']))


if __name__ == '__main__':
  main()

"""Where the pixel F1 is lost: each tampered file's F1 at 0.5, by the size of its region, by type,
and by whether the copy-move keypoint map marks a region; and what a perfect choice of copy adds.

    python -m experiments.f1_breakdown --cache=<a fusion_rules cache> \
      [--also=<other runs' caches, comma-separated>] [--rule='upper copies']

Reads `experiments.fusion_rules`' score caches only (no run, no dataset is loaded): the runs' maps
averaged as `experiments.averaging` averages them, joined with the keypoint map by `--rule`, and
scored on every test split of the cache. `missed` is the share of files whose F1 is under 0.05,
`reached` the share at or above 0.74 (the issue's goal for the mean). The copy bound scores, on each
file where the keypoint map marks regions, the best of: each region alone, all of them, and the
rule's own map: no rule that picks among the keypoint map's copies can do better.
"""

from __future__ import annotations

import argparse
import glob
import os

import cv2
import numpy as np

import experiments
from experiments import averaging
from experiments import fusion_rules
from forgery_jax import runtime
from forgery_jax.data import labels as labels_lib
from forgery_jax.evaluation import pixel_metrics

AREA_EDGES = (0.0, 0.02, 0.05, 0.1, 0.2, 1.0)  # the mask's share of the image
MISSED, REACHED = 0.05, 0.74


def per_file(split: dict, rule) -> list[dict]:
  """One row per tampered file with a mask: its F1 at 0.5 by `rule`, the mask's share of the
  image, its type, whether the keypoint map marks a region, and the copy bound (None without)."""
  rows = []
  for net, kp, mask, kind in zip(split['net_maps'], split['kp_maps'], split['masks'], split['kinds']):
    if mask is None:
      continue
    f1 = lambda m: pixel_metrics.per_image(m, mask)['pixel_f1']  # pylint: disable=cell-var-from-loop
    fused = f1(rule(net, kp))
    regions_marked = bool((kp > 0.5).any())
    bound = None
    if regions_marked:
      count, regions = cv2.connectedComponents((kp > 0.5).astype(np.uint8))
      bound = max([fused, f1(kp)] + [f1((regions == r).astype(np.float32)) for r in range(1, count)])
    rows.append({'f1': fused, 'area': float(pixel_metrics.truth_of(mask).mean()), 'kind': kind,
                 'keypoint_region': regions_marked, 'copy_bound': bound})
  return rows


def _group(rows: list[dict]) -> dict:
  f1 = np.array([r['f1'] for r in rows], np.float64)
  if not len(f1):
    return {'files': 0}
  return {'files': len(f1), 'pixel_f1': float(f1.mean()), 'missed': float((f1 < MISSED).mean()),
          'reached': float((f1 >= REACHED).mean())}


def breakdown(rows: list[dict]) -> dict:
  """The mean F1 and its shares overall, by the region's size, by type and keypoint region, and
  the copy bound (its mean over the files with keypoint regions, and what it adds to all)."""
  out = {'all': _group(rows), 'by_area': {}, 'by_type': {}}
  for lo, hi in zip(AREA_EDGES[:-1], AREA_EDGES[1:]):
    out['by_area'][f'{lo:g}-{hi:g}'] = _group([r for r in rows if lo <= r['area'] < hi or
                                               (hi == AREA_EDGES[-1] and r['area'] == hi)])
  for kind in (labels_lib.COPY_MOVE, labels_lib.SPLICING):
    for marked in (True, False):
      name = f"{kind}, {'a' if marked else 'no'} keypoint region"
      out['by_type'][name] = _group([r for r in rows if r['kind'] == kind and r['keypoint_region'] == marked])
  bounded = [r for r in rows if r['copy_bound'] is not None]
  out['copy_bound'] = {
      'files': len(bounded),
      'pixel_f1': float(np.mean([r['f1'] for r in bounded])) if bounded else float('nan'),
      'bound': float(np.mean([r['copy_bound'] for r in bounded])) if bounded else float('nan'),
      'adds_to_all': (float(sum(r['copy_bound'] - r['f1'] for r in bounded) / len(rows))
                      if rows else float('nan'))}
  return out


def test_keys(cache: str) -> list[str]:
  """The cache's test splits ('test', 'test_<config>'), in name order."""
  names = sorted(os.path.basename(p)[:-len('.npz')] for p in glob.glob(os.path.join(cache, 'test*.npz')))
  if not names:
    raise FileNotFoundError(f'{cache}: no test*.npz here; make it with experiments.fusion_rules')
  return names


def load_averaged(cache: str, others: list[str]) -> dict:
  """split -> the scores of `cache` with the maps of `others` (same files) averaged in."""
  plain = {key: fusion_rules.load(os.path.join(cache, f'{key}.npz')) for key in test_keys(cache)}
  rest = averaging.load_others(others, plain, cache)
  return {key: averaging.averaged(split, *(r[key] for r in rest)) if rest else split
          for key, split in plain.items()}


def _row(g: dict) -> str:
  if not g['files']:
    return '0 files'
  return f"{g['files']} files: F1 {g['pixel_f1']:.3f}, missed {g['missed']:.2f}, reached {g['reached']:.2f}"


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--cache', type=runtime.home, required=True, help="a run's experiments.fusion_rules score cache")
  parser.add_argument('--also', default='', help="other runs' caches, comma-separated, same split")
  parser.add_argument('--rule', default='upper copies', choices=sorted(fusion_rules.PIXEL_RULES))
  parser.add_argument('--output', type=runtime.home, default='', help='write the breakdown as JSON here')
  args = parser.parse_args(argv)
  splits = load_averaged(args.cache, [runtime.home(c) for c in args.also.split(',') if c])
  results = {key: breakdown(per_file(split, fusion_rules.PIXEL_RULES[args.rule]))
             for key, split in splits.items()}
  for key, b in results.items():
    print(f'{key} ({args.rule}): {_row(b["all"])}')
    for name, g in (*b['by_area'].items(), *b['by_type'].items()):
      print(f'  {name}: {_row(g)}')
    c = b['copy_bound']
    print(f"  copy bound on the {c['files']} files with keypoint regions: F1 {c['pixel_f1']:.3f} -> "
          f"{c['bound']:.3f}, + {c['adds_to_all']:.3f} to the mean over all")
  experiments.write_json(args.output, results)
  return results


if __name__ == '__main__':
  experiments.one_error_line(main)()

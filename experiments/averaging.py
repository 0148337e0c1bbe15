"""Do averaged maps localise better? Two seeds' maps, and each file's four flips, averaged.

    python -m experiments.averaging --workdir=<localiser run> --cache=<its fusion_rules cache> \
      [--also=<another run's fusion_rules cache>[,<a third run's>...]] [--flips]

Both are cheap ways to a better map that need no new training: the mean of several runs' maps
(the runs trained on the same split with other seeds), and the mean of the network's maps of the image
and its horizontal, vertical and double flips, each flipped back (the localiser trains with
random flips, `augment_flips`). An image whose size is not a multiple of 16 is padded (edge
pixels) before it is flipped, so that its JPEG grid stays where it was, and cropped after.

Reads `experiments.fusion_rules`' score cache (made there first when missing); the flipped scores
are kept in the same folder (`flipped_<split>.npz`). With `--also` and `--flips`, the runs'
flipped maps are averaged too (both at once), from each run's own `flipped_<split>.npz`. Prints
the pixel F1 at 0.5, at the threshold best on validation and the AUC of the network's map and of
the `replace`, `keypoints_alone`, `upper copies` and `upper copies ranked` fusions, and the image
AUC of p(tampered), for every split.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from sklearn import metrics

import experiments
from experiments import fusion_rules
from forgery_jax import progress
from forgery_jax import runtime

RULES = ('network', 'replace', 'keypoints_alone', 'upper copies', 'upper copies ranked')
COUNTS = {2: 'two', 3: 'three', 4: 'four', 5: 'five', 6: 'six'}
def flipped_split(detector, data, indices, desc: str) -> dict:
  """Each file's flip-averaged p(tampered) and network map, as the detector scores them with
  `score_flips` (which it keeps from here on)."""
  detector.score_flips()
  ps, maps = [], []
  for i in progress.bar(indices, desc=desc, unit='image'):
    s = detector.score([data.source[int(i)]])
    ps.append(s.p_tampered[0])
    maps.append(s.maps[0])
  return {'p_net': np.float32(ps), 'net_maps': maps}


def save_flipped(path: str, flipped: dict) -> None:
  arrays = {'p_net': flipped['p_net']}
  arrays.update({f'net_{i}': m.astype(np.float16) for i, m in enumerate(flipped['net_maps'])})
  tmp = path + '.tmp.npz'
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)


def load_flipped(path: str) -> dict:
  with np.load(path, allow_pickle=False) as z:
    return {'p_net': z['p_net'],
            'net_maps': [z[f'net_{i}'].astype(np.float32) for i in range(len(z['p_net']))]}


def averaged(split: dict, *others: dict) -> dict:
  """`split` with its network's maps and p(tampered) averaged with those of `others` (the same
  files), each run weighed alike."""
  for other in others:
    if len(other['net_maps']) != len(split['net_maps']) or any(
        a.shape != b.shape for a, b in zip(split['net_maps'], other['net_maps'])):
      raise ValueError('the score sets hold other files: make them all from runs on the same split')
  runs = (split,) + others
  return dict(split, p_net=sum(r['p_net'] for r in runs) / len(runs),
              net_maps=[sum(maps) / len(runs) for maps in zip(*(r['net_maps'] for r in runs))])


def same_files(a: dict, b: dict) -> bool:
  """Whether two fusion_rules caches hold the same files: the same labels and masks."""
  return (np.array_equal(a['tampered'], b['tampered']) and len(a['masks']) == len(b['masks'])
          and all((x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
                  for x, y in zip(a['masks'], b['masks'])))


def load_others(caches: list[str], plain: dict, name: str) -> list[dict]:
  """Each fusion_rules cache's scores for the splits of `plain` (read from `name`), refused
  unless they hold the same files."""
  others = []
  for cache in caches:
    other = {key: fusion_rules.load(os.path.join(cache, f'{key}.npz')) for key in plain}
    if not all(same_files(plain[k], other[k]) for k in plain):
      raise ValueError(f'{cache}: its files are not those of {name} (other files: another split?)')
    others.append(other)
  return others


def flipped_of(cache: str, plain: dict) -> dict:
  """A run's flip-averaged scores of the splits of `plain` (its scores from `cache`), which that
  run's own call with `--flips` keeps in its cache."""
  flipped = {}
  for key in plain:
    path = os.path.join(cache, f'flipped_{key}.npz')
    if not os.path.exists(path):
      raise SystemExit(f'error: {path} is missing: run this experiment with --flips on that run '
                       'first (its --workdir and --cache)')
    flipped[key] = dict(plain[key], **load_flipped(path))
  return flipped


def figures(splits: dict) -> dict:
  """rule -> split -> pixel figures (with the validation threshold's F1), and the image AUC."""
  out = {}
  for rule in RULES:
    per_split = {key: fusion_rules.pixel_figures(split, fusion_rules.PIXEL_RULES[rule])
                 for key, split in splits.items()}
    fusion_rules.at_validation_threshold(per_split)
    out[rule] = per_split
  out['image_auc'] = {key: float(metrics.roc_auc_score(split['tampered'], split['p_net']))
                      for key, split in splits.items()}
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a finished localiser run')
  parser.add_argument('--cache', type=runtime.home, required=True, help="its experiments.fusion_rules score cache")
  parser.add_argument('--also', default='',
                      help="other runs' fusion_rules caches, comma-separated, same split")
  parser.add_argument('--flips', action='store_true',
                      help="also average the four flips (with --also: every run's, which each "
                           "run's own call with --flips keeps in its cache)")
  parser.add_argument('--output', type=runtime.home, default='', help='write the figures as JSON here')
  args = parser.parse_args(argv)
  run, targets, plain = fusion_rules.from_cache(args.workdir, args.cache)
  variants = {'one run': plain}
  caches = [runtime.home(c) for c in args.also.split(',') if c]
  others = load_others(caches, plain, args.cache)
  if others:
    name = f'{COUNTS.get(len(others) + 1, len(others) + 1)} runs'
    variants[name] = {k: averaged(plain[k], *(o[k] for o in others)) for k in targets}
  if args.flips:
    for key, (data, indices) in targets.items():
      path = os.path.join(args.cache, f'flipped_{key}.npz')
      if not os.path.exists(path):
        save_flipped(path, flipped_split(run.detectors[0], data, indices, f'flips {key}'))
    flipped = flipped_of(args.cache, plain)
    variants['four flips'] = flipped
    if others:
      others_flipped = [flipped_of(cache, other) for cache, other in zip(caches, others)]
      variants[f'{name}, four flips'] = {
          k: averaged(flipped[k], *(o[k] for o in others_flipped)) for k in targets}
  results = {name: figures(splits) for name, splits in variants.items()}

  keys = list(targets)
  print('pixel F1 at 0.5 / at the threshold best on validation (it) / AUC; image AUC of p(tampered)')
  rows = {}
  for name, result in results.items():
    for rule in RULES:
      rows[f'{name}: {rule}'] = [
          f"{f['all']['pixel_f1']:.3f} / {f['at_validation_threshold']['pixel_f1']:.3f} "
          f"({f['at_validation_threshold']['threshold']:.2f}) / {f['all']['pixel_auc']:.3f}"
          for f in (result[rule][k] for k in keys)]
    rows[f'{name}: image AUC'] = [f"{result['image_auc'][k]:.3f}" for k in keys]
  fusion_rules.print_table(keys, rows)
  experiments.write_json(args.output, results)
  return results


if __name__ == '__main__':
  experiments.one_error_line(main)()

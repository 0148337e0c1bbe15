"""Which way of joining the localiser's map and the copy-move keypoint map, chosen on validation?

    python -m experiments.fusion_rules --workdir=<localiser run> [--cache=DIR] [--limit=N]
        [--keypoint_decision=clusters]

`evaluate --keypoint_map` joins them by one rule (`model.keypoint_fusion`; the larger
p(tampered)). This scores a finished localiser run's validation split, its test split and the same test files as
every `dataset.also_test` config prepares them, each file once by the network and once by the
keypoint map, and then every rule below from those scores: the pixel rule with the best
validation pixel F1 (also with the pixel threshold best on validation), and the image rule with
the best validation accuracy left out one file at a time, are the ones chosen;
every rule's test figures are printed beside them, so that what the choice cost or gained is
visible. `--cache` keeps the scores (npz, maps as float16: figures read back from a cache can
differ from the first call's in the third decimal) so that a second call only recomputes the rules.

Pixel rules: the network's map, the keypoint map, and the two ways of `localiser.fuse_maps`:
their maximum, `replace` (in an image where the keypoint map marks a region, the keypoint map
with the network's map halved beside it; the network's map in images where it marks none), and
`keypoints_alone` (`replace` with nothing of the network's map beside the region); and two that
try to say which copy was pasted, keeping of the keypoint regions the one the network marks most
(`one copy`) or those it marks at least as much as the regions' median (`upper copies`,
`localiser.fuse_maps`' `upper_copies`), and the same ranking every pixel for the AUC (`upper
copies ranked`: `upper_copies_ranked`, its pixel F1 at 0.5 that of `upper copies`).
Image rules: the network's p(tampered), the larger of the two, a logistic regression on
(network p, keypoint p, the network map's maximum and mean) fitted on the validation split, and
the keypoint map's p alone (by `--keypoint_decision`); each decides at the threshold most accurate
on validation. The image rule is chosen by its accuracy on the validation files left out one at a
time (each file decided by the rule fitted, threshold and all, to the others): in-sample, the
logistic regression separates a small validation split and is chosen for it, then falls behind on
test. A tie goes to the rule listed first.

A k-fold run (MICC-F220's grouped 5-fold) is scored fold by fold, each fold's rules chosen on its
own validation split (its cache in `<cache>/fold_<k>`); the test figures are then the mean over
folds, as the run's own results.json averages them. Releases without masks get no pixel tables.
"""

from __future__ import annotations

import argparse
import os

from absl import flags
import numpy as np

import experiments
from forgery_jax import evaluate
from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax.data import input_pipeline
from forgery_jax.data import labels as labels_lib
from forgery_jax.detectors import copy_move_keypoints
from forgery_jax.detectors import localiser
from forgery_jax.evaluation import evaluators
from forgery_jax.evaluation import pixel_eval
from forgery_jax.evaluation import pixel_metrics
from forgery_jax.forensics import keypoints


PIXEL_RULES = {
    'network': lambda net, kp: net,
    'keypoints': lambda net, kp: kp,
    'max': lambda net, kp: localiser.fuse_maps(net, kp, 'max'),
    'replace': lambda net, kp: localiser.fuse_maps(net, kp, 'replace'),
    'keypoints_alone': lambda net, kp: localiser.fuse_maps(net, kp, 'keypoints_alone'),
    'one copy': lambda net, kp: localiser.network_chosen_copies(net, kp, upper_half=False),
    'upper copies': lambda net, kp: localiser.fuse_maps(net, kp, 'upper_copies'),
    'upper copies ranked': lambda net, kp: localiser.fuse_maps(net, kp, 'upper_copies_ranked'),
}


def image_features(p_net: np.ndarray, p_kp: np.ndarray, net_maps: list[np.ndarray]) -> np.ndarray:
  return np.stack([p_net, p_kp, [m.max() for m in net_maps], [m.mean() for m in net_maps]], 1)


def image_rules(validation: dict, other: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """rule -> (validation scores, scores of `other`): what each image rule thresholds."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  rules = {'network': (validation['p_net'], other['p_net']),
           'max': (np.maximum(validation['p_net'], validation['p_kp']),
                   np.maximum(other['p_net'], other['p_kp']))}
  if len(set(validation['tampered'].tolist())) == 2:  # nothing to fit on one class (--limit)
    fv, fo = _features(validation), _features(other)
    stack = make_pipeline(StandardScaler(), LogisticRegression()).fit(fv, validation['tampered'])
    rules['logistic'] = stack.predict_proba(fv)[:, 1], stack.predict_proba(fo)[:, 1]
  rules['keypoints'] = validation['p_kp'], other['p_kp']
  return rules


def _features(split: dict) -> np.ndarray:
  """The logistic regression's inputs: given with the split (`leave_one_out_accuracy`) or made
  from its maps."""
  if 'features' in split:
    return split['features']
  return image_features(split['p_net'], split['p_kp'], split['net_maps'])


def leave_one_out_accuracy(validation: dict) -> dict[str, float]:
  """rule -> its accuracy on the validation split with each file decided by the rule (the
  logistic fit and the threshold) made from the other files: what a rule's in-sample validation
  accuracy overstates, most for the fitted logistic regression, which the choice reads instead."""
  n = len(validation['tampered'])
  scores = {'p_net': validation['p_net'], 'p_kp': validation['p_kp'],
            'tampered': validation['tampered'], 'features': _features(validation)}
  files = lambda keep: {k: v[keep] for k, v in scores.items()}
  correct: dict[str, int] = {}
  for i in range(n):
    rest = np.arange(n) != i
    train = files(rest)
    # a rule that cannot be fitted without file i (the logistic on one class) counts it wrong
    for name, (v, o) in image_rules(train, files(~rest)).items():
      threshold = evaluators.most_accurate_threshold(v, train['tampered'])
      correct[name] = correct.get(name, 0) + int((o[0] >= threshold) == validation['tampered'][i])
  return {name: c / n for name, c in correct.items()}


def score_split(detector, dataset, indices: np.ndarray, masks, desc: str,
                decision: str = keypoints.DECISIONS[0]) -> dict:
  """Both scorers on `dataset.source[indices]` (the keypoint map deciding by `decision`), and
  the masks of its tampered files."""
  map_settings = keypoints.MapSettings(decision=decision)
  p_net, p_kp, net_maps, kp_maps, truth, kinds = [], [], [], [], [], []
  for i in progress.bar(indices, desc=desc, unit='image'):
    example = dataset.source[int(i)]
    net = detector.score([example])
    kp = copy_move_keypoints.score_images([example['image']], map_settings)
    p_net.append(net.p_tampered[0])
    p_kp.append(kp.p_tampered[0])
    net_maps.append(np.asarray(net.maps[0], np.float32))
    kp_maps.append(np.asarray(kp.maps[0], np.float32))
  keep = set(pixel_eval.tampered_with_mask(dataset, indices).tolist())
  for i in indices:
    truth.append(masks.mask(dataset, int(i)) if int(i) in keep else None)
    kinds.append(labels_lib.FORGERY_TYPES[int(dataset.forgery_types[int(i)])])
  return {'p_net': np.float32(p_net), 'p_kp': np.float32(p_kp), 'net_maps': net_maps,
          'kp_maps': kp_maps, 'masks': truth, 'kinds': kinds,
          'tampered': dataset.labels[indices] != 0, 'keypoint_decision': decision}


def save(path: str, split: dict) -> None:
  arrays = {k: split[k] for k in ('p_net', 'p_kp', 'tampered')}
  arrays['kinds'] = np.array(split['kinds'])
  arrays['keypoint_decision'] = np.array(split.get('keypoint_decision', keypoints.DECISIONS[0]))
  for i, (n, k, m) in enumerate(zip(split['net_maps'], split['kp_maps'], split['masks'])):
    arrays[f'net_{i}'], arrays[f'kp_{i}'] = n.astype(np.float16), k.astype(np.float16)
    if m is not None:
      arrays[f'mask_{i}'] = m
  tmp = path + '.tmp.npz'
  np.savez_compressed(tmp, **arrays)
  os.replace(tmp, path)


def load(path: str) -> dict:
  with np.load(path, allow_pickle=False) as z:
    n = len(z['p_net'])
    return {'p_net': z['p_net'], 'p_kp': z['p_kp'], 'tampered': z['tampered'],
            'kinds': z['kinds'].tolist(),
            # caches written before the decision was recorded were all made by the first
            'keypoint_decision': str(z['keypoint_decision']) if 'keypoint_decision' in z
                                 else keypoints.DECISIONS[0],
            'net_maps': [z[f'net_{i}'].astype(np.float32) for i in range(n)],
            'kp_maps': [z[f'kp_{i}'].astype(np.float32) for i in range(n)],
            'masks': [z[f'mask_{i}'] if f'mask_{i}' in z else None for i in range(n)]}


def pixel_figures(split: dict, rule) -> dict:
  """pixel F1 / AUC of a rule's maps over the split's tampered files with masks, and by type."""
  rows = [dict(pixel_metrics.per_image(rule(n, k), m), kind=t)
          for n, k, m, t in zip(split['net_maps'], split['kp_maps'], split['masks'], split['kinds'])
          if m is not None]
  out = {'all': pixel_metrics.summarise(rows),
         'f1_curve': pixel_metrics.mean_f1_curve(rows).tolist()}  # at THRESHOLDS
  for kind in (labels_lib.COPY_MOVE, labels_lib.SPLICING):
    out[kind] = pixel_metrics.summarise([r for r in rows if r['kind'] == kind])
  return out


def at_validation_threshold(figures: dict) -> None:
  """Adds to each split's `pixel_figures` the pixel F1 at the threshold best on 'validation'."""
  best = pixel_metrics.best_threshold(np.asarray(figures['validation']['f1_curve']))
  for split in figures.values():
    split['at_validation_threshold'] = {'threshold': float(pixel_metrics.THRESHOLDS[best]),
                                        'pixel_f1': split['f1_curve'][best]}


def targets(run, fold: int = 0) -> dict:
  """key -> (dataset, indices): a run's (fold's) validation and test splits, and the same test
  files as each of its `dataset.also_test` configs prepares them ('test_<config>')."""
  config, dataset = run.detectors[fold].config, run.datasets[fold]
  out = {'validation': (dataset, dataset.split.validation), 'test': (dataset, dataset.split.test)}
  for name in config.dataset.also_test:
    other = input_pipeline.load(config, builder_config=name)
    out[f'test_{name}'] = (other, other.split.test)
  return out


def load_localiser_run(workdir: str, **kwargs) -> evaluate.LoadedRun:
  """`evaluate.load_run`, refusing a run of another method: these experiments read the network's
  own map, which only localiser runs draw."""
  run = evaluate.load_run(workdir, **kwargs)
  if run.config.method != 'localiser':
    raise ValueError(f'{workdir}: a {run.config.method!r} run; this experiment reads the maps of a '
                     'localiser run')
  return run


def from_cache(workdir: str, cache: str):
  """(the run, its `targets`, key -> its cached scores), for the experiments that read this one's
  cache; the cache is made first when missing."""
  if not os.path.exists(os.path.join(cache, 'validation.npz')):
    main(['--workdir', workdir, '--cache', cache])
  flags.FLAGS.mark_as_parsed()
  runtime.quiet_libraries()
  run = load_localiser_run(workdir)
  split_targets = targets(run)
  return run, split_targets, {key: load(os.path.join(cache, f'{key}.npz')) for key in split_targets}


def print_table(columns: list[str], rows: dict[str, list[str]], first: str = 'rule') -> None:
  """A markdown table: one row per rule (or `first`), one cell per split."""
  print(f'| {first} | ' + ' | '.join(columns) + ' |')
  print('|---|' + '---|' * len(columns))
  for name, cells in rows.items():
    print(f'| {name} | ' + ' | '.join(cells) + ' |')


def fold_cache(cache: str, run, fold: int) -> str:
  """Where a fold's scores are cached: `cache` itself for a run of one fold."""
  return os.path.join(cache, f'fold_{fold}') if cache and len(run.detectors) > 1 else cache


def score_fold(run, fold: int, cache: str, limit: int, decision: str) -> dict:
  """key -> scores of one fold's `targets`, read from `cache` when there, else computed (and
  kept there)."""
  detector = run.detectors[fold]
  masks = pixel_eval.MaskSource(detector.config)
  splits = {}
  for key, (data, indices) in targets(run, fold).items():
    indices = indices[:limit] if limit else indices
    path = os.path.join(cache, f'{key}.npz') if cache else ''
    if path and os.path.exists(path):
      splits[key] = load(path)
      if splits[key]['keypoint_decision'] != decision:
        cached = splits[key]['keypoint_decision']
        raise SystemExit(f'error: {path}: cached with the keypoint decision {cached!r}, '
                         f'not {decision!r}; give another --cache')
      continue
    splits[key] = score_split(detector, data, indices, masks, f'{key} {data.name}', decision)
    if path:
      os.makedirs(cache, exist_ok=True)
      save(path, splits[key])
  return splits


def rule_figures(splits: dict) -> dict:
  """Every pixel rule's and image rule's figures on each split, and the rules chosen on
  'validation' (no pixel rules where the validation split has no masked file)."""
  results = {'pixel': {}, 'image': {}, 'chosen': {}}
  if any(m is not None for m in splits['validation']['masks']):
    for name, rule in PIXEL_RULES.items():
      results['pixel'][name] = {key: pixel_figures(split, rule) for key, split in splits.items()}
      at_validation_threshold(results['pixel'][name])
    results['chosen']['pixel'] = max(
        PIXEL_RULES, key=lambda r: results['pixel'][r]['validation']['all']['pixel_f1'])
  validation = splits['validation']
  for key, split in splits.items():
    for name, (v, o) in image_rules(validation, split).items():
      threshold = evaluators.most_accurate_threshold(v, validation['tampered'])
      decision = evaluators.decision_at(o, split['tampered'], threshold)
      results['image'].setdefault(name, {})[key] = dict(decision, threshold=threshold)
  held_out = leave_one_out_accuracy(validation)
  for name, per_split in results['image'].items():
    per_split['validation']['leave_one_out_accuracy'] = held_out.get(name, 0.0)
  # chosen by the held-out accuracy; max() keeps the first of equals: a tie goes to the rule
  # listed first
  results['chosen']['image'] = max(results['image'], key=lambda r: held_out.get(r, 0.0))
  return results


def print_rules(results: dict, keys: list[str]) -> None:
  if results['pixel']:
    print(f"pixel rules (F1 at 0.5 / AUC; copy-move F1, splicing F1); chosen on validation: "
          f"{results['chosen']['pixel']}")
    print_table(keys, {name: [f"{f['all']['pixel_f1']:.3f} / {f['all']['pixel_auc']:.3f} "
                              f"({f[labels_lib.COPY_MOVE]['pixel_f1']:.3f}, {f[labels_lib.SPLICING]['pixel_f1']:.3f})"
                              for f in (results['pixel'][name][k] for k in keys)]
                       for name in PIXEL_RULES})
    print("pixel F1 at the pixel threshold best on validation (that threshold)")
    print_table(keys, {name: [f"{a['pixel_f1']:.3f} ({a['threshold']:.2f})"
                              for a in (results['pixel'][name][k]['at_validation_threshold'] for k in keys)]
                       for name in PIXEL_RULES})
  else:
    print('no masked file in the validation split: no pixel rules')
  print(f"image rules (accuracy at the validation's threshold; false alarms; on validation also "
        f"left out one at a time); chosen on validation: {results['chosen']['image']}")
  print_table(keys, {name: [f"{per_split[k]['accuracy']:.3f} ({per_split[k]['false_alarm_rate']:.2f}"
                            + (f"; {per_split[k]['leave_one_out_accuracy']:.3f})" if k == 'validation' else ')')
                            for k in keys]
                     for name, per_split in results['image'].items()})


def mean_over_folds(per_fold: list[dict]) -> dict:
  """Each image rule's test figures averaged over folds, and the rule each fold chose on its own
  validation split with the mean of what the chosen rules scored on their folds' tests."""
  keys = [k for k in per_fold[0]['image']['network'] if k != 'validation']
  def mean(rule_of_fold) -> dict:
    return {k: {m: float(np.mean([r['image'][rule_of_fold(r)][k][m] for r in per_fold]))
                for m in ('accuracy', 'false_alarm_rate', 'detection_rate')}
            for k in keys}
  out = {'image': {}, 'chosen': [r['chosen']['image'] for r in per_fold]}
  for name in [n for n in per_fold[0]['image'] if all(n in r['image'] for r in per_fold)]:
    out['image'][name] = mean(lambda r, name=name: name)
  out['image']['chosen on validation'] = mean(lambda r: r['chosen']['image'])
  return out


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a finished localiser run')
  parser.add_argument('--cache', type=runtime.home, default='', help='folder for the scores (npz), reused when there')
  parser.add_argument('--output', type=runtime.home, default='', help='write the figures as JSON here')
  parser.add_argument('--limit', type=experiments.whole_number(0, '0: all'), default=0, help='the first N files of each split (0 = all)')
  parser.add_argument('--keypoint_decision', default=keypoints.DECISIONS[0], choices=keypoints.DECISIONS,
                      help="how the keypoint map decides an image (its p): forensics.keypoints")
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()
  runtime.quiet_libraries()
  run = load_localiser_run(args.workdir)
  per_fold = []
  for fold in range(len(run.detectors)):
    splits = score_fold(run, fold, fold_cache(args.cache, run, fold), args.limit, args.keypoint_decision)
    per_fold.append(rule_figures(splits))
    if len(run.detectors) > 1:
      print(f'fold {fold}')
    print_rules(per_fold[-1], list(splits))
  if len(per_fold) == 1:
    results = per_fold[0]
  else:
    results = {'folds': per_fold, 'mean_over_folds': mean_over_folds(per_fold)}
    mean = results['mean_over_folds']
    keys = list(mean['image']['network'])
    print(f"mean over {len(per_fold)} folds (accuracy; false alarms); chosen on each fold's validation: "
          f"{', '.join(mean['chosen'])}")
    print_table(keys, {name: [f"{per_split[k]['accuracy']:.3f} ({per_split[k]['false_alarm_rate']:.2f})" for k in keys]
                       for name, per_split in mean['image'].items()})
  experiments.write_json(args.output, results)
  return results


if __name__ == '__main__':
  experiments.one_error_line(main)()

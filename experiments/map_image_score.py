"""An image-level score read from a localiser's map, its rule chosen on synthesised forgeries.

    python -m experiments.map_image_score --workdir=<localiser run> [--keypoint_map]
        [--average_with=RUN2,...] [--cache=DIR]

A run trained on synthesised forgeries only has no real forgery in its validation split, so its
image decision is its head's p(tampered) at 0.5, chosen by nothing. This forges the validation
split's authentic files as training forged them (`synthesis.synthesise` with the run's own
`config.synthesis`: copy-moves and splices with random histories, then one random last save for
every image, authentic or not), whole and at their native size, `--copies` times each with other
keys, and scores them. Each candidate image score below is then thresholded where it is most
accurate on those synthesised images, and applied to the run's test split as released, to every
`dataset.also_test` config of it and to the history-matched control (`dataset.control`): the rule
with the best synthesised-validation accuracy is the one chosen; all are printed, so that what the
choice cost or gained is visible. No CASIA v1 forgery and no CASIA v1 mask is read to choose.

Candidates: the head's p(tampered) (at 0.5 as it stands, and at the chosen threshold), statistics
of the map (its maximum; the mean of its top 0.1 %, 1 % and 5 % of pixels; its mean; the share of
pixels at or above 0.5; its top 1 % over its median; the share of its top 1 % in one connected
region), and a logistic regression on all of them fitted on the synthesised images. `--cache`
keeps each split's features (npz).
"""

from __future__ import annotations

import argparse
import os

from absl import flags
import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from sklearn import metrics as skm

import experiments
from experiments import fusion_rules
from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax import synthesis
from forgery_jax.data import input_pipeline
from forgery_jax.evaluation import evaluators

TOP_SHARES = (0.001, 0.01, 0.05)
FEATURES = ('head', 'max', *(f'top {s:.1%}' for s in TOP_SHARES), 'mean', 'area',
            'top 1.0% - median', 'top 1.0% in one region')
BATCH = 8
_forge = jax.jit(synthesis.synthesise, static_argnums=2)


def map_features(p_tampered: float, heat: np.ndarray) -> np.ndarray:
  """FEATURES of one image: its head's p(tampered); its map's maximum, top-share means, mean and
  share >= 0.5; how far its top 1 % stands above its median (a map judged against itself); and
  the share of its top 1 % of pixels in their largest connected region (a pasted region is one
  compact blob, noise is scattered)."""
  heat = np.asarray(heat, np.float32)
  flat = np.sort(heat.ravel())[::-1]
  count = lambda share: max(1, int(round(share * flat.size)))
  tops = [flat[:count(s)].mean() for s in TOP_SHARES]
  top = heat >= flat[count(0.01) - 1]
  _, _, stats, _ = cv2.connectedComponentsWithStats(top.astype(np.uint8), connectivity=8)
  largest = stats[1:, cv2.CC_STAT_AREA].max() / top.sum()
  return np.array([p_tampered, flat[0], *tops, flat.mean(), (flat >= 0.5).mean(),
                   tops[1] - np.median(flat), largest], np.float32)


def synthesised_validation(dataset, cfg, seed: int, copies: int) -> tuple[list, np.ndarray]:
  """(images, tampered) forged from the validation split's authentic files, whole: batches of
  BATCH files of one size, each batch `copies` times with its own key (fixed by `seed`)."""
  indices = dataset.split.validation[dataset.labels[dataset.split.validation] == 0]
  by_shape: dict = {}
  for i in indices:
    image = np.asarray(dataset.source[int(i)]['image'])
    by_shape.setdefault(image.shape, []).append(image)
  frozen = ml_collections.FrozenConfigDict(cfg)  # hashable: one compilation per batch shape
  base_key = jax.random.key(seed)
  images, tampered, b = [], [], 0
  for shape in sorted(by_shape):
    group = np.stack(by_shape[shape])
    for start in range(0, len(group), BATCH):
      rows = group[start:start + BATCH]
      n = len(rows)
      batch = {'image': jnp.asarray(rows), 'mask': jnp.zeros((n, *shape[:2], 1), jnp.uint8),
               'has_mask': jnp.zeros(n, bool), 'label': jnp.zeros(n, jnp.int32)}
      for c in range(copies):
        out = jax.device_get(_forge(batch, jax.random.fold_in(base_key, b * copies + c), frozen))
        images.extend(out['image'])
        tampered.extend(out['label'] != 0)
      b += 1
  return images, np.asarray(tampered)


def features_of(detector, images, desc: str) -> np.ndarray:
  rows = []
  for image in progress.bar(images, desc=desc, unit='image'):
    scores = detector.score([{'image': image}])
    rows.append(map_features(scores.p_tampered[0], scores.maps[0]))
  return np.stack(rows)


def targets(run) -> dict:
  """'test_<builder config>' -> dataset: the run's own, each also_test config, and the control."""
  config, dataset = run.detectors[0].config, run.datasets[0]
  out = {f'test_{config.dataset.builder_config}': dataset}
  for name in (*config.dataset.also_test, *([config.dataset.control] if config.dataset.control else [])):
    out[f'test_{name}'] = input_pipeline.load(config, builder_config=name)
  return out


def rules(validation: np.ndarray, others: dict) -> dict:
  """rule -> (validation score, {key: score}): each candidate as a score to threshold."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  out = {name: (validation['x'][:, j], {k: o['x'][:, j] for k, o in others.items()})
         for j, name in enumerate(FEATURES)}
  stack = make_pipeline(StandardScaler(), LogisticRegression()).fit(validation['x'], validation['tampered'])
  out['logistic'] = (stack.predict_proba(validation['x'])[:, 1],
                     {k: stack.predict_proba(o['x'])[:, 1] for k, o in others.items()})
  return out


def auc(score: np.ndarray, tampered: np.ndarray) -> float:
  if evaluators.single_class(tampered):
    return float('nan')
  return float(skm.roc_auc_score(tampered, score))


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a finished localiser run')
  parser.add_argument('--average_with', default='', help='runs averaged with it (comma-separated)')
  parser.add_argument('--keypoint_map', action='store_true', help='fuse the copy-move keypoint map')
  parser.add_argument('--copies', type=experiments.whole_number(1), default=2, help='forgeries made of each validation file')
  parser.add_argument('--cache', type=runtime.home, default='', help='folder for the features (npz), reused when there')
  parser.add_argument('--output', type=runtime.home, default='', help='write the figures as JSON here')
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()
  runtime.quiet_libraries()
  average_with = tuple(w for w in args.average_with.split(',') if w)
  run = fusion_rules.load_localiser_run(args.workdir, keypoint_map=args.keypoint_map,
                                        average_with=average_with)
  detector, config = run.detectors[0], run.detectors[0].config

  def cached(key: str, compute) -> dict:
    path = os.path.join(args.cache, f'{key}.npz') if args.cache else ''
    if path and os.path.exists(path):
      with np.load(path, allow_pickle=False) as z:
        return {'x': z['x'], 'tampered': z['tampered']}
    x, tampered = compute()
    if path:
      os.makedirs(args.cache, exist_ok=True)
      np.savez(path + '.tmp.npz', x=x, tampered=tampered)
      os.replace(path + '.tmp.npz', path)
    return {'x': x, 'tampered': tampered}

  def synthesised():
    images, tampered = synthesised_validation(run.datasets[0], config.synthesis, config.seed + 1,
                                              args.copies)
    return features_of(detector, images, 'synthesised validation'), tampered

  validation = cached('synthesised_validation', synthesised)
  others = {}
  for key, data in targets(run).items():
    indices = data.split.test
    if key == f'test_{config.dataset.control}':  # the control's false alarms: its authentic files
      indices = indices[data.labels[indices] == 0]
    others[key] = cached(key, lambda: (
        features_of(detector, [data.source[int(i)]['image'] for i in indices], key),
        data.labels[indices] != 0))

  results = {'rules': {}, 'synthesised_validation': {
      'images': int(len(validation['tampered'])), 'tampered': int(validation['tampered'].sum())}}
  table = {}
  for name, (v, scores) in rules(validation, others).items():
    thresholds = {'chosen': evaluators.most_accurate_threshold(v, validation['tampered'])}
    if name == 'head':
      thresholds['0.5'] = 0.5
    for label, t in thresholds.items():
      row = {'threshold': t, 'validation_accuracy': evaluators.decision_at(v, validation['tampered'], t)['accuracy'],
             'validation_auc': auc(v, validation['tampered'])}
      for key, o in others.items():
        row[key] = dict(evaluators.decision_at(scores[key], o['tampered'], t),
                        auc=auc(scores[key], o['tampered']))
      rule = name if label == 'chosen' else f'{name} at 0.5'
      results['rules'][rule] = row
      table[rule] = [f"{row['validation_accuracy']:.3f} / {row['validation_auc']:.3f} ({t:.3g})"] + [
          f"{row[k]['accuracy']:.3f} / {row[k]['auc']:.3f} ({row[k]['false_alarm_rate']:.2f})" for k in others]
  chosen = max((r for r in results['rules'] if not r.endswith('at 0.5')),
               key=lambda r: results['rules'][r]['validation_accuracy'])
  results['chosen'] = chosen
  print(f"synthesised validation: {results['synthesised_validation']['images']} images, "
        f"{results['synthesised_validation']['tampered']} forged; chosen: {chosen}")
  fusion_rules.print_table(['synthesised validation acc / AUC (threshold)'] +
                           [f'{k} acc / AUC (false alarms)' for k in others], table)
  experiments.write_json(args.output, results)
  return results


if __name__ == '__main__':
  experiments.one_error_line(main)()

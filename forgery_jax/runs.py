"""What every method's run shares: results.json, written atomically, and the k-fold driver."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from typing import Callable

from absl import logging
import jax
import ml_collections
import numpy as np

from forgery_jax import atomic
from forgery_jax import locks
from forgery_jax.data import splits

RESULTS_FILE = 'results.json'
# Config fields that do not change what is trained: a finished run may be evaluated again with
# other values.
EVALUATION_FIELDS = ('evals', 'dataset.also_test', 'dataset.data_dir', 'dataset.manual_dir',
                     'dataset.control', 'dataset.control_reference', 'cross_dataset.',
                     'robustness.', 'input.', 'eval_batch_size', 'log_every_steps', 'checkpoint.',
                     'model.score_tile', 'model.score_flips')
# ... and a run with training state may be resumed with other values: more epochs extend it;
# how training windows are cut, and how many worker processes cut them, change what is trained.
RESUME_FIELDS = tuple(f for f in EVALUATION_FIELDS if f != 'input.') + (
    'num_epochs', 'input.num_threads', 'input.prefetch')


def distinct_folders(paths) -> list[str]:
  """`paths` in order, less each that names a folder an earlier one names, however it is spelt
  (a trailing slash, ./, a link): a run named twice is read once."""
  out, seen = [], set()
  for p in paths:
    if os.path.realpath(p) not in seen:
      seen.add(os.path.realpath(p))
      out.append(p)
  return out


def flat(d: dict, prefix: str = '') -> dict:
  """A nested config dict as {'dotted.key': value}, tuples as lists (as JSON reads them back)."""
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = list(v) if isinstance(v, tuple) else v
  return out


def changed_training_fields(before: dict, config: ml_collections.ConfigDict,
                            free: tuple[str, ...] = EVALUATION_FIELDS) -> list[str]:
  """The fields (dotted) in which `config` differs from the config a run recorded (`before`),
  leaving out those starting with one of `free`."""
  old, new = flat(before), flat(config.to_dict())
  return sorted(k for k in set(old) | set(new)
                if not k.startswith(free) and old.get(k) != new.get(k))


LOCK_FILE = '.lock'


@contextlib.contextmanager
def only_writer(workdir: str):
  """Holds `workdir/.lock` while a run trains and evaluates into `workdir`: a second run started
  into it (the same command twice, a job resubmitted while the first still runs) is one error
  naming the holder, instead of two runs interleaving their metrics and checkpoints. Multi-host,
  process 0 holds it."""
  if jax.process_index() != 0:
    yield
    return
  with locks.held(os.path.join(workdir, LOCK_FILE),
                  busy=f'{workdir}: a run is still writing here ({{holder}}); wait for it to end, '
                  'or choose another --workdir'):
    yield


# What a fold's results.json says of the run, not of its scores: the first fold's stands for all.
_COPIED_FROM_THE_FIRST_FOLD = ('split_sizes', 'class_names', 'dataset', 'dataset_fingerprint',
                               'method', 'num_features', 'num_devices',
                               'feature_images_per_second', 'environment')


def mean_over_folds(per_fold: list[dict]) -> dict:
  """Every number the folds' results hold (each evaluator's scores, the fit's steps and timings)
  as its mean over the folds, with `<key>_std` and `<key>_per_fold` beside it: what `main` writes
  for a k-fold run and what `evaluate` reports of one. A number some folds lack (an evaluator
  with nothing to score in one fold) keeps its `_per_fold` list, None where missing, and no mean."""
  out = {}
  keys = dict.fromkeys(k for r in per_fold for k, v in r.items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)
                       and k not in _COPIED_FROM_THE_FIRST_FOLD)
  for k in keys:
    values = [r.get(k) for r in per_fold]
    out[f'{k}_per_fold'] = values
    if all(isinstance(v, (int, float)) for v in values):
      out[k] = float(np.mean(values))
      out[f'{k}_std'] = float(np.std(values))
  return out


def as_flags(**given) -> dict:
  """{name: '--name=value'} of the options a command ran with (those left at their defaults, false
  or empty, left out): how its outputs were made, written beside them in a form that repeats it."""
  out = {}
  for name, value in given.items():
    if value is True:
      out[name] = f'--{name}'
    elif value and isinstance(value, (list, tuple)):
      out[name] = f'--{name}={",".join(map(str, value))}'
    elif value:
      out[name] = f'--{name}={value}'
  return out


def write_json_atomic(path: str, obj) -> None:
  """Writes JSON, replaced whole (`atomic.replaced_when_complete`)."""
  with atomic.replaced_when_complete(path) as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write('\n')


REPLACED_RESULTS_DIR = 'results_replaced'


def write_results(workdir: str, results: dict) -> None:
  """results.json of a run, replaced whole. A finished run scored again (its command rerun with
  other evaluators or datasets) would lose what it held: a results.json that differs from the new
  one beyond the environment is kept as `results_replaced/results_<its time, UTC>.json`."""
  path = os.path.join(workdir, RESULTS_FILE)
  try:
    with open(path) as f:
      before = json.load(f)
  except (OSError, ValueError):
    before = None
  comparable = lambda r: json.dumps({k: v for k, v in r.items() if k != 'environment'},
                                    sort_keys=True)  # as text: NaN equals NaN
  if isinstance(before, dict) and comparable(before) != comparable(json.loads(json.dumps(results))):
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(os.path.getmtime(path)))
    kept = os.path.join(workdir, REPLACED_RESULTS_DIR, f'results_{stamp}.json')
    os.makedirs(os.path.dirname(kept), exist_ok=True)
    shutil.copy2(path, kept)
    logging.info('the results.json this replaces is kept as %s', kept)
  write_json_atomic(path, results)


def run_folds(config: ml_collections.ConfigDict, workdir: str,
              train_one: Callable[[ml_collections.ConfigDict, str], dict]) -> dict:
  """`train_one(config, workdir)` once, or once per fold for a k-fold split with `fold < 0`.

  Every fold runs in `workdir/fold_<k>`; results.json then holds `mean_over_folds` of their
  results, the per-class table averaged over folds and the confusion matrices summed (every
  example is tested once).
  """
  dc = config.dataset
  if dc.split not in splits.KFOLD_PROTOCOLS or dc.fold >= 0:
    return train_one(config, workdir)
  per_fold = []
  for k in range(dc.num_folds):
    logging.info('fold %d of %d', k + 1, dc.num_folds)
    fold_config = ml_collections.ConfigDict(config.to_dict())
    fold_config.dataset.fold = k
    per_fold.append(train_one(fold_config, os.path.join(workdir, f'fold_{k}')))
  results = {'config': config.to_dict(), 'num_folds': dc.num_folds, **mean_over_folds(per_fold)}
  if 'test/confusion_matrix' in per_fold[0]:
    results['test/confusion_matrix'] = np.sum([r['test/confusion_matrix'] for r in per_fold], 0).tolist()
  if 'test/per_class' in per_fold[0]:
    results['test/per_class'] = {
        name: {m: float(np.mean([r['test/per_class'][name][m] for r in per_fold])) for m in row}
        for name, row in per_fold[0]['test/per_class'].items()}
  for k in _COPIED_FROM_THE_FIRST_FOLD:
    if k in per_fold[0]:
      results[k] = per_fold[0][k]
  if jax.process_index() == 0:
    write_results(workdir, results)
  return results

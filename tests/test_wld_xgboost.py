"""WLD + XGBoost end to end on the tiny synthetic set: k-fold results, booster file, same splits."""

import json
import os

import numpy as np
import pytest
import xgboost

from configs import wld_xgboost as wld_config
from forgery_jax import evaluate
from forgery_jax import experiment
from forgery_jax import runs
from forgery_jax.data import datasets
from forgery_jax.data import input_pipeline
from forgery_jax.detectors import export
from forgery_jax.detectors import wld_xgboost


def _config(tiny_config, **dataset):
  config = wld_config.get_config()
  config.dataset.update(tiny_config.dataset.to_dict())
  config.dataset.num_classes = 3
  config.dataset.update(dataset)
  config.xgboost.n_estimators = 4
  config.xgboost.threads = 1
  return config


def test_kfold_writes_mean_std_per_class_and_boosters(tiny_config, tmp_path):
  config = _config(tiny_config, split='kfold', num_folds=3, fold=-1)
  results = experiment.run(config, str(tmp_path))
  with open(tmp_path / runs.RESULTS_FILE) as f:
    assert json.load(f)['test/accuracy'] == results['test/accuracy']
  assert len(results['test/accuracy_per_fold']) == 3
  assert np.isclose(results['test/accuracy'], np.mean(results['test/accuracy_per_fold']))
  assert results['test/accuracy_std'] >= 0 and 0 <= results['test/macro_f1'] <= 1
  assert set(results['test/per_class']) == {'authentic', 'copy_move', 'splicing'}
  # Every pooled example is in exactly one test fold.
  assert np.sum(results['test/confusion_matrix']) == 64 + 32 + 32
  assert results['num_features'] == 960 and results['feature_images_per_second'] > 0
  for k in range(3):
    booster = xgboost.Booster()
    booster.load_model(str(tmp_path / f'fold_{k}' / export.EXPORT_DIR / wld_xgboost.BOOSTER_FILE))
    assert booster.num_features() == 960
    with open(tmp_path / f'fold_{k}' / 'metrics.jsonl') as f:
      assert [json.loads(line)['split'] for line in f] == ['validation', 'test']


def test_kfold_averages_every_evaluators_scores_as_evaluate_does(tiny_config, tmp_path):
  """The validation threshold's decisions (not only `test/*`) are averaged into the k-fold run's
  results.json, as `evaluate` averages them (they were left in the folds' own files)."""
  config = _config(tiny_config, split='kfold', num_folds=2, fold=-1, num_classes=2)
  config.evals = ('test', 'validation_threshold')
  results = experiment.run(config, str(tmp_path / 'run'))
  folds = [json.loads((tmp_path / 'run' / f'fold_{k}' / runs.RESULTS_FILE).read_text())
           for k in range(2)]
  for key in ('threshold/test/accuracy', 'threshold/value', 'train_seconds'):
    assert results[f'{key}_per_fold'] == [f[key] for f in folds]
    assert results[key] == np.mean([f[key] for f in folds])
  assert 'threshold/test/accuracy_ci95' not in results  # each fold keeps its own interval
  report = evaluate.evaluate(str(tmp_path / 'run'), [], output=str(tmp_path / 'report'),
                             evals=['test', 'validation_threshold'])
  scored = report['runs'][0]['results']
  for key in ('threshold/test/accuracy', 'threshold/test/false_alarm_rate', 'test/auc'):
    assert scored[key] == pytest.approx(results[key])
    assert scored[f'{key}_per_fold'] == pytest.approx(results[f'{key}_per_fold'])
  table = (tmp_path / 'report' / 'report.md').read_text()
  assert '| key | value | std over folds |' in table  # a column, not a row of its own
  assert '| threshold/test/accuracy |' in table and 'accuracy_std |' not in table


def test_a_score_some_folds_lack_keeps_its_per_fold_values_and_no_mean():
  got = runs.mean_over_folds([{'a': 1.0, 'b': 0.5, 'num_devices': 2, 'ok': True},
                              {'a': 3.0, 'num_devices': 2, 'ok': False}])
  assert got == {'a': 2.0, 'a_std': 1.0, 'a_per_fold': [1.0, 3.0], 'b_per_fold': [0.5, None]}


def test_hold_out_uses_the_cnn_split_and_caches_features(tiny_config, tmp_path):
  config = _config(tiny_config, split='random', test_fraction=0.3)
  first = experiment.run(config, str(tmp_path))
  builder = datasets.ensure_built(config.dataset)
  cnn_split = input_pipeline.load_dataset(builder, config).split
  assert first['split_sizes'] == cnn_split.sizes()
  assert abs(cnn_split.sizes()['test'] / 128 - 0.3) < 0.05  # a 70/30 hold-out
  mtime = os.path.getmtime(tmp_path / wld_xgboost.FEATURES_FILE)
  second = experiment.run(config, str(tmp_path))
  assert os.path.getmtime(tmp_path / wld_xgboost.FEATURES_FILE) == mtime
  assert second['feature_images_per_second'] is None  # read from the cache
  assert second['test/accuracy'] == first['test/accuracy']  # deterministic given the seed

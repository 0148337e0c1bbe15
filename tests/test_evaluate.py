"""evaluate: the run's evaluators again, robustness rows, the ablation table, the cross-dataset
matrix and the figures, writing only where --output says."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import wld_xgboost as wld_config
from forgery_jax import evaluate
from forgery_jax import experiment
from forgery_jax.detectors import export
from forgery_jax.data import datasets
from forgery_jax.data import input_pipeline
from forgery_jax.evaluation import report as report_lib
from forgery_jax.evaluation import robustness
from tests.conftest import assert_no_library_info

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def two_runs(tiny_config, tmp_path_factory):
  runs = []
  for branches in (('ela', 'srm'), ('ela',)):
    workdir = str(tmp_path_factory.mktemp('_'.join(branches)))
    config = tiny_config.copy_and_resolve_references()
    config.num_epochs = 1
    config.model.branches = branches
    experiment.run(config, workdir)
    runs.append(workdir)
  return runs


def test_a_run_is_scored_on_its_dataset_read_from_another_data_dir(two_runs, tmp_path):
  """A run moved to another machine reads its datasets where they are there (`--data_dir`),
  built there if missing; the scores are the run's own."""
  main, _ = two_runs
  moved = tmp_path / 'tfds'
  here = evaluate.evaluate(main, [], output=str(tmp_path / 'here'), evals=['test'])
  there = evaluate.evaluate(main, [], output=str(tmp_path / 'there'), evals=['test'],
                            data_dir=str(moved))
  assert (moved / 'synthetic_forgery' / 'tiny').is_dir()
  assert there['runs'][0]['accuracy'] == here['runs'][0]['accuracy']
  assert there['runs'][0]['dataset_fingerprint'] == here['runs'][0]['dataset_fingerprint']


@pytest.mark.filterwarnings('ignore:The least populated class')  # the dummy tree's few files
def test_a_run_is_scored_from_anywhere_and_from_a_release_that_moved(tmp_path, monkeypatch, capfd):
  """Folders named relative to where the run started are recorded as absolute paths, so evaluate
  started from another folder reads them; a release folder that moved is named by `--manual_dir`
  when the dataset must be built again (a run moved to another machine)."""
  import shutil
  from configs import copy_move_keypoints
  release = tmp_path / 'release'
  shutil.copytree(REPO / 'tfds_builders' / 'casia1' / 'dummy_data', release)
  monkeypatch.chdir(tmp_path)
  config = copy_move_keypoints.get_config()
  config.dataset.update(builder_config='native', data_dir='tfds', manual_dir='release',
                        validation_fraction=0.25, test_fraction=0.25)
  config.cross_dataset.name = ''
  config.evals = ('test',)
  first = experiment.run(config, 'run')
  run = str(tmp_path / 'run')
  for recorded in (json.load(open(os.path.join(run, 'config.json'))),
                   export.load(export.find(run)[0]).config.to_dict()):
    assert (recorded['dataset']['data_dir'], recorded['dataset']['manual_dir']) == (
        str(tmp_path / 'tfds'), str(release))
  (tmp_path / 'elsewhere').mkdir()
  monkeypatch.chdir(tmp_path / 'elsewhere')
  elsewhere = evaluate.evaluate(run, [], output='report', evals=['test'])
  assert elsewhere['runs'][0]['accuracy'] == first['test/accuracy']

  moved = tmp_path / 'moved'
  release.rename(moved)
  capfd.readouterr()
  with pytest.raises(datasets.DatasetError, match='building casia1/native/.* failed'):
    evaluate.evaluate(run, [], output='report', evals=['test'], data_dir=str(tmp_path / 'there'))
  said = capfd.readouterr().err
  assert f'Manual directory {release} does not exist' in said and '(tfds build, evaluate, predict)' in said
  there = evaluate.evaluate(run, [], output='report', evals=['test'], data_dir=str(tmp_path / 'there'),
                            manual_dir=str(moved))
  assert there['runs'][0]['accuracy'] == first['test/accuracy']
  assert there['runs'][0]['dataset_fingerprint'] == elsewhere['runs'][0]['dataset_fingerprint']


def test_attacks_change_the_image_as_named():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  assert robustness.attack(rgb, 'resize', 0.5, rng).shape == (10, 15, 3)
  assert robustness.attack(rgb, 'jpeg', 50, rng).shape == rgb.shape
  assert not np.array_equal(robustness.attack(rgb, 'jpeg', 50, rng), rgb)
  assert np.abs(robustness.attack(rgb, 'noise', 5.0, rng).astype(int) - rgb).mean() > 1
  with pytest.raises(ValueError, match='unknown attack'):
    robustness.attack(rgb, 'rotate', 1, rng)


def _tree(folder) -> dict:
  return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in pathlib.Path(folder).rglob('*')}


def test_report_with_ablation_cross_and_robustness(two_runs, tmp_path):
  main, other = two_runs
  before = _tree(main)
  out = str(tmp_path / 'report')
  report = evaluate.evaluate(main, [other], cross=True, with_robustness=True, max_examples=8,
                             output=out)
  assert _tree(main) == before, 'evaluate changed the run it read'
  text = open(os.path.join(out, 'report.md')).read()
  for section in ('## Test metrics', '## Ablation', '## Cross-dataset', '## Robustness'):
    assert section in text
  # How it was scored, as the flags that repeat it.
  assert report['options'] == {'runs': f'--runs={other}', 'cross': '--cross',
                               'robustness': '--robustness', 'max_examples': '--max_examples=8'}
  assert f'Options: `--runs={other} --cross --robustness --max_examples=8`.' in text
  for figure in ('confusion.png', 'roc.png', 'curves.png', 'robustness.png'):
    assert os.path.getsize(os.path.join(out, figure)) > 1000 and f'({figure})' in text
  rows = report['robustness']
  assert len(rows) == 1 + sum(len(v) for v in robustness.ATTACKS.values())
  # No attack reproduces the stored planes: the same accuracy as scoring them directly.
  detector = export.load(export.find(main)[0])
  dataset = input_pipeline.load(detector.config)
  idx = dataset.split.test[:8]
  probs = detector.score_split(dataset, idx).probabilities
  assert rows[0]['attack'] == 'none'
  assert rows[0]['accuracy'] == pytest.approx(float((probs.argmax(1) == dataset.labels[idx]).mean()))
  assert [r['run'].split(' ')[0] for r in report['runs']] == [os.path.basename(main), os.path.basename(other)]
  # The evaluators of the run's config give what the run itself wrote in results.json.
  with open(os.path.join(main, 'results.json')) as f:
    results = json.load(f)
  for k in ('test/accuracy', 'test/auc', 'baseline/jpeg_quality_lookup_accuracy'):
    assert report['runs'][0]['results'][k] == results[k]
  assert report['runs'][0]['dataset_fingerprint'] == results['dataset_fingerprint']   # the same data read
  assert report['environment']['packages'] == results['environment']['packages']  # the same install
  assert f"Scored by forgery_jax {report['environment']['code']['version']}" in text
  with open(os.path.join(out, 'report.json')) as f:
    assert json.load(f)['cross']['datasets'] == ['synthetic_forgery']
  # The second run minus the first on the same test files, each difference in its interval.
  (paired,) = report['paired']
  second = report['runs'][1]['results']
  for k in ('accuracy', 'auc'):
    assert paired[k] == pytest.approx(second[f'test/{k}'] - results[f'test/{k}'])
    low, high = paired[f'{k}_ci95']
    assert low <= paired[k] <= high
  assert '## Paired against' in text


def test_cross_dataset_scores_runs_on_another_dataset(two_runs, tmp_path):
  """--cross_dataset: every example of the named dataset, scored as if the run had named it."""
  main, _ = two_runs
  before = _tree(main)
  cross = evaluate.CrossDataset.parse('synthetic_forgery:tiny')
  report = evaluate.evaluate(main, [], output=str(tmp_path / 'r'), evals=['cross_dataset'],
                             cross_dataset=cross)
  results = report['runs'][0]['results']
  assert results['cross/synthetic_forgery/tiny/2.0.0/num_examples'] == 128
  detector = export.load(export.find(main)[0])
  dataset = input_pipeline.load(detector.config, all_for_test=True)
  probs = detector.score_split(dataset, np.arange(len(dataset.labels))).probabilities
  assert results['cross/synthetic_forgery/tiny/2.0.0/accuracy'] == pytest.approx(
      float((probs.argmax(1) == dataset.labels).mean()))
  assert _tree(main) == before, 'evaluate changed the run it read'
  with pytest.raises(datasets.DatasetError, match="no builder config 'nope'"):
    evaluate.CrossDataset.parse('synthetic_forgery:tiny', also_test=('nope',))
  with pytest.raises(datasets.DatasetError, match='unknown dataset'):
    evaluate.CrossDataset.parse('nope')
  with pytest.raises(ValueError, match='no evaluator scores it'):
    evaluate.evaluate(main, [], output=str(tmp_path / 'r2'), evals=['test'], cross_dataset=cross)


def test_wld_run_gets_every_evaluator(tiny_config, tmp_path):
  """A WLD + XGBoost run with cross_dataset and also_test writes cross/* and test_<config>/*."""
  config = wld_config.get_config()
  config.dataset.update(tiny_config.dataset.to_dict())
  config.dataset.update(split='grouped', also_test=('tiny',))
  config.cross_dataset.update(name='synthetic_forgery', builder_config='tiny')
  config.xgboost.update(n_estimators=3, threads=1)
  results = experiment.run(config, str(tmp_path))
  assert results['cross/synthetic_forgery/tiny/2.0.0/num_examples'] == 128
  assert results['test_tiny/accuracy'] == results['test/accuracy']
  assert 0 <= results['cross/synthetic_forgery/tiny/2.0.0/accuracy'] <= 1


def test_robustness_of_a_kfold_run_is_every_folds_mean(tiny_config, tmp_path):
  """Each fold's detector attacked on its own test split, the metrics averaged over the folds
  (fold 0 alone was reported as the run's)."""
  config = wld_config.get_config()
  config.dataset.update(tiny_config.dataset.to_dict())
  config.dataset.update(num_classes=2, split='kfold', num_folds=2)
  config.xgboost.update(n_estimators=3, threads=1)
  experiment.run(config, str(tmp_path / 'run'))
  report = evaluate.evaluate(str(tmp_path / 'run'), [], cross=True, with_robustness=True,
                             max_examples=4, output=str(tmp_path / 'report'), evals=['test'])
  run = evaluate.load_run(str(tmp_path / 'run'))
  per_fold = [robustness.robustness(d, d.config, ds, max_examples=4, seed=config.seed)
              for d, ds in zip(run.detectors, run.datasets)]
  assert per_fold[0] != per_fold[1]
  for got, a, b in zip(report['robustness'], *per_fold):
    assert (got['attack'], got['strength'], got['num_examples']) == (a['attack'], a['strength'], 8)
    assert got['accuracy'] == pytest.approx((a['accuracy'] + b['accuracy']) / 2)
  assert ('(the mean over 2 folds, each on its test split, first 4 of each)'
          in (tmp_path / 'report' / 'report.md').read_text())
  # The test metrics too: the folds' mean and spread, as training wrote them, not the values of
  # the folds' predictions pooled; the examples of every fold.
  results = json.loads((tmp_path / 'run' / 'results.json').read_text())
  row = report['runs'][0]
  for k in robustness.ROW_KEYS:
    assert row[k] == pytest.approx(results[f'test/{k}']), k
    assert row[f'{k}_std'] == pytest.approx(results[f'test/{k}_std']), k
  assert row['num_examples'] == 128
  md = (tmp_path / 'report' / 'report.md').read_text()
  assert f"| {row['accuracy']:.3f} ± {row['accuracy_std']:.3f} |" in md
  assert report['cross']['rows'][0][1] == (f"{row['accuracy']:.3f} / {row['auc']:.3f} "
                                           '(n=128, the mean of 2 folds)')
  rows = [[{'attack': 'none', 'strength': 0, 'auc': 0.5, 'pixel_f1': None, 'num_examples': 3}],
          [{'attack': 'none', 'strength': 0, 'auc': 0.7, 'pixel_f1': 0.2, 'num_examples': 4}]]
  assert robustness.mean_over_folds(rows) == [
      {'attack': 'none', 'strength': 0, 'auc': pytest.approx(0.6), 'pixel_f1': None,
       'num_examples': 7}]


def test_command_line_writes_where_output_says(two_runs, tmp_path):
  main, _ = two_runs
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.evaluate', f'--workdir={main}',
                           f'--output={tmp_path}/r', '--evals=test,baselines'],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == f'{tmp_path}/r/report.md'
  assert_no_library_info(result.stderr)
  assert not os.path.exists(os.path.join(main, 'report'))


@pytest.mark.parametrize('args, error', [
    (['--cross_also_test=native'], '--cross_also_test needs --cross_dataset'),
    (['--cross_manual_dir=/tmp'], '--cross_manual_dir needs --cross_dataset'),
    (['--max_examples=3'], '--max_examples needs --robustness'),
    (['--runs=MISSING'], 'MISSING: no such folder'),
    (['--manual_dir=MISSING'], '--manual_dir=MISSING: no such folder'),
    (['--manual_dir=/tmp'], 'trained on synthetic_forgery, which is built from no release folder'),
])
def test_command_line_errors_are_its_last_line(two_runs, tmp_path, args, error):
  """A flag that only works beside another is refused, not ignored; a missing run is named; the
  error is the last line on stderr (no progress bar drawn again below it) and no report is written."""
  main, _ = two_runs
  args = [a.replace('MISSING', str(tmp_path / 'missing')) for a in args]
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.evaluate', f'--workdir={main}',
                           f'--output={tmp_path}/r', *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and error.replace('MISSING', str(tmp_path / 'missing')) in last
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'r')


def test_each_run_is_reported_once_however_it_is_spelt(two_runs, tmp_path):
  main, other = two_runs
  report = evaluate.evaluate(main, [other + '/', main + '/', other], evals=['test'],
                             output=str(tmp_path / 'r'))
  assert [r['run'].split(' ')[0] for r in report['runs']] == [os.path.basename(main), os.path.basename(other)]


def test_the_map_grid_of_a_kfold_run_picks_from_every_fold(monkeypatch):
  """The best and worst maps of all folds' test splits, not of fold 0 alone."""
  from forgery_jax.evaluation import pixel_eval  # pylint: disable=g-import-not-at-top
  folds = {'a': [0.9, 0.5, 0.4, 0.1], 'b': [0.95, 0.6, 0.3, 0.05]}
  monkeypatch.setattr(pixel_eval, 'best_and_worst', lambda ctx, key, count: [
      {'f1': f, 'name': f'{ctx}{k}', 'rank': 'best' if k < count else 'worst'}
      for k, f in enumerate(folds[ctx][:count] + folds[ctx][::-1][:count])])
  items = pixel_eval.best_and_worst_of(['a', 'b'], count=2)
  assert [(i['rank'], i['f1']) for i in items] == [('best', 0.95), ('best', 0.9), ('worst', 0.05),
                                                   ('worst', 0.1)]
  assert pixel_eval.best_and_worst_of(['a'], count=2) == pixel_eval.best_and_worst('a', 'test', 2)


def test_pixel_table_groups_each_scope_its_types_and_baselines():
  """Hand-made results: each scored set of files, its forgery types, then its baselines; spreads
  as intervals or over folds; robustness and pixel-threshold scores left to their own places."""
  results = {
      'test/accuracy': 0.9, 'test/pixel_f1': 0.5, 'test/pixel_f1_ci95': [0.4, 0.6],
      'test/pixel_f1_best': 0.55, 'test/pixel_f1_best_threshold': 0.3, 'test/pixel_images': 10,
      'test/pixel_baseline/centre_prior/pixel_f1': 0.2, 'test/splicing/pixel_f1': 0.6,
      'cross/casia1/pixel_f1': 0.3, 'cross/casia1/pixel_auc': 0.7, 'cross/casia1/pixel_auc_std': 0.01,
      'test/saliency/pixel_f1': 0.1, 'robustness/jpeg/50/pixel_f1': 0.2,
      'pixel_threshold/test/pixel_f1': 0.52}
  table, shown = report_lib.pixel_table(results)
  rows = [line.split(' | ') for line in table.splitlines()[2:]]
  assert [r[:2] for r in rows] == [['| test', "the run's maps"], ['| test', 'saliency'],
                                   ['| test', 'splicing'], ['| test', 'baseline: centre_prior'],
                                   ['| cross/casia1', "the run's maps"]]
  assert rows[0][2:] == ['0.500 [0.400, 0.600]', '0.550 at 0.30', '', '', '10 |']
  assert rows[4][4] == '0.700'  # no interval: none recorded
  assert 'robustness/jpeg/50/pixel_f1' not in shown and 'pixel_threshold/test/pixel_f1' not in shown
  assert {'test/pixel_f1_ci95', 'test/pixel_f1_best_threshold', 'cross/casia1/pixel_auc_std'} <= shown
  results |= {'test/pixel_f1_best_std': 0.02}
  folds, _ = report_lib.pixel_table(results, '_std')
  assert "| test | the run's maps | 0.500 | 0.550 ± 0.020 at 0.30 |" in folds
  assert '| cross/casia1 | the run\'s maps | 0.300 |  | 0.700 ± 0.010 |' in folds
  assert report_lib.pixel_table({'test/accuracy': 0.9}) == ('', set())
  # A detector without maps, scored by its gradient saliency: labelled so, its baselines last.
  saliency, _ = report_lib.pixel_table({
      f'test/saliency/{k}/pixel_f1': 0.1 for k in
      ('pixel_baseline/all_tampered', 'splicing', 'pixel_baseline/centre_prior', 'copy_move')}
      | {'test/saliency/pixel_f1': 0.1})
  assert [r.split(' | ')[1] for r in saliency.splitlines()[2:]] == [
      'saliency', 'saliency: copy_move', 'saliency: splicing', 'baseline: all_tampered',
      'baseline: centre_prior']

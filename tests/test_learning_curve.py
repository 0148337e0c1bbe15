"""experiments.learning_curve: equal step budgets per share, and the line through the points."""

import math
import pathlib
import subprocess
import sys

import pytest

from configs import localiser_casia1
from experiments import learning_curve

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_a_share_gets_the_whole_splits_step_budget():
  config = localiser_casia1.get_config()
  quarter = learning_curve.share_config(config, 0.25)
  assert quarter.dataset.train_fraction == 0.25
  assert quarter.num_epochs == 4 * config.num_epochs
  assert quarter.validate_every_epochs == 4 and quarter.early_stopping_patience == config.early_stopping_patience
  assert config.dataset.train_fraction == 1.0  # the caller's config is left alone


def test_the_line_in_log_files_and_where_it_reaches_a_goal():
  # 0.30 at 100 files, 0.40 at 1,000, 0.50 at 10,000: +0.1 a decade, 0.74 at 10^6.4 files.
  f = learning_curve.fit([100, 1000, 10000], [0.30, 0.40, 0.50], 0.74)
  assert f['per_doubling'] == pytest.approx(0.1 * math.log10(2))
  assert f['files_for_target'] == pytest.approx(10 ** 6.4, rel=1e-6)
  assert learning_curve.fit([100, 1000], [0.5, 0.4], 0.74)['files_for_target'] is None
  assert 'files_for_target' not in learning_curve.fit([100, 1000], [0.5, 0.6], None)


def test_the_table_shows_every_point_and_skips_figures_a_point_lacks():
  points = [{'fraction': 0.5, 'train_files': 100,
             'results': {'test/pixel_f1': 0.3, 'final_step': 20, 'best_step': 10}},
            {'fraction': 1.0, 'train_files': 200,
             'results': {'test/pixel_f1': 0.4, 'test/auc': 0.7, 'final_step': 20, 'best_step': 20}}]
  fits = learning_curve.curve(points, ['test/pixel_f1', 'test/auc'], {'test/pixel_f1': 0.6})
  assert set(fits) == {'test/pixel_f1'}
  assert fits['test/pixel_f1']['per_doubling'] == pytest.approx(0.1)
  text = learning_curve.table(points, ['test/pixel_f1', 'test/auc'], fits)
  assert '| test/pixel_f1 | 0.300 | 0.400 | +0.100 | 0.6: 800 |' in text
  assert 'test/auc' not in text and '20 (10)' in text


def test_files_past_ten_million_are_shown_as_a_power_of_ten():
  assert learning_curve.files_text(12940.4) == '12,940'
  assert learning_curve.files_text(1.27e170) == '10^170'


def test_baselines_are_shown_without_a_line():
  key = 'test/pixel_baseline/centre_prior/pixel_auc'
  points = [{'fraction': f, 'train_files': n, 'results': {key: 0.68, 'final_step': 8, 'best_step': 8}}
            for f, n in ((0.5, 100), (1.0, 200))]
  fits = learning_curve.curve(points, [key], {})
  assert not fits
  assert f'| {key} | 0.680 | 0.680 |  |  |' in learning_curve.table(points, [key], fits)


def test_a_curve_read_against_another_curves_points_and_line():
  # The reference: 0.2 at 100 files, 0.3 at 1,000 (+0.1 a decade); the image AUC does not grow.
  reference = {'points': [{'fraction': 0.5, 'figures': {'test/pixel_f1': 0.2, 'test/auc': 0.6}},
                          {'fraction': 1.0, 'figures': {'test/pixel_f1': 0.3, 'test/auc': 0.6}}],
               'fits': {'test/pixel_f1': learning_curve.fit([100, 1000], [0.2, 0.3], None),
                        'test/auc': learning_curve.fit([100, 1000], [0.6, 0.6], None)}}
  points = [{'fraction': 0.25, 'train_files': 50, 'results': {'test/pixel_f1': 0.25, 'test/auc': 0.7}},
            {'fraction': 1.0, 'train_files': 1000, 'results': {'test/pixel_f1': 0.35, 'test/auc': 0.7}}]
  comparison = learning_curve.against(points, ['test/pixel_f1', 'test/auc', 'test/accuracy'],
                                      reference)
  assert set(comparison) == {'test/pixel_f1', 'test/auc'}
  first, last = comparison['test/pixel_f1']['points']
  assert comparison['test/pixel_f1']['reference_per_doubling'] == pytest.approx(0.1 * math.log10(2))
  assert first['difference'] is None and last['difference'] == pytest.approx(0.05)
  assert first['reference_files'] == pytest.approx(10 ** 2.5)
  assert last['reference_files'] == pytest.approx(10 ** 3.5)
  assert all(r['reference_files'] is None for r in comparison['test/auc']['points'])
  text = learning_curve.against_table(points, comparison)
  assert ('| test/pixel_f1 | 0.250: = 316 files (×6.3) | 0.350: +0.050, = 3,162 files (×3.2) '
          '| +0.030 |') in text
  assert '| test/auc | 0.700: never | 0.700: +0.100, never | +0.000 |' in text


def test_a_missing_reference_curve_is_one_clear_error(tmp_path):
  with pytest.raises(SystemExit, match='learning_curve.json: cannot read the curve'):
    learning_curve.read_curve(str(tmp_path))


def _runs(rows):
  """Points from (fraction, files, seed, pixel F1) rows."""
  return [{'fraction': f, 'train_files': n, 'seed': s,
           'results': {'test/pixel_f1': v, 'final_step': 20, 'best_step': 10 * (s + 1)}}
          for f, n, s, v in rows]


def test_seeds_of_a_share_are_shown_as_their_mean_and_the_line_goes_through_every_run():
  points = _runs([(0.5, 100, 0, 0.30), (0.5, 100, 1, 0.20), (1.0, 200, 0, 0.40),
                  (1.0, 200, 1, 0.30)])
  fits = learning_curve.curve(points, ['test/pixel_f1'], {})
  # The shares' means, 0.25 and 0.35: +0.1 a doubling, as the four runs' line has it.
  assert fits['test/pixel_f1']['per_doubling'] == pytest.approx(0.1)
  text = learning_curve.table(points, ['test/pixel_f1'], fits)
  assert '| figure | f = 0.5 (100 files, 2 seeds) | f = 1 (200 files, 2 seeds) |' in text
  assert '| test/pixel_f1 | 0.250 (0.300, 0.200) | 0.350 (0.400, 0.300) | +0.100 |' in text
  assert '| steps run (kept) | 20 (10), 20 (20) | 20 (10), 20 (20) |' in text
  # Two seeds of one share make no line.
  assert not learning_curve.curve(points[:2], ['test/pixel_f1'], {})


def test_a_curve_read_against_the_mean_of_the_reference_seeds():
  line = learning_curve.fit([100, 100, 1000, 1000], [0.1, 0.3, 0.2, 0.4], None)
  reference = {'points': [{'fraction': f, 'seed': s, 'figures': {'test/pixel_f1': v}}
                          for f, s, v in ((0.1, 0, 0.1), (0.1, 1, 0.3), (1.0, 0, 0.2), (1.0, 1, 0.4))],
               'fits': {'test/pixel_f1': line}}
  points = _runs([(1.0, 1000, 0, 0.35), (1.0, 1000, 1, 0.45)])
  (row,) = learning_curve.against(points, ['test/pixel_f1'], reference)['test/pixel_f1']['points']
  assert row['difference'] == pytest.approx(0.4 - 0.3)  # the means, 0.40 against 0.30
  assert row['reference_files'] == pytest.approx(10 ** 4)  # the reference's means: 0.2, 0.3


def test_shares_run_so_far_are_read_and_none_trained_without_train(tmp_path):
  from configs import localiser_casia1  # pylint: disable=import-outside-toplevel
  config = localiser_casia1.get_config()
  assert learning_curve.share_dir('w', 0.25, config.seed, config.seed) == 'w/f0.25'
  assert learning_curve.share_dir('w', 1.0, config.seed + 1, config.seed) == f'w/f1_seed{config.seed + 1}'
  assert learning_curve.share_config(config, 0.5, 7).seed == 7
  with pytest.raises(SystemExit, match='no share has been run'):
    learning_curve.collect(config, str(tmp_path), [0.5, 1.0], [0, 1], train=False)
  done = tmp_path / 'f1_seed1'
  done.mkdir()
  (done / 'results.json').write_text('{"split_sizes": {"train": 1221}, "test/pixel_f1": 0.3}')
  (point,) = learning_curve.collect(config, str(tmp_path), [0.5, 1.0], [config.seed, 1], train=False)
  assert (point['fraction'], point['seed'], point['train_files']) == (1.0, 1, 1221)
  assert point['results']['test/pixel_f1'] == 0.3


@pytest.mark.parametrize('flag, message', [
    ('--fractions=0.25,1.5', '--fractions=0.25,1.5: distinct shares above 0 and at most 1'),
    ('--fractions=0', '--fractions=0: distinct shares above 0 and at most 1'),
    ('--seeds=0,0', '--seeds=0,0: distinct seeds'),
    ('--seeds=1.5', "--seeds: '1.5' is not a whole number"),
    ('--targets=test/pixel_f1=high', "--targets: 'high' is not a number (KEY=VALUE)"),
])
def test_every_argument_is_read_before_any_share_is_trained(flag, message, tmp_path):
  """A share of 0 was a ZeroDivisionError traceback; a bad last share failed only after every
  share before it had trained."""
  workdir = tmp_path / 'curve'
  result = subprocess.run([sys.executable, '-m', 'experiments.learning_curve',
                           '--config=configs/tiny.py', f'--workdir={workdir}', flag],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f'error: {message}'
  assert not workdir.exists()

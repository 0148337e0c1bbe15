"""experiments.fusion_rules: the rules on hand-made maps, and its score cache."""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from experiments import fusion_rules
from forgery_jax import experiment
from forgery_jax.data import labels

REPO = pathlib.Path(__file__).resolve().parents[1]


def _split():
  """Two tampered files (a copy-move the keypoints find, a splice they do not) and one authentic."""
  copy_mask = np.zeros((8, 8), np.uint8)
  copy_mask[:4, :4] = 255
  splice_mask = np.zeros((8, 8), np.uint8)
  splice_mask[4:, 4:] = 255
  noisy = np.zeros((8, 8), np.float32)
  noisy[:4, :4] = 0.9
  noisy[6:, :2] = 0.8       # the network also marks 4 pixels outside the copied region
  splice_net = (splice_mask / 255).astype(np.float32)
  return {'p_net': np.float32([0.7, 0.9, 0.6]), 'p_kp': np.float32([0.8, 0.0, 0.0]),
          'tampered': np.array([True, True, False]),
          'kinds': [labels.COPY_MOVE, labels.SPLICING, labels.AUTHENTIC],
          'net_maps': [noisy, splice_net, np.zeros((8, 8), np.float32)],
          'kp_maps': [(copy_mask / 255).astype(np.float32), np.zeros((8, 8), np.float32),
                      np.zeros((8, 8), np.float32)],
          'masks': [copy_mask, splice_mask, None]}


def test_replace_takes_the_keypoint_map_only_where_it_marks_a_region():
  split = _split()
  replace = fusion_rules.PIXEL_RULES['replace']
  np.testing.assert_array_equal(replace(split['net_maps'][0], split['kp_maps'][0]),
                                np.maximum(split['kp_maps'][0], 0.5 * split['net_maps'][0]))
  np.testing.assert_array_equal(replace(split['net_maps'][1], split['kp_maps'][1]), split['net_maps'][1])
  by_rule = {name: fusion_rules.pixel_figures(split, rule) for name, rule in fusion_rules.PIXEL_RULES.items()}
  # copy-move: 16 true pixels; the maximum adds the network's 4 false ones (0.8): F1 = 32 / 36;
  # 'replace' halves them to 0.4, below the threshold, and ranks them below the region.
  assert by_rule['replace'][labels.COPY_MOVE]['pixel_f1'] == 1.0
  assert by_rule['replace'][labels.COPY_MOVE]['pixel_auc'] == 1.0
  assert by_rule['keypoints_alone'][labels.COPY_MOVE]['pixel_f1'] == 1.0
  np.testing.assert_allclose(by_rule['max'][labels.COPY_MOVE]['pixel_f1'], 32 / 36)
  assert by_rule['keypoints'][labels.SPLICING]['pixel_f1'] == 0.0
  assert by_rule['replace']['all']['pixel_f1'] == 1.0
  assert by_rule['network']['all']['pixel_images'] == 2   # the authentic file has no mask


def test_image_rules_threshold_what_they_say(tmp_path):
  split = _split()
  rules = fusion_rules.image_rules(split, split)
  np.testing.assert_array_equal(rules['max'][1], np.float32([0.8, 0.9, 0.6]))
  np.testing.assert_array_equal(rules['network'][1], split['p_net'])
  assert rules['logistic'][1].shape == (3,)
  fusion_rules.save(str(tmp_path / 's.npz'), split)
  back = fusion_rules.load(str(tmp_path / 's.npz'))
  assert back['masks'][2] is None and back['kinds'] == split['kinds']
  np.testing.assert_array_equal(back['masks'][0], split['masks'][0])
  np.testing.assert_allclose(back['net_maps'][0], split['net_maps'][0], atol=1e-3)


def test_the_pixel_threshold_is_chosen_on_validation_and_applied_to_each_split():
  curve = lambda best, value: [value if k == best else 0.1 for k in range(99)]
  figures = {'validation': {'f1_curve': curve(18, 0.6)}, 'test': {'f1_curve': curve(49, 0.9)}}
  fusion_rules.at_validation_threshold(figures)
  assert figures['validation']['at_validation_threshold'] == {'threshold': 0.19, 'pixel_f1': 0.6}
  assert figures['test']['at_validation_threshold'] == {'threshold': 0.19, 'pixel_f1': 0.1}


def test_the_network_picks_which_copy_of_the_keypoint_map_is_kept():
  keypoint_map = np.zeros((8, 16), np.float32)
  keypoint_map[:4, :4] = keypoint_map[:4, 12:] = keypoint_map[6:, 6:10] = 1   # three regions
  network = np.zeros((8, 16), np.float32)
  network[:4, 12:], network[6:, 6:10], network[:4, :4] = 0.9, 0.5, 0.1
  one = fusion_rules.PIXEL_RULES['one copy'](network, keypoint_map)
  np.testing.assert_array_equal(one, np.where(network == 0.9, 1.0, 0.0))
  upper = fusion_rules.PIXEL_RULES['upper copies'](network, keypoint_map)
  np.testing.assert_array_equal(upper, np.where(network >= 0.5, 1.0, 0.0))
  np.testing.assert_array_equal(fusion_rules.PIXEL_RULES['one copy'](network, 0 * keypoint_map), network)
  # the same copies at 0.5, the other one ranked next: above every pixel outside the copies
  ranked = fusion_rules.PIXEL_RULES['upper copies ranked'](network, keypoint_map)
  np.testing.assert_array_equal(ranked > 0.5, upper > 0.5)
  assert ranked[:4, :4].min() > ranked[keypoint_map == 0].max()


def _maskless(p_net, p_kp, tampered):
  """A split of a release without masks (MICC-F220): image scores only."""
  n = len(p_net)
  return {'p_net': np.float32(p_net), 'p_kp': np.float32(p_kp), 'tampered': np.array(tampered),
          'kinds': [labels.COPY_MOVE if t else labels.AUTHENTIC for t in tampered],
          'net_maps': [np.zeros((4, 4), np.float32)] * n, 'kp_maps': [np.zeros((4, 4), np.float32)] * n,
          'masks': [None] * n}


def test_the_image_rule_is_chosen_on_held_out_validation_files_a_tie_to_the_first_listed():
  # the network and the larger p miss one authentic file each; the keypoint p separates validation
  validation = _maskless([0.9, 0.8, 0.85, 0.3], [0.9, 0.7, 0.1, 0.2], [True, True, False, False])
  test = _maskless([0.9, 0.9, 0.9], [0.8, 0.6, 0.3], [True, False, False])
  results = fusion_rules.rule_figures({'validation': validation, 'test': test})
  assert results['pixel'] == {} and 'pixel' not in results['chosen']
  assert list(results['image']) == ['network', 'max', 'logistic', 'keypoints']
  assert results['image']['network']['validation']['accuracy'] == 0.75
  assert results['image']['max']['validation']['accuracy'] == 0.75
  assert results['image']['keypoints']['validation']['accuracy'] == 1.0
  held_out = fusion_rules.leave_one_out_accuracy(validation)
  assert {n: r['validation']['leave_one_out_accuracy'] for n, r in results['image'].items()} == held_out
  best = max(held_out.values())
  assert results['chosen']['image'] == next(n for n in results['image'] if held_out[n] == best)
  threshold = results['image']['keypoints']['test']['threshold']
  assert 0.2 < threshold <= 0.7
  assert results['image']['keypoints']['test']['accuracy'] == (2 + (threshold > 0.6)) / 3


def test_left_out_one_at_a_time_a_perfect_validation_split_is_not_perfect():
  # in sample the network's p separates the three files (threshold 0.15); each left out:
  # 0.9 is decided at 0.15 (right), 0.2 at 0.5 (wrong), 0.1 at the middle of the thresholds that
  # call both tampered files right, 0.1 (wrong): 1/3. The keypoint p is 0 everywhere: wrong each time.
  validation = _maskless([0.9, 0.2, 0.1], [0.0, 0.0, 0.0], [True, True, False])
  held_out = fusion_rules.leave_one_out_accuracy(validation)
  results = fusion_rules.rule_figures({'validation': validation, 'test': validation})
  assert results['image']['network']['validation']['accuracy'] == 1.0
  assert held_out['network'] == held_out['max'] == 1 / 3
  assert held_out['keypoints'] == 0.0
  assert results['chosen']['image'] == 'network'   # tied with the larger p (and the logistic)


def test_image_rules_without_both_classes_on_validation_fit_no_logistic():
  one_class = _maskless([0.9, 0.8], [0.9, 0.7], [True, True])
  rules = fusion_rules.image_rules(one_class, one_class)
  assert list(rules) == ['network', 'max', 'keypoints']
  np.testing.assert_array_equal(rules['keypoints'][1], one_class['p_kp'])


def test_folds_are_averaged_and_each_keeps_the_rule_its_validation_chose():
  def fold(chosen, accuracies):
    image = {name: {'validation': {'accuracy': 1.0},
                    'test': {'accuracy': a, 'false_alarm_rate': 1 - a, 'detection_rate': a}}
             for name, a in accuracies.items()}
    return {'image': image, 'chosen': {'image': chosen}}
  per_fold = [fold('keypoints', {'network': 0.5, 'keypoints': 0.9}),
              fold('network', {'network': 0.7, 'keypoints': 1.0})]
  mean = fusion_rules.mean_over_folds(per_fold)
  assert mean['chosen'] == ['keypoints', 'network']
  np.testing.assert_allclose(mean['image']['network']['test']['accuracy'], 0.6)
  np.testing.assert_allclose(mean['image']['keypoints']['test']['accuracy'], 0.95)
  np.testing.assert_allclose(mean['image']['chosen on validation']['test']['accuracy'], 0.8)


def test_the_cache_keeps_the_keypoint_decision_and_refuses_another(tmp_path):
  import types
  import ml_collections
  import pytest
  split = _maskless([0.9, 0.1], [0.8, 0.0], [True, False])
  fusion_rules.save(str(tmp_path / 'old.npz'), split)   # no decision recorded: the first
  assert fusion_rules.load(str(tmp_path / 'old.npz'))['keypoint_decision'] == 'inliers'
  cache = tmp_path / 'cache'
  cache.mkdir()
  for key in ('validation', 'test'):
    fusion_rules.save(str(cache / f'{key}.npz'), dict(split, keypoint_decision='clusters'))
  config = ml_collections.ConfigDict({'dataset': {'also_test': ()}})
  dataset = types.SimpleNamespace(split=types.SimpleNamespace(validation=np.arange(2), test=np.arange(2)))
  run = types.SimpleNamespace(detectors=[types.SimpleNamespace(config=config)], datasets=[dataset])
  assert fusion_rules.fold_cache(str(cache), run, 0) == str(cache)
  back = fusion_rules.score_fold(run, 0, str(cache), 0, 'clusters')
  assert back['test']['keypoint_decision'] == 'clusters'
  with pytest.raises(SystemExit, match=r"test|validation.*'clusters', not 'inliers'"):
    fusion_rules.score_fold(run, 0, str(cache), 0, 'inliers')
  two = types.SimpleNamespace(detectors=run.detectors * 2, datasets=run.datasets * 2)
  assert fusion_rules.fold_cache(str(cache), two, 1) == str(cache / 'fold_1')


@pytest.mark.parametrize('module', ['fusion_rules', 'map_image_score', 'window_scores',
                                    'dense_copy_move', 'image_cues'])
def test_a_missing_run_is_one_error_line(module, tmp_path):
  """The experiment commands end a bad input with one `error:` line, as the library's do."""
  missing = tmp_path / 'missing'
  result = subprocess.run([sys.executable, '-m', f'experiments.{module}', f'--workdir={missing}',
                           *(['--cache', str(tmp_path / 'cache')] if module == 'image_cues' else [])],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f'error: {missing}: no such folder'
  assert 'Traceback' not in result.stderr


def test_a_run_without_network_maps_is_refused(tiny_config, tmp_path):
  """A 'cnn' run draws no map: refused by name, not a TypeError from inside the scoring."""
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1
  experiment.run(config, str(tmp_path / 'cnn'))
  with pytest.raises(ValueError, match="a 'cnn' run; this experiment reads the maps of a localiser run"):
    fusion_rules.main(['--workdir', str(tmp_path / 'cnn'), '--cache', str(tmp_path / 'cache')])
  assert not (tmp_path / 'cache').exists()

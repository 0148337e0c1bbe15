"""Confidence intervals by a bootstrap over scenes: hand-computed cases, and scenes respected."""

import types

import numpy as np
import pytest

from forgery_jax.evaluation import intervals


def test_whole_scenes_are_drawn_with_replacement():
  scenes = ['a', 'a', 'a', 'b', 'c', 'c']
  resamples = intervals.Resamples(scenes, count=250, seed=3)
  counts = np.concatenate(list(resamples.per_example()))   # in chunks of 100, 100 and 50
  assert counts.shape == (250, 6)
  # The files of one scene are drawn together, and each resample draws as many scenes as there are.
  assert np.all(counts[:, 0] == counts[:, 1]) and np.all(counts[:, 0] == counts[:, 2])
  assert np.all(counts[:, 4] == counts[:, 5])
  assert np.all(counts[:, 0] + counts[:, 3] + counts[:, 4] == 3)
  assert len(np.unique(counts, axis=0)) == 10  # every way of drawing 3 of 3 scenes is met
  again = np.concatenate(list(intervals.Resamples(scenes, count=250, seed=3).per_example()))
  np.testing.assert_array_equal(counts, again)
  one_scene = intervals.Resamples(np.zeros(5, int))
  assert not one_scene.usable and intervals.of_mean(np.ones(5), one_scene) is None


def test_two_scenes_give_the_whole_range_of_their_means():
  # Two scenes, one file each, scored 1 and 0: a resample draws two scenes, so its mean is 0
  # (a quarter of the time), 0.5 (half) or 1 (a quarter); the 2.5th and 97.5th percentiles are 0 and 1.
  assert intervals.of_mean([1.0, 0.0], intervals.Resamples(np.array([0, 1]))) == [0.0, 1.0]
  # The same file scores in two scenes of five files each, and each file its own scene: the
  # scenes are what is drawn, so the first interval is as wide as two draws make it.
  values = np.array([1.0] * 5 + [0.0] * 5)
  grouped = intervals.of_mean(values, intervals.Resamples(np.repeat([0, 1], 5)))
  independent = intervals.of_mean(values, intervals.Resamples(np.arange(10)))
  assert grouped == [0.0, 1.0]
  assert 0.1 <= independent[0] < 0.5 < independent[1] <= 0.9


def test_the_interval_of_a_mean_is_about_its_normal_width():
  values = (np.random.default_rng(0).random(400) < 0.7).astype(float)
  low, high = intervals.of_mean(values, intervals.Resamples(np.arange(400)))
  assert low < values.mean() < high
  assert high - low == pytest.approx(2 * 1.96 * np.sqrt(0.7 * 0.3 / 400), rel=0.15)


def test_unscored_values_are_left_out_of_each_mean():
  resamples = intervals.Resamples(np.arange(4))
  assert intervals.of_mean([0.5, np.nan, 0.5, 0.5], resamples) == pytest.approx([0.5, 0.5])


def test_classification_and_pixel_intervals():
  rng = np.random.default_rng(1)
  labels = np.array([0] * 50 + [1] * 50)
  p = np.clip(0.5 + 0.3 * (labels - 0.5) + rng.normal(0, 0.2, 100), 0, 1)
  probabilities = np.stack([1 - p, p], 1)
  out = intervals.classification(probabilities, labels, np.arange(100))
  assert set(out) == {'accuracy_ci95', 'auc_ci95'}
  accuracy = float(((p >= 0.5) == labels).mean())
  assert out['accuracy_ci95'][0] < accuracy < out['accuracy_ci95'][1]
  assert 0.5 < out['auc_ci95'][0] < out['auc_ci95'][1] <= 1.0
  # One class only: an accuracy interval, no AUC.
  assert set(intervals.classification(probabilities[:50], labels[:50], np.arange(50))) == {'accuracy_ci95'}
  rows = [{'pixel_f1': f, 'pixel_auc': 0.9, 'pixel_iou': f / (2 - f)} for f in rng.random(30)]
  out = intervals.pixel(rows, np.arange(30) // 2)
  assert out['pixel_auc_ci95'] == pytest.approx([0.9, 0.9])
  f1 = np.mean([r['pixel_f1'] for r in rows])
  assert out['pixel_f1_ci95'][0] < f1 < out['pixel_f1_ci95'][1]


def test_a_files_scene_is_the_first_id_of_its_group():
  # A forgery made from two scenes counts with its first (its source's), not as a chain of both:
  # the authentic photos of scenes a and b stay apart.
  dataset = types.SimpleNamespace(groups=['a', 'b', 'a+b', 'c', ''])
  assert intervals.scenes_of(dataset, np.array([0, 1, 2, 4])) == ['a', 'b', 'a', '#example4']


def test_decision_rates_are_taken_over_their_own_class():
  tampered = np.array([True] * 6 + [False] * 6)
  called = np.array([True] * 6 + [False] * 6)          # every file decided right
  out = intervals.decision(called, tampered, np.arange(12))
  assert out['accuracy_ci95'] == [1.0, 1.0] and out['detection_rate_ci95'] == [1.0, 1.0]
  assert out['false_alarm_rate_ci95'] == [0.0, 0.0]
  called[0], called[6] = False, True                    # one miss, one false alarm
  out = intervals.decision(called, tampered, np.arange(12))
  assert out['false_alarm_rate_ci95'][0] == 0.0 < out['false_alarm_rate_ci95'][1]
  assert out['detection_rate_ci95'][0] < 1.0 == out['detection_rate_ci95'][1]


def test_the_history_control_gives_its_rates_and_their_paired_increase_intervals(monkeypatch):
  """20 authentic test files (and 4 tampered) scored as released and with a tampered history:
  the history adds false alarms on 2 files and takes none away, so the paired increase stays at
  or above 0 and its interval is narrower than either rate's."""
  import ml_collections  # pylint: disable=g-import-not-at-top
  from forgery_jax.detectors import base  # pylint: disable=g-import-not-at-top
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  labels = np.array([0] * 20 + [1] * 4)
  dataset = types.SimpleNamespace(split=types.SimpleNamespace(test=np.arange(24)), labels=labels,
                                  groups=[f's{i}' for i in range(24)], name='d')
  config = ml_collections.ConfigDict({'dataset': {'control': 'matched', 'control_reference': '',
                                                  'builder_config': 'plain'}})
  ctx = evaluators.Context(config, dataset, '/nowhere', write_metrics=False)
  matched = types.SimpleNamespace(**vars(dataset))  # the same files, another preparation
  monkeypatch.setattr(evaluators, 'control_dataset',
                      lambda c, name: matched if name == 'matched' else dataset)

  def scores(called):
    p = np.concatenate([called, np.ones(4)]).astype(np.float64)
    return base.Scores(np.stack([1 - p, p], 1))
  reference = np.array([1] * 10 + [0] * 10)
  control = reference.copy()
  control[10:12] = 1                       # two more false alarms with the tampered history
  ctx.cache['test'], ctx.cache['control/matched'] = scores(reference), scores(control)
  out = evaluators.HistoryControl()(None, ctx)
  prefix = 'control/matched'
  assert out[f'{prefix}/false_alarm_rate'] == 0.6 and out[f'{prefix}/reference_false_alarm_rate'] == 0.5
  assert out[f'{prefix}/false_alarm_increase'] == pytest.approx(0.1)
  low, high = out[f'{prefix}/false_alarm_increase_ci95']
  assert 0.0 <= low <= 0.1 <= high < 0.3
  for k in ('false_alarm_rate', 'reference_false_alarm_rate'):
    assert out[f'{prefix}/{k}_ci95'][1] - out[f'{prefix}/{k}_ci95'][0] > high - low


def test_a_resamples_auc_counts_each_file_as_often_as_it_is_drawn():
  """Against scikit-learn's AUC of each resample's files, repeats kept, with tied scores."""
  from sklearn import metrics as skm  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(2)
  p, tampered = np.round(rng.random(40), 1), rng.random(40) < 0.4
  resamples = intervals.Resamples(np.arange(40) // 2, count=300, seed=5)
  want = []
  for counts in resamples.per_example():
    for row in counts:
      drawn = np.repeat(np.arange(40), row)
      if 0 < tampered[drawn].sum() < len(drawn):
        want.append(skm.roc_auc_score(tampered[drawn], p[drawn]))
  assert intervals.auc(p, tampered, resamples) == pytest.approx(np.percentile(want, [2.5, 97.5]))
  assert intervals.auc(p, np.zeros(40, bool), resamples) is None


def test_paired_differences_cancel_what_the_files_share():
  """Two detectors scored on the same 60 files, the second right on 6 more: the difference in
  accuracy is 0.1, and its paired interval, the same draws for both, is narrower than either
  accuracy's own (an unpaired difference would be wider than both); a detector against itself
  differs by exactly nothing."""
  rng = np.random.default_rng(4)
  labels = np.array([0, 1] * 30)
  right = rng.random(60) < 0.6
  better = right.copy()
  better[np.flatnonzero(~right)[:6]] = True
  as_probabilities = lambda r: np.eye(2)[np.where(r, labels, 1 - labels)]
  a, b = as_probabilities(better), as_probabilities(right)
  out = intervals.paired_classification(a, b, labels, np.arange(60))
  assert out['accuracy'] == pytest.approx(0.1)
  low, high = out['accuracy_ci95']
  assert 0.0 < low < 0.1 < high
  own = intervals.of_mean(right, intervals.Resamples(np.arange(60)))
  assert high - low < own[1] - own[0]
  same = intervals.paired_classification(b, b, labels, np.arange(60))
  assert same['accuracy'] == same['auc'] == 0.0
  assert same['accuracy_ci95'] == same['auc_ci95'] == [0.0, 0.0]
  rows = [{'pixel_f1': f, 'pixel_auc': 0.8, 'pixel_iou': f / (2 - f)} for f in rng.random(20)]
  lifted = [dict(r, pixel_f1=r['pixel_f1'] + 0.05) for r in rows]
  pixel = intervals.paired_pixel(lifted, rows, np.arange(20))
  assert pixel['pixel_f1'] == pytest.approx(0.05) and pixel['pixel_f1_ci95'] == pytest.approx([0.05, 0.05])
  assert pixel['pixel_auc'] == 0.0

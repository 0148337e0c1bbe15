"""Metrics (tampered positive, paper's authentic-positive variant, AUC) and shortcut baselines."""

import numpy as np
import pytest

from forgery_jax.evaluation import baselines
from forgery_jax.evaluation import evaluators
from forgery_jax.evaluation import metrics


def test_binary_metrics_by_hand():
  labels = np.array([0, 0, 0, 1, 1, 1, 1, 0])
  p_t = np.array([.1, .6, .2, .9, .8, .4, .7, .3])
  probs = np.stack([1 - p_t, p_t], 1)
  m = metrics.classification_metrics(probs, labels)
  # predicted tampered: idx 1,3,4,6 -> TP 3 (3,4,6), FP 1 (1), FN 1 (5), TN 3
  assert m['accuracy'] == pytest.approx(6 / 8)
  assert m['precision'] == pytest.approx(3 / 4) and m['recall'] == pytest.approx(3 / 4)
  assert m['precision_authentic'] == pytest.approx(3 / 4)
  assert m['confusion_matrix'] == [[3, 1], [1, 3]]
  # AUC: of the 16 (tampered, authentic) pairs, tampered scores higher in 15 (all but .4 < .6)
  assert m['auc'] == pytest.approx(15 / 16)


def test_three_class_metrics_collapse_tampered_classes():
  labels = np.array([0, 1, 2, 2])
  probs = np.array([[.8, .1, .1], [.1, .2, .7], [.1, .1, .8], [.6, .2, .2]])
  m = metrics.classification_metrics(probs, labels)
  assert m['accuracy'] == pytest.approx(2 / 4)
  assert m['recall'] == pytest.approx(2 / 3)  # copy-move called splicing still counts as tampered
  assert 'macro_f1' in m and len(m['confusion_matrix']) == 3


def test_lookup_baseline():
  # the key decides the class perfectly
  assert baselines.lookup_accuracy([1, 2, 1, 2], [0, 1, 0, 1], [2, 1, 1], [1, 0, 0]) == 1.0
  # an unseen key falls back to the training majority
  assert baselines.lookup_accuracy([1, 1, 1], [1, 1, 0], [7, 7], [1, 0]) == 0.5


class _FakeDataset:
  class split:  # pylint: disable=invalid-name
    train = np.array([0, 1, 2, 3])
    test = np.array([4, 5, 6, 7])
  labels = np.array([0, 0, 1, 1, 0, 1, 1, 0])
  extra = {'jpeg_quality': np.array([90, 90, 75, 75, 90, 75, 90, 90])}


def test_shortcut_baselines_and_accuracy_by_property():
  b = baselines.shortcut_baselines(_FakeDataset)
  assert b['baseline/jpeg_quality_lookup_accuracy'] == pytest.approx(0.75)
  by = baselines.accuracy_by_property(_FakeDataset, 'test', np.array([0, 1, 0, 0]))
  table = by['test/accuracy_by_jpeg_quality']
  assert table['90'] == {'accuracy': pytest.approx(2 / 3), 'count': 3}
  assert table['75'] == {'accuracy': 1.0, 'count': 1}


def test_copy_move_baseline_uses_the_evidence_alone():
  rng = np.random.default_rng(0)
  labels = np.array([0, 1] * 40)
  # Tampered examples have many matches, authentic ones few; the planes are never read.
  evidence = np.where(labels[:, None] == 1, 4.0, 0.5) + rng.normal(0, 0.3, (80, 2))

  class Dataset:
    class split:  # pylint: disable=invalid-name
      train, validation, test = np.arange(0, 50), np.arange(50, 60), np.arange(60, 80)
    copy_move = evidence
    extra = {}

  Dataset.labels = labels
  b = baselines.shortcut_baselines(Dataset)
  assert b['baseline/copy_move_logistic_accuracy'] == 1.0
  Dataset.labels = rng.permutation(labels)  # evidence unrelated to the class
  assert baselines.copy_move_baseline(Dataset)['baseline/copy_move_logistic_accuracy'] < 0.8
  assert 'baseline/copy_move_logistic_accuracy' not in baselines.shortcut_baselines(_FakeDataset)


def test_the_validation_threshold_is_the_most_accurate_one_by_hand():
  # Scores 0.1 0.6 0.7 | 0.8 0.9 with the last two tampered: any t in (0.7, 0.8] is exact;
  # the candidate between them is 0.75.
  p = np.array([0.1, 0.6, 0.7, 0.8, 0.9])
  assert evaluators.most_accurate_threshold(p, np.array([0, 0, 0, 1, 1], bool)) == pytest.approx(0.75)
  # All tampered: a threshold that calls every one tampered; none: one that calls none.
  assert (p >= evaluators.most_accurate_threshold(p, np.ones(5, bool))).all()
  assert (p < evaluators.most_accurate_threshold(p, np.zeros(5, bool))).all()
  # 0.35 and 0.75 are both 4/5 right (0.65 only 3/5): of tied ones, the middle (here the upper).
  t = evaluators.most_accurate_threshold(p, np.array([0, 1, 0, 1, 1], bool))
  assert t == pytest.approx(0.75)

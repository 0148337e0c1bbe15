"""evaluate: robustness rows, the ablation table, the cross-dataset matrix and the figures."""

import json
import os

import numpy as np
import pytest

from forgery_jax import evaluate
from forgery_jax import predict
from forgery_jax import train


@pytest.fixture(scope='module')
def two_runs(tiny_config, tmp_path_factory):
  runs = []
  for branches in (('ela', 'srm'), ('ela',)):
    workdir = str(tmp_path_factory.mktemp('_'.join(branches)))
    config = tiny_config.copy_and_resolve_references()
    config.num_epochs = 1
    config.model.branches = branches
    train.train_and_evaluate(config, workdir)
    runs.append(workdir)
  return runs


def test_attacks_change_the_image_as_named():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
  assert evaluate.attack(rgb, 'resize', 0.5, rng).shape == (10, 15, 3)
  assert evaluate.attack(rgb, 'jpeg', 50, rng).shape == rgb.shape
  assert not np.array_equal(evaluate.attack(rgb, 'jpeg', 50, rng), rgb)
  assert np.abs(evaluate.attack(rgb, 'noise', 5.0, rng).astype(int) - rgb).mean() > 1
  with pytest.raises(ValueError, match='unknown attack'):
    evaluate.attack(rgb, 'rotate', 1, rng)


def test_report_with_ablation_cross_and_robustness(two_runs):
  main, other = two_runs
  report = evaluate.evaluate(main, [other], cross=True, with_robustness=True, batch_size=8,
                             max_examples=8)
  out = os.path.join(main, 'report')
  text = open(os.path.join(out, 'report.md')).read()
  for section in ('## Test metrics', '## Ablation', '## Cross-dataset', '## Robustness'):
    assert section in text
  for figure in ('confusion.png', 'roc.png', 'curves.png', 'robustness.png'):
    assert os.path.getsize(os.path.join(out, figure)) > 1000 and f'({figure})' in text
  rows = report['robustness']
  assert len(rows) == 1 + sum(len(v) for v in evaluate.ATTACKS.values())
  # No attack reproduces the stored planes: the same accuracy as scoring them directly.
  detector = predict.load_detector(main)
  dataset = evaluate.load_dataset(detector.config)
  idx = dataset.split.test[:8]
  probs = evaluate.score(detector, dataset, idx, 8)
  assert rows[0]['attack'] == 'none'
  assert rows[0]['accuracy'] == pytest.approx(float((probs.argmax(1) == dataset.labels[idx]).mean()))
  assert [r['run'].split(' ')[0] for r in report['runs']] == [os.path.basename(main), os.path.basename(other)]
  with open(os.path.join(out, 'report.json')) as f:
    assert json.load(f)['cross']['datasets'] == ['synthetic_forgery']

"""experiments.f1_breakdown: per-file F1 on hand-made maps, the groups, the copy bound, the caches."""

import json

import numpy as np
import pytest

from experiments import f1_breakdown
from experiments import fusion_rules
from forgery_jax.data import labels


def _split(copy_net_value: float = 0.0):
  """A splice the network half finds (F1 2/3), a copy-move whose keypoint map marks the pasted
  copy and its source while the network prefers the source (F1 0 by `upper copies`), and an
  authentic file (no mask: not scored)."""
  splice_mask = np.zeros((4, 8), np.uint8)
  splice_mask[:, :4] = 255
  splice_net = np.zeros((4, 8), np.float32)
  splice_net[:, :2] = 1.0
  copy_mask = np.zeros((8, 8), np.uint8)
  copy_mask[:4, :2] = 255                       # 8 of 64 pixels: the pasted copy
  kp = np.zeros((8, 8), np.float32)
  kp[:4, :2] = 1.0
  kp[:4, 5:7] = 1.0                             # its source
  copy_net = np.zeros((8, 8), np.float32)
  copy_net[:4, :2] = copy_net_value
  copy_net[:4, 5:7] = 0.5
  return {'p_net': np.float32([0.9, 0.8, 0.1]), 'p_kp': np.float32([0.0, 0.9, 0.0]),
          'tampered': np.array([True, True, False]),
          'kinds': [labels.SPLICING, labels.COPY_MOVE, labels.AUTHENTIC],
          'net_maps': [splice_net, copy_net, np.zeros((4, 4), np.float32)],
          'kp_maps': [np.zeros((4, 8), np.float32), kp, np.zeros((4, 4), np.float32)],
          'masks': [splice_mask, copy_mask, None]}


def test_each_tampered_file_is_scored_with_its_area_and_copy_bound():
  rows = f1_breakdown.per_file(_split(), fusion_rules.PIXEL_RULES['upper copies'])
  assert [r['kind'] for r in rows] == [labels.SPLICING, labels.COPY_MOVE]
  assert rows[0]['f1'] == pytest.approx(2 / 3)      # tp 8, fn 8, fp 0
  assert rows[0]['area'] == pytest.approx(0.5)
  assert not rows[0]['keypoint_region'] and rows[0]['copy_bound'] is None
  assert rows[1]['f1'] == 0.0                       # the source copy kept
  assert rows[1]['area'] == pytest.approx(8 / 64)
  assert rows[1]['keypoint_region'] and rows[1]['copy_bound'] == 1.0


def test_the_groups_and_what_the_copy_bound_adds():
  b = f1_breakdown.breakdown(f1_breakdown.per_file(_split(), fusion_rules.PIXEL_RULES['upper copies']))
  assert b['all'] == {'files': 2, 'pixel_f1': pytest.approx(1 / 3), 'missed': 0.5, 'reached': 0.0}
  assert b['by_area']['0.1-0.2']['files'] == 1 and b['by_area']['0.2-1']['files'] == 1
  assert b['by_area']['0-0.02'] == {'files': 0}
  assert b['by_type']['splicing, no keypoint region']['pixel_f1'] == pytest.approx(2 / 3)
  assert b['by_type']['copy_move, a keypoint region']['missed'] == 1.0
  assert b['copy_bound'] == {'files': 1, 'pixel_f1': 0.0, 'bound': 1.0, 'adds_to_all': 0.5}
  # With the network preferring the pasted copy the rule already reaches the bound.
  better = f1_breakdown.breakdown(f1_breakdown.per_file(_split(0.9), fusion_rules.PIXEL_RULES['upper copies']))
  assert better['copy_bound']['adds_to_all'] == 0.0 and better['all']['reached'] == 0.5


def test_caches_are_averaged_and_other_files_refused(tmp_path):
  one, two = tmp_path / 'one', tmp_path / 'two'
  one.mkdir()
  two.mkdir()
  fusion_rules.save(str(one / 'test.npz'), _split(0.0))
  fusion_rules.save(str(two / 'test.npz'), _split(1.0))
  fusion_rules.save(str(one / 'validation.npz'), _split(0.0))   # not a test split: not read
  out = tmp_path / 'breakdown.json'
  results = f1_breakdown.main(['--cache', str(one), '--also', str(two), '--output', str(out)])
  assert list(results) == ['test']
  # averaged, the network marks the pasted copy at 0.5 and its source at 0.5: both kept
  assert results['test']['by_type']['copy_move, a keypoint region']['pixel_f1'] == pytest.approx(2 / 3)
  assert json.loads(out.read_text())['test']['all']['files'] == 2

  other = _split()
  other['masks'][0] = 255 - other['masks'][0]
  fusion_rules.save(str(two / 'test.npz'), other)
  with pytest.raises(ValueError, match='other files'):
    f1_breakdown.main(['--cache', str(one), '--also', str(two)])
  with pytest.raises(FileNotFoundError, match='no test'):
    f1_breakdown.main(['--cache', str(tmp_path)])

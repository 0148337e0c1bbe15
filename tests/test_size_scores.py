"""experiments.size_scores: the windows a photo is shown in, and the figures read from them."""

import numpy as np
import pytest

from experiments import size_scores


def test_windows_turn_with_the_photo_and_stay_on_the_grid():
  landscape = np.zeros((600, 800, 3), np.uint8)
  portrait = np.zeros((800, 600, 3), np.uint8)
  size = size_scores.parse_size('384x256')
  assert size == size_scores.parse_size('256x384') == (256, 384)
  assert [w.shape[:2] for w in size_scores.windows(landscape, size)] == [(256, 384)] * 4
  assert [w.shape[:2] for w in size_scores.windows(portrait, size)] == [(384, 256)] * 4
  assert size_scores.centre(landscape, size).shape[:2] == (256, 384)
  marked = np.zeros((600, 800), np.int32)
  marked[160:416, 208:592] = 1  # (600 - 256) // 2 = 172 -> 160, (800 - 384) // 2 = 208
  assert size_scores.centre(marked, size).all()
  small = np.zeros((100, 200, 3), np.uint8)
  assert size_scores.centre(small, size).shape == small.shape
  assert [w.shape for w in size_scores.windows(small, size)] == [small.shape]
  for bad in ('384', '384x250', 'ax256', '8x8'):
    with pytest.raises(ValueError, match='--windows'):
      size_scores.parse_size(bad)


def test_a_score_that_follows_the_area_rises_with_it_on_both_classes():
  rng = np.random.default_rng(0)
  images = [np.zeros((h, w, 3), np.uint8) for h, w in rng.integers(24, 48, (6, 2)) * 16]
  score = lambda arrays: np.array([a.shape[0] * a.shape[1] / (a.shape[0] * a.shape[1] + 256 * 384)
                                   for a in arrays])
  scores = size_scores.scores_by_size(score, images, [(256, 384)])
  assert set(scores) == {'whole', '384x256 centre', '384x256 windows: mean', '384x256 windows: max'}
  np.testing.assert_allclose(scores['384x256 centre'], 0.5)
  np.testing.assert_allclose(scores['384x256 windows: mean'], 0.5)
  assert min(scores['whole']) > 0.5 + 0.1


def test_summary_by_hand():
  p = np.array([0.1, 0.6, 0.4, 0.8, 0.7, 0.3])
  tampered = np.array([0, 0, 0, 1, 1, 1], bool)
  s = size_scores.summary(p, tampered)
  # tampered above authentic in 7 of the 9 pairs: 0.8 and 0.7 above all three, 0.3 above 0.1
  assert s['auc'] == pytest.approx(7 / 9)
  assert s['authentic_called_tampered'] == pytest.approx(1 / 3)
  assert s['tampered_called_tampered'] == pytest.approx(2 / 3)
  assert s['authentic_median'] == pytest.approx(0.4) and s['tampered_median'] == pytest.approx(0.7)


def test_a_negative_limit_is_refused_before_anything_is_loaded(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    size_scores.main(['--workdir', str(tmp_path), '--dataset', 'micc_f220', '--limit', '-1'])
  assert exit_info.value.code == 2 and 'argument --limit: -1: at least 0' in capsys.readouterr().err

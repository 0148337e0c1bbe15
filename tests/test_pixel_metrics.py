"""Pixel-level metrics on hand-computed cases, and their baselines."""

import jax
import numpy as np
import pytest

from forgery_jax.evaluation import pixel_metrics as pm


def _mask(rows):
  return (np.asarray(rows, np.uint8) * 255)[..., None]


def test_f1_iou_and_auc_by_hand():
  mask = _mask([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])  # 4 tampered pixels
  top_row = np.zeros((4, 4), np.float32)
  top_row[0] = 0.9  # tp 2 (top-left), fp 2, fn 2
  r = pm.per_image(top_row, mask)
  assert r['pixel_f1'] == pytest.approx(4 / 8) and r['pixel_iou'] == pytest.approx(2 / 6)
  # AUC by pairs: positives 0.9 0.9 0 0 against negatives 0.9 0.9 0 ... (ties count half).
  scores = top_row.ravel()
  pos, neg = scores[mask.ravel() > 0], scores[mask.ravel() == 0]
  pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
  assert r['pixel_auc'] == pytest.approx(pairs)
  perfect = pm.per_image(mask[..., 0] / 255.0, mask)
  assert perfect['pixel_f1'] == perfect['pixel_iou'] == perfect['pixel_auc'] == 1.0
  nothing = pm.per_image(np.zeros((4, 4)), mask)
  assert nothing['pixel_f1'] == nothing['pixel_iou'] == 0.0 and nothing['pixel_auc'] == 0.5


def test_auc_by_hand_on_four_pixels():
  mask = _mask([[1, 1], [0, 0]])
  scores = np.array([[0.9, 0.4], [0.6, 0.1]], np.float32)
  assert pm.per_image(scores, mask)['pixel_auc'] == pytest.approx(0.75)  # 3 of 4 pairs ordered


def test_best_threshold_is_one_for_the_whole_split():
  mask = _mask([[1, 1, 0, 0]] * 4)
  low = np.where(mask[..., 0] > 0, 0.3, 0.2).astype(np.float32)   # right shape, low values
  high = np.where(mask[..., 0] > 0, 0.8, 0.6).astype(np.float32)  # right shape, high values
  s = pm.summarise([pm.per_image(low, mask), pm.per_image(high, mask)])
  assert s['pixel_f1'] == pytest.approx((0.0 + 2 * 8 / (16 + 8)) / 2)  # 0 and F1 of all-tampered
  # One threshold for both images: in (0.3, 0.6] the first is empty, the second all-tampered;
  # in (0.2, 0.3] the first is perfect and the second all-tampered (F1 2/3): best 5/6.
  assert s['pixel_f1_best'] == pytest.approx((1.0 + 2 / 3) / 2)
  assert 0.2 < s['pixel_f1_best_threshold'] <= 0.3
  assert s['pixel_images'] == 2


def test_a_threshold_chosen_on_some_images_scores_others():
  mask = _mask([[1, 1, 0, 0]] * 4)
  low = np.where(mask[..., 0] > 0, 0.3, 0.2).astype(np.float32)
  chosen = pm.best_threshold(pm.mean_f1_curve([pm.per_image(low, mask)]))
  assert 0.2 < pm.THRESHOLDS[chosen] <= 0.3      # the first index there: 0.21
  top_row = np.zeros((4, 4), np.float32)
  top_row[0] = 0.25   # at 0.21: tp 2, fp 2, fn 6: F1 4 / 12, IoU 2 / 10
  at = pm.at_threshold([pm.per_image(top_row, mask), pm.per_image(low, mask)], chosen)
  assert at['pixel_f1'] == pytest.approx((4 / 12 + 1.0) / 2)
  assert at['pixel_iou'] == pytest.approx((2 / 10 + 1.0) / 2) and at['pixel_images'] == 2


def test_maps_are_resized_to_the_mask():
  mask = np.zeros((64, 96, 1), np.uint8)
  mask[16:48, 24:72] = 255
  small = np.zeros((32, 48), np.float32)
  small[8:24, 12:36] = 1.0
  r = pm.per_image(small, mask)
  assert r['pixel_f1'] > 0.95 and r['pixel_auc'] > 0.99


def test_baselines():
  mask = np.zeros((10, 10, 1), np.uint8)
  mask[:5] = 255
  maps = pm.baseline_maps((10, 10), pm.mean_mask([mask]))
  everything = pm.per_image(maps['all_tampered'], mask)
  assert everything['pixel_f1'] == pytest.approx(2 * 50 / (100 + 50)) and everything['pixel_auc'] == 0.5
  assert pm.per_image(maps['mean_training_mask'], mask)['pixel_f1'] == pytest.approx(1.0)
  centre = maps['centre_prior']
  assert centre.shape == (10, 10) and centre.max() <= 1 and centre[5, 5] > centre[0, 0] >= 0


def test_device_curves_match_the_per_image_curve():
  """The jitted validation curves are `per_image`'s curves; a row counts only when tampered with
  mask pixels inside it."""
  rng = np.random.default_rng(3)
  maps = rng.random((3, 12, 10)).astype(np.float32)
  masks = np.zeros((3, 12, 10, 1), np.uint8)
  masks[0, 2:7, 3:8] = 255
  masks[1, :4] = 255
  curves, scored = jax.jit(pm.device_f1_curves)(maps, masks, np.array([True, False, True]))
  for i in range(2):
    np.testing.assert_allclose(curves[i], pm.per_image(maps[i], masks[i])['f1_curve'], atol=1e-6)
  assert scored.tolist() == [True, False, False]  # authentic row; tampered row with an empty mask


def test_curve_scores_by_hand():
  curves = np.zeros((3, len(pm.THRESHOLDS)))
  curves[0, pm.HALF], curves[1, pm.HALF] = 0.6, 0.2
  curves[0, 10], curves[2, 10] = 0.9, 1.0
  s = pm.curve_scores(curves, np.array([True, True, False]))
  assert pm.THRESHOLDS[pm.HALF] == pytest.approx(0.5)
  assert s['pixel_f1'] == pytest.approx(0.4) and s['pixel_images'] == 2
  assert s['pixel_f1_best'] == pytest.approx(0.45) and s['pixel_f1_best_threshold'] == pytest.approx(0.11)
  assert np.isnan(pm.curve_scores(curves, np.zeros(3, bool))['pixel_f1'])

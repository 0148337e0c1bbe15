"""experiments.keypoint_settings: its variants, its scores on a hand-made copy-move, its forgeries."""

import dataclasses

import cv2
import numpy as np

from configs import default
from experiments import keypoint_settings
from forgery_jax.data import synthetic
from forgery_jax.forensics import keypoints
from tests.test_keypoints import _textured


def test_each_variant_changes_the_one_setting_it_names():
  found = keypoint_settings.variants()
  assert next(iter(found)) == 'default' and found['default'] == keypoints.MapSettings()
  assert found['default'].min_inliers == keypoints.MAP_MIN_INLIERS
  for name, settings in list(found.items())[1:]:
    field, value = name.split('=')
    changed = [f.name for f in dataclasses.fields(settings)
               if getattr(settings, f.name) != getattr(keypoints.MapSettings(), f.name)]
    assert changed == [field] and str(getattr(settings, field)) == value


def test_the_default_settings_draw_a_copied_region_and_not_a_clean_image():
  clean = _textured(4)
  forged = clean.copy()
  forged[150:230, 250:350] = clean[20:100, 30:130]
  mask = np.zeros(clean.shape[:2], np.uint8)
  mask[150:230, 250:350] = 255
  settings = {'default': keypoints.MapSettings(),
              'never': keypoints.MapSettings(min_inliers=10**6),
              'no upscaling': keypoints.MapSettings(sift_side=0)}
  scores = keypoint_settings.score_variants([forged], [mask], [clean], settings)
  d = scores['default']
  # Both copies are drawn and only one is in the mask: F1 about 2/3 at best.
  assert 0.5 < d['pixel_f1'] < 0.75 and d['found_share'] == 1.0 and d['false_alarm_rate'] == 0.0
  assert d['forgeries'] == 1 and d['controls'] == 1
  assert scores['never']['found_share'] == 0.0 and scores['never']['pixel_f1'] == 0.0
  direct = keypoints.copy_move_map(forged, settings['no upscaling']).map
  f1 = 2 * (direct.astype(bool) & (mask > 0)).sum() / (direct.sum() + (mask > 0).sum())
  np.testing.assert_allclose(scores['no upscaling']['pixel_f1'], f1)


def test_forgeries_are_copy_moves_with_masks_and_controls_are_only_saved_again():
  photo = synthetic.load_photo('skimage', 'astronaut.png')
  images = [photo[i * 40:i * 40 + 64, i * 30:i * 30 + 96] for i in range(3)]
  cfg = default.get_config().synthesis
  cfg.update(donor_jpeg=False, lossless_share=1.0)  # no last save: only the regions change
  forged, masks, controls = keypoint_settings.synthesised_copy_moves(images, cfg, seed=0, batch=2)
  assert len(forged) == len(masks) == len(controls) == 3
  for image, f, m, c in zip(images, forged, masks, controls):
    assert f.shape == image.shape and m.shape == image.shape[:2] and (m > 0).any()
    np.testing.assert_array_equal(c, image)
    # Feathered edges may reach just outside the mask; away from it the image is untouched.
    far = cv2.dilate((m > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    np.testing.assert_array_equal(f[far], image[far])
    assert (f[m > 0] != image[m > 0]).mean() > 0.3


def test_changes_are_paired_with_the_default_on_the_same_forgeries():
  clean = [_textured(5), _textured(6)]
  forged = [c.copy() for c in clean]
  forged[0][150:230, 250:350] = clean[0][20:100, 30:130]
  forged[1][140:200, 260:340] = clean[1][30:90, 40:120]
  masks = [np.zeros(clean[0].shape[:2], np.uint8) for _ in clean]
  masks[0][150:230, 250:350] = 255
  masks[1][140:200, 260:340] = 255
  settings = {'default': keypoints.MapSettings(), 'never': keypoints.MapSettings(min_inliers=10**6)}
  scores = keypoint_settings.score_variants(forged, masks, [], settings)
  d, never = scores['default'], scores['never']
  assert d['pixel_f1'] > 0.5 and d['pixel_f1_change'] == 0.0 and d['pixel_f1_change_se'] == 0.0
  np.testing.assert_allclose(never['pixel_f1_change'], -d['pixel_f1'])
  assert never['pixel_f1_change_se'] > 0 and np.isnan(never['false_alarm_rate'])

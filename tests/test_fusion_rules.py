"""experiments.fusion_rules: the rules on hand-made maps, and its score cache."""

import numpy as np

from experiments import fusion_rules
from forgery_jax.data import labels


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

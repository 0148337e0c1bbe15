"""The copy-move keypoint detector through the runner, its export and the Python API; and the
localiser's maps with it fused in by `evaluate --keypoint_map`."""

import numpy as np
import pytest
from PIL import Image

from configs import default
import forgery_jax
from forgery_jax import experiment
from forgery_jax import evaluate
from forgery_jax import predict
from tests.test_keypoints import _textured


def _config(tiny_config):
  """The keypoint map on the tiny set (the default training settings: it has no training step)."""
  config = default.get_config()
  config.update(method='copy_move_keypoints', dataset=tiny_config.dataset.copy_and_resolve_references())
  return config


def test_runs_exports_and_draws_a_copied_region(tiny_config, tmp_path):
  config = _config(tiny_config)
  config.evals = ('test', 'baselines', 'pixel')
  results = experiment.run(config, str(tmp_path))
  assert results['test/num_examples'] == 32 and 0 <= results['test/pixel_auc'] <= 1
  assert 'test/pixel_baseline/centre_prior/pixel_f1' in results
  forged = _textured(3)
  forged[150:230, 250:350] = forged[20:100, 30:130]
  # (the tiny set's preparation resizes to 32 x 32, so the restored detector scores the photo as is)
  scores = forgery_jax.load(str(tmp_path)).detectors[0].score([{'image': forged}])
  assert scores.probabilities[0].argmax() == 1 and scores.maps[0].shape == forged.shape[:2]
  assert scores.maps[0][150:230, 250:350].mean() > 0.7 and scores.maps[0][160:240, 20:200].mean() < 0.1
  Image.fromarray(forged).save(tmp_path / 'forged.png')
  rows, _ = predict.predict_paths(str(tmp_path), [str(tmp_path / 'forged.png')], str(tmp_path / 'out'))
  with Image.open(rows[0]['panel']) as panel:
    assert panel.size[0] == 5 * 256  # image, ELA, SRM, map, matched keypoint pairs


def test_evaluate_fuses_the_map_into_localiser_runs_only(tiny_config, tmp_path):
  config = _config(tiny_config)
  config.evals = ('test',)
  experiment.run(config, str(tmp_path))
  try:
    evaluate.load_run(str(tmp_path), keypoint_map=True)
  except ValueError as e:
    assert 'not a localiser' in str(e)
  else:
    raise AssertionError('--keypoint_map accepted a run that is not a localiser')
  with pytest.raises(ValueError, match=f'--score_flips: {tmp_path}: .*only localiser runs score flips'):
    evaluate.load_run(str(tmp_path), score_flips=True)


def test_each_detector_draws_the_pairs_its_answer_rests_on(tiny_config):
  """The keypoint map's panel shows the inlier pairs of the affine models that drew the map; a
  detector reading the copy-move evidence shows the evidence's g2NN pairs; one reading no
  keypoints shows none."""
  from forgery_jax import detectors  # pylint: disable=g-import-not-at-top
  from forgery_jax.forensics import keypoints  # pylint: disable=g-import-not-at-top
  forged = _textured(3)
  forged[150:230, 250:350] = forged[20:100, 30:130]
  found = keypoints.copy_move_map(forged)
  config = tiny_config.copy_and_resolve_references()
  config.method = 'copy_move_keypoints'
  src, dst = detectors.get('copy_move_keypoints')(config).keypoint_pairs(forged)
  np.testing.assert_array_equal(src, found.src)
  np.testing.assert_array_equal(dst, found.dst)
  # Every drawn pair joins the two copies (the one 220 x 130 pixel move), not just any match.
  assert len(src) >= keypoints.MAP_MIN_INLIERS
  np.testing.assert_allclose(np.abs(dst - src), np.broadcast_to([220, 130], src.shape), atol=3)
  from tests import minimal_detector  # pylint: disable=g-import-not-at-top

  class ReadsEvidence(minimal_detector.MeanEla):
    @staticmethod
    def inputs(config):
      return ('ela', 'copy_move')

  src, dst = ReadsEvidence(config, 0.0).keypoint_pairs(forged)
  evidence_src, evidence_dst = keypoints.evidence_pairs(forged)
  np.testing.assert_array_equal(src, evidence_src)
  np.testing.assert_array_equal(dst, evidence_dst)
  assert np.expm1(keypoints.copy_move_evidence(forged))[0] == pytest.approx(len(src), rel=1e-5)
  assert minimal_detector.MeanEla(config, 0.0).keypoint_pairs(forged) is None


def test_the_detector_matches_mirror_wise_when_its_config_says_so(tiny_config):
  from forgery_jax import detectors  # pylint: disable=g-import-not-at-top
  flipped = _textured(3)
  flipped[150:230, 250:350] = flipped[20:100, 30:130][:, ::-1]
  config = tiny_config.copy_and_resolve_references()
  config.method = 'copy_move_keypoints'
  plain = detectors.get('copy_move_keypoints')(config.copy_and_resolve_references())
  config.model.keypoint_mirrored = True
  mirrored = detectors.get('copy_move_keypoints')(config)
  assert mirrored.score([{'image': flipped}]).maps[0][150:230, 250:350].mean() > 0.7
  assert plain.score([{'image': flipped}]).maps[0][150:230, 250:350].mean() < 0.2
  assert len(mirrored.keypoint_pairs(flipped)[0]) >= 4 and len(plain.keypoint_pairs(flipped)[0]) < 4


def test_the_detector_decides_by_clusters_when_its_config_says_so(tiny_config):
  from forgery_jax import detectors  # pylint: disable=g-import-not-at-top
  from forgery_jax.forensics import keypoints  # pylint: disable=g-import-not-at-top
  forged = _textured(3)
  forged[150:230, 250:350] = forged[20:100, 30:130]
  config = tiny_config.copy_and_resolve_references()
  config.method = 'copy_move_keypoints'
  by_inliers = detectors.get('copy_move_keypoints')(config.copy_and_resolve_references())
  config.model.keypoint_decision = 'clusters'
  by_clusters = detectors.get('copy_move_keypoints')(config)
  plain, clustered = (d.score([{'image': forged}]) for d in (by_inliers, by_clusters))
  found = keypoints.copy_move_map(forged, keypoints.MapSettings(decision='clusters'))
  assert found.links > keypoints.CLUSTER_MIN_PAIRS
  assert clustered.probabilities[0, 1] == pytest.approx(float(keypoints.cluster_probability(found.links)))
  assert plain.probabilities[0, 1] == pytest.approx(float(keypoints.map_probability(len(found.src), True)))
  assert clustered.probabilities[0, 1] != pytest.approx(plain.probabilities[0, 1])
  np.testing.assert_array_equal(clustered.maps[0], plain.maps[0])

"""The copy-move keypoint detector through the runner, its export and the Python API; and the
localiser's maps with it fused in by `evaluate --keypoint_map`."""

import numpy as np
from PIL import Image

import forgery_jax
from forgery_jax import experiment
from forgery_jax import evaluate
from forgery_jax import predict
from tests.test_keypoints import _textured


def test_runs_exports_and_draws_a_copied_region(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.method = 'copy_move_keypoints'
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
  config = tiny_config.copy_and_resolve_references()
  config.method = 'copy_move_keypoints'
  config.evals = ('test',)
  experiment.run(config, str(tmp_path))
  try:
    evaluate.load_run(str(tmp_path), keypoint_map=True)
  except ValueError as e:
    assert 'not a localiser' in str(e)
  else:
    raise AssertionError('--keypoint_map accepted a run that is not a localiser')

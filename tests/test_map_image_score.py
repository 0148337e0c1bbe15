"""experiments.map_image_score: map statistics and the validation files it forges."""

import types

import numpy as np

from configs import localiser_synthetic
from experiments import map_image_score


def test_map_features_by_hand():
  heat = np.zeros((20, 50), np.float32)  # 1,000 pixels
  heat[0, :10] = 1.0     # the top 1 %
  heat[1, :40] = 0.5     # the next 4 %
  features = dict(zip(map_image_score.FEATURES, map_image_score.map_features(0.25, heat)))
  assert len(features) == len(map_image_score.FEATURES) == 9
  assert features['head'] == 0.25 and features['max'] == 1.0
  assert features['top 0.1%'] == 1.0 and features['top 1.0%'] == 1.0
  np.testing.assert_allclose(features['top 5.0%'], (10 * 1.0 + 40 * 0.5) / 50)
  np.testing.assert_allclose(features['mean'], (10 + 20) / 1000)
  np.testing.assert_allclose(features['area'], 50 / 1000)


def _dataset(shapes):
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in shapes]
  n = len(images)
  labels = np.array([0] * (n - 1) + [1])  # one real forgery: never forged again nor read
  split = types.SimpleNamespace(validation=np.arange(n))
  return types.SimpleNamespace(source=[{'image': im} for im in images], labels=labels, split=split)


def test_synthesised_validation_forges_the_authentic_files_whole_and_repeatably():
  cfg = localiser_synthetic.get_config().synthesis
  dataset = _dataset([(64, 48)] * 8 + [(48, 64)] * 8 + [(64, 48)])
  images, tampered = map_image_score.synthesised_validation(dataset, cfg, seed=3, copies=2)
  assert len(images) == 2 * 16 == len(tampered)  # the 16 authentic files, twice each
  assert sorted({im.shape for im in images}) == [(48, 64, 3), (64, 48, 3)]
  assert 0 < tampered.sum() < len(tampered)
  again, tampered_again = map_image_score.synthesised_validation(dataset, cfg, seed=3, copies=2)
  np.testing.assert_array_equal(tampered, tampered_again)
  for a, b in zip(images, again):
    np.testing.assert_array_equal(a, b)
  other, _ = map_image_score.synthesised_validation(dataset, cfg, seed=4, copies=2)
  assert any((a != b).any() for a, b in zip(images, other))


def test_map_contrast_and_compactness_by_hand():
  heat = np.full((20, 50), 0.1, np.float32)
  heat[5:7, 10:15] = 0.9           # 10 pixels, the top 1 %, in one blob
  f = dict(zip(map_image_score.FEATURES, map_image_score.map_features(0.5, heat)))
  np.testing.assert_allclose(f['top 1.0% - median'], 0.8, rtol=1e-6)
  assert f['top 1.0% in one region'] == 1.0
  scattered = np.full((20, 50), 0.1, np.float32)
  scattered[::4, ::10][:, :2] = 0.9  # 5 x 2 = 10 isolated pixels
  f = dict(zip(map_image_score.FEATURES, map_image_score.map_features(0.5, scattered)))
  np.testing.assert_allclose(f['top 1.0% in one region'], 0.1)

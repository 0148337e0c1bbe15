"""experiments.averaging (two runs' mean, the file check) and localiser.flip_average."""

import numpy as np
import pytest

from experiments import averaging
from forgery_jax.detectors import localiser


def _image(h=13, w=21, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_a_map_that_follows_the_image_is_unchanged_by_the_flips():
  image = _image()
  seen = []

  def score(x):
    seen.append(x)
    return x.mean() / 255.0, x[..., 0] / 255.0

  p, heat = localiser.flip_average(score, image)
  np.testing.assert_allclose(heat, image[..., 0] / 255.0, atol=1e-6)
  assert p == pytest.approx(np.mean([x.mean() for x in seen]) / 255.0)
  # Padded with edge pixels to multiples of 16 before flipping (the JPEG grid stays put).
  assert [x.shape for x in seen] == [(16, 32, 3)] * 4
  padded = seen[0]
  np.testing.assert_array_equal(padded[:13, :21], image)
  np.testing.assert_array_equal(padded[13:, :21], np.repeat(image[-1:], 3, 0))
  np.testing.assert_array_equal(seen[1], padded[:, ::-1])
  np.testing.assert_array_equal(seen[2], padded[::-1])
  np.testing.assert_array_equal(seen[3], padded[::-1, ::-1])


def test_a_map_fixed_to_the_frame_averages_to_its_symmetric_part():
  def score(x):  # 1 at the left column, 0 at the right one, whatever the image
    ramp = np.linspace(1.0, 0.0, x.shape[1], dtype=np.float32)
    return 1.0 if x[0, 0, 0] > 127 else 0.0, np.tile(ramp, (x.shape[0], 1))

  image = _image(32, 48)
  p, heat = localiser.flip_average(score, image)
  np.testing.assert_allclose(heat, 0.5, atol=1e-6)
  corners = [image[0, 0, 0], image[0, -1, 0], image[-1, 0, 0], image[-1, -1, 0]]
  assert p == pytest.approx(np.mean([c > 127 for c in corners]))


def _split(maps, p, masks):
  return {'net_maps': maps, 'p_net': np.float32(p), 'tampered': np.array([m is not None for m in masks]),
          'masks': masks}


def test_two_runs_are_averaged_file_by_file_and_other_files_are_refused():
  mask = np.ones((4, 4), np.uint8)
  a = _split([np.zeros((4, 4)), np.ones((2, 2))], [0.2, 0.4], [mask, None])
  b = _split([np.ones((4, 4)), np.zeros((2, 2))], [0.6, 0.0], [mask, None])
  both = averaging.averaged(a, b)
  np.testing.assert_allclose(both['net_maps'][0], 0.5)
  np.testing.assert_allclose(both['net_maps'][1], 0.5)
  np.testing.assert_allclose(both['p_net'], [0.4, 0.2])
  assert both['masks'] is a['masks']
  assert averaging.same_files(a, b)

  other_mask = _split(b['net_maps'], b['p_net'], [1 - mask, None])
  assert not averaging.same_files(a, other_mask)
  other_labels = _split(b['net_maps'], b['p_net'], [None, mask])
  assert not averaging.same_files(a, other_labels)
  with pytest.raises(ValueError, match='other files'):
    averaging.averaged(a, _split([np.zeros((4, 4)), np.zeros((3, 3))], [0.0, 0.0], [mask, None]))


def test_three_runs_weigh_alike():
  mask = np.ones((2, 2), np.uint8)
  runs = [_split([np.full((2, 2), v)], [p], [mask]) for v, p in ((0.0, 0.0), (0.3, 0.3), (0.9, 0.6))]
  three = averaging.averaged(*runs)
  np.testing.assert_allclose(three['net_maps'][0], 0.4)
  np.testing.assert_allclose(three['p_net'], [0.3])
  with pytest.raises(ValueError, match='other files'):
    averaging.averaged(runs[0], runs[1], _split([np.zeros((3, 3))], [0.0], [mask]))

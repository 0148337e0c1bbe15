"""experiments.image_cues: the JPEG grid phase of a moved region, the copy it drops, the guided filter."""

import cv2
import numpy as np
import pytest

from experiments import image_cues
from forgery_jax import jpeg


def _saved_texture(size=160, quality=40, seed=0):
  rng = np.random.default_rng(seed)
  noise = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
  texture = np.clip((noise - noise.mean()) * 4 + 128, 0, 255).astype(np.uint8)
  ok, data = cv2.imencode('.jpg', texture, [cv2.IMWRITE_JPEG_QUALITY, quality])
  assert ok
  return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize('quality', [40, 75, 90])
def test_a_region_moved_off_the_grid_is_less_aligned_than_its_source(quality):
  image = _saved_texture(quality=quality)
  source = np.zeros(image.shape[:2], bool)
  source[16:64, 16:64] = True
  pasted = np.zeros_like(source)
  pasted[83:131, 85:133] = True  # moved by (67, 69): its 8 x 8 blocking is out of phase
  image[83:131, 85:133] = image[16:64, 16:64]
  y = image_cues.luma(image)
  aligned, moved = image_cues.grid_alignment(y, source), image_cues.grid_alignment(y, pasted)
  assert aligned > 2.1 and moved < 2.05, (aligned, moved)  # 2 = no blocking at the file's phase
  assert np.isnan(image_cues.grid_alignment(y, np.eye(*source.shape, dtype=bool)))

  keypoints = (source | pasted).astype(np.float32)
  network = np.full(source.shape, 0.3, np.float32)
  np.testing.assert_array_equal(image_cues.choose_copy(network, keypoints, y, keep_aligned=False), pasted)
  np.testing.assert_array_equal(image_cues.choose_copy(network, keypoints, y, keep_aligned=True), source)
  one = source.astype(np.float32)
  np.testing.assert_array_equal(image_cues.choose_copy(network, one, y, keep_aligned=False), one)
  nothing = np.zeros_like(one)
  np.testing.assert_array_equal(image_cues.choose_copy(network, nothing, y, keep_aligned=False), network)
  assert image_cues.regions(keypoints) == 2 and image_cues.regions(nothing) == 0


def test_the_guided_filter_keeps_a_map_that_follows_the_guide_and_smooths_one_that_does_not():
  guide = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (64, 1))
  follows = guide / 255.0
  out = image_cues.guided_filter(guide, follows, radius=4, eps=1e-6)
  np.testing.assert_allclose(out[8:-8, 8:-8], follows[8:-8, 8:-8], atol=1e-3)
  flat = np.full((64, 64), 100.0, np.float32)
  spot = np.zeros((64, 64), np.float32)
  spot[32, 32] = 1.0
  smoothed = image_cues.guided_filter(flat, spot, radius=2)  # a flat guide: two box filters
  assert smoothed.max() < 0.1 and abs(smoothed.sum() - 1.0) < 1e-3


def test_noise_level_marks_the_noisier_half():
  rng = np.random.default_rng(0)
  y = np.tile(np.linspace(40, 200, 128, dtype=np.float32), (96, 1))   # smooth shading
  y += rng.normal(0, 1.0, y.shape).astype(np.float32)
  y[:, 64:] += rng.normal(0, 6.0, (96, 64)).astype(np.float32)       # a splice with more noise
  level = image_cues.noise_level(y)
  assert level.shape == y.shape and abs(level.mean()) < 1e-4
  assert level[:, 80:].min() > 0.5 > -0.5 > level[:, :48].max()


def test_jpeg_ghost_marks_a_region_first_saved_at_a_lower_quality():
  """A block pasted from a quality-60 save into a picture, the whole then saved at 90: the ghost
  dips there (at 60), not elsewhere."""
  image = _saved_texture(size=192, quality=95, seed=3)
  low = _saved_texture(size=192, quality=60, seed=4)
  image[64:128, 64:128] = low[64:128, 64:128]  # on the 8 x 8 grid, as a splice often is not
  ok, data = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 90])
  y = image_cues.luma(cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1])
  ghost = image_cues.jpeg_ghost(y)
  inside = np.zeros(ghost.shape, bool)
  inside[72:120, 72:120] = True
  assert ghost[inside].mean() > 1.0 > 0.0 > ghost[~inside].mean(), (ghost[inside].mean(), ghost[~inside].mean())


def _unsaved_texture(size, seed):
  rng = np.random.default_rng(seed)
  noise = cv2.GaussianBlur(rng.uniform(0, 255, (size, size, 3)).astype(np.float32), (0, 0), 1.5)
  return np.clip((noise - noise.mean()) * 4 + 128, 0, 255).astype(np.uint8)


def _saved(rgb, quality):
  ok, data = cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
  assert ok
  return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


@pytest.mark.parametrize('first', [None, 50, 60, 75])
def test_double_quantisation_marks_a_region_that_missed_the_first_save(first):
  """A picture saved at `first` (None: never), a block of another, never saved, pasted into it,
  the whole saved at 90: where the picture was saved twice, the block's coefficients miss the
  gaps and crowds of the picture's histograms; saved once throughout, nothing stands out. The
  last save's steps are found either way (not the first save's, on whose multiples the
  twice-saved blocks also sit), and the texture control does not mark the block."""
  picture = _unsaved_texture(256, 0) if first is None else _saved(_unsaved_texture(256, 0), first)
  picture = picture.copy()
  picture[96:176, 64:160] = _unsaved_texture(256, 1)[35:115, 21:117]
  y = image_cues.luma(_saved(picture, 90))
  block = np.zeros(y.shape, bool)
  block[96:176, 64:160] = True
  coefficients = image_cues.block_coefficients(y)
  frequencies = [1, 8, 16, 9, 2]  # the first AC frequencies in zig-zag order
  steps = [image_cues.last_step(coefficients[..., f].ravel()) for f in frequencies]
  assert steps == list(np.asarray(jpeg.quality_tables(90)[0]).reshape(-1)[frequencies])
  evidence = image_cues.double_quantisation(y)
  assert evidence.shape == y.shape and abs(evidence.mean()) < 1e-3
  inside, outside = evidence[block].mean(), evidence[~block].mean()
  if first is None:
    assert abs(inside - outside) < 0.2, (inside, outside)
  else:
    assert inside > 1.5 > 0 > outside, (inside, outside)
  texture = image_cues.block_texture(y)
  assert abs(texture[block].mean() - texture[~block].mean()) < 0.5
  assert image_cues.last_step(np.zeros(49)) == 0

"""Copy-move keypoint evidence: a region pasted elsewhere in the image is found, a clean image is not."""

import numpy as np

from forgery_jax.forensics import keypoints


def _textured(seed: int, shape=(256, 384)) -> np.ndarray:
  """A photo-like image: smoothed noise at several scales, so SIFT finds distinct keypoints."""
  import cv2  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  img = np.zeros(shape, np.float32)
  for scale in (2, 4, 8, 16):
    small = rng.normal(size=(shape[0] // scale + 1, shape[1] // scale + 1)).astype(np.float32)
    img += cv2.resize(small, shape[::-1], interpolation=cv2.INTER_CUBIC)[:shape[0], :shape[1]]
  img = (img - img.min()) / (img.max() - img.min()) * 255
  return np.repeat(img.astype(np.uint8)[..., None], 3, axis=-1)


def test_a_copied_region_is_found_and_a_clean_image_is_not():
  clean = _textured(0)
  forged = clean.copy()
  forged[150:230, 250:350] = clean[20:100, 30:130]  # copy-move: 80 x 100 pixels moved
  pairs_clean, inliers_clean = np.expm1(keypoints.copy_move_evidence(clean))
  pairs_forged, inliers_forged = np.expm1(keypoints.copy_move_evidence(forged))
  assert inliers_forged >= 10, (pairs_forged, inliers_forged)
  assert inliers_forged > 5 * max(inliers_clean, 1)
  assert pairs_forged > pairs_clean


def test_evidence_is_a_fixed_length_vector_even_without_keypoints():
  for image in (np.zeros((64, 64, 3), np.uint8), np.full((3000, 20, 3), 128, np.uint8)):
    e = keypoints.copy_move_evidence(image)
    assert e.shape == (keypoints.NUM_FEATURES,) and e.dtype == np.float32
    np.testing.assert_array_equal(e, 0)

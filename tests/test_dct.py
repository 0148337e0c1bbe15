"""The block DCT features: JPEG's transform, the quantisation steps found from decoded pixels, and
a region off the image's earlier grid standing out."""

import io

import cv2
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from forgery_jax import jpeg
from forgery_jax.data import synthetic
from forgery_jax.forensics import dct


def _photo(h=256, w=384) -> np.ndarray:
  return synthetic.load_photo('skimage', 'astronaut.png')[:h, :w]


def _saved(rgb: np.ndarray, quality: int) -> np.ndarray:
  buffer = io.BytesIO()
  Image.fromarray(rgb).save(buffer, 'JPEG', quality=quality)
  return np.asarray(Image.open(buffer).convert('RGB'))


def test_block_dct_is_jpegs_transform_of_the_level_shifted_luma():
  rgb = np.random.default_rng(0).integers(0, 256, (1, 16, 24, 3), np.uint8)
  coef = np.asarray(dct.block_dct(jnp.asarray(rgb)))
  assert coef.shape == (1, 2, 3, 64)
  luma = rgb[0].astype(np.float64) @ np.array([0.299, 0.587, 0.114]) - 128.0
  want = cv2.dct(luma[8:16, 16:24].astype(np.float32))   # orthonormal DCT-II, as JPEG's FDCT
  np.testing.assert_allclose(coef[0, 1, 2].reshape(8, 8), want, atol=1e-3)


@pytest.mark.parametrize('quality', [60, 75, 85])
def test_steps_found_from_decoded_pixels_are_the_files_table(quality):
  rgb = _saved(_photo(), quality)
  coef = dct.block_dct(jnp.asarray(rgb[None]))[..., jnp.asarray(dct.ZIGZAG_AC[:12])]
  found = np.asarray(dct.quantisation_steps(coef))[0]
  table = np.asarray(jpeg.quality_tables(quality)[0]).reshape(64)[list(dct.ZIGZAG_AC[:12])]
  np.testing.assert_array_equal(found, table)
  # Never saved as JPEG: no step above 1 fits most frequencies.
  raw = dct.block_dct(jnp.asarray(_photo()[None]))[..., jnp.asarray(dct.ZIGZAG_AC[:12])]
  assert (np.asarray(dct.quantisation_steps(raw))[0] == 1).mean() >= 0.75


def test_a_region_off_the_earlier_grid_falls_off_it():
  # Saved at 50, a region moved by 4 pixels (off the 8 x 8 grid), then saved at 100: the steps
  # found are the first save's, and the moved region's blocks sit off them.
  first = _saved(_photo(), 50)
  forged = first.copy()
  forged[64:192, 96:224] = first[68:196, 100:228]
  final = _saved(forged, 100)
  features = np.asarray(dct.coefficient_features(jnp.asarray(final[None])))[0]
  assert features.shape == (32, 48, dct.FREQUENCIES * (dct.BINS + 1))
  per_frequency = features.reshape(32, 48, dct.FREQUENCIES, dct.BINS + 1)
  assert np.all(per_frequency[..., 1:].sum(-1) == 1)         # one bin per frequency and block
  on_grid = per_frequency[..., 0].mean(-1)
  inside, outside = on_grid[8:24, 12:28].mean(), np.delete(on_grid, np.s_[8:24], 0).mean()
  assert outside > 0.8 and inside < outside - 0.3, (inside, outside)


def test_frequencies_are_checked():
  with pytest.raises(ValueError, match='DCT frequencies 30'):
    dct.coefficient_features(jnp.zeros((1, 8, 8, 3), jnp.uint8), frequencies=30)

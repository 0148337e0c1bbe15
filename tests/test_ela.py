"""ELA matches the paper's PIL recipe (temp file, ImageChops, ImageEnhance) within 1 grey level."""

import numpy as np
from PIL import Image, ImageChops, ImageEnhance
import pytest

from forgery_jax import image_io
from forgery_jax.forensics import ela
from tests.conftest import shared_path


def pil_reference(path, tmp_path, quality=90) -> np.ndarray:
  """The paper's recipe, verbatim: save to disk, reopen, difference, brighten by 255/max."""
  original = Image.open(path).convert('RGB')
  resaved_path = tmp_path / 'resaved.jpg'
  original.save(resaved_path, 'JPEG', quality=quality)
  resaved = Image.open(resaved_path)
  diff = ImageChops.difference(original, resaved)
  max_diff = max(ex[1] for ex in diff.getextrema()) or 1
  return np.asarray(ImageEnhance.Brightness(diff).enhance(255.0 / max_diff))


def _check(path, tmp_path, quality=90):
  ours = ela.ela(image_io.load_rgb(str(path)), quality)
  ref = pil_reference(path, tmp_path, quality)
  assert ours.shape == ref.shape and ours.dtype == np.uint8
  assert np.abs(ours.astype(int) - ref).max() <= 1


@pytest.mark.parametrize('quality', [75, 90, 95])
@pytest.mark.parametrize('seed', range(3))
def test_matches_pil_on_generated_images(tmp_path, seed, quality):
  rng = np.random.default_rng(seed)
  h, w = rng.integers(17, 200, 2)
  # Smooth gradients plus noise: JPEG-like content with a non-trivial ELA.
  yy, xx = np.mgrid[:h, :w]
  img = (np.stack([yy * 255 / h, xx * 255 / w, (yy + xx) * 127 / (h + w)], -1)
         + rng.normal(0, 8, (h, w, 3)))
  path = tmp_path / 'gen.png'
  Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
  _check(path, tmp_path, quality)


def test_matches_pil_on_real_casia1_photos(tmp_path):
  root = shared_path('datasets', 'casia1')
  files = sorted((root / 'Au').iterdir())[::200] + sorted((root / 'Sp').iterdir())[::200]
  assert len(files) >= 8
  for path in files:
    _check(path, tmp_path)


def test_scales_to_full_range_and_handles_zero_difference():
  rng = np.random.default_rng(0)
  noisy = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
  assert ela.ela(noisy).max() == 255
  flat = np.full((16, 16, 3), 128, np.uint8)  # JPEG reproduces a flat grey exactly
  out = ela.ela(flat)
  assert out.dtype == np.uint8 and out.max() == 0


@pytest.mark.parametrize('bad', [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32),
                                 np.zeros((8, 8, 4), np.uint8)])
def test_rejects_non_rgb_uint8(bad):
  with pytest.raises(ValueError, match='uint8 RGB'):
    ela.ela(bad)


def test_unreadable_file_names_the_file(tmp_path):
  bad = tmp_path / 'not_an_image.jpg'
  bad.write_text('hello')
  with pytest.raises(ValueError, match='not_an_image.jpg'):
    image_io.load_rgb(str(bad))


def test_opencv_round_trip_is_bit_identical_to_pil():
  """ELA encodes with OpenCV; the paper's recipe with PIL: both must give the same bytes."""
  import cv2  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = [np.clip(rng.normal(128, 40, (37, 53, 3)), 0, 255).astype(np.uint8)]
  root = shared_path('datasets', 'casia1')
  images += [image_io.load_rgb(str(p)) for p in sorted((root / 'Au').iterdir())[::100]]
  images += [image_io.load_rgb(str(p)) for p in sorted((root / 'Sp').iterdir())[::100]]
  for rgb in images:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    np.testing.assert_array_equal(image_io.jpeg_roundtrip_bgr(bgr, 90)[..., ::-1],
                                  image_io.jpeg_roundtrip(rgb, 90))

"""The JAX JPEG codec against libjpeg (PIL and OpenCV), and ELA on the device against the host's."""

import glob
import io
import os
import re

import cv2
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from forgery_jax import image_io
from forgery_jax import jpeg
from forgery_jax.data import synthetic
from forgery_jax.forensics import ela
from tests.conftest import SHARED


def _photos(n: int = 4) -> list[np.ndarray]:
  """Real photographs: CASIA v1 authentic files where present, else the bundled ones (cropped)."""
  files = sorted(glob.glob(os.path.join(SHARED, 'datasets', 'casia1', 'Au', '*.jpg')))[:n]
  if files:
    return [np.asarray(Image.open(f).convert('RGB')) for f in files]
  return [synthetic.load_photo(p, f)[:200, :300] for p, f in synthetic.PHOTOS[:n]]


def _pil(rgb, quality, subsampling=2):
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, 'JPEG', quality=quality, subsampling=subsampling)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert('RGB'))


def _opencv(rgb, quality):
  ok, buf = cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
  assert ok
  return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def test_quantiser_division_is_integer_floor_division():
  """CPUs divide through float32 and correct by one: equal to `//` for every divisor a table
  gives (8 x 1 to 8 x 255) and every dividend the DCT gives (|coefficient| + divisor / 2)."""
  a = np.arange(0, 1 << 16, dtype=np.int32)
  for d in range(8, 8 * 255 + 1, 8):
    for divide in (jpeg._floor_divide_through_float32, jpeg._floor_divide):
      got = np.asarray(divide(jnp.asarray(a), jnp.int32(d)))
      np.testing.assert_array_equal(got, a // d, err_msg=f'{divide.__name__}, divisor {d}')


def test_colour_conversion_by_product_equals_the_sums():
  """The CPU's integer product and the GPU's elementwise sums give libjpeg's fixed-point sums at
  every corner of the RGB cube and on random pixels."""
  corners = np.array(np.meshgrid(*[[0, 1, 127, 128, 254, 255]] * 3)).reshape(3, -1).T
  rgb = np.concatenate([corners, np.random.default_rng(0).integers(0, 256, (4096, 3))]).astype(np.int32)
  r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
  expected = (19595 * r + 38470 * g + 7471 * b, -11059 * r - 21709 * g + 32768 * b,
              32768 * r - 27439 * g - 5329 * b)
  for convert in (jpeg._ycc_by_product, jpeg._ycc_by_sums):
    for got, want in zip(convert(jnp.asarray(rgb)), expected):
      np.testing.assert_array_equal(np.asarray(got), want, err_msg=convert.__name__)


def test_a_gpu_program_keeps_integer_division_and_sums():
  """Lowered for a GPU, the codec keeps the integer division and has no matrix product (the
  CPU's float32 division and product cost it 12 % there); lowered for a CPU, the reverse."""
  x = jnp.zeros((2, 16, 16, 3), jnp.uint8)
  traced = jax.jit(lambda im, q: jpeg.round_trip(im, q)).trace(x, jnp.array([50, 90], jnp.int32))
  ops = lambda platform: set(re.findall(r'stablehlo\.(\w+)', traced.lower(lowering_platforms=(platform,)).as_text()))
  gpu, cpu = ops('cuda'), ops('cpu')
  assert 'divide' in gpu and not {'dot_general', 'floor'} & gpu, sorted(gpu)
  assert {'dot_general', 'floor'} <= cpu, sorted(cpu)


@pytest.mark.parametrize('quality', [50, 60, 70, 75, 80, 85, 90, 95, 100])
def test_round_trip_equals_libjpeg_on_photos(quality):
  for photo in _photos():
    ours = np.asarray(jpeg.round_trip(photo[None], quality))[0]
    np.testing.assert_array_equal(ours, _pil(photo, quality))
    np.testing.assert_array_equal(ours, _opencv(photo, quality))


@pytest.mark.parametrize('sizes', [
    ((1, 7, 8, 24, 25), (5, 9, 24)),
    pytest.param(((1, 2, 7, 8, 9, 16, 17, 24, 25, 40), (5, 8, 9, 16, 17, 24, 33)),
                 marks=pytest.mark.slow)])
def test_every_size_from_five_pixels_wide(sizes):
  """Edges as libjpeg pads them (bottom rows, the chroma's last row, right columns). Images of
  1-4 columns differ by up to 2 grey levels at the right edge (libjpeg reads decoded padding)."""
  photo = _photos(1)[0]
  heights, widths = sizes
  for h in heights:
    for w in widths:
      im = np.ascontiguousarray(photo[:h, :w])
      np.testing.assert_array_equal(np.asarray(jpeg.round_trip(im[None], 75))[0], _pil(im, 75),
                                    err_msg=f'{h}x{w}')


def test_grid_offset_is_a_save_of_the_shifted_image():
  im = np.ascontiguousarray(_photos(1)[0][:64, :80])
  aligned = np.asarray(jpeg.round_trip(im[None], 80))[0]
  for dy, dx in ((3, 5), (8, 0), (0, 13), (15, 15)):
    shifted = np.pad(im, ((dy, 0), (dx, 0), (0, 0)), mode='edge')
    ours = np.asarray(jpeg.round_trip(im[None], 80, grid_offset=(dy, dx)))[0]
    np.testing.assert_array_equal(ours, _pil(shifted, 80)[dy:, dx:])
    assert (ours != aligned).mean() > 0.3  # the grid really moved
  np.testing.assert_array_equal(
      np.asarray(jpeg.round_trip(im[None], 80, grid_offset=jnp.zeros(2, jnp.int32)))[0], aligned)


def test_per_image_qualities_offsets_and_tables_of_a_file():
  im = np.ascontiguousarray(_photos(1)[0][:48, :64])
  out = np.asarray(jpeg.round_trip(np.stack([im, im]), np.array([60, 95]),
                                   grid_offset=np.array([[0, 0], [3, 5]])))
  np.testing.assert_array_equal(out[0], _pil(im, 60))
  np.testing.assert_array_equal(out[1], np.asarray(jpeg.round_trip(im[None], 95, grid_offset=(3, 5)))[0])
  buf = io.BytesIO()
  Image.fromarray(im).save(buf, 'JPEG', quality=83)
  buf.seek(0)
  with Image.open(buf) as f:
    tables, decoded = f.quantization, np.asarray(f.convert('RGB'))
  np.testing.assert_array_equal(np.asarray(jpeg.round_trip(im[None], tables=(tables[0], tables[1])))[0],
                                decoded)
  np.testing.assert_array_equal(np.asarray(jpeg.round_trip(im[None], 80, subsampling='4:4:4'))[0],
                                _pil(im, 80, subsampling=0))


def test_inside_jit_with_traced_quality_and_bad_arguments():
  im = _photos(1)[0][:32, :32]
  fn = jax.jit(lambda x, q: jpeg.round_trip(x, q))
  np.testing.assert_array_equal(np.asarray(fn(im[None], jnp.int32(70)))[0], _pil(im, 70))
  with pytest.raises(ValueError, match=r'\(N, H, W, 3\)'):
    jpeg.round_trip(im, 70)
  with pytest.raises(ValueError, match='subsampling'):
    jpeg.round_trip(im[None], 70, subsampling='4:1:1')
  luma, chroma = jpeg.quality_tables(np.array([1, 50, 100]))
  assert luma.shape == (3, 64) and int(luma[2].max()) == 1 and int(luma[0].min()) > 1
  assert int(chroma[1, 0]) == 17  # quality 50 is the standard table itself


def test_ela_on_the_device_equals_the_stored_recipe():
  for photo in _photos(3):
    for quality in (75, 90, 95):
      np.testing.assert_array_equal(np.asarray(ela.ela_batch(photo[None], quality))[0],
                                    ela.ela(photo, quality))
  assert image_io.jpeg_roundtrip  # the host path stays the builders' recipe


def test_codec_speed_compares_two_versions_and_refuses_different_pixels(tmp_path):
  """experiments.codec_speed: a version giving the same pixels is timed; one that differs stops it."""
  from experiments import codec_speed  # pylint: disable=g-import-not-at-top
  for i in range(2):
    Image.fromarray(np.random.default_rng(i).integers(0, 256, (32, 48, 3), dtype=np.uint8)).save(
        tmp_path / f'{i}.png')
  args = ['--batch', '4', '--rounds', '1', '--photos', str(tmp_path / '*.png')]
  rates = codec_speed.main(args + ['--other', jpeg.__file__])
  assert set(rates) == {'quality 90', 'a quality per image'}
  assert all(r > 0 for setting in rates.values() for r in setting.values())
  other = tmp_path / 'jpeg_other.py'
  other.write_text('from forgery_jax import jpeg\n'
                   'def round_trip(images, quality):\n'
                   '  return jpeg.round_trip(images, quality) // 2\n')
  with pytest.raises(SystemExit, match='different pixels'):
    codec_speed.main(args + ['--other', str(other)])
  (tmp_path / 'empty.py').write_text('')
  for path, problem in ((tmp_path / 'missing.py', 'not a Python file'), (tmp_path / '0.png', 'not a Python file'),
                        (tmp_path / 'empty.py', 'has no round_trip')):
    with pytest.raises(SystemExit, match=f'{path}: {problem}'):
      codec_speed.main(args + ['--other', str(path)])

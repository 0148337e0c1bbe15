"""JPEG in JAX: the baseline codec's lossy steps, jitted over a batch, on any device.

`round_trip(images, quality)` is what saving (N, H, W, 3) uint8 RGB images as JPEG and decoding
them gives, computed as libjpeg(-turbo) computes it, so that the data pipeline can compress inside
the jitted step (forgery synthesis, ELA at any quality) instead of calling a host codec:

* RGB -> YCbCr with libjpeg's 16-bit fixed-point coefficients (jccolor.c);
* 4:2:0: chroma averaged over 2x2 with libjpeg's alternating 1, 2 rounding bias (jcsample.c),
  after edge replication to whole 16x16 MCUs;
* the integer "islow" forward DCT (jfdctint.c), quantisation by the IJG tables scaled by quality
  (jcparam.c; or any tables given), rounded half away from zero;
* dequantisation, the integer "islow" inverse DCT (jidctint.c) with its clamp to [0, 255];
* "fancy" triangular chroma upsampling (jdsample.c) and YCbCr -> RGB (jdcolor.c).

Huffman coding is lossless and is skipped. `grid_offset=(dy, dx)` places the 8x8 (16x16 for 4:2:0)
block grid dy rows and dx columns into the image, so a pasted region can carry a grid that is not
aligned with the final save's. Measured against PIL and OpenCV on real photos: see
`tests/test_jpeg.py` and `python -m experiments.jpeg_agreement`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

# ITU-T T.81 Annex K, row-major.
STANDARD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.int32)
STANDARD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99], np.int32)
SUBSAMPLINGS = ('4:2:0', '4:4:4')

# jfdctint.c / jidctint.c fixed-point constants (CONST_BITS = 13).
_CONST_BITS, _PASS1_BITS = 13, 2
_F0298, _F0390, _F0541, _F0765 = 2446, 3196, 4433, 6270
_F0899, _F1175, _F1501, _F1847 = 7373, 9633, 12299, 15137
_F1961, _F2053, _F2562, _F3072 = 16069, 16819, 20995, 25172


def quality_tables(quality) -> tuple[jax.Array, jax.Array]:
  """The IJG luminance and chrominance tables at `quality` (1-100; a scalar or a (N,) array):
  scale = 5000 / q below 50, else 200 - 2 q; entry = clip((standard * scale + 50) // 100, 1, 255)."""
  q = jnp.clip(jnp.asarray(quality, jnp.int32), 1, 100)
  scale = jnp.where(q < 50, 5000 // q, 200 - 2 * q)[..., None]
  scaled = lambda t: jnp.clip((jnp.asarray(t) * scale + 50) // 100, 1, 255).astype(jnp.int32)
  return scaled(STANDARD_LUMA), scaled(STANDARD_CHROMA)


def _descale(x, n):
  return (x + (1 << (n - 1))) >> n


def _fdct_1d(d, first_pass: bool):
  """jfdctint.c on 8 arrays (the samples along one axis); returns the 8 coefficients."""
  tmp0, tmp7 = d[0] + d[7], d[0] - d[7]
  tmp1, tmp6 = d[1] + d[6], d[1] - d[6]
  tmp2, tmp5 = d[2] + d[5], d[2] - d[5]
  tmp3, tmp4 = d[3] + d[4], d[3] - d[4]
  tmp10, tmp13 = tmp0 + tmp3, tmp0 - tmp3
  tmp11, tmp12 = tmp1 + tmp2, tmp1 - tmp2
  shift = _CONST_BITS - _PASS1_BITS if first_pass else _CONST_BITS + _PASS1_BITS
  out = [None] * 8
  if first_pass:
    out[0], out[4] = (tmp10 + tmp11) << _PASS1_BITS, (tmp10 - tmp11) << _PASS1_BITS
  else:
    out[0], out[4] = _descale(tmp10 + tmp11, _PASS1_BITS), _descale(tmp10 - tmp11, _PASS1_BITS)
  z1 = (tmp12 + tmp13) * _F0541
  out[2] = _descale(z1 + tmp13 * _F0765, shift)
  out[6] = _descale(z1 - tmp12 * _F1847, shift)
  z1, z2, z3, z4 = tmp4 + tmp7, tmp5 + tmp6, tmp4 + tmp6, tmp5 + tmp7
  z5 = (z3 + z4) * _F1175
  tmp4, tmp5, tmp6, tmp7 = tmp4 * _F0298, tmp5 * _F2053, tmp6 * _F3072, tmp7 * _F1501
  z1, z2, z3, z4 = z1 * -_F0899, z2 * -_F2562, z3 * -_F1961 + z5, z4 * -_F0390 + z5
  out[7] = _descale(tmp4 + z1 + z3, shift)
  out[5] = _descale(tmp5 + z2 + z4, shift)
  out[3] = _descale(tmp6 + z2 + z3, shift)
  out[1] = _descale(tmp7 + z1 + z4, shift)
  return out


def _idct_1d(d, first_pass: bool):
  """jidctint.c on 8 arrays (dequantised coefficients along one axis); returns 8 outputs."""
  z2, z3 = d[2], d[6]
  z1 = (z2 + z3) * _F0541
  tmp2, tmp3 = z1 - z3 * _F1847, z1 + z2 * _F0765
  tmp0, tmp1 = (d[0] + d[4]) << _CONST_BITS, (d[0] - d[4]) << _CONST_BITS
  tmp10, tmp13, tmp11, tmp12 = tmp0 + tmp3, tmp0 - tmp3, tmp1 + tmp2, tmp1 - tmp2
  tmp0, tmp1, tmp2, tmp3 = d[7], d[5], d[3], d[1]
  z1, z2, z3, z4 = tmp0 + tmp3, tmp1 + tmp2, tmp0 + tmp2, tmp1 + tmp3
  z5 = (z3 + z4) * _F1175
  tmp0, tmp1, tmp2, tmp3 = tmp0 * _F0298, tmp1 * _F2053, tmp2 * _F3072, tmp3 * _F1501
  z1, z2, z3, z4 = z1 * -_F0899, z2 * -_F2562, z3 * -_F1961 + z5, z4 * -_F0390 + z5
  tmp0, tmp1, tmp2, tmp3 = tmp0 + z1 + z3, tmp1 + z2 + z4, tmp2 + z2 + z3, tmp3 + z1 + z4
  shift = _CONST_BITS - _PASS1_BITS if first_pass else _CONST_BITS + _PASS1_BITS + 3
  return [_descale(tmp10 + tmp3, shift), _descale(tmp11 + tmp2, shift),
          _descale(tmp12 + tmp1, shift), _descale(tmp13 + tmp0, shift),
          _descale(tmp13 - tmp0, shift), _descale(tmp12 - tmp1, shift),
          _descale(tmp11 - tmp2, shift), _descale(tmp10 - tmp3, shift)]


def _separable(blocks, fn):
  """fn along the columns of every 8x8 block (the rows of the block's (8, 8) array), then the
  rows: blocks (..., 8, 8) int32, first index the row within the block."""
  rows = fn([blocks[..., k] for k in range(8)], True)          # along each row
  blocks = jnp.stack(rows, -1)
  cols = fn([blocks[..., k, :] for k in range(8)], False)      # along each column
  return jnp.stack(cols, -2)


def _idct_separable(blocks):
  """jidctint.c's order: the columns first (pass 1), then the rows."""
  cols = _idct_1d([blocks[..., k, :] for k in range(8)], True)
  blocks = jnp.stack(cols, -2)
  rows = _idct_1d([blocks[..., k] for k in range(8)], False)
  return jnp.stack(rows, -1)


def _to_blocks(plane):
  """(N, H, W) -> (N, H/8, W/8, 8, 8)."""
  n, h, w = plane.shape
  return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(0, 1, 3, 2, 4)


def _from_blocks(blocks):
  n, bh, bw = blocks.shape[:3]
  return blocks.transpose(0, 1, 3, 2, 4).reshape(n, bh * 8, bw * 8)


def _floor_divide_through_float32(a, d):
  """a // d for int32 a >= 0 and d > 0 below 2 ** 22, exactly: the floor of a float32 quotient,
  corrected by one either way where a compiler's division is not correctly rounded."""
  k = jnp.floor(a.astype(jnp.float32) / d.astype(jnp.float32)).astype(jnp.int32)
  k = k - (k * d > a).astype(jnp.int32)
  return k + ((k + 1) * d <= a).astype(jnp.int32)


def _floor_divide(a, d):
  """a // d for int32 a >= 0 and d > 0 below 2 ** 22. Integer division by a traced divisor (a
  quality per image, a file's tables) does not vectorise on CPUs and was half of the codec's time
  there, so CPUs divide through float32. Elsewhere the integer division is kept: with the colour
  conversion's sums (`_ycc_by_sums`) the codec runs 12 % faster on a GPU than with the CPU's two
  paths (README, the GPU rows). Both give the same integers."""
  return jax.lax.platform_dependent(a, d, cpu=_floor_divide_through_float32, default=jnp.floor_divide)


def _lossy_plane(plane, table):
  """Level shift, FDCT, quantisation by `table` (N, 64), dequantisation, IDCT, clamp: the
  samples a decoder gets back. plane: (N, H, W) int32 samples, H and W multiples of 8."""
  blocks = _to_blocks(plane - 128)
  coef = _separable(blocks, _fdct_1d)                     # scaled by 8, as libjpeg's
  q = table.reshape(-1, 1, 1, 8, 8)
  divisor = q << 3
  quantised = jnp.sign(coef) * _floor_divide(jnp.abs(coef) + (divisor >> 1), divisor)
  out = _idct_separable(quantised * q)
  return jnp.clip(_from_blocks(out) + 128, 0, 255)


_RGB_TO_YCC = np.array([[19595, -11059, 32768], [38470, -21709, -27439], [7471, 32768, -5329]],
                       np.int32)


def _ycc_by_product(rgb):
  """libjpeg's three 16-bit fixed-point weighted sums as one integer matrix product (exact in
  int32): XLA's CPU compiler computes a product's operand once, where it would fuse whatever
  made the pixels (a forged image) into each of the three sums and compute it three times."""
  lin = jnp.einsum('...c,cd->...d', rgb, jnp.asarray(_RGB_TO_YCC), preferred_element_type=jnp.int32)
  return lin[..., 0], lin[..., 1], lin[..., 2]


def _ycc_by_sums(rgb):
  """The same sums elementwise, for every backend but the CPU (see `_floor_divide`)."""
  r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
  return tuple(wr * r + wg * g + wb * b for wr, wg, wb in _RGB_TO_YCC.T.tolist())


def _rgb_to_ycc(rgb):
  lin_y, lin_cb, lin_cr = jax.lax.platform_dependent(rgb, cpu=_ycc_by_product, default=_ycc_by_sums)
  half = 1 << 15
  y = (lin_y + half) >> 16
  cb = (lin_cb + (128 << 16) + half - 1) >> 16
  cr = (lin_cr + (128 << 16) + half - 1) >> 16
  return y, cb, cr


def _ycc_to_rgb(y, cb, cr):
  half = 1 << 15
  cb, cr = cb - 128, cr - 128
  r = y + ((91881 * cr + half) >> 16)
  g = y + ((-22554 * cb + half - 46802 * cr) >> 16)
  b = y + ((116130 * cb + half) >> 16)
  return jnp.clip(jnp.stack([r, g, b], -1), 0, 255)


def _downsample(c):
  """jcsample.c h2v2_downsample: the 2x2 mean with a bias of 1, 2, 1, 2, ... along each row."""
  n, h, w = c.shape
  s = c.reshape(n, h // 2, 2, w // 2, 2).sum((2, 4))
  bias = jnp.where(jnp.arange(w // 2) % 2 == 0, 1, 2)
  return (s + bias) >> 2


def _neighbours(x, axis: int, size):
  """x shifted by one along `axis` both ways, the first and the `size`-th entries replicated
  (`size` may be traced); slices where it is the whole axis, index clamps otherwise."""
  n = x.shape[axis]
  if isinstance(size, int) and size == n:
    first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
    last = jax.lax.slice_in_dim(x, n - 1, n, axis=axis)
    before = jnp.concatenate([first, jax.lax.slice_in_dim(x, 0, n - 1, axis=axis)], axis)
    after = jnp.concatenate([jax.lax.slice_in_dim(x, 1, n, axis=axis), last], axis)
    return before, after
  i = jnp.arange(n)
  return (jnp.take(x, jnp.clip(i - 1, 0, size - 1), axis=axis),
          jnp.take(x, jnp.clip(i + 1, 0, size - 1), axis=axis))


def _replicate_beyond(x, axis: int, size):
  """Entries from `size` on replaced by the last one before it (`size` may be traced)."""
  n = x.shape[axis]
  if isinstance(size, int):
    if size == n:
      return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, n - size)
    return jnp.pad(jax.lax.slice_in_dim(x, 0, size, axis=axis), pad, mode='edge')
  return jnp.take(x, jnp.minimum(jnp.arange(n), size - 1), axis=axis)


def _upsample(c, hc, wc):
  """jdsample.c h2v2_fancy_upsample: the triangle filter over the chroma's first hc x wc samples
  (ceil of the image's size / 2), its edges replicated; (N, 2 Hc, 2 Wc) for (N, Hc, Wc) given."""
  n, rows, cols = c.shape
  up, down = _neighbours(c, 1, hc)
  colsums = jnp.stack([3 * c + up, 3 * c + down], 2).reshape(n, 2 * rows, cols)
  left, right = _neighbours(colsums, 2, wc)
  # The first and the last column, (4 * colsum + 8) >> 4 and (4 * colsum + 7) >> 4, are what the
  # replicated neighbour gives.
  out = jnp.stack([(3 * colsums + left + 8) >> 4, (3 * colsums + right + 7) >> 4], 3)
  return out.reshape(n, 2 * rows, 2 * cols)


def _codec(frame, height, width, luma, chroma, subsampling: str):
  """The codec on (N, Hf, Wf, 3) int32 frames (Hf, Wf multiples of the MCU) holding images of
  `height` x `width` pixels (traced values allowed) whose block grid starts at (0, 0). Beyond the
  image the frame is padded as libjpeg pads: columns and rows replicated to whole MCUs, and for
  4:2:0 rows only to whole pairs before the 2x2 chroma mean, then the chroma's last row."""
  frame = _replicate_beyond(_replicate_beyond(frame, 1, height), 2, width)
  y, cb, cr = _rgb_to_ycc(frame)
  y = _lossy_plane(y, luma)
  if subsampling == '4:4:4':
    return _ycc_to_rgb(y, _lossy_plane(cb, chroma), _lossy_plane(cr, chroma))
  hc, wc = (height + 1) // 2, (width + 1) // 2
  cb, cr = (_upsample(_lossy_plane(_replicate_beyond(_downsample(c), 1, hc), chroma), hc, wc)
            for c in (cb, cr))
  return _ycc_to_rgb(y, cb, cr)


def _mcu(subsampling: str) -> int:
  return 16 if subsampling == '4:2:0' else 8


@functools.partial(jax.jit, static_argnames=('subsampling',))
def _aligned(images, luma, chroma, subsampling):
  n, h, w = images.shape[:3]
  m = _mcu(subsampling)
  frame = jnp.pad(images.astype(jnp.int32), [(0, 0), (0, -h % m), (0, -w % m), (0, 0)])
  return _codec(frame, h, w, luma, chroma, subsampling)[:, :h, :w].astype(jnp.uint8)


def _shifted_batch(images, luma, chroma, offset, subsampling):
  """(N, H, W, 3) images whose grid starts `offset` = (dy, dx) pixels in: coded as the images
  after that many replicated rows and columns, inside a frame of a fixed size (any offset
  compiles once), then cut out again."""
  n, h, w = images.shape[:3]
  m = _mcu(subsampling)
  dy, dx = offset[0] % m, offset[1] % m
  hf, wf = h + m + (-(h + m) % m), w + m + (-(w + m) % m)
  padded = jnp.pad(images, [(0, 0), (m, hf), (m, wf), (0, 0)], mode='edge')
  frame = jax.lax.dynamic_slice(padded, (0, m - dy, m - dx, 0), (n, hf, wf, 3))
  out = _codec(frame, h + dy, w + dx, luma, chroma, subsampling)
  return jax.lax.dynamic_slice(out, (0, dy, dx, 0), (n, h, w, 3))


@functools.partial(jax.jit, static_argnames=('subsampling',))
def _shifted(images, luma, chroma, offsets, subsampling):
  images = images.astype(jnp.int32)
  if offsets.ndim == 1:  # one offset for the batch
    return _shifted_batch(images, luma, chroma, offsets, subsampling).astype(jnp.uint8)
  one = lambda x, l, c, o: _shifted_batch(x[None], l[None], c[None], o, subsampling)[0]
  return jax.vmap(one)(images, luma, chroma, offsets).astype(jnp.uint8)


def round_trip(images, quality=None, *, tables=None, subsampling: str = '4:2:0',
               grid_offset=(0, 0)) -> jax.Array:
  """JPEG-compress and decode uint8 RGB images (N, H, W, 3), as libjpeg at default settings.

  quality: 1-100, a scalar or one per image (N,); or `tables=(luma, chroma)`, 64 entries each in
  row-major order (or (N, 64) per image). grid_offset: (dy, dx) for the batch, or (N, 2) per image
  (slower: one frame per image);
  the block grid starts dy rows and dx columns into the image (modulo the MCU: 16 for 4:2:0, 8
  for 4:4:4): the result is that of coding the image after dy replicated rows and dx replicated
  columns, then cutting them off. Callable inside jit (traced qualities, tables and offsets).
  """
  if subsampling not in SUBSAMPLINGS:
    raise ValueError(f'subsampling must be one of {SUBSAMPLINGS}, got {subsampling!r}')
  images = jnp.asarray(images)
  if images.ndim != 4 or images.shape[-1] != 3:
    raise ValueError(f'round_trip needs (N, H, W, 3) images, got shape {images.shape}')
  if tables is None:
    if quality is None:
      raise ValueError('give a quality or tables=(luma, chroma)')
    luma, chroma = quality_tables(quality)
  else:
    luma, chroma = (jnp.asarray(t, jnp.int32) for t in tables)
  n = images.shape[0]
  luma = jnp.broadcast_to(luma.reshape(-1, 64), (n, 64))
  chroma = jnp.broadcast_to(chroma.reshape(-1, 64), (n, 64))
  if isinstance(grid_offset, tuple) and grid_offset == (0, 0):
    return _aligned(images, luma, chroma, subsampling)
  offsets = jnp.asarray(grid_offset, jnp.int32)
  if offsets.shape not in ((2,), (n, 2)):
    raise ValueError(f'grid_offset must be (dy, dx) or one pair per image, got shape {offsets.shape}')
  return _shifted(images, luma, chroma, offsets, subsampling)

"""WLD features against a per-pixel reference written straight from the definitions."""

import math

import numpy as np

from forgery_jax.forensics import wld


def _reference_codes(channel: np.ndarray, p: wld.WldParams) -> np.ndarray:
  h, w = channel.shape
  out = np.zeros((h - 2, w - 2), np.int64)
  for y in range(1, h - 1):
    for x in range(1, w - 1):
      c = float(channel[y, x])
      diff = sum(float(channel[y + dy, x + dx]) - c
                 for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
      xi = math.atan(diff / max(c, 1.0))
      theta = math.atan2(float(channel[y + 1, x]) - float(channel[y - 1, x]),
                         float(channel[y, x - 1]) - float(channel[y, x + 1])) + math.pi
      t = int(math.floor(theta / (2 * math.pi / p.orientations) + 0.5)) % p.orientations
      n = p.bands * p.bins_per_band
      fine = min(max(int(math.floor((xi + math.pi / 2) / math.pi * n)), 0), n - 1)
      out[y - 1, x - 1] = t * n + fine
  return out


def _reference_features(rgb: np.ndarray, p: wld.WldParams) -> np.ndarray:
  r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
  cb = np.clip(np.round(128 - 0.168736 * r - 0.331264 * g + 0.5 * b), 0, 255)
  cr = np.clip(np.round(128 + 0.5 * r - 0.418688 * g - 0.081312 * b), 0, 255)
  parts = []
  for channel in (cb, cr):
    codes = _reference_codes(channel, p)
    bh, bw = codes.shape[0] // p.grid[0], codes.shape[1] // p.grid[1]
    for by in range(p.grid[0]):
      for bx in range(p.grid[1]):
        block = codes[by * bh:(by + 1) * bh, bx * bw:(bx + 1) * bw]
        parts.append(np.bincount(block.ravel(), minlength=p.bins) / block.size)
  return np.concatenate(parts)


def test_matches_reference_on_random_images():
  rng = np.random.default_rng(0)
  params = wld.WldParams(orientations=8, bands=3, bins_per_band=5, grid=(2, 2))
  images = rng.integers(0, 256, (3, 19, 23, 3), dtype=np.uint8)
  images[1] = images[1] // 16 * 16  # flat patches and zeros: ties in the orientation, p_c = 0
  images[2, :5] = 0
  ours = wld.extract(images, params, batch_size=2)
  ref = np.stack([_reference_features(im, params) for im in images])
  assert ours.shape == (3, params.length()) == (3, 960)
  # float32 vs float64 may move a pixel that lies on a bin edge; allow one such pixel per block.
  block_pixels = (17 // 2) * (21 // 2)
  np.testing.assert_allclose(ours, ref, atol=1.01 / block_pixels)
  assert (np.abs(ours - ref) > 1e-6).mean() < 0.01
  np.testing.assert_allclose(ours.reshape(3, -1, params.bins).sum(-1), 1.0, rtol=1e-5)


def test_codes_match_reference_exactly_on_integer_channels():
  rng = np.random.default_rng(1)
  p = wld.WldParams()
  channel = rng.integers(0, 256, (16, 16)).astype(np.float32)
  ours = np.asarray(wld.codes(channel, p))
  ref = _reference_codes(channel, p)
  assert (ours != ref).mean() < 0.01


def test_feature_length_follows_params():
  p = wld.WldParams(orientations=8, bands=6, bins_per_band=10, grid=(1, 1))
  assert p.length() == 960
  out = wld.extract(np.zeros((1, 8, 8, 3), np.uint8), p)
  assert out.shape == (1, 960)
  # A flat image: xi = 0 (middle bin), theta' = pi -> orientation T/2.
  flat_bin = (p.orientations // 2) * p.bands * p.bins_per_band + (p.bands * p.bins_per_band) // 2
  assert out[0, flat_bin] == 1.0 and out[0, p.bins + flat_bin] == 1.0

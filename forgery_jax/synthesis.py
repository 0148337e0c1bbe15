"""Forgeries made on the accelerator, inside the jitted training step: every batch is new.

`synthesise(batch, key, cfg)` turns some authentic rows of a batch of native-resolution crops
into forgeries with masks, deterministically from `key` (the run's seed folded with the step, so a
resumed run makes the same ones):

* the region: a random polygon (a star-shaped outline of 5-12 vertices) or an object-like blob
  (smoothed noise), covering `cfg.area` of the image (1-30 %), its edge feathered (Gaussian sigma
  0, 1 or 2 pixels);
* copy-move: the region's content comes from elsewhere in the same image, moved, optionally
  rotated (up to `cfg.rotate` degrees), scaled (`cfg.scale`) and flipped, sampled bilinearly;
* splicing: it comes from another image of the batch, which first carries its own JPEG history
  (a quality from `cfg.donor_quality`, its block grid at a random offset, one per batch; none with
  `cfg.donor_jpeg=False`) and is optionally resampled (`cfg.scale`);
* with probability `cfg.region_edit_share`, the pasted content is also edited as a forger
  matching it to its new place would: blurred, given noise, its contrast and brightness changed
  (each by a random amount, from none), so that a region differs from its photo in sharpness,
  noise and tone as well as in content;
* then every authentic and synthesised row (and the real tampered ones too with
  `cfg.reencode_real`) goes through one random last save: a JPEG quality from
  `cfg.final_quality`, or none (lossless) with probability `cfg.lossless_share`, so that the last
  history says nothing about the class;
* with probability `cfg.second_save_share`, a saved row is saved once more at another quality from
  `cfg.final_quality`: a forgery released as a JPEG and then saved again by whoever passed it on
  (as CASIA v1's JPEG-randomised test files were) has been through two saves since the paste.

Batches hold 'image' (N, H, W, 3) uint8, 'mask' (N, H, W, 1) uint8, 'has_mask' and 'label'.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from forgery_jax import jpeg


def _uniform(key, shape, lo, hi):
  return jax.random.uniform(key, shape, minval=lo, maxval=hi)


def region_masks(key, n: int, h: int, w: int, area, polygon_share: float):
  """(alpha (N, H, W) in {0, 1}, centre (N, 2) as (y, x), radius (N,)) of random regions."""
  k_area, k_centre, k_kind, k_radii, k_noise, k_angle = jax.random.split(key, 6)
  fraction = jnp.exp(_uniform(k_area, (n,), np.log(area[0]), np.log(area[1])))  # log-uniform
  radius = jnp.sqrt(fraction * h * w / np.pi)
  margin = jnp.minimum(radius, min(h, w) / 2 - 1)
  cy = _uniform(k_centre, (n,), 0, 1) * (h - 2 * margin) + margin
  cx = _uniform(jax.random.fold_in(k_centre, 1), (n,), 0, 1) * (w - 2 * margin) + margin
  yy = jnp.arange(h, dtype=jnp.float32)[None, :, None] - cy[:, None, None]
  xx = jnp.arange(w, dtype=jnp.float32)[None, None, :] - cx[:, None, None]
  dist = jnp.sqrt(yy ** 2 + xx ** 2)
  theta = jnp.arctan2(yy, xx) + np.pi + _uniform(k_angle, (n, 1, 1), 0, 2 * np.pi)
  # Polygon: radii at 12 equally spaced angles (a star-shaped outline), linear in between; the
  # number of distinct vertices varies as some radii repeat their neighbour's.
  vertices = 12
  radii = radius[:, None] * _uniform(k_radii, (n, vertices), 0.6, 1.4)
  pos = (theta / (2 * np.pi) * vertices) % vertices
  outline = 0.0
  for v in range(vertices):  # linear between neighbouring vertices (a hat weight per vertex)
    gap = jnp.abs(pos - v)
    weight = jnp.maximum(0.0, 1.0 - jnp.minimum(gap, vertices - gap))
    outline = outline + weight * radii[:, v, None, None]
  polygon = dist < outline
  # Blob: low-frequency noise over a radial falloff, thresholded to about the same area.
  noise = jax.random.normal(k_noise, (n, 6, 6))
  noise = jax.image.resize(noise, (n, h, w), 'linear')
  field = 1.0 - dist / (radius[:, None, None] * 1.15) + 0.3 * noise
  blob = field > 0
  use_polygon = jax.random.bernoulli(k_kind, polygon_share, (n, 1, 1))
  alpha = jnp.where(use_polygon, polygon, blob).astype(jnp.float32)
  return alpha, jnp.stack([cy, cx], -1), radius


def _blur(alpha, sigma: float, pad_mode: str = 'constant'):
  """Separable Gaussian blur of (N, H, W) maps as shifted sums (zero beyond the edges, or the
  edge repeated with `pad_mode='edge'`)."""
  if sigma == 0:
    return alpha
  r = 2 * int(np.ceil(sigma))
  k = np.exp(-np.arange(-r, r + 1) ** 2 / (2 * sigma ** 2))
  k = k / k.sum()
  for axis in (1, 2):
    n = alpha.shape[axis]
    pad = [(0, 0)] * 3
    pad[axis] = (r, r)
    padded = jnp.pad(alpha, pad, mode=pad_mode)
    alpha = sum(float(k[i]) * jax.lax.slice_in_dim(padded, i, i + n, axis=axis)
                for i in range(2 * r + 1))
  return alpha


def feather(alpha, key, sigmas=(0.0, 1.0, 2.0)):
  """Each region's edge blurred with a sigma drawn from `sigmas`."""
  choice = jax.random.randint(key, (alpha.shape[0], 1, 1), 0, len(sigmas))
  out = alpha
  for i, s in enumerate(sigmas):
    out = jnp.where(choice == i, _blur(alpha, float(s)), out)
  return out


def _sample(image, coords):
  """Bilinear samples of one (H, W, 3) image at (2, H, W) float coordinates (edges clamped)."""
  h, w = image.shape[:2]
  y = jnp.clip(coords[0], 0, h - 1)
  x = jnp.clip(coords[1], 0, w - 1)
  y0, x0 = jnp.floor(y).astype(jnp.int32), jnp.floor(x).astype(jnp.int32)
  y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
  fy, fx = (y - y0)[..., None], (x - x0)[..., None]
  img = image.astype(jnp.float32)
  top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
  bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
  return top * (1 - fy) + bottom * fy


def _moved(sources, key, centre, radius, cfg, same_image):
  """Each row's source content around a point mapped onto `centre` by a random rotation, scale
  and flip: where `same_image` (copy-move) a point at least 1.2 radii away from `centre`, else
  (splicing, the source being a donor) anywhere."""
  n, h, w = sources.shape[:3]
  k_angle, k_scale, k_flip, k_src, k_dir = jax.random.split(key, 5)
  angle = jnp.deg2rad(_uniform(k_angle, (n,), -cfg.rotate, cfg.rotate))
  scale = _uniform(k_scale, (n,), cfg.scale[0], cfg.scale[1])
  flip = jnp.where(jax.random.bernoulli(k_flip, cfg.flip, (n,)), -1.0, 1.0)
  margin = jnp.minimum(radius, min(h, w) / 2 - 1)
  u, v = _uniform(k_src, (n,), 0, 1), _uniform(k_dir, (n,), 0, 1)
  direction, distance = 2 * np.pi * v, radius * (1.2 + 1.8 * u)
  nearby = centre + distance[:, None] * jnp.stack([jnp.sin(direction), jnp.cos(direction)], -1)
  anywhere = jnp.stack([u * h, v * w], -1)
  src = jnp.where(same_image[:, None], nearby, anywhere)
  src = jnp.stack([jnp.clip(src[:, 0], margin, h - margin), jnp.clip(src[:, 1], margin, w - margin)], -1)
  yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing='ij')

  def one(image, c_dst, c_src, a, s, f):
    dy, dx = yy - c_dst[0], (xx - c_dst[1]) * f
    cos, sin = jnp.cos(a) / s, jnp.sin(a) / s
    coords = jnp.stack([c_src[0] + cos * dy - sin * dx, c_src[1] + sin * dy + cos * dx])
    return _sample(image, coords)

  return jax.vmap(one)(sources, centre, src, angle, scale, flip)


def edit_regions(pasted, key, share: float):
  """Pasted content (N, H, W, 3) float, each row edited with probability `share`: a blur (a mix
  with its sigma-1 blur, weight 0-1), Gaussian noise (sigma 0-4 grey levels), contrast about the
  row's mean (x0.9-1.1) and brightness (-8 to 8 per channel), each amount drawn from none up."""
  n, h, w, c = pasted.shape
  k_row, k_blur, k_noise, k_sigma, k_gain, k_bias = jax.random.split(key, 6)
  edit = jax.random.bernoulli(k_row, share, (n,))[:, None, None, None]
  planes = pasted.transpose(0, 3, 1, 2).reshape(n * c, h, w)
  blurred = _blur(planes, 1.0, pad_mode='edge').reshape(n, c, h, w).transpose(0, 2, 3, 1)
  t = _uniform(k_blur, (n, 1, 1, 1), 0.0, 1.0)
  out = pasted * (1 - t) + blurred * t
  out = out + jax.random.normal(k_noise, out.shape) * _uniform(k_sigma, (n, 1, 1, 1), 0.0, 4.0)
  mean = out.mean((1, 2, 3), keepdims=True)
  out = (out - mean) * _uniform(k_gain, (n, 1, 1, 1), 0.9, 1.1) + mean
  out = out + _uniform(k_bias, (n, 1, 1, c), -8.0, 8.0)
  return jnp.where(edit, out, pasted)


def _computed_once(x):
  """`x` (uint8, channels last), unchanged. XLA's CPU compiler fuses an elementwise producer into
  each of its consumers and recomputes it there: the forged images (regions, resampling, the
  codec) were being recomputed by every ELA quality, stem and loss term that reads them. A product
  with the identity is not fused into: its operand is computed once, and the product is exact
  (values below 256 are exact at any matmul precision, bfloat16 included)."""
  eye = jnp.eye(x.shape[-1], dtype=jnp.float32)
  return jnp.einsum('...c,cd->...d', x.astype(jnp.float32), eye).astype(x.dtype)


def synthesise(batch: dict, key: jax.Array, cfg) -> dict:
  """See the module docstring. `cfg` is `config.synthesis`."""
  images = batch['image']
  n, h, w = images.shape[:3]
  keys = jax.random.split(key, 10)
  authentic = batch['label'] == 0
  forge = authentic & jax.random.bernoulli(keys[0], cfg.fraction, (n,))
  copy_move = jax.random.bernoulli(keys[1], cfg.copy_move_share, (n,))
  alpha, centre, radius = region_masks(keys[2], n, h, w, tuple(cfg.area), cfg.polygon_share)
  soft = feather(alpha, keys[3], tuple(cfg.feather_sigmas))
  # Splicing donors: another row of the batch, with its own JPEG history at a random grid offset.
  donor_rows = (jnp.arange(n) + jax.random.randint(keys[4], (), 1, max(n, 2))) % n
  donors = images[donor_rows]
  donor_q = jax.random.randint(keys[5], (n,), cfg.donor_quality[0], cfg.donor_quality[1] + 1)
  offset = jax.random.randint(keys[6], (2,), 0, 16)  # one per batch; every step draws another
  if cfg.donor_jpeg:
    donors = jpeg.round_trip(donors, donor_q, grid_offset=offset)
  source = jnp.where(copy_move[:, None, None, None], images, donors)
  pasted = _moved(source, keys[7], centre, radius, cfg, same_image=copy_move)
  edit_share = cfg.get('region_edit_share', 0.0)  # absent from the configs of older runs
  if edit_share:  # its own key: the draws above and below stay those of a run without edits
    pasted = edit_regions(pasted, jax.random.fold_in(key, 10), edit_share)
  a = (soft * forge[:, None, None])[..., None]
  composite = jnp.clip(jnp.round(images.astype(jnp.float32) * (1 - a) + pasted * a), 0, 255)
  composite = composite.astype(jnp.uint8)
  # One random last save for every row.
  final_quality = lambda k: jax.random.randint(k, (n,), cfg.final_quality[0], cfg.final_quality[1] + 1)
  saved = jpeg.round_trip(composite, final_quality(keys[8]))
  second_share = cfg.get('second_save_share', 0.0)  # absent from the configs of older runs
  if second_share:  # its own keys: the draws above stay those of a run without it
    k_share, k_q = jax.random.split(jax.random.fold_in(key, 11))
    again = jax.random.bernoulli(k_share, second_share, (n,))
    saved = jnp.where(again[:, None, None, None], jpeg.round_trip(saved, final_quality(k_q)), saved)
  keep = jax.random.bernoulli(keys[9], cfg.lossless_share, (n,))
  if not cfg.reencode_real:
    keep |= ~authentic  # real tampered rows keep the history they came with
  out = dict(batch)
  out['image'] = _computed_once(jnp.where(keep[:, None, None, None], composite, saved))
  new_mask = ((alpha > 0.5) * 255).astype(jnp.uint8)[..., None]
  out['mask'] = jnp.where(forge[:, None, None, None], new_mask, batch['mask'])
  out['has_mask'] = batch['has_mask'] | forge
  out['label'] = jnp.where(forge, 1, batch['label']).astype(batch['label'].dtype)
  return out


def check_config(cfg) -> None:
  """`config.synthesis` makes sense (before any work): shares in [0, 1], ordered ranges, JPEG
  qualities in 1..100, region areas in (0, 1]. ValueError naming the key otherwise."""
  for key in ('fraction', 'copy_move_share', 'polygon_share', 'flip', 'region_edit_share',
              'lossless_share', 'second_save_share'):
    value = cfg.get(key, 0.0)
    if not 0.0 <= value <= 1.0:
      raise ValueError(f'synthesis.{key} {value}: a share, from 0 to 1')
  ranges = {'area': (lambda v: 0 < v <= 1, 'above 0, at most 1'),
            'scale': (lambda v: v > 0, 'above 0'),
            'donor_quality': (lambda v: 1 <= v <= 100, 'from 1 to 100'),
            'final_quality': (lambda v: 1 <= v <= 100, 'from 1 to 100')}
  for key, (within, bounds) in ranges.items():
    pair = tuple(cfg[key])
    if len(pair) != 2 or pair[0] > pair[1] or not all(within(v) for v in pair):
      raise ValueError(f'synthesis.{key} {pair}: (low, high), low <= high, {bounds}')
  if cfg.rotate < 0 or any(s < 0 for s in cfg.feather_sigmas):
    raise ValueError(f'synthesis.rotate {cfg.rotate} and feather_sigmas '
                     f'{tuple(cfg.feather_sigmas)}: not negative')


def augments(config):
  """(training augment, validation augment) for a detector's Task: synthesis when
  `config.synthesis.fraction` > 0, or only the random last save of every row with
  `config.synthesis.last_save` (else None); validation is synthesised too, with a fixed key, when
  the train split holds no real forgery (`config.dataset.train_classes`)."""
  cfg = config.synthesis
  if not (cfg.fraction or cfg.last_save):
    return None, None
  train = lambda batch, key: synthesise(batch, key, cfg)
  authentic_only = tuple(config.dataset.train_classes) == ('authentic',)
  fixed = jax.random.key(config.seed + 1)
  validation = (lambda batch: synthesise(batch, fixed, cfg)) if authentic_only else None
  return train, validation

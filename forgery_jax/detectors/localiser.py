"""Where is the forgery? A fully convolutional ELA + SRM + RGB encoder-decoder (Flax NNX).

Inputs, each through its own stem and joined by concatenation as the dual-branch paper joins its
branches: ELA planes computed inside the jitted model at `model.ela_qualities` (through
`forgery_jax.jpeg`, so they follow any on-device edit of the pixels, and so that no single quality
is a blind spot), the 30 SRM residuals of the grey image (a fixed `lax.conv`), and the RGB image;
with `model.constrained_filters`, a fourth stem reads learned residuals (Bayar and Stamm's
constrained convolution: each 5 x 5 filter predicts a pixel from its neighbours and subtracts it).
A small U-Net (`model.levels`: one width per level, at 1/2, 1/4, 1/8 (and 1/16) resolution; max
pooling down, nearest upsampling and skip connections up) gives one tamper logit per pixel at the
input's resolution; with `model.zscore_features`, the joined stems and the bottleneck also carry
each feature's deviation from its mean in units of its spread (ManTra-Net's Z-score, over the
whole image or, with `model.zscore_window`, over a window around each pixel), so that a region is
judged against the rest of its own photo; with `model.dct_stem`, a fourth stem reads the luma's
8 x 8 block DCT against the quantisation steps the image sits on (`forensics.dct`) and joins the
encoder at 1/8 resolution; an image
head reads the bottleneck (mean and max) and the map's own statistics
(its maximum, mean and top-1 % mean) and gives the image-level probability (with
`model.image_pooling='means'`, the means and the top-1 % mean only: maxima grow with the area
shown, and the head trains on windows smaller than the photos it scores).

Loss: per-pixel binary cross-entropy (all-zero targets for authentic images), plus Dice on the
tampered images that have a mask, plus the class-weighted image-level cross-entropy. Training
reads native-resolution crops (`config.input.crop`, at multiples of 16 pixels so a file's JPEG grid
stays put; no resize: resizing erases the traces); scoring runs on whole images, tiled when large.
With `model.keypoint_map`, scoring also fuses in the copy-move keypoint map
(`forensics.keypoints.copy_move_map`): the one cue here that draws a region copied within a photo,
which carries that photo's own noise and compression and so is nearly invisible to ELA and SRM.
"""

from __future__ import annotations

import cv2
import jax
import jax.numpy as jnp
from flax import nnx
import numpy as np

from forgery_jax import synthesis
from forgery_jax.detectors import base
from forgery_jax.detectors import copy_move_keypoints
from forgery_jax.detectors import nnx_detector
from forgery_jax.forensics import dct
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.forensics import keypoints
from forgery_jax.forensics import srm
from forgery_jax.training import task as task_lib

ALIGN = 16          # whole images are padded to, and tiles start at, multiples of this
MAX_LEVELS = 4      # U-Net levels: 2 ** MAX_LEVELS divides ALIGN
DCT_LEVEL = 2       # the encoder block whose input is at 1/8 resolution, one pixel per JPEG block
IMAGE_POOLINGS = ('mean_max', 'means')  # what the image head reads (`model.image_pooling`)
MAX_TILE = 1024     # larger images are scored in tiles of this side (`model.score_tile`)
TILE_OVERLAP = 128


class ConvBlock(nnx.Module):
  """2 x (Conv 3x3, GroupNorm, ReLU)."""

  def __init__(self, cin: int, cout: int, *, dtype, rngs: nnx.Rngs):
    groups = 4 if cout % 4 == 0 else 1
    self.conv1 = nnx.Conv(cin, cout, (3, 3), padding='SAME', dtype=dtype, rngs=rngs)
    self.norm1 = nnx.GroupNorm(cout, num_groups=groups, dtype=dtype, rngs=rngs)
    self.conv2 = nnx.Conv(cout, cout, (3, 3), padding='SAME', dtype=dtype, rngs=rngs)
    self.norm2 = nnx.GroupNorm(cout, num_groups=groups, dtype=dtype, rngs=rngs)

  def __call__(self, x):
    x = nnx.relu(self.norm1(self.conv1(x)))
    return nnx.relu(self.norm2(self.conv2(x)))


class ConstrainedConv(nnx.Module):
  """Bayar and Stamm's constrained convolution (5 x 5, no bias): per input and output channel the
  centre weight is -1 and the other 24 sum to 1, so each filter is a learned prediction error
  (zero on flat content), a residual like SRM's that training can shape.

  The constraint is an orthogonal projection of free weights onto that set (the off-centre
  weights minus their excess mean), exact at every step and without Bayar's division by the
  weights' sum, which is unstable when that sum nears zero."""

  def __init__(self, cin: int, cout: int, *, size: int = 5, rngs: nnx.Rngs):
    self.size = size
    self.kernel = nnx.Param(jax.random.uniform(rngs.params(), (size, size, cin, cout)))

  def weights(self) -> jax.Array:
    k = self.kernel.value
    centre = jnp.zeros((self.size, self.size)).at[self.size // 2, self.size // 2].set(1.0)
    centre = centre[:, :, None, None]
    off = k * (1.0 - centre)
    excess = (off.sum((0, 1), keepdims=True) - 1.0) / (self.size * self.size - 1)
    return (off - excess) * (1.0 - centre) - centre

  def __call__(self, x):
    return jax.lax.conv_general_dilated(x, self.weights().astype(x.dtype), (1, 1), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _pool(x):
  return nnx.max_pool(x, (2, 2), strides=(2, 2))


def _up(x, like):
  """Nearest-neighbour upsampling by 2 to `like`'s spatial size."""
  x = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return x[:, :like.shape[1], :like.shape[2]]


def zscore(x: jax.Array, eps: float = 1e-3, window: int = 0) -> jax.Array:
  """Each channel's deviation from its mean over the image (N, H, W, C), in units of its standard
  deviation: a pasted region's noise or compression differs from the rest of its photo whatever
  the photo's own level. A constant channel gives zeros. With `window` (an odd side in pixels of
  `x`), the mean and spread are local, over the window around each pixel (cut at the border), so
  that a training crop and a whole test image judge a region against the same amount of context."""
  x32 = x.astype(jnp.float32)
  if window:
    centred = x32 - x32.mean((1, 2), keepdims=True)  # small sums keep float32 exact enough
    count = _box_sum(jnp.ones_like(centred[..., :1]), window)
    mean = _box_sum(centred, window) / count
    var = jnp.maximum(_box_sum(centred * centred, window) / count - mean * mean, 0.0)
    return ((centred - mean) / jnp.sqrt(var + eps)).astype(x.dtype)
  mean = x32.mean((1, 2), keepdims=True)
  spread = jnp.sqrt(x32.var((1, 2), keepdims=True) + eps)
  return ((x32 - mean) / spread).astype(x.dtype)


def _box_sum(x: jax.Array, window: int) -> jax.Array:
  """Sums of (N, H, W, C) over a `window` x `window` square around each pixel, cut at the border:
  from cumulative sums, so the cost does not grow with the window."""
  r = window // 2
  for axis in (1, 2):
    n = x.shape[axis]
    before, after = [(0, 0)] * x.ndim, [(0, 0)] * x.ndim
    before[axis], after[axis] = (r + 1, 0), (0, r)
    # c[k]: the sum of the first k - r values, that count clipped to [0, n]
    c = jnp.pad(jnp.pad(jnp.cumsum(x, axis), before), after, mode='edge')
    x = (jax.lax.slice_in_dim(c, 2 * r + 1, 2 * r + 1 + n, axis=axis)
         - jax.lax.slice_in_dim(c, 0, n, axis=axis))
  return x


def window_at_level(window: int, stride: int) -> int:
  """`model.zscore_window` (input pixels; 0: the whole image) at a level of `stride`: odd, >= 3."""
  return max(3, (window // stride) | 1) if window else 0


def check_levels(levels) -> None:
  if not 2 <= len(levels) <= MAX_LEVELS:
    raise ValueError(f'model.levels must give 2 to {MAX_LEVELS} widths (at 1/2, 1/4, ... '
                     f'resolution), got {tuple(levels)}')


def check_image_pooling(pooling: str) -> None:
  if pooling not in IMAGE_POOLINGS:
    raise ValueError(f'model.image_pooling {pooling!r}: one of {IMAGE_POOLINGS}')


def check_dct_stem(width: int, levels) -> None:
  if width < 0 or (width and len(levels) <= DCT_LEVEL):
    raise ValueError(f'model.dct_stem {width}: a width (0: none), read at 1/8 resolution, which '
                     f'needs at least {DCT_LEVEL + 1} U-Net levels (model.levels {tuple(levels)})')


class LocaliserNet(nnx.Module):
  """Stems (ELA, SRM, RGB) -> U-Net -> per-pixel logits, and an image-level logit."""

  def __init__(self, *, ela_qualities=(75, 85, 95), stem: int = 8, levels=(24, 48, 64),
               hidden: int = 32, copy_move: bool = False, zscore_features: bool = False,
               zscore_window: int = 0, dct_stem: int = 0, constrained_filters: int = 0,
               image_pooling: str = 'mean_max', dtype=jnp.float32, rngs: nnx.Rngs):
    check_levels(levels)
    check_image_pooling(image_pooling)
    self.image_maxima = image_pooling == 'mean_max'
    check_dct_stem(dct_stem, levels)
    self.zscore_features = zscore_features
    self.zscore_window = int(zscore_window)
    self.ela_qualities = tuple(int(q) for q in ela_qualities)
    self.use_copy_move = copy_move
    self.dtype = dtype
    self.srm_kernels = _FixedKernels(jnp.asarray(srm.srm_kernels()))
    conv = lambda cin, cout, k=3: nnx.Conv(cin, cout, (k, k), padding='SAME', dtype=dtype, rngs=rngs)
    self.ela_stem = ConvBlock(3 * len(self.ela_qualities), stem, dtype=dtype, rngs=rngs) \
        if self.ela_qualities else None
    self.srm_stem = ConvBlock(srm.NUM_KERNELS, stem, dtype=dtype, rngs=rngs)
    self.rgb_stem = ConvBlock(3, stem, dtype=dtype, rngs=rngs)
    self.constrained = ConstrainedConv(3, constrained_filters, rngs=rngs) if constrained_filters else None
    self.constrained_stem = ConvBlock(constrained_filters, stem, dtype=dtype, rngs=rngs) \
        if constrained_filters else None
    wide = 2 if zscore_features else 1  # the features and their Z-scores
    joined = stem * (2 + bool(self.ela_qualities) + bool(constrained_filters)) * wide
    # The DCT stem reads the JPEG grid's 8 x 8 blocks: one feature vector per block, at 1/8
    # resolution, joined to the input of the encoder's third level.
    self.dct_stem = ConvBlock(dct.FREQUENCIES * (dct.BINS + 1), dct_stem, dtype=dtype, rngs=rngs) \
        if dct_stem else None
    widths = (joined, *levels)
    self.enc = nnx.List([ConvBlock(cin + (dct_stem if i == DCT_LEVEL else 0), cout, dtype=dtype, rngs=rngs)
                         for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:]))])
    up = levels[::-1]  # decoder: from the deepest level back to 1/2 resolution
    deeps = (up[0] * wide, *up[1:-1])  # the bottleneck carries its Z-scores too
    self.dec = nnx.List([ConvBlock(deep + skip, skip, dtype=dtype, rngs=rngs)
                         for deep, skip in zip(deeps, up[1:])])
    self.fuse = conv(levels[0] + joined, 16, 1)
    self.out = conv(16, 1)
    extra = (3 if self.image_maxima else 2) + (keypoints.NUM_FEATURES if copy_move else 0)
    self.head1 = nnx.Linear((2 if self.image_maxima else 1) * levels[-1] + extra, hidden,
                            dtype=dtype, rngs=rngs)
    self.head2 = nnx.Linear(hidden, 1, dtype=dtype, rngs=rngs)

  def stems(self, image: jax.Array) -> jax.Array:
    """The joined stems of uint8 RGB images (N, H, W, 3)."""
    rgb = image.astype(jnp.float32)
    residuals = srm.srm_residuals_per_kernel(rgb, self.srm_kernels.value)
    parts = []
    if self.ela_stem is not None:
      ela = jnp.concatenate([ela_lib.ela_batch(image, q) for q in self.ela_qualities], -1)
      parts.append(self.ela_stem(ela.astype(self.dtype) / 255.0))
    parts.append(self.srm_stem(residuals.astype(self.dtype)))
    parts.append(self.rgb_stem((rgb / 127.5 - 1.0).astype(self.dtype)))
    if self.constrained is not None:
      parts.append(self.constrained_stem(self.constrained(rgb / 255.0).astype(self.dtype)))
    return jnp.concatenate(parts, -1)

  def __call__(self, image: jax.Array, copy_move: jax.Array | None = None):
    """(per-pixel logits (N, H, W), image logits (N,)), float32; H and W multiples of
    2 ** len(levels)."""
    s = self.stems(image)
    if self.zscore_features:
      s = jnp.concatenate([s, zscore(s, window=window_at_level(self.zscore_window, 1))], -1)
    skips = [s]
    for i, block in enumerate(self.enc):
      x = _pool(skips[-1])
      if i == DCT_LEVEL and self.dct_stem is not None:
        x = jnp.concatenate([x, self.dct_stem(dct.coefficient_features(image).astype(self.dtype))], -1)
      skips.append(block(x))
    deepest = x = skips[-1]
    if self.zscore_features:
      stride = 2 ** len(self.enc)
      x = jnp.concatenate([x, zscore(x, window=window_at_level(self.zscore_window, stride))], -1)
    for block, skip in zip(self.dec, skips[-2:0:-1]):
      x = block(jnp.concatenate([_up(x, skip), skip], -1))
    x = nnx.relu(self.fuse(jnp.concatenate([_up(x, s), s], -1)))
    logits = self.out(x)[..., 0].astype(jnp.float32)
    p = jax.nn.sigmoid(logits).reshape(logits.shape[0], -1)
    k = max(1, p.shape[1] // 100)
    top = jax.lax.top_k(p, k)[0].mean(1)
    pooled = [deepest.mean((1, 2)).astype(jnp.float32)]
    if self.image_maxima:
      pooled += [deepest.max((1, 2)).astype(jnp.float32), jnp.stack([p.max(1), p.mean(1), top], -1)]
    else:
      pooled.append(jnp.stack([p.mean(1), top], -1))
    if self.use_copy_move:
      if copy_move is None:
        raise ValueError('this model reads copy-move keypoint evidence: the batch has no `copy_move`')
      pooled.append(copy_move.astype(jnp.float32))
    h = nnx.relu(self.head1(jnp.concatenate(pooled, -1).astype(self.dtype)))
    return logits, self.head2(h)[:, 0].astype(jnp.float32)


class _FixedKernels(nnx.Variable):
  """The SRM kernels: model state the optimiser does not update."""


def create_model(config, rngs: nnx.Rngs) -> LocaliserNet:
  m = config.model
  dtype = nnx_detector.model_dtype(m.dtype)
  return LocaliserNet(ela_qualities=tuple(m.ela_qualities), stem=m.stem, levels=tuple(m.levels),
                      hidden=m.hidden, copy_move=m.copy_move,
                      # exports written before these keys carry neither
                      zscore_features=m.get('zscore_features', False),
                      zscore_window=m.get('zscore_window', 0), dct_stem=m.get('dct_stem', 0),
                      constrained_filters=m.get('constrained_filters', 0),
                      image_pooling=m.get('image_pooling', 'mean_max'), dtype=dtype, rngs=rngs)


def losses(pixel_logits, image_logits, batch, class_weights) -> dict:
  """Per-pixel BCE (authentic images: all-zero targets; tampered ones without a mask: none),
  Dice on tampered images with a mask, and the class-weighted image-level BCE."""
  tampered = batch['label'] != 0
  target = (batch['mask'][..., 0] > 127).astype(jnp.float32)
  known = (~tampered | batch['has_mask']).astype(jnp.float32)          # a pixel target exists
  bce = optax_bce(pixel_logits, target).mean((1, 2))
  pixel = (bce * known).sum() / jnp.maximum(known.sum(), 1.0)
  p = jax.nn.sigmoid(pixel_logits)
  dice_rows = 1.0 - (2 * (p * target).sum((1, 2)) + 1.0) / (p.sum((1, 2)) + target.sum((1, 2)) + 1.0)
  with_mask = (tampered & batch['has_mask']).astype(jnp.float32)
  dice = (dice_rows * with_mask).sum() / jnp.maximum(with_mask.sum(), 1.0)
  w = class_weights[batch['label']]
  image = (w * optax_bce(image_logits, tampered.astype(jnp.float32))).mean()
  return {'pixel_bce': pixel, 'dice': dice, 'image_bce': image}


def optax_bce(logits, labels):
  """Binary cross-entropy with logits, stable."""
  return jnp.maximum(logits, 0) - logits * labels + jnp.log1p(jnp.exp(-jnp.abs(logits)))


class Localiser(nnx_detector.NnxDetector):
  """The localising detector (see the module docstring); binary: authentic / tampered."""

  localises = True
  batch_size = 4
  model_keys = ('ela_qualities', 'stem', 'levels', 'hidden', 'copy_move', 'dtype', 'zscore_features',
                'zscore_window', 'dct_stem', 'constrained_filters', 'image_pooling', 'loss_weights',
                'keypoint_map', 'keypoint_fusion', 'keypoint_mirrored', 'keypoint_decision',
                'score_tile', 'score_flips')

  @classmethod
  def check_config(cls, config) -> None:
    if config.dataset.num_classes != 2:
      raise ValueError('the localiser is binary: config.dataset.num_classes must be 2')
    check_levels(config.model.levels)
    if any(not 1 <= q <= 100 for q in config.model.ela_qualities):
      raise ValueError(f'model.ela_qualities {tuple(config.model.ela_qualities)}: JPEG qualities '
                       'from 1 to 100')
    check_dct_stem(config.model.get('dct_stem', 0), config.model.levels)
    check_image_pooling(config.model.get('image_pooling', 'mean_max'))
    _check_fusion(config.model.get('keypoint_fusion', KEYPOINT_FUSIONS[0]))
    keypoints.check_decision(config.model.get('keypoint_decision', keypoints.DECISIONS[0]))
    weights = config.model.loss_weights
    if not all(w >= 0 for w in weights.values()) or not any(weights.values()):
      raise ValueError(f'model.loss_weights {weights.to_dict()}: 0 or more each, not all 0')
    if config.model.get('constrained_filters', 0) < 0:
      raise ValueError(f"model.constrained_filters {config.model.constrained_filters}: a number "
                       'of filters (0: none)')
    window = config.model.get('zscore_window', 0)
    if window < 0 or (window and not config.model.get('zscore_features', False)):
      raise ValueError(f'model.zscore_window {window}: a side in input pixels (0: the whole image), '
                       'read only with model.zscore_features=True')
    tile = config.model.get('score_tile', MAX_TILE)
    if tile % ALIGN or tile <= TILE_OVERLAP:
      raise ValueError(f'model.score_tile {tile}: a multiple of {ALIGN} pixels above the tiles\' '
                       f'overlap ({TILE_OVERLAP})')
    levels, crop = len(config.model.levels), config.input.crop
    if crop and crop % 2 ** levels:
      raise ValueError(f'input.crop {crop}: with {levels} U-Net levels (model.levels) the '
                       f'training windows must be a multiple of {2 ** levels} pixels')
    super().check_config(config)  # last: it builds the model from these settings

  @classmethod
  def task(cls, config, weights: np.ndarray | None):
    keys = ('image', 'mask') + (('copy_move',) if config.model.copy_move else ())
    class_weights = jnp.asarray(weights if weights is not None else np.ones(2, np.float32))
    w = config.model.loss_weights

    def loss(model, batch, dropout_key):
      del dropout_key
      pixel_logits, image_logits = model(batch['image'], batch.get('copy_move'))
      parts = losses(pixel_logits, image_logits, batch, class_weights)
      total = w.pixel * parts['pixel_bce'] + w.dice * parts['dice'] + w.image * parts['image_bce']
      accuracy = ((image_logits > 0) == (batch['label'] != 0)).mean()
      return total, {'accuracy': accuracy, **parts}

    def outputs(model, batch):
      pixel_logits, image_logits = model(batch['image'], batch.get('copy_move'))
      p = jax.nn.sigmoid(image_logits)
      return {'probabilities': jnp.stack([1.0 - p, p], -1), 'map': jax.nn.sigmoid(pixel_logits)}

    synthesise, eval_synthesise = synthesis.augments(config)
    flips = ((lambda batch, key: task_lib.random_flips(batch, key, ('image', 'mask')))
             if config.augment_flips else None)
    return task_lib.Task(create_model, loss, outputs, keys, task_lib.compose(synthesise, flips),
                         eval_synthesise)

  def keypoint_pairs(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    pairs = fused_map_pairs(rgb, self.config)
    return super().keypoint_pairs(rgb) if pairs is None else pairs

  def fuse_keypoint_map(self, rule: str | None = None, mirrored: bool = False,
                        decision: str | None = None) -> None:
    set_keypoint_fusion(self.config, rule, mirrored, decision)

  def score_flips(self) -> None:
    with self.config.unlocked():
      self.config.model.score_flips = True

  def describe(self) -> str:
    m = self.config.model
    qualities = '/'.join(map(str, m.ela_qualities))
    stems = [f'ELA q{qualities}'] * bool(qualities) + ['SRM', 'RGB']  # (): no ELA stem
    stems += [f'DCT {m.dct_stem}'] * bool(m.get('dct_stem', 0))
    stems += [f'{m.constrained_filters} constrained filters'] * bool(m.get('constrained_filters', 0))
    window = m.get('zscore_window', 0)
    zscores = (f', Z-scores over {window} px' if window else ', Z-scores') * bool(
        m.get('zscore_features', False))
    return f"localiser ({' + '.join(stems)}{zscores}){scored_as(self.config)}"

  # Whole images: padded to multiples of ALIGN (edge pixels, so the JPEG grid stays put), batched
  # by size, tiled when larger than `model.score_tile`.

  def _score_image(self, example: dict) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (2,), map (H, W)) of one prepared example of any size; with
    `model.score_flips`, their means over the image's four flips (`flip_average`)."""
    image = np.asarray(example['image'])
    evidence = example.get('copy_move')
    if self.config.model.get('score_flips', False):
      return flip_average(lambda flipped: self._score_pixels(flipped, evidence), image)
    return self._score_pixels(image, evidence)

  def _score_pixels(self, image: np.ndarray, evidence) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    tiles = _tiles(h, w, self.config.model.get('score_tile', MAX_TILE))
    heat = np.zeros((h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    p = np.zeros(2, np.float32)
    for top, left, th, tw in tiles:
      padded = _pad_to_grid(image[top:top + th, left:left + tw])
      batch = {'image': jnp.asarray(padded[None]), 'mask': jnp.zeros(padded.shape[:2] + (1,), jnp.uint8)[None]}
      if self.config.model.copy_move:
        batch['copy_move'] = jnp.asarray(np.asarray(evidence)[None])
      out = jax.device_get(self._outputs(self.state, batch))
      heat[top:top + th, left:left + tw] += out['map'][0, :th, :tw]
      weight[top:top + th, left:left + tw] += 1
      p = np.maximum(p, out['probabilities'][0]) if len(tiles) > 1 else out['probabilities'][0]
    if len(tiles) > 1:  # tampered if any tile is
      p = np.array([1.0 - p[1], p[1]], np.float32)
    return p, heat / np.maximum(weight, 1)

  def score(self, examples: list[dict]) -> base.Scores:
    probs, maps = zip(*(self._score_image(e) for e in examples)) if examples else ((), ())
    scores = base.Scores(np.asarray(probs, np.float32).reshape(len(examples), 2), list(maps))
    return fused_as_configured(scores, examples, self.config)

  def score_split(self, dataset, indices: np.ndarray, batch_size: int = 0, desc: str = '',
                  keep_maps: bool = True) -> base.Scores:
    from forgery_jax import progress  # pylint: disable=g-import-not-at-top
    del batch_size
    parts = []
    for i in progress.bar(indices, desc=desc or f'localising {dataset.name}', unit='image',
                          leave=False):
      scores = self.score([dataset.source[int(i)]])
      parts.append(scores if keep_maps else base.Scores(scores.probabilities))
    return base.Scores.concatenate(parts, 2)


def _pad_to_grid(image: np.ndarray) -> np.ndarray:
  """`image` padded at its bottom and right (edge pixels) to multiples of ALIGN: its JPEG grid
  stays where it was."""
  ph, pw = -image.shape[0] % ALIGN, -image.shape[1] % ALIGN
  return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode='edge') if ph or pw else image


FLIPS = ((False, False), (False, True), (True, False), (True, True))  # (vertical, horizontal)


def _flip(a: np.ndarray, vertical: bool, horizontal: bool) -> np.ndarray:
  a = a[::-1] if vertical else a
  return np.ascontiguousarray(a[:, ::-1] if horizontal else a)


def flip_average(score, image: np.ndarray):
  """(mean p, mean map (H, W)) of `score` over the four flips of `image` (as is, left-right,
  upside down, both), each map flipped back; `score` maps one uint8 RGB image to (p: a number or
  an array, map of its size). The localiser trains with random flips (`augment_flips`), so each
  flip is an image it could have seen: four looks at one image (docs/localisation.md, "Each
  file's four flips": a little better maps for one run, nothing for an average of runs).
  An image whose sides are not multiples of ALIGN is padded first (edge pixels, as for scoring),
  so that its JPEG grid stays where it was, and the mean map cropped after."""
  h, w = image.shape[:2]
  padded = _pad_to_grid(image)
  p_sum, map_sum = 0.0, np.zeros(padded.shape[:2], np.float32)
  for vertical, horizontal in FLIPS:
    p, heat = score(_flip(padded, vertical, horizontal))
    p_sum = p_sum + np.asarray(p, np.float32)
    map_sum += _flip(np.asarray(heat, np.float32), vertical, horizontal)
  return p_sum / len(FLIPS), map_sum[:h, :w] / len(FLIPS)


KEYPOINT_FUSIONS = ('replace', 'max', 'keypoints_alone', 'upper_copies',
                    'upper_copies_ranked')  # the first is the default


def set_keypoint_fusion(config, rule: str | None = None, mirrored: bool = False,
                        decision: str | None = None) -> None:
  """Sets `config.model` to fuse the keypoint map by `rule` (None: the config's own
  `keypoint_fusion`, else the first of KEYPOINT_FUSIONS), mirror-wise too with `mirrored`,
  deciding by `decision` (None: the config's own `keypoint_decision`, else 'inliers')."""
  rule = rule or config.model.get('keypoint_fusion', KEYPOINT_FUSIONS[0])
  _check_fusion(rule)
  decision = decision or config.model.get('keypoint_decision', keypoints.DECISIONS[0])
  keypoints.check_decision(decision)
  with config.unlocked():
    config.model.keypoint_map = True
    config.model.keypoint_fusion = rule
    config.model.keypoint_mirrored = mirrored or config.model.get('keypoint_mirrored', False)
    config.model.keypoint_decision = decision


def scored_as(config, flips: bool = True) -> str:
  """What scoring adds to a localiser's network, for its name in reports: ' + keypoint map
  (<rule>[, mirrored][, <decision> decision])' and, with `flips`, ' + mean of four flips'; ''
  for the network alone."""
  m, out = config.model, ''
  if m.get('keypoint_map', False):
    notes = [m.get('keypoint_fusion', KEYPOINT_FUSIONS[0])]
    notes += ['mirrored'] * bool(m.get('keypoint_mirrored', False))
    decision = m.get('keypoint_decision', keypoints.DECISIONS[0])
    notes += [f'{decision} decision'] * (decision != keypoints.DECISIONS[0])
    out += f" + keypoint map ({', '.join(notes)})"
  if flips and m.get('score_flips', False):
    out += ' + mean of four flips'
  return out


def _check_fusion(rule: str) -> None:
  if rule not in KEYPOINT_FUSIONS:
    raise ValueError(f'keypoint fusion {rule!r} (model.keypoint_fusion): choose from {KEYPOINT_FUSIONS}')


def fuse_maps(network_map: np.ndarray, keypoint_map: np.ndarray, rule: str) -> np.ndarray:
  """One image's network map joined with its keypoint map (`model.keypoint_fusion`).

  'max': the pixel-wise maximum. 'replace': where the keypoint map marks a region, that region is
  the answer: the keypoint map, with the network's map halved elsewhere in that image (below 0.5,
  so never called tampered at 0.5, its ranking kept for the AUC); the network's map where it marks
  none. 'keypoints_alone': the same with nothing of the network's map beside the region (for a
  decision below 0.5, where the halved map would be called tampered; its pixel AUC is lower).
  'upper_copies': 'keypoints_alone' keeping of the keypoint map's regions only those the
  network's map marks at least as much as the regions' median (`network_chosen_copies`): the
  keypoint map marks both copies, the mask only the pasted one. 'upper_copies_ranked':
  'upper_copies' at 0.5, every pixel ranked for the AUC (`ranked_upper_copies`).
  A copy-move the keypoints found is better drawn by them alone than with the network's marks
  beside it ('replace' was chosen over 'max' on the validation split at 0.5, 'keypoints_alone'
  with the pixel threshold chosen there too, 'upper_copies' over both for the recipe with the
  best maps: experiments.fusion_rules; 'upper_copies_ranked' has its pixel F1 and the best
  pixel AUC).
  """
  if rule == 'max':
    return np.maximum(network_map, keypoint_map)
  if rule == 'replace':
    return np.maximum(keypoint_map, 0.5 * network_map) if keypoint_map.any() else network_map
  if rule == 'keypoints_alone':
    return keypoint_map if keypoint_map.any() else network_map
  if rule == 'upper_copies':
    return network_chosen_copies(network_map, keypoint_map, upper_half=True)
  if rule == 'upper_copies_ranked':
    return ranked_upper_copies(network_map, keypoint_map)
  _check_fusion(rule)
  raise AssertionError(rule)  # every rule of KEYPOINT_FUSIONS is handled above


def network_chosen_copies(network_map: np.ndarray, keypoint_map: np.ndarray,
                          upper_half: bool) -> np.ndarray:
  """The keypoint map keeping of its regions (connected components at 0.5) only the one the
  network's map marks most (its mean over the region), or with `upper_half` every one at or
  above the regions' median; the network's map where the keypoint map marks nothing."""
  if not keypoint_map.any():
    return network_map
  count, regions = cv2.connectedComponents((keypoint_map > 0.5).astype(np.uint8))
  if count <= 2:
    return keypoint_map
  means = np.array([network_map[regions == r].mean() for r in range(1, count)])
  kept = (np.flatnonzero(means >= np.median(means)) if upper_half else [int(np.argmax(means))])
  return np.isin(regions, np.asarray(kept) + 1).astype(np.float32)


# `ranked_upper_copies`: how far the nearness to a keypoint region reaches (the decay length, as a
# share of the image's geometric-mean side: 31 pixels on 384 x 256), and the network map's share
# beside it. Chosen on the validation split of five runs averaged; the pixel AUC hardly moves over
# a grid around them (docs/localisation.md, "Every pixel ranked").
NEAR_SCALE = 0.1
NETWORK_SHARE = 0.2


def ranked_upper_copies(network_map: np.ndarray, keypoint_map: np.ndarray) -> np.ndarray:
  """`network_chosen_copies(upper_half=True)` at 0.5, with every pixel ranked: the chosen copies
  above 0.5, ranked by the network's map; every other pixel below, by a mix of the network's map
  and its nearness to the keypoint map's regions (exp(-distance / decay length)).

  The keypoint map marks the textured pixels that a warp reproduces, and a copied object holds
  flat pixels too: those lie next to the marked ones, so nearness ranks them above the rest of
  the image, and the copies the network did not choose next (distance 0). Where the keypoint
  map marks nothing, the network's map."""
  if not (keypoint_map > 0.5).any():
    return network_map
  chosen = network_chosen_copies(network_map, keypoint_map, upper_half=True) > 0.5
  h, w = keypoint_map.shape[:2]
  distance = cv2.distanceTransform((keypoint_map <= 0.5).astype(np.uint8), cv2.DIST_L2, 5)
  near = np.exp(-distance / (NEAR_SCALE * np.sqrt(h * w)))
  rest = 0.5 * (NETWORK_SHARE * network_map + (1.0 - NETWORK_SHARE) * near)
  return np.where(chosen, 0.75 + 0.25 * network_map, rest).astype(np.float32)


def fuse_keypoint_map(scores: base.Scores, images, rule: str = KEYPOINT_FUSIONS[0],
                      map_settings: keypoints.MapSettings = keypoints.MapSettings()) -> base.Scores:
  """`scores` with the copy-move keypoint map of each image fused in (`model.keypoint_map`): the
  maps joined by `rule` (`fuse_maps`), and the larger of the two p(tampered). Inference only: the
  network's parameters are the same with it or without it."""
  found = copy_move_keypoints.score_images(images, map_settings)
  p = np.maximum(scores.p_tampered, found.p_tampered)
  maps = [fuse_maps(m, k, rule) for m, k in zip(scores.maps, found.maps)]
  return base.Scores(np.stack([1.0 - p, p], -1).astype(np.float32), maps)


def fused_map_pairs(rgb: np.ndarray, config) -> tuple[np.ndarray, np.ndarray] | None:
  """The matched pairs behind the keypoint map `config` fuses into the maps, or None if it fuses
  none."""
  if not config.model.get('keypoint_map', False):
    return None
  return copy_move_keypoints.map_pairs(rgb, copy_move_keypoints.settings(config))


def fused_as_configured(scores: base.Scores, examples: list[dict], config) -> base.Scores:
  """`scores` of `examples` with the keypoint map fused in if `config.model.keypoint_map` says
  so (by its `keypoint_fusion`, with its `keypoint_mirrored` and `keypoint_decision`), else
  `scores` as they are."""
  if not (config.model.get('keypoint_map', False) and examples):
    return scores
  return fuse_keypoint_map(scores, [e['image'] for e in examples],
                           config.model.get('keypoint_fusion', KEYPOINT_FUSIONS[0]),
                           copy_move_keypoints.settings(config))


def _tiles(h: int, w: int, tile: int = MAX_TILE) -> list[tuple[int, int, int, int]]:
  """(top, left, height, width) of the tiles covering every pixel of an h x w image: the whole
  image when both sides are at most `tile`, else windows of that side overlapping by TILE_OVERLAP
  or more, starting at multiples of ALIGN (the JPEG grid stays put); the last one runs to the
  edge, up to ALIGN - 1 pixels longer."""
  def spans(n):
    if n <= tile:
      return [(0, n)]
    step = tile - TILE_OVERLAP
    starts = sorted({x - x % ALIGN for x in list(range(0, n - tile, step)) + [n - tile]})
    return [(a, b - a) for a, b in zip(starts, [s + tile for s in starts[:-1]] + [n])]
  return [(t, l, th, tw) for t, th in spans(h) for l, tw in spans(w)]

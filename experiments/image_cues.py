"""Do the image's own pixels mend the maps? Cues beside `experiments.fusion_rules`' rules.

    python -m experiments.image_cues --workdir=<localiser run> --cache=<fusion_rules cache>

`experiments.fusion_rules` scores each file once by the network and once by the keypoint map (its
`--cache`, made here first when missing); this reads those scores and each file's pixels and tries:

* **a guided filter** (He et al.) on the network's map, with the file's luma as the guide, so
  that the map's edges follow the image's (`guided r<radius>`); then `keypoints_alone`;
* **which copy was pasted, from the JPEG grid.** The keypoint map marks both copies of a
  copy-move, CASIA v1's mask only the pasted one. A region moved by other than a multiple of 8
  pixels carries its first save's 8 x 8 blocking out of phase with the file's grid, so its
  blockiness across the file's block boundaries, over its mean at all eight phases
  (`grid_alignment`), should differ from the source's. `misaligned copy` drops the keypoint
  region most aligned with the grid, `aligned copy` the least aligned one (where it marks two or
  more regions; either way, the network's map where it marks none).

* **the local noise level** (a splice brings another camera's or another save's noise): the
  standard deviation of the luma's 2 x 2 diagonal residual in 32 x 32 windows, on a log scale,
  as an image-wide Z-score (`noise_level`); `noise alone` is its logistic, `network + noise` the
  network's map plus 0.05 of it (clipped), each then `keypoints_alone`.
* **a JPEG ghost** (Farid 2009; a region pasted from a file saved at a lower quality keeps a
  dip at that quality): the luma saved again at qualities 50-95, each pixel's squared difference
  over 16 x 16 windows divided by its mean over the qualities (texture removed, the curve's
  shape kept), and per pixel how far below the image's median curve it dips at any quality, as
  an image-wide Z-score (`jpeg_ghost`); `ghost alone` and `network + ghost` as for the noise.
* **double quantisation** (Lin et al. 2009: a picture saved twice on one grid leaves periodic
  gaps and crowds in each DCT frequency's histogram, which a region pasted off that grid, or from
  a picture saved once, does not share): per 8 x 8 block, the log-likelihood ratio of its
  coefficients under a flat against the image's periodic histogram, summed over the first 15 AC
  frequencies that show a period, as an image-wide Z-score (`double_quantisation`);
  `dq alone` and `network + dq` as for the noise, and its control `texture alone`: the block's
  log AC energy (`block_texture`), since a rare coefficient value is also a large one.

Each rule's pixel F1 at 0.5, at the threshold best on validation, and AUC on every split, by type
too; the rule with the best validation F1 (at its threshold) is the one chosen, and the test
figures of all of them are printed, so that what a choice on validation costs is visible.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

import experiments
from experiments import fusion_rules
from forgery_jax import runtime
from forgery_jax.data import labels as labels_lib
from forgery_jax.detectors import localiser
from forgery_jax.forensics import dct

BLOCK = 8


def luma(image: np.ndarray) -> np.ndarray:
  return cv2.cvtColor(np.asarray(image, np.uint8), cv2.COLOR_RGB2YCrCb)[..., 0].astype(np.float32)


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float = 1e-3) -> np.ndarray:
  """He, Sun and Tang's guided filter of `p` by a grey `guide` (0-255), clipped to [0, 1]."""
  g = guide / 255.0
  box = lambda x: cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1))
  mean_g, mean_p = box(g), box(p)
  a = (box(g * p) - mean_g * mean_p) / (box(g * g) - mean_g * mean_g + eps)
  b = mean_p - a * mean_g
  return np.clip(box(a) * g + box(b), 0.0, 1.0).astype(np.float32)


def grid_alignment(y: np.ndarray, region: np.ndarray) -> float:
  """Mean absolute step across the file's 8 x 8 block boundaries over the mean step at all eight
  phases, within `region`, summed over rows and columns (2 = no blocking; NaN = too small)."""
  total = 0.0
  for axis in (0, 1):
    steps = np.abs(np.diff(y, axis=axis))
    inside = region[:-1] & region[1:] if axis == 0 else region[:, :-1] & region[:, 1:]
    phase = np.arange(steps.shape[axis]) % BLOCK
    phase = np.broadcast_to(phase[:, None] if axis == 0 else phase[None, :], steps.shape)
    counts = np.bincount(phase[inside], minlength=BLOCK)
    if (counts == 0).any():
      return float('nan')
    per_phase = np.bincount(phase[inside], steps[inside], minlength=BLOCK) / counts
    total += per_phase[BLOCK - 1] / per_phase.mean()
  return total


def regions(keypoint_map: np.ndarray) -> int:
  return cv2.connectedComponents((keypoint_map > 0.5).astype(np.uint8))[0] - 1


def choose_copy(network_map: np.ndarray, keypoint_map: np.ndarray, y: np.ndarray, keep_aligned: bool):
  """`keypoints_alone`, with the keypoint region most (`keep_aligned=False`) or least aligned with
  the file's JPEG grid dropped, where the keypoint map marks two regions or more."""
  marked = keypoint_map > 0.5
  if not marked.any():
    return network_map
  count, labels = cv2.connectedComponents(marked.astype(np.uint8))
  scores = np.array([grid_alignment(y, labels == r) for r in range(1, count)]) if count > 2 else None
  if scores is None or np.isnan(scores).all():
    return marked.astype(np.float32)
  scores = np.nan_to_num(scores, nan=np.inf if keep_aligned else -np.inf)  # too small: never dropped
  drop = (np.argmin(scores) if keep_aligned else np.argmax(scores)) + 1
  return (marked & (labels != drop)).astype(np.float32)


def _z_score(x: np.ndarray) -> np.ndarray:
  """Image-wide Z-score: the cues are read against the rest of their own image."""
  return ((x - x.mean()) / (x.std() + 1e-6)).astype(np.float32)


def noise_level(y: np.ndarray, window: int = 32) -> np.ndarray:
  """Per pixel, the image-wide Z-score of the log standard deviation of the luma's 2 x 2
  diagonal residual (shading removed, noise and texture kept) over a `window`-pixel square."""
  residual = cv2.filter2D(y, -1, np.float32([[1, -1], [-1, 1]]) / 2)
  level = 0.5 * np.log(cv2.boxFilter(residual * residual, -1, (window, window)) + 1e-3)
  return _z_score(level)


GHOST_QUALITIES = tuple(range(50, 100, 5))


def jpeg_ghost(y: np.ndarray, window: int = 16) -> np.ndarray:
  """Per pixel, the image-wide Z-score of the deepest dip, over `GHOST_QUALITIES`, of its
  normalised re-save difference below the image's median at that quality."""
  grey = np.clip(np.rint(y), 0, 255).astype(np.uint8)
  differences = []
  for quality in GHOST_QUALITIES:
    ok, data = cv2.imencode('.jpg', grey, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    saved = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE).astype(np.float32)
    differences.append(cv2.boxFilter((grey - saved) ** 2, -1, (window, window)))
  curves = np.stack(differences)
  curves /= curves.mean(0, keepdims=True) + 1.0  # each pixel's curve, its texture's scale removed
  median = np.median(curves.reshape(len(GHOST_QUALITIES), -1), axis=1)[:, None, None]
  dip = (median - curves).max(0)
  return _z_score(dip)


def block_coefficients(y: np.ndarray) -> np.ndarray:
  """The luma's 8 x 8 block DCT on the file's grid, as JPEG computes it (rounded to the decoder's
  integers, level-shifted): (H / 8, W / 8, 64), row-major frequencies; the last part-blocks dropped."""
  h, w = y.shape[0] // BLOCK * BLOCK, y.shape[1] // BLOCK * BLOCK
  blocks = np.rint(y[:h, :w]).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).swapaxes(1, 2) - 128.0
  m = dct.dct_matrix()
  return np.einsum('ux,abxy,vy->abuv', m, blocks, m).reshape(h // BLOCK, w // BLOCK, BLOCK * BLOCK)


def last_step(c: np.ndarray, max_step: int = 40) -> int:
  """The last save's quantisation step of one frequency's coefficients: of the steps 2..max_step,
  the largest on whose multiples (to within 0.6, the decoder's rounding) as many of the
  coefficients beyond 1.5 sit, less 0.05, as on the best step's; 1 when none holds half of them,
  0 with under 50 of them. A step's divisors hold its multiples too, hence the largest; an
  earlier, coarser save's steps hold only the blocks saved that time (a region pasted since
  falls off them), hence the margin against the best, rather than against all."""
  values = c[np.abs(c) > 1.5]
  if values.size < 50:
    return 0
  steps = np.arange(2, max_step + 1)
  on_grid = np.array([np.mean(np.abs(values - s * np.rint(values / s)) < 0.6) for s in steps])
  if on_grid.max() < 0.5:
    return 1
  return int(steps[on_grid >= on_grid.max() - 0.05].max())


def _blocks_to_pixels(z: np.ndarray, shape) -> np.ndarray:
  full = np.zeros(shape, np.float32)
  full[:z.shape[0] * BLOCK, :z.shape[1] * BLOCK] = np.kron(z, np.ones((BLOCK, BLOCK), np.float32))
  return full


def double_quantisation(y: np.ndarray, frequencies: int = 15, kmax: int = 30, max_period: int = 16,
                        min_score: float = 0.05) -> np.ndarray:
  """Per pixel, the image-wide Z-score of its block's evidence of one quantisation against two
  (Lin et al. 2009). Per frequency: the values k = round(c / last step); their histogram over
  -kmax..kmax divided by its 9-bin moving mean (the envelope removed), folded at each period p in
  2..max_period, the period whose folded pattern varies most (by 10 % over a shorter one; none
  under `min_score`); then each block's log of 1 / p (flat within the period: saved once)
  over its value's share of its period's count (the image's pattern: saved twice)."""
  coefficients = block_coefficients(y)
  evidence = np.zeros(coefficients.shape[:2], np.float32)
  bins = np.arange(-kmax, kmax + 1)
  away = bins != 0
  for f in dct.ZIGZAG_AC[:frequencies]:
    c = coefficients[..., f]
    step = last_step(c.ravel())
    if not step:
      continue
    k = np.clip(np.rint(c / step).astype(int), -kmax, kmax)
    counts = np.bincount(k.ravel() + kmax, minlength=bins.size).astype(np.float64)
    ratio = counts / (np.convolve(counts, np.ones(9) / 9, mode='same') + 1e-6)
    best, period = 0.0, 1
    for p in range(2, max_period + 1):
      phase = np.mod(bins[away], p)
      folded = np.array([ratio[away][phase == i].mean() for i in range(p)])
      if folded.var() > best * 1.1:
        best, period = folded.var(), p
    if period < 2 or best < min_score:
      continue
    start = np.floor_divide(bins, period) * period
    in_period = np.array([counts[(bins >= s) & (bins < s + period)].sum() for s in start])
    llr = np.log(1 / period + 1e-3) - np.log(counts / np.maximum(in_period, 1) + 1e-3)
    evidence += llr[k + kmax].astype(np.float32)
  return _blocks_to_pixels(_z_score(evidence), y.shape)


def block_texture(y: np.ndarray) -> np.ndarray:
  """Per pixel, the image-wide Z-score of its block's log AC energy, log(1 + sum |c|): the
  control of `double_quantisation`, whose rare coefficient values are large ones too."""
  energy = np.log1p(np.abs(block_coefficients(y)[..., 1:]).sum(-1))
  return _blocks_to_pixels(_z_score(energy), y.shape)


def _logistic(z: np.ndarray) -> np.ndarray:
  return 1 / (1 + np.exp(-z))


RULES = {
    'keypoints_alone': lambda net, kp, y: localiser.fuse_maps(net, kp, 'keypoints_alone'),
    'replace': lambda net, kp, y: localiser.fuse_maps(net, kp, 'replace'),
    'guided r4': lambda net, kp, y: localiser.fuse_maps(guided_filter(y, net, 4), kp, 'keypoints_alone'),
    'guided r8': lambda net, kp, y: localiser.fuse_maps(guided_filter(y, net, 8), kp, 'keypoints_alone'),
    'misaligned copy': lambda net, kp, y: choose_copy(net, kp, y, keep_aligned=False),
    'aligned copy': lambda net, kp, y: choose_copy(net, kp, y, keep_aligned=True),
    'noise alone': lambda net, kp, y: localiser.fuse_maps(
        _logistic(noise_level(y)), kp, 'keypoints_alone'),
    'network + noise': lambda net, kp, y: localiser.fuse_maps(
        np.clip(net + 0.05 * noise_level(y), 0, 1), kp, 'keypoints_alone'),
    'ghost alone': lambda net, kp, y: localiser.fuse_maps(
        _logistic(jpeg_ghost(y)), kp, 'keypoints_alone'),
    'network + ghost': lambda net, kp, y: localiser.fuse_maps(
        np.clip(net + 0.05 * jpeg_ghost(y), 0, 1), kp, 'keypoints_alone'),
    'dq alone': lambda net, kp, y: localiser.fuse_maps(
        _logistic(double_quantisation(y)), kp, 'keypoints_alone'),
    'texture alone': lambda net, kp, y: localiser.fuse_maps(
        _logistic(block_texture(y)), kp, 'keypoints_alone'),
    'network + dq': lambda net, kp, y: localiser.fuse_maps(
        np.clip(net + 0.05 * double_quantisation(y), 0, 1), kp, 'keypoints_alone'),
}


def with_luma(split: dict, dataset, indices) -> dict:
  """The cached split with each masked file's luma (None for the others, whose maps are unscored)."""
  if len(indices) != len(split['masks']):
    raise ValueError(f'the cache holds {len(split["masks"])} files, the split {len(indices)}: '
                     'make the cache again from this run')
  ys = []
  for i, mask in zip(indices, split['masks']):
    ys.append(None if mask is None else luma(dataset.source[int(i)]['image']))
    if ys[-1] is not None and ys[-1].shape != np.squeeze(mask).shape:
      raise ValueError(f'file {int(i)}: image {ys[-1].shape} and cached mask {mask.shape} differ')
  return dict(split, luma=ys)


def figures(split: dict, rule) -> dict:
  """`fusion_rules.pixel_figures` of a rule that also reads the file's luma."""
  maps = [rule(n, k, y) if y is not None else n
          for n, k, y in zip(split['net_maps'], split['kp_maps'], split['luma'])]
  return fusion_rules.pixel_figures(dict(split, net_maps=maps), lambda net, kp: net)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a finished localiser run')
  parser.add_argument('--cache', type=runtime.home, required=True, help="experiments.fusion_rules' score cache")
  parser.add_argument('--output', type=runtime.home, default='', help='write the figures as JSON here')
  args = parser.parse_args(argv)
  _, targets, cached = fusion_rules.from_cache(args.workdir, args.cache)
  splits = {key: with_luma(cached[key], data, indices) for key, (data, indices) in targets.items()}

  results = {name: {key: figures(split, rule) for key, split in splits.items()} for name, rule in RULES.items()}
  for per_split in results.values():
    fusion_rules.at_validation_threshold(per_split)
  chosen = max(RULES, key=lambda r: results[r]['validation']['at_validation_threshold']['pixel_f1'])
  several = {key: sum(1 for k, m, t in zip(split['kp_maps'], split['masks'], split['kinds'])
                     if m is not None and t == labels_lib.COPY_MOVE and regions(k) >= 2)
             for key, split in splits.items()}
  print(f'copy-moves where the keypoint map marks two regions or more (where a copy is dropped): {several}')
  print(f'pixel F1 at 0.5 / at the threshold best on validation (it) / AUC; copy-move F1 at 0.5. '
        f'Chosen on validation: {chosen}')
  fusion_rules.print_table(list(splits), {name: [
      f"{f['all']['pixel_f1']:.3f} / {f['at_validation_threshold']['pixel_f1']:.3f} "
      f"({f['at_validation_threshold']['threshold']:.2f}) / {f['all']['pixel_auc']:.3f}; "
      f"{f[labels_lib.COPY_MOVE]['pixel_f1']:.3f}" for f in (results[name][key] for key in splits)]
      for name in RULES})
  experiments.write_json(args.output, {'chosen': chosen, 'rules': results})
  return results


if __name__ == '__main__':
  experiments.one_error_line(main)()

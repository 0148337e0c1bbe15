"""Would dense block matching find the copy-moves that SIFT keypoints miss? Measured on training files.

    python -m experiments.dense_copy_move --workdir=<a casia1 localiser run> [--limit=40]

The keypoint map (`forensics.keypoints.copy_move_map`) needs textured regions with keypoints.
Dense methods instead describe a block around every pixel and look for a far block that matches
it, and mark the areas where many neighbouring blocks agree on the same offset (a copied region
moves as one). This is a plain version of that: 16 x 16 blocks every 2 pixels, described by the
mean of their 4 x 4 cells (16 numbers, projected on their first 8 principal components), the
nearest far block (at least 24 pixels away) of each block with enough variance and not a
single edge (structure-tensor coherence below a limit), kept where at least `min_frac` of its 5 x 5
neighbours share its offset within 2 pixels, both ends marked, components smaller than `min_area`
of the image dropped. Translation only (no rotation or scale invariance).

It scores `--limit` copy-move and `--limit` authentic files of the *training* split of the run's
dataset as released (`native`), chosen at random with a fixed seed: the copy-move pixel F1 of the
keypoint map, of the dense map at a few settings, of their union and of "keypoints, else dense",
and each one's false alarms (authentic files with any pixel marked). Not part of any detector: it
did not beat the keypoint map (see the closing figures this prints).
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
from sklearn.neighbors import KDTree

import experiments
from forgery_jax import evaluate
from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax.data import input_pipeline
from forgery_jax.data import labels
from forgery_jax.evaluation import pixel_eval
from forgery_jax.evaluation import pixel_metrics
from forgery_jax.forensics import keypoints

BLOCK, CELLS, STRIDE = 16, 4, 2
SETTINGS = (
    {'min_area': 0.002, 'max_coherence': 1.1},   # no coherence limit
    {'min_area': 0.006, 'max_coherence': 0.8},
    {'min_area': 0.006, 'max_coherence': 0.7, 'min_frac': 0.8},
)


def block_features(grey: np.ndarray):
  """Per block (top-left corners every STRIDE pixels): cell means (gh, gw, CELLS**2), standard
  deviation and structure-tensor coherence (gh, gw), and the corners' rows and columns."""
  g = grey.astype(np.float32)
  c = BLOCK // CELLS
  box = lambda a, size: cv2.boxFilter(a, -1, (size, size), anchor=(0, 0),
                                      borderType=cv2.BORDER_REPLICATE)
  h, w = g.shape
  rows, cols = np.meshgrid(np.arange(0, h - BLOCK + 1, STRIDE), np.arange(0, w - BLOCK + 1, STRIDE),
                           indexing='ij')
  cells = box(g, c)
  f = np.stack([cells[rows + i * c, cols + j * c] for i in range(CELLS) for j in range(CELLS)], -1)
  mean = box(g, BLOCK)
  std = np.sqrt(np.maximum(box(g * g, BLOCK) - mean * mean, 0))[rows, cols]
  gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
  jxx, jyy, jxy = (box(a, BLOCK)[rows, cols] for a in (gx * gx, gy * gy, gx * gy))
  coherence = ((jxx - jyy) ** 2 + 4 * jxy ** 2) / np.maximum((jxx + jyy) ** 2, 1e-6)
  return f, std, coherence, rows, cols


def dense_map(rgb: np.ndarray, *, min_offset: int = 24, min_std: float = 6.0,
              max_coherence: float = 1.1, neighbours: int = 12, dims: int = 8,
              min_frac: float = 0.6, min_area: float = 0.002) -> np.ndarray:
  """Where blocks of an (H, W, 3) uint8 image repeat at a consistent offset: (H, W) bool."""
  grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
  h, w = grey.shape
  f, std, coherence, rows, cols = block_features(grey)
  gh, gw = rows.shape
  flat, pos = f.reshape(-1, f.shape[-1]), np.stack([rows.ravel(), cols.ravel()], 1)
  described = np.flatnonzero((std.ravel() > min_std) & (coherence.ravel() < max_coherence))
  offset = np.full((gh * gw, 2), np.nan, np.float32)
  if len(described) > neighbours + 1:
    centred = flat[described] - flat[described].mean(0)
    _, _, vt = np.linalg.svd(centred[::7], full_matrices=False)
    projected = centred @ vt[:dims].T
    _, nearest = KDTree(projected).query(projected, k=neighbours + 1)
    nearest = described[nearest]
    moves = pos[nearest] - pos[described][:, None]
    far = np.hypot(moves[..., 0], moves[..., 1]) >= min_offset
    far[:, 0] = False
    first, found = np.argmax(far, 1), far.any(1)
    offset[described[found]] = moves[np.flatnonzero(found), first[found]]
  offset = offset.reshape(gh, gw, 2)
  field = np.nan_to_num(offset, nan=1e9)
  r = 2  # 5 x 5 neighbourhoods
  padded = np.pad(field, ((r, r), (r, r), (0, 0)), constant_values=1e9)
  agree = sum((np.abs(padded[r + dy:r + dy + gh, r + dx:r + dx + gw] - field).max(-1) <= 2.0)
              for dy in range(-r, r + 1) for dx in range(-r, r + 1)) / (2 * r + 1) ** 2
  keep = ~np.isnan(offset[..., 0]) & (agree >= min_frac)
  marked = np.zeros((h, w), np.uint8)
  ys, xs = rows[keep] + BLOCK // 2, cols[keep] + BLOCK // 2
  moved = offset[keep].astype(int)
  for y, x in ((ys, xs), (ys + moved[:, 0], xs + moved[:, 1])):
    marked[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)] = 1
  marked = cv2.dilate(marked, np.ones((STRIDE + 1, STRIDE + 1), np.uint8))
  marked = cv2.morphologyEx(marked, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
  _, components, stats, _ = cv2.connectedComponentsWithStats(marked)
  large = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= min_area * h * w) + 1
  return np.isin(components, large)


def figures(maps, files) -> str:
  f1 = [pixel_metrics.per_image(m.astype(np.float32), mask)['pixel_f1']
        for m, (_, mask) in zip(maps, files) if mask is not None]
  alarms = [m.any() for m, (_, mask) in zip(maps, files) if mask is None]
  return (f'copy-move pixel F1 {np.mean(f1):.3f} (some pixel right: {np.mean(np.array(f1) > 0):.2f}), '
          f'false alarms {np.mean(alarms):.3f}')


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a casia1 localiser run (for its dataset and split)')
  parser.add_argument('--limit', type=experiments.whole_number(1), default=40, help='copy-move and authentic files each')
  args = parser.parse_args(argv)
  runtime.quiet_libraries()
  config = evaluate.load_run(args.workdir).config
  dataset = input_pipeline.load(config, builder_config=pixel_eval.NATIVE_CONFIG)
  masks = pixel_eval.MaskSource(config)
  train = dataset.split.train
  rng = np.random.default_rng(0)
  copy_moves = train[dataset.forgery_types[train] == labels.FORGERY_TYPES.index(labels.COPY_MOVE)]
  authentic = train[dataset.labels[train] == 0]
  chosen = [(i, True) for i in rng.permutation(copy_moves)[:args.limit]]
  chosen += [(i, False) for i in rng.permutation(authentic)[:args.limit]]
  files = [(np.asarray(dataset.source[int(i)]['image']), masks.mask(dataset, i) if forged else None)
           for i, forged in chosen]
  print(f'{args.limit} copy-move and {args.limit} authentic training files of {dataset.name}')
  sift = [keypoints.copy_move_map(rgb).map > 0.5 for rgb, _ in progress.bar(files, desc='keypoints')]
  print(f'keypoint map: {figures(sift, files)}')
  for setting in SETTINGS:
    start = time.time()
    dense = [dense_map(rgb, **setting) for rgb, _ in progress.bar(files, desc='dense', leave=False)]
    print(f'dense {setting}: {figures(dense, files)} ({time.time() - start:.0f} s)')
    print(f'  union with the keypoint map: {figures([a | b for a, b in zip(sift, dense)], files)}')
    print(f'  keypoints, else dense: {figures([a if a.any() else b for a, b in zip(sift, dense)], files)}')


if __name__ == '__main__':
  experiments.one_error_line(main)()

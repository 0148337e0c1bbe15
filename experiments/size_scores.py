"""A localiser's p(tampered) by how much of a photo it sees: whole files, and windows of given sizes.

    python -m experiments.size_scores --workdir=<localiser run> --dataset=micc_f220:native \
        --manual_dir=../shared/datasets/micc_f220 [--windows=384x256,192x192] [--output=F.json]

The image head pools the network's features and map over all it is shown (means, maxima, the top
1 %), and it trains on `input.crop` windows of small files. On larger photos its p(tampered) may
then follow the area alone. This scores every file of a dataset (all of it, as a cross dataset;
the network alone, no keypoint map) whole and, for each window size (height x width, turned with
the file), in the centre window and in the non-overlapping windows that tile the file from its
top-left corner (their mean and their maximum). Per way: the AUC, the share of authentic files
and of tampered files with p >= 0.5, and each class's median p. A p that rises with the area on
both classes while the AUC stays put is the area speaking, not the forgery.
"""

from __future__ import annotations

import argparse
from typing import Callable

from absl import flags
import numpy as np
from sklearn import metrics as skm

import experiments
from experiments import fusion_rules
from forgery_jax import evaluate
from forgery_jax import runtime
from forgery_jax.data import datasets
from forgery_jax.data import input_pipeline
from forgery_jax.detectors import localiser


def parse_size(spec: str) -> tuple[int, int]:
  """'384x256' -> (256, 384): a landscape window's (height, width), sides multiples of 16."""
  try:
    width, height = (int(s) for s in spec.lower().split('x'))
  except ValueError:
    raise ValueError(f'--windows: {spec!r} is not WIDTHxHEIGHT') from None
  if min(width, height) < localiser.ALIGN or width % localiser.ALIGN or height % localiser.ALIGN:
    raise ValueError(f'--windows: {spec!r}: sides must be multiples of {localiser.ALIGN}')
  return min(height, width), max(height, width)


def _oriented(image: np.ndarray, size: tuple[int, int]) -> tuple[int, int]:
  short, long = size
  return (long, short) if image.shape[0] > image.shape[1] else (short, long)


def centre(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """The window of `size` (turned with the image) at its centre, its corner on the 16-pixel grid
  (the whole image where it is smaller)."""
  h, w = _oriented(image, size)
  top = max(0, (image.shape[0] - h) // 2) // localiser.ALIGN * localiser.ALIGN
  left = max(0, (image.shape[1] - w) // 2) // localiser.ALIGN * localiser.ALIGN
  return image[top:top + h, left:left + w]


def windows(image: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
  """The non-overlapping windows of `size` (turned with the image) from its top-left corner; the
  pixels past the last whole window are left out (the whole image where it is smaller)."""
  h, w = _oriented(image, size)
  tops = range(0, image.shape[0] - h + 1, h) if image.shape[0] >= h else [0]
  lefts = range(0, image.shape[1] - w + 1, w) if image.shape[1] >= w else [0]
  return [image[t:t + h, l:l + w] for t in tops for l in lefts]


def scores_by_size(score: Callable[[list[np.ndarray]], np.ndarray], images,
                   sizes: list[tuple[int, int]]) -> dict[str, list[float]]:
  """p(tampered) of each image by each way of showing it; `score` maps a list of arrays to their
  p(tampered)."""
  out = {'whole': []}
  for image in images:
    out['whole'].append(float(score([image])[0]))
    for h, w in sizes:
      name = f'{w}x{h}'
      out.setdefault(f'{name} centre', []).append(float(score([centre(image, (h, w))])[0]))
      p = np.asarray(score(windows(image, (h, w))))
      out.setdefault(f'{name} windows: mean', []).append(float(p.mean()))
      out.setdefault(f'{name} windows: max', []).append(float(p.max()))
  return out


def summary(p: np.ndarray, tampered: np.ndarray) -> dict:
  """AUC, the shares of authentic and tampered files at p >= 0.5, and the median p of each."""
  p, tampered = np.asarray(p, np.float64), np.asarray(tampered, bool)
  return {'auc': float(skm.roc_auc_score(tampered, p)) if 0 < tampered.sum() < len(p) else float('nan'),
          'authentic_called_tampered': float((p[~tampered] >= 0.5).mean()),
          'tampered_called_tampered': float((p[tampered] >= 0.5).mean()),
          'authentic_median': float(np.median(p[~tampered])),
          'tampered_median': float(np.median(p[tampered]))}


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a finished localiser run')
  parser.add_argument('--dataset', required=True, help='NAME[:CONFIG], scored whole')
  parser.add_argument('--manual_dir', type=runtime.home, default='', help="the release's folder, if it is not built")
  parser.add_argument('--windows', default='384x256,192x192',
                      help='window sizes, WIDTHxHEIGHT, comma-separated')
  parser.add_argument('--limit', type=experiments.whole_number(0, '0: all'), default=0, help='the first N files only (0: all)')
  parser.add_argument('--output', type=runtime.home, default='', help='write the scores and figures as JSON here')
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()
  runtime.quiet_libraries()
  try:
    sizes = [parse_size(s) for s in args.windows.split(',') if s]
    cross = evaluate.CrossDataset.parse(args.dataset, manual_dir=args.manual_dir, flag='--dataset')
    run = evaluate.load_run(args.workdir)
  except (ValueError, datasets.DatasetError) as e:
    parser.exit(2, f'error: {e}\n')
  detector = run.detectors[0]
  if not detector.localises:
    parser.exit(2, f'error: {args.workdir} is not a localiser run\n')
  dataset = input_pipeline.load(detector.config, all_for_test=True, name=cross.name,
                                builder_config=cross.builder_config, manual_dir=cross.manual_dir,
                                train_classes=())
  every = dataset.split.test[:args.limit or None]
  images = (np.asarray(dataset.source[int(i)]['image']) for i in every)
  score = lambda arrays: detector.score([{'image': a} for a in arrays]).probabilities[:, 1]
  scores = scores_by_size(score, images, sizes)
  tampered = dataset.labels[every] != 0
  figures = {way: summary(p, tampered) for way, p in scores.items()}
  columns = list(next(iter(figures.values())))
  fusion_rules.print_table(columns, {way: [f'{f[c]:.3f}' for c in columns] for way, f in figures.items()},
                           first='shown')
  experiments.write_json(args.output, {'figures': figures, 'scores': scores,
                                        'tampered': tampered.tolist()})
  return figures


if __name__ == '__main__':
  experiments.one_error_line(main)()

"""What a file's EXIF orientation costs a localiser that turns the pixels before scoring them.

    python -m experiments.turned_photos --workdir=<localiser run> --masks=<folder> --images=<folder>
        [--orientation=3] [--cut=3,5] [--quality=92] [--output=F.json]

Cameras store the pixels as the sensor reads them and say in EXIF how a viewer turns them. Turning
moves the JPEG grid of a photo whose side is not a multiple of 8, and a localiser reads that grid.
Each forgery with a mask (masks named `<image stem>_gt.png`, as CASIA's ground truth) is cut `cut`
pixels short of its width and height, saved as JPEG at `quality` with the EXIF `orientation`, and
scored three ways by the run's predictor (`forgery_jax.load`): the file as stored, its map turned
(what `predict` does); its pixels turned first (a viewer's pixels); the same JPEG without the tag.
The masks are turned with the image where it is. Prints pixel F1 at 0.5 and pixel AUC, averaged
over the images (the `pixel` evaluator's definitions). Nothing in the run is changed.
"""

from __future__ import annotations

import argparse
import io
import os

import numpy as np
from PIL import Image

import experiments
import forgery_jax
from forgery_jax import image_io
from forgery_jax import runtime
from forgery_jax.evaluation import ground_truth
from forgery_jax.evaluation import pixel_metrics

WAYS = ('as stored, map turned', 'turned first', 'no tag')


def _jpeg(rgb: np.ndarray, quality: int, orientation: int) -> Image.Image:
  """`rgb` encoded as JPEG in memory (with the EXIF orientation unless it is 1) and opened."""
  exif = Image.Exif()
  if orientation != 1:
    exif[image_io.EXIF_ORIENTATION] = orientation
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, format='JPEG', quality=quality, exif=exif.tobytes())
  return Image.open(io.BytesIO(buf.getvalue()))


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a finished localiser run')
  parser.add_argument('--masks', type=runtime.home, required=True, help='folder of <stem>_gt.png masks')
  parser.add_argument('--images', type=runtime.home, required=True, help='folder of the forgeries')
  parser.add_argument('--orientation', type=int, default=3, choices=range(2, 9))
  parser.add_argument('--cut', default='3,5', help='pixels cut from the width and the height')
  parser.add_argument('--quality', type=experiments.whole_number(1, 'a JPEG quality', 100), default=92)
  parser.add_argument('--output', type=runtime.home, default='', help='write the figures as JSON here')
  args = parser.parse_args(argv)
  cut_w, cut_h = (int(v) for v in args.cut.split(','))
  runtime.quiet_libraries()
  predictor = forgery_jax.load(args.workdir)
  if not predictor.localises:
    raise ValueError(f'{args.workdir} draws no map: this experiment reads the maps of a localiser run')
  for folder in (args.masks, args.images):
    if not os.path.isdir(folder):
      raise ValueError(f'{folder}: no such folder')
  images = {os.path.splitext(os.path.basename(p))[0]: p for p in image_io.image_files(args.images)}
  rows = {way: [] for way in WAYS}
  for mask_path in image_io.image_files(args.masks):
    stem = os.path.splitext(os.path.basename(mask_path))[0]
    if not stem.endswith('_gt') or stem.removesuffix('_gt') not in images:
      continue
    stem = stem.removesuffix('_gt')
    rgb = image_io.load_rgb(images[stem])
    h, w = rgb.shape[0] - cut_h, rgb.shape[1] - cut_w
    try:
      truth = ground_truth.read_mask(mask_path, rgb.shape[:2])[:h, :w]
    except ValueError:  # a mask of another size: not this image's
      continue
    tagged = _jpeg(rgb[:h, :w], args.quality, args.orientation)
    stored = image_io.pil_to_rgb(tagged)
    shown_truth = image_io.orient(truth, args.orientation)
    maps = {
        WAYS[0]: (predictor.predict(tagged).map, shown_truth),
        WAYS[1]: (predictor.predict(image_io.orient(stored, args.orientation)).map, shown_truth),
        WAYS[2]: (predictor.predict(_jpeg(rgb[:h, :w], args.quality, 1)).map, truth),
    }
    for way, (tamper_map, t) in maps.items():
      rows[way].append(pixel_metrics.per_image(tamper_map, t))
  if not rows[WAYS[0]]:
    raise ValueError(f'no image of {args.images} has a mask of its size in {args.masks}')
  figures = {way: {k: round(float(v), 4) for k, v in pixel_metrics.summarise(r).items()
                   if k in ('pixel_f1', 'pixel_auc')} for way, r in rows.items()}
  print(f'{len(rows[WAYS[0]])} forgeries, cut by {cut_w} x {cut_h} pixels, quality {args.quality}, '
        f'EXIF orientation {args.orientation}:')
  for way, f in figures.items():
    print(f"  {way:>22}: pixel F1 {f['pixel_f1']:.3f}, pixel AUC {f['pixel_auc']:.3f}")
  experiments.write_json(args.output, figures)
  return figures


if __name__ == '__main__':
  experiments.one_error_line(main)()

"""How closely does `forgery_jax.jpeg.round_trip` follow libjpeg? Per quality, on real photos.

    python -m experiments.jpeg_agreement [--photos=DIR_OR_GLOB] [--limit=200]

For every photo and every quality in 50-100 (step 5, and 98, 99): the JAX round trip against
PIL's and OpenCV's encode + decode of the same pixels. Prints, per quality, the share of pixel
values equal, the share within +-1 and the largest difference, for each reference.
"""

from __future__ import annotations

import argparse
import glob
import io
import os

import cv2
import numpy as np
from PIL import Image

import experiments
from forgery_jax import jpeg
from forgery_jax import runtime

DEFAULT_PHOTOS = os.path.join(os.path.dirname(__file__), '..', '..', 'shared', 'datasets',
                              'casia1', 'Au', '*.jpg')
QUALITIES = (50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 98, 99, 100)


def pil(rgb: np.ndarray, quality: int) -> np.ndarray:
  buf = io.BytesIO()
  Image.fromarray(rgb).save(buf, 'JPEG', quality=quality)
  buf.seek(0)
  return np.asarray(Image.open(buf).convert('RGB'))


def opencv(rgb: np.ndarray, quality: int) -> np.ndarray:
  _, buf = cv2.imencode('.jpg', rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
  return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def load_photos(where: str, limit: int) -> list[np.ndarray]:
  """RGB arrays of the first `limit` photos in a folder or matching a glob (one line says which)."""
  pattern = os.path.join(where, '*') if os.path.isdir(where) else where
  files = sorted(glob.glob(pattern))[:limit]
  if not files:
    raise SystemExit(f'error: no photos at {where}')
  photos = [np.asarray(Image.open(f).convert('RGB')) for f in files]
  print(f'{len(photos)} photos ({files[0]} ...), sizes {sorted({p.shape[:2] for p in photos})[:4]}')
  return photos


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--photos', type=runtime.home, default=DEFAULT_PHOTOS, help='a folder or a glob of photos')
  parser.add_argument('--limit', type=experiments.whole_number(1, 'photos'), default=200)
  args = parser.parse_args(argv)
  photos = load_photos(args.photos, args.limit)
  print('| quality | PIL: equal | PIL: within +-1 | PIL: max diff | OpenCV: equal | OpenCV: within +-1 | OpenCV: max diff |')
  print('|---|---|---|---|---|---|---|')
  for q in QUALITIES:
    stats = {'pil': [0, 0, 0, 0], 'opencv': [0, 0, 0, 0]}  # equal, within 1, max, count
    for photo in photos:
      ours = np.asarray(jpeg.round_trip(photo[None], q))[0].astype(np.int32)
      for name, ref in (('pil', pil), ('opencv', opencv)):
        d = np.abs(ours - ref(photo, q).astype(np.int32))
        s = stats[name]
        s[0] += int((d == 0).sum())
        s[1] += int((d <= 1).sum())
        s[2] = max(s[2], int(d.max()))
        s[3] += d.size
    cells = [f'{s[0] / s[3]:.6f} | {s[1] / s[3]:.6f} | {s[2]}' for s in stats.values()]
    print(f'| {q} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
  experiments.one_error_line(main)()

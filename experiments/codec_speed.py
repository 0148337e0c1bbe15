"""The JAX codec against another version of itself, timed side by side on the default device.

    git show <commit>:forgery_jax/jpeg.py > /tmp/jpeg_other.py
    python -m experiments.codec_speed --other=/tmp/jpeg_other.py [--batch=4096] [--photos=...]

A change made for one backend can cost another (the CPU's float32 quotient and colour product
cost a GPU 12 %): this loads `--other` as a module beside `forgery_jax.jpeg`, checks that both
give the same pixels, and prints each one's images/s at quality 90 and at a quality per image
(as forgery synthesis calls it), in alternating rounds, with their ratio.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics

import jax
import jax.numpy as jnp
import numpy as np

import experiments
from benchmarks.common import median_seconds
from experiments import jpeg_agreement
from forgery_jax import jpeg
from forgery_jax import runtime


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--other', type=runtime.home, required=True, help='a jpeg.py of another version')
  parser.add_argument('--batch', type=experiments.whole_number(1), default=4096)
  parser.add_argument('--rounds', type=experiments.whole_number(1), default=3)
  parser.add_argument('--photos', type=runtime.home, default=jpeg_agreement.DEFAULT_PHOTOS, help='a folder or a glob')
  args = parser.parse_args(argv)
  if not os.path.isfile(args.other) or not args.other.endswith('.py'):
    raise SystemExit(f'error: {args.other}: not a Python file (give a jpeg.py of another version)')
  spec = importlib.util.spec_from_file_location('jpeg_other', args.other)
  other = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(other)
  if not callable(getattr(other, 'round_trip', None)):
    raise SystemExit(f'error: {args.other}: has no round_trip function')
  photos = jpeg_agreement.load_photos(args.photos, 64)
  same = [p for p in photos if p.shape == photos[0].shape]
  x = jax.device_put(jnp.asarray(np.stack((same * (args.batch // len(same) + 1))[:args.batch])))
  q = jax.device_put(jnp.asarray(np.random.default_rng(0).integers(50, 101, args.batch), jnp.int32))
  rates = {}
  for setting, quality in (('quality 90', 90), ('a quality per image', q)):
    fns = {name: jax.jit(lambda im, m=module, quality=quality: m.round_trip(im, quality))
           for name, module in (('this', jpeg), ('other', other))}
    if not np.array_equal(np.asarray(fns['this'](x)), np.asarray(fns['other'](x))):
      raise SystemExit(f'error: {args.other} and forgery_jax.jpeg give different pixels ({setting})')
    runs = {name: [] for name in fns}
    for _ in range(args.rounds):
      for name, fn in fns.items():
        runs[name].append(args.batch / median_seconds(lambda fn=fn: fn(x).block_until_ready(), 5))
    rates[setting] = {name: statistics.median(r) for name, r in runs.items()}
    print(f'{setting}, batch {args.batch} on {jax.devices()[0].device_kind}: this '
          f'{rates[setting]["this"]:.0f}, other {rates[setting]["other"]:.0f} images/s '
          f'(rounds: {[round(v) for v in runs["this"]]} / {[round(v) for v in runs["other"]]}); '
          f'this / other {rates[setting]["this"] / rates[setting]["other"]:.3f}; pixels equal')
  return rates


if __name__ == '__main__':
  experiments.one_error_line(main)()

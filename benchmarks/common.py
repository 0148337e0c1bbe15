"""What every benchmark group shares: a row of the table, timing, the machine, real photos."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import platform
import statistics
import time

import jax
import ml_collections
import numpy as np
from PIL import Image

from configs import default as default_config
from forgery_jax import image_io
from forgery_jax.data import synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('FORGERY_JAX_SHARED', os.path.join(os.path.dirname(REPO), 'shared'))
GPU_TARGET_IMAGES_PER_SECOND = 20_000


@dataclasses.dataclass
class Row:
  name: str
  ours: float
  reference: float | None
  ratio: float | None   # how many times better ours is
  unit: str
  target: float | None  # the ratio asked for, or None
  inputs: str = ''

  def line(self) -> str:
    fmt = lambda v: '-' if v is None else f'{v:.4g}'
    met = '' if self.target is None or self.ratio is None else ('  ok' if self.ratio >= self.target else '  MISSED')
    return (f'| {self.name} | {fmt(self.ours)} | {fmt(self.reference)} | {fmt(self.ratio)} | '
            f'{self.unit} | {fmt(self.target)}{met} | {self.inputs} |')


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  with contextlib.suppress(OSError):
    with open('/proc/cpuinfo') as f:
      cpu = next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), cpu)
  return f'{os.cpu_count()} cores ({cpu}); JAX {jax.__version__} devices: {jax.devices()}'


def photo_files(count: int, folder: str) -> tuple[list[str], str]:
  """(photo files, what they are): CASIA v1 authentic and tampered files alternately where
  present, else the bundled photographs saved as JPEG (quality 90) in `folder`, repeated."""
  root = os.path.join(SHARED, 'datasets', 'casia1')
  au = sorted(glob.glob(os.path.join(root, 'Au', '*.jpg')))
  sp = sorted(glob.glob(os.path.join(root, 'Sp', '*.jpg')))
  mixed = [f for pair in zip(au, sp) for f in pair][:count]
  if mixed:
    return mixed, f'{len(mixed)} casia1 files'
  files = []
  for i in range(count):
    source, name = synthetic.PHOTOS[i % len(synthetic.PHOTOS)]
    path = os.path.join(folder, f'{i:04d}_{os.path.splitext(name)[0]}.jpg')
    Image.fromarray(synthetic.load_photo(source, name)).save(path, quality=90)
    files.append(path)
  return files, f'{count} bundled photos saved as JPEG'


def photos(count: int) -> tuple[list[np.ndarray], str]:
  """Real photos: CASIA v1 authentic images if present, else the bundled ones."""
  files = sorted(glob.glob(os.path.join(SHARED, 'datasets', 'casia1', 'Au', '*.jpg')))[:count]
  if files:
    return [np.asarray(Image.open(f).convert('RGB')) for f in files], f'{len(files)} casia1 Au photos'
  bundled = [synthetic.load_photo(p, f) for p, f in synthetic.PHOTOS][:count]
  return bundled, f'{len(bundled)} bundled photos'


def large_photo(source: np.ndarray) -> np.ndarray:
  """A 2048x1536 photo: a real one upscaled, saved as JPEG (quality 92) and decoded."""
  big = Image.fromarray(source).resize((2048, 1536), Image.BICUBIC)
  return image_io.jpeg_roundtrip(np.asarray(big), 92)


def model_config(resolution: int = 128, dtype: str = 'float32') -> ml_collections.ConfigDict:
  """The paper's model at `resolution`."""
  config = default_config.get_config()
  config.dataset.resolution = resolution
  config.model.dtype = dtype
  return config

"""ELA, SRM and the JAX JPEG codec against what a user would run instead."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from benchmarks import reference
from benchmarks.common import GPU_TARGET_IMAGES_PER_SECOND, Row, median_seconds
from forgery_jax import image_io
from forgery_jax import jpeg
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.forensics import srm


def ela_rows(images: list[np.ndarray], label: str, repeats: int) -> list[Row]:
  pil_images = [Image.fromarray(im) for im in images]
  # As the dataset builders run it: one image per thread, OpenCV's own parallel loops off
  # (for every contender alike; the JPEG codecs are single-threaded anyway).
  with image_io.opencv_threads(1):
    ours = median_seconds(lambda: [ela_lib.ela(im) for im in images], repeats) / len(images)
    paper = median_seconds(lambda: [reference.paper_ela(im) for im in pil_images], repeats) / len(images)
    floors = {name: median_seconds(lambda c=codec: [c(im) for im in images], repeats) / len(images)
              for name, codec in reference.jpeg_codecs().items()}
  fastest = min(floors, key=floors.get)
  ms = 1e3
  return [
      Row(f'ela vs paper recipe ({label})', ours * ms, paper * ms, paper / ours, 'ms/image', 5.0,
          'PIL temp file + ImageChops + ImageEnhance'),
      Row(f'ela vs codec floor ({label})', ours * ms, floors[fastest] * ms, floors[fastest] / ours,
          'ms/image', 1 / 1.3, f'one encode+decode, fastest installed codec: {fastest}; '
          'OpenCV on 1 thread per image, as in the builders'),
  ]


def srm_rows(images: list[np.ndarray], batch: int, repeats: int) -> list[Row]:
  h, w = images[0].shape[:2]
  stack = np.stack([im[:h, :w] for im in images if im.shape[:2] == (h, w)][:batch])
  stack = np.concatenate([stack] * (batch // len(stack) + 1))[:batch]
  kernels = jnp.asarray(srm.srm_kernels())
  fn = jax.jit(srm.srm_residual)
  x = jnp.asarray(stack, jnp.float32)
  ours = median_seconds(lambda: fn(x, kernels).block_until_ready(), repeats, warmup=2) / batch
  paper = median_seconds(lambda: [reference.paper_srm(im) for im in stack], repeats) / batch
  return [Row(f'srm residual {h}x{w}, batch {batch}', ours * 1e3, paper * 1e3, paper / ours,
              'ms/image', 20.0, f'jitted stencil on {jax.devices()[0].platform} vs 30 kernels x 3 channels of cv2.filter2D')]


def jpeg_rows(images: list[np.ndarray], batches: tuple[int, ...], repeats: int, on_gpu: bool) -> list[Row]:
  """The JAX round trip (quality 90) in images/s: against OpenCV's encode + decode of the same
  images on this CPU, and on a GPU (the batch that saturates it) against the 20,000 images/s target."""
  h, w = images[0].shape[:2]
  same = [im for im in images if im.shape[:2] == (h, w)]
  tile = lambda batch: np.stack((same * (batch // len(same) + 1))[:batch])
  fn = jax.jit(lambda im: jpeg.round_trip(im, 90))
  rates = {}
  for batch in batches:
    x = jax.device_put(jnp.asarray(tile(batch)))
    rates[batch] = batch / median_seconds(lambda: fn(x).block_until_ready(), repeats, warmup=2)
  batch = max(rates, key=rates.get)
  ours = rates[batch]
  device = jax.devices()[0]
  if on_gpu:
    return [Row(f'JPEG round trip {w}x{h}, batch {batch} ({device.device_kind})', ours,
                GPU_TARGET_IMAGES_PER_SECOND, ours / GPU_TARGET_IMAGES_PER_SECOND, 'images/s', 1.0,
                'forgery_jax.jpeg, quality 90, 4:2:0, device-resident batch; batches tried: '
                + ', '.join(f'{b}: {rates[b]:.0f}' for b in batches))]
  opencv = reference.jpeg_codecs()['opencv']
  bgr = [im[..., ::-1].copy() for im in tile(batch)]
  with image_io.opencv_threads(1):
    theirs = batch / median_seconds(lambda: [opencv(im) for im in bgr], repeats)
  return [Row(f'JPEG round trip {w}x{h}, batch {batch}, JAX on {device.platform} vs OpenCV', ours,
              theirs, ours / theirs, 'images/s', None,
              'forgery_jax.jpeg (libjpeg arithmetic, no entropy coding) vs cv2.imencode + imdecode, '
              'one thread, quality 90')]

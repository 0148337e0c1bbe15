"""The picture `predict` draws per image: what the detector saw and where it points.

Tiles: the image; its ELA plane; its SRM residual; the detector's map over the image (the tamper
probability of a localising detector, with its region outlined when one was asked for, or the
paper CNN's gradient saliency, labelled as such);
and, where the detector's answer rests on matched SIFT keypoints (the copy-move evidence, or the
affine models behind the keypoint map), those pairs.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
from PIL import Image, ImageDraw

from forgery_jax import image_io
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.forensics import srm

TILE = 256


def _tile(rgb: np.ndarray, title: str) -> Image.Image:
  im = Image.fromarray(rgb)
  scale = TILE / max(im.size)
  size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
  # Shrink smoothly; enlarge small planes (the model's view, tiny files) pixel by pixel.
  im = im.resize(size, Image.BILINEAR if scale < 1 else Image.NEAREST)
  tile = Image.new('RGB', (TILE, TILE + 16), (255, 255, 255))
  tile.paste(im, ((TILE - im.size[0]) // 2, 16 + (TILE - im.size[1]) // 2))
  ImageDraw.Draw(tile).text((4, 2), title, fill=(0, 0, 0))
  return tile


def srm_display(rgb: np.ndarray, clip: float = 3.0) -> np.ndarray:
  """|SRM residual| of the full-resolution image as a grey picture: the model's residual (the mean
  of the 30 kernels' responses, clipped), computed with OpenCV so that no image size compiles."""
  mean_kernel = srm.srm_kernels().mean(-1)[:, :, 0]
  residual = cv2.filter2D(rgb.astype(np.float32), -1, mean_kernel, borderType=cv2.BORDER_CONSTANT)
  grey = (np.abs(np.clip(residual, -clip, clip)).mean(-1) / clip * 255).astype(np.uint8)
  return np.repeat(grey[..., None], 3, -1)


def overlay(rgb: np.ndarray, heat: np.ndarray, normalise: bool) -> np.ndarray:
  """`heat` (H, W) in red over the image; a saliency map is smoothed and scaled to its maximum."""
  heat = heat.astype(np.float32)
  if normalise:
    heat = cv2.GaussianBlur(heat, (0, 0), 2)
    heat = heat / (heat.max() or 1.0)
  heat = np.clip(heat, 0, 1)[..., None]
  red = np.zeros_like(rgb, np.float32)
  red[..., 0] = 255
  return (rgb.astype(np.float32) * (1 - 0.6 * heat) + red * 0.6 * heat).astype(np.uint8)


def outline(rgb: np.ndarray, region: np.ndarray) -> np.ndarray:
  """The image with the edges of `region` ((H, W) bool) drawn in yellow."""
  out = np.ascontiguousarray(rgb.copy())
  contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
  cv2.drawContours(out, contours, -1, (255, 255, 0), max(1, round(max(rgb.shape[:2]) / 300)))
  return out


def keypoint_pairs(rgb: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
  """The image with matched keypoint pairs ((P, 2) ends in its pixels) drawn as lines."""
  out = np.ascontiguousarray(rgb.copy())
  width = max(1, round(max(rgb.shape[:2]) / 400))
  for (x0, y0), (x1, y1) in zip(src, dst):
    cv2.line(out, (int(x0), int(y0)), (int(x1), int(y1)), (0, 255, 255), width)
    cv2.circle(out, (int(x0), int(y0)), 2 * width, (255, 0, 0), -1)
    cv2.circle(out, (int(x1), int(y1)), 2 * width, (0, 0, 255), -1)
  return out


def write_panel(path: str, prepared, prediction, pairs: tuple | None = None) -> None:
  """One PNG: the tiles above a title line with the file name and the decision; `pairs`, the
  (src, dst) keypoint pairs the detector's answer rests on, make one more tile (none: no tile).
  Everything is drawn as a viewer shows the image (`prepared.shown`): the map and the pairs are
  already; ELA and SRM are computed on the stored pixels, where the file's JPEG grid lies."""
  rgb = prepared.shown(prepared.rgb)
  tiles = [_tile(rgb, 'image'),
           _tile(prepared.shown(ela_lib.ela(prepared.rgb, prepared.preparation.ela_quality)),
                 f'ELA (q{prepared.preparation.ela_quality})'),
           _tile(prepared.shown(srm_display(prepared.rgb)), 'SRM residual')]
  if prediction.map is not None:
    saliency = prediction.map_kind == 'saliency'
    heat = overlay(rgb, prediction.map, normalise=saliency)
    title = 'saliency (not a segmentation)' if saliency else 'p(tampered) per pixel'
    if prediction.region is not None:
      heat, title = outline(heat, prediction.region), f'{title}; region outlined'
    tiles.append(_tile(heat, title))
  if pairs is not None:
    tiles.append(_tile(keypoint_pairs(rgb, *pairs), f'matched keypoints ({len(pairs[0])} pairs)'))
  panel = Image.new('RGB', (TILE * len(tiles), TILE + 36), (255, 255, 255))
  for i, t in enumerate(tiles):
    panel.paste(t, (i * TILE, 20))
  ImageDraw.Draw(panel).text(
      (4, 4), f'{os.path.basename(prepared.name)}: {prediction.label}, '
      f'p(tampered) = {prediction.p_tampered:.3f}', fill=(0, 0, 0))
  image_io.write_png(path, np.asarray(panel))

"""Spatial Rich Model (SRM) high-pass residuals as a fixed convolution.

The 30 basic linear high-pass kernels of Fridrich & Kodovsky, "Rich Models for
Steganalysis of Digital Images" (IEEE TIFS 2012), written from their
definitions: 8 first-order, 4 second-order and 8 third-order directional
differences, SQUARE 3x3, 4 EDGE 3x3, SQUARE 5x5 and 4 EDGE 5x5. Each kernel
is embedded in a 5x5 support around the centre pixel and scaled to
max |value| = 1, as the dual-branch paper does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NUM_KERNELS = 30
_CENTRE = 2

# The eight neighbour directions (dy, dx), clockwise from "up".
_DIRECTIONS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _directional(taps: tuple[int, ...], offsets: tuple[int, ...], dy: int, dx: int) -> np.ndarray:
  """A 1-D filter `taps` laid along direction (dy, dx) through the centre."""
  k = np.zeros((5, 5), np.float64)
  for tap, off in zip(taps, offsets):
    k[_CENTRE + off * dy, _CENTRE + off * dx] += tap
  return k


def _first_order() -> list[np.ndarray]:
  # x[n + d] - x[n], for the 8 neighbours d.
  return [_directional((-1, 1), (0, 1), dy, dx) for dy, dx in _DIRECTIONS]


def _second_order() -> list[np.ndarray]:
  # x[n - d] - 2 x[n] + x[n + d]: horizontal, vertical and the two diagonals.
  return [_directional((1, -2, 1), (-1, 0, 1), dy, dx) for dy, dx in _DIRECTIONS[:4]]


def _third_order() -> list[np.ndarray]:
  # x[n - d] - 3 x[n] + 3 x[n + d] - x[n + 2d], for the 8 directions d.
  return [_directional((1, -3, 3, -1), (-1, 0, 1, 2), dy, dx) for dy, dx in _DIRECTIONS]


_SQUARE_3 = np.array([[-1, 2, -1], [2, -4, 2], [-1, 2, -1]], np.float64)
_SQUARE_5 = np.array([[-1, 2, -2, 2, -1],
                      [2, -6, 8, -6, 2],
                      [-2, 8, -12, 8, -2],
                      [2, -6, 8, -6, 2],
                      [-1, 2, -2, 2, -1]], np.float64)


def _edges(square: np.ndarray) -> list[np.ndarray]:
  """EDGE kernels: the square kernel's half above the centre row, then its 4 rotations."""
  n = square.shape[0]
  edge = square.copy()
  edge[n // 2 + 1:] = 0
  return [np.rot90(edge, -r) for r in range(4)]


def _pad5(k: np.ndarray) -> np.ndarray:
  p = (5 - k.shape[0]) // 2
  return np.pad(k, p)


def srm_kernels() -> np.ndarray:
  """The 30 SRM kernels as float32 (5, 5, 1, 30) HWIO, each max |value| = 1."""
  kernels = (_first_order() + _second_order() + _third_order() + [_SQUARE_3]
             + _edges(_SQUARE_3) + [_SQUARE_5] + _edges(_SQUARE_5))
  stacked = np.stack([_pad5(k) / np.abs(k).max() for k in kernels], axis=-1)
  return stacked[:, :, None, :].astype(np.float32)


def srm_residual(images: jax.Array, kernels: jax.Array, clip: float = 3.0) -> jax.Array:
  """SRM branch input: every kernel on every colour channel, averaged, clipped.

  Args:
    images: (N, H, W, C) float images in grey levels [0, 255].
    kernels: (5, 5, 1, K) HWIO kernels, shared by all channels.
    clip: residuals are truncated to [-clip, clip] grey levels, as the paper.

  Returns:
    (N, H, W, C) residual, mean over the K kernels, rescaled to [-1, 1].
  """
  # The mean of the K linear responses is the response of the mean kernel: one 5x5 filter per
  # channel instead of K (exact up to float rounding; the K kernels stay trainable through it).
  mean_kernel = kernels.astype(images.dtype).mean(axis=-1)[:, :, 0]  # (5, 5)
  # A 25-tap stencil of shifted slices, which XLA fuses into one loop: on CPU it ran several
  # times faster than the same filter as a convolution. Zero padding, as filter2D's BORDER_CONSTANT.
  size = mean_kernel.shape[0]
  r = size // 2
  h, w = images.shape[-3:-1]
  padded = jnp.pad(images, [(0, 0)] * (images.ndim - 3) + [(r, r), (r, r), (0, 0)])
  out = sum(mean_kernel[dy, dx] * padded[..., dy:dy + h, dx:dx + w, :]
            for dy in range(size) for dx in range(size))
  return jnp.clip(out, -clip, clip) / clip


def grey(images: jax.Array) -> jax.Array:
  """(N, H, W, 3) RGB -> (N, H, W, 1) luma (ITU-R BT.601, as JPEG's Y)."""
  return images @ jnp.asarray([[0.299], [0.587], [0.114]], images.dtype)


def srm_residuals_per_kernel(images: jax.Array, kernels: jax.Array, clip: float = 3.0) -> jax.Array:
  """The K residuals of the grey image, kept apart: (N, H, W, K) in [-1, 1].

  One `lax.conv` of the (5, 5, 1, K) kernels over the luma, in float (no uint8 saturation),
  each residual truncated to [-clip, clip] grey levels.
  """
  out = jax.lax.conv_general_dilated(
      grey(images), kernels.astype(images.dtype), window_strides=(1, 1), padding='SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return jnp.clip(out, -clip, clip) / clip

"""SRM kernels from their definitions vs the public reference; the in-model residual."""

import cv2
import jax.numpy as jnp
import numpy as np

from forgery_jax.forensics import srm
from tests.conftest import shared_path


def test_kernels_match_reference_file():
  ours = srm.srm_kernels()
  ref = np.load(shared_path('reference', 'srm_kernels_30.npy'))
  assert ours.shape == ref.shape == (5, 5, 1, 30)
  np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_kernels_are_high_pass_and_normalised():
  k = srm.srm_kernels()[:, :, 0, :]
  np.testing.assert_allclose(np.abs(k).max(axis=(0, 1)), 1.0)
  np.testing.assert_allclose(k.sum(axis=(0, 1)), 0.0, atol=1e-6)  # constant images give 0
  flat = k.reshape(25, 30).T
  assert len({tuple(np.round(f, 6)) for f in flat}) == 30  # 30 distinct kernels


def test_residual_matches_filter2d_loop():
  """The jitted conv equals the paper's loop: filter2D per kernel and channel, mean, clip."""
  rng = np.random.default_rng(0)
  img = rng.integers(0, 256, (2, 24, 20, 3)).astype(np.float32)
  kernels = srm.srm_kernels()
  out = np.asarray(srm.srm_residual(jnp.asarray(img), jnp.asarray(kernels), clip=3.0))
  expected = np.zeros_like(img)
  for n in range(img.shape[0]):
    for c in range(3):
      responses = [cv2.filter2D(img[n, :, :, c], -1, kernels[:, :, 0, k], borderType=cv2.BORDER_CONSTANT)
                   for k in range(30)]
      expected[n, :, :, c] = np.clip(np.mean(responses, axis=0), -3, 3) / 3
  assert out.shape == img.shape
  np.testing.assert_allclose(out, expected, atol=1e-4)


def test_per_kernel_residuals_match_filter2d_on_grey():
  """Each of the 30 channels is that kernel's filter2D response on the luma, clipped."""
  rng = np.random.default_rng(1)
  img = rng.integers(0, 256, (1, 20, 24, 3)).astype(np.float32)
  kernels = srm.srm_kernels()
  out = np.asarray(srm.srm_residuals_per_kernel(jnp.asarray(img), jnp.asarray(kernels), clip=3.0))
  luma = img[0] @ np.float32([0.299, 0.587, 0.114])
  assert out.shape == (1, 20, 24, 30)
  for k in range(30):
    expected = cv2.filter2D(luma, -1, kernels[:, :, 0, k], borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(out[0, :, :, k], np.clip(expected, -3, 3) / 3, atol=1e-4)

"""Copy-move evidence from SIFT keypoints matched within one image.

A region copied elsewhere in the same picture brings its keypoints with it: their SIFT
descriptors match each other far better than anything else in the image. This follows
Amerini et al., "A SIFT-based forensic method for copy-move attack detection and
transformation recovery" (IEEE TIFS 2011), for which MICC-F220 was made:

* SIFT keypoints on the grey image (its longer side capped at `MAX_SIDE`, for speed on large
  photos; SIFT is scale invariant);
* the generalised 2NN test: a keypoint's sorted distances d_1 <= d_2 <= ... to all others are
  accepted while d_i / d_{i+1} < `RATIO`, so one keypoint can match several copies;
* pairs closer than `MIN_DISTANCE` pixels are dropped (a keypoint's own neighbourhood);
* a RANSAC affine fit between the two ends of the pairs: a copied region moves (and possibly
  rotates and scales) as one, while chance matches of repeated texture do not agree.

The evidence is the vector [log1p(pairs), log1p(inliers)]: no training, the same for every
dataset, so a network can weigh it beside ELA and SRM. Computed on the file's full-resolution
pixels at build time, like ELA.
"""

from __future__ import annotations

import cv2
import numpy as np

NUM_FEATURES = 2
RATIO = 0.5         # g2NN threshold (Amerini et al.)
MIN_DISTANCE = 40   # pixels, at the analysed size
MAX_SIDE = 1024     # longer side of the analysed image
MAX_KEYPOINTS = 4000
MAX_NEIGHBOURS = 8  # nearest other keypoints examined per keypoint by the g2NN test
RANSAC_PIXELS = 3.0


def matched_pairs(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The two ends, (P, 2) float32 each, of every g2NN pair of a uint8 grey image."""
  sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS)
  keypoints, descriptors = sift.detectAndCompute(grey, None)
  empty = np.zeros((0, 2), np.float32)
  if descriptors is None or len(keypoints) < 3:
    return empty, empty
  points = np.float32([k.pt for k in keypoints])
  # Distances from every descriptor to every other (one matrix product, no Python loop).
  d = descriptors.astype(np.float32)
  sq = (d * d).sum(1)
  dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * d @ d.T, 0))
  np.fill_diagonal(dist, np.inf)
  k = min(MAX_NEIGHBOURS, len(keypoints) - 1)
  nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
  nearest_dist = np.take_along_axis(dist, nearest, 1)
  order = np.argsort(nearest_dist, axis=1)
  nearest, nearest_dist = np.take_along_axis(nearest, order, 1), np.take_along_axis(nearest_dist, order, 1)
  # g2NN: the i-th neighbour is a match while every ratio d_1/d_2, ..., d_i/d_{i+1} is below RATIO.
  accepted = np.cumprod(nearest_dist[:, :-1] < RATIO * nearest_dist[:, 1:], axis=1).astype(bool)
  rows, cols = np.nonzero(accepted)
  i, j = rows, nearest[rows, cols]
  far = np.hypot(*(points[i] - points[j]).T) > MIN_DISTANCE
  keep = (i < j) & far
  return points[i[keep]], points[j[keep]]


def copy_move_evidence(rgb: np.ndarray) -> np.ndarray:
  """[log1p(matched pairs), log1p(affine inliers)] of an (H, W, 3) uint8 image, float32."""
  grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
  scale = MAX_SIDE / max(grey.shape)
  if scale < 1:
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  src, dst = matched_pairs(grey)
  inliers = 0
  if len(src) >= 3:
    _, mask = cv2.estimateAffine2D(src, dst, ransacReprojThreshold=RANSAC_PIXELS)
    inliers = int(mask.sum()) if mask is not None else 0
  return np.log1p(np.float32([len(src), inliers]))

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

`copy_move_map` says where: for each affine model the matches agree on (up to `MAP_MODELS`), the
image is warped by the model and by its inverse, and the pixels that the warped image reproduces
(zero-mean normalised correlation over `MAP_WINDOW` pixels above `MAP_CORRELATION`, on texture
with some variance) in regions that hold inlier keypoints are marked: both copies, since the
pixels alone do not say which one was pasted (Amerini et al., "Copy-move forgery detection and
localization by means of robust clustering with J-Linkage", Signal Processing: Image
Communication 2013, localise the same way). No training, and nothing about a file's history.
With `MapSettings(mirrored=True)` it also finds regions copied mirror-wise (`mirrored_pairs`).

The map's image decision is `MapSettings.decision`: 'inliers' (the default) calls a file copy-moved
when an affine model has more than `MAP_MIN_INLIERS` pairs and draws a region; 'clusters' is the
decision of Amerini et al. (2011) with the settings of their published code: the matched
keypoints (both ends of every pair) are clustered by position (agglomerative, Ward linkage, cut
where the inconsistency coefficient over `CLUSTER_DEPTH` levels exceeds `CLUSTER_CUTOFF`), and a
file is copy-moved when more than `CLUSTER_MIN_PAIRS` pairs join two clusters (`cluster_links`):
a copy's matches run from one place to another, a repeated texture's spread over one area.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

NUM_FEATURES = 2
RATIO = 0.5         # g2NN threshold (Amerini et al.)
MIN_DISTANCE = 40   # pixels, at the analysed size
MAX_SIDE = 1024     # longer side of the analysed image
MAX_KEYPOINTS = 4000
MAX_NEIGHBOURS = 8  # nearest other keypoints examined per keypoint by the g2NN test
RANSAC_PIXELS = 3.0

# The map's settings (chosen on CASIA v1's training split, copy-move files only).
MAP_ANALYSIS_SIDE = 1024  # larger images are analysed at this longer side, the map resized back
MAP_SIFT_SIDE = 768       # smaller ones are upscaled (at most 2x) for SIFT: more keypoints
MAP_CONTRAST = 0.02       # SIFT contrast threshold (OpenCV's default 0.04 finds few on small photos)
MAP_MIN_DISTANCE = 20     # pixels, at the analysed size
MAP_MODELS = 2            # affine models fitted in turn, each on the pairs the last left over
MAP_MIN_INLIERS = 4
MAP_WINDOW = 7
MAP_CORRELATION = 0.6
MAP_MIN_VARIANCE = 4.0    # grey levels squared: flat areas correlate with anything

# The 'clusters' decision (Amerini et al. 2011; the defaults of their published code).
DECISIONS = ('inliers', 'clusters')
CLUSTER_LINKAGE = 'ward'
CLUSTER_CUTOFF = 2.2      # inconsistency coefficient at which the cluster tree is cut
CLUSTER_DEPTH = 4         # levels of the tree the coefficient is computed over
CLUSTER_MIN_PAIRS = 3     # a copy: more pairs than this join two clusters
CLUSTER_MAX_PAIRS = 2000  # more are thinned evenly (clustering is quadratic in memory)


@dataclasses.dataclass(frozen=True)
class MapSettings:
  """The settings of `copy_move_map` (the defaults are the MAP_* constants above); others are
  for experiments such as `experiments/keypoint_settings.py`."""
  analysis_side: int = MAP_ANALYSIS_SIDE
  sift_side: int = MAP_SIFT_SIDE  # 0: no upscaling
  contrast: float = MAP_CONTRAST
  min_distance: float = MAP_MIN_DISTANCE
  models: int = MAP_MODELS
  min_inliers: int = MAP_MIN_INLIERS
  window: int = MAP_WINDOW
  correlation: float = MAP_CORRELATION
  min_variance: float = MAP_MIN_VARIANCE
  mirrored: bool = False  # also regions copied mirror-wise (`mirrored_pairs`: twice the SIFT)
  decision: str = DECISIONS[0]  # the image decision: 'inliers' or 'clusters' (module docstring)

  def __post_init__(self):
    check_decision(self.decision)


def check_decision(decision: str) -> None:
  """`decision` is one of DECISIONS (`model.keypoint_decision`)."""
  if decision not in DECISIONS:
    raise ValueError(f'keypoint decision {decision!r} (model.keypoint_decision): choose from '
                     f'{DECISIONS}')


def _sift(grey: np.ndarray, contrast: float, upscale: float):
  """SIFT keypoints of a uint8 grey image upscaled by `upscale`: their points (in the given
  image's pixels) and descriptors, or None where fewer than 3 are found."""
  sift = cv2.SIFT_create(nfeatures=MAX_KEYPOINTS, contrastThreshold=contrast)
  analysed = grey if upscale == 1 else cv2.resize(grey, None, fx=upscale, fy=upscale,
                                                  interpolation=cv2.INTER_CUBIC)
  keypoints, descriptors = sift.detectAndCompute(analysed, None)
  if descriptors is None or len(keypoints) < 3:
    return None
  return np.float32([k.pt for k in keypoints]) / np.float32(upscale), descriptors.astype(np.float32)


def _g2nn(query: np.ndarray, reference: np.ndarray, same: bool) -> tuple[np.ndarray, np.ndarray]:
  """(i, j): query descriptor i matches reference descriptor j by the generalised 2NN test (a
  descriptor is not its own neighbour where `same`, the two sets being one)."""
  # Distances from every descriptor to every other (one matrix product, no Python loop).
  sq_q, sq_r = (query * query).sum(1), (reference * reference).sum(1)
  dist = np.sqrt(np.maximum(sq_q[:, None] + sq_r[None, :] - 2 * query @ reference.T, 0))
  if same:
    np.fill_diagonal(dist, np.inf)
  k = min(MAX_NEIGHBOURS, len(reference) - 1 if same else len(reference))
  if k < 2:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  nearest = np.argpartition(dist, k - 1, axis=1)[:, :k]
  nearest_dist = np.take_along_axis(dist, nearest, 1)
  order = np.argsort(nearest_dist, axis=1)
  nearest, nearest_dist = np.take_along_axis(nearest, order, 1), np.take_along_axis(nearest_dist, order, 1)
  # g2NN: the i-th neighbour is a match while every ratio d_1/d_2, ..., d_i/d_{i+1} is below RATIO.
  accepted = np.cumprod(nearest_dist[:, :-1] < RATIO * nearest_dist[:, 1:], axis=1).astype(bool)
  rows, cols = np.nonzero(accepted)
  return rows, nearest[rows, cols]


def matched_pairs(grey: np.ndarray, *, contrast: float = 0.04, min_distance: float = MIN_DISTANCE,
                  upscale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
  """The two ends, (P, 2) float32 each, of every g2NN pair of a uint8 grey image (SIFT with
  `contrast` as its contrast threshold, run on the image upscaled by `upscale`; points in the
  given image's pixels)."""
  return _pairs_within(_sift(grey, contrast, upscale), min_distance)


def _no_pairs() -> tuple[np.ndarray, np.ndarray]:
  return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)


def _pairs_within(found, min_distance: float) -> tuple[np.ndarray, np.ndarray]:
  """`matched_pairs` from what `_sift` found."""
  if found is None:
    return _no_pairs()
  points, descriptors = found
  i, j = _g2nn(descriptors, descriptors, same=True)
  far = np.hypot(*(points[i] - points[j]).T) > min_distance
  keep = (i < j) & far
  return points[i[keep]], points[j[keep]]


def mirrored_pairs(grey: np.ndarray, *, contrast: float = 0.04, min_distance: float = MIN_DISTANCE,
                   upscale: float = 1.0, found=None) -> tuple[np.ndarray, np.ndarray]:
  """`matched_pairs` for a region copied mirror-wise: SIFT descriptors are not mirror invariant,
  so each keypoint is matched against those of the left-right mirrored image, whose points are
  mapped back. A pair is found from either end (both orders are returned). `found`: the image's
  own `_sift`, where already computed."""
  found = _sift(grey, contrast, upscale) if found is None else found
  mirrored = _sift(np.ascontiguousarray(grey[:, ::-1]), contrast, upscale)
  if found is None or mirrored is None:
    return _no_pairs()
  (points, descriptors), (m_points, m_descriptors) = found, mirrored
  # The mirrored image's pixel x is the image's pixel (width - 1 - x) at the upscaled size.
  m_points = m_points.copy()
  m_points[:, 0] = np.float32((round(grey.shape[1] * upscale) - 1) / upscale) - m_points[:, 0]
  i, j = _g2nn(descriptors, m_descriptors, same=False)
  far = np.hypot(*(points[i] - m_points[j]).T) > min_distance
  return points[i[far]], m_points[j[far]]


def _analysed_grey(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
  """The grey image of an (H, W, 3) uint8 image, shrunk to `side` pixels on its longer side if
  larger, and the scale applied (at most 1)."""
  grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
  scale = min(1.0, side / max(grey.shape))
  if scale < 1:
    grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  return grey, scale


def evidence_pairs(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """The g2NN pairs behind `copy_move_evidence`, (P, 2) each in the image's own pixels."""
  grey, scale = _analysed_grey(rgb, MAX_SIDE)
  src, dst = matched_pairs(grey)
  return src / np.float32(scale), dst / np.float32(scale)


def copy_move_evidence(rgb: np.ndarray) -> np.ndarray:
  """[log1p(matched pairs), log1p(affine inliers)] of an (H, W, 3) uint8 image, float32."""
  grey, _ = _analysed_grey(rgb, MAX_SIDE)
  src, dst = matched_pairs(grey)
  inliers = 0
  if len(src) >= 3:
    _, mask = cv2.estimateAffine2D(src, dst, ransacReprojThreshold=RANSAC_PIXELS)
    inliers = int(mask.sum()) if mask is not None else 0
  return np.log1p(np.float32([len(src), inliers]))


@dataclasses.dataclass
class CopyMoveMap:
  """Where a region of an image repeats: `map` (H, W) float32, 1 on both copies, else 0; the
  inlier pairs behind it (`src`, `dst`: (P, 2) in the image's pixels); and the affine models
  that drew it (`models`: (2, 3) each, mapping `src` to `dst` in the analysed grey image's pixels,
  `MapPairs.grey`), each with its number of pairs, in the order of `src` and `dst`."""
  map: np.ndarray
  src: np.ndarray
  dst: np.ndarray
  models: tuple[tuple[np.ndarray, int], ...] = ()
  links: int | None = None  # with the 'clusters' decision: `cluster_links` of all the pairs

  @property
  def p_tampered(self) -> float:
    if self.links is not None:
      return float(cluster_probability(self.links))
    return float(map_probability(len(self.src), self.map.any()))


def map_probability(inliers, found):
  """p(tampered) of a keypoint map: 0 without a region; else inliers / (inliers + MAP_MIN_INLIERS),
  above 0.5 from MAP_MIN_INLIERS + 1 pairs, nearer 1 the more agree (arrays or scalars)."""
  inliers = np.asarray(inliers, np.float64)
  return np.where(found, inliers / (inliers + MAP_MIN_INLIERS), 0.0)


def cluster_probability(links):
  """p(tampered) of the 'clusters' decision: links / (links + CLUSTER_MIN_PAIRS), above 0.5 from
  CLUSTER_MIN_PAIRS + 1 pairs joining two clusters (arrays or scalars)."""
  links = np.asarray(links, np.float64)
  return links / (links + CLUSTER_MIN_PAIRS)


def cluster_links(src: np.ndarray, dst: np.ndarray, *, linkage: str = CLUSTER_LINKAGE,
                  cutoff: float = CLUSTER_CUTOFF, depth: int = CLUSTER_DEPTH) -> int:
  """The most g2NN pairs (`src[i]`, `dst[i]`) that join two different clusters of their ends.

  Every end of every pair is clustered by position (agglomerative with `linkage`, the tree cut
  where the inconsistency coefficient over `depth` levels exceeds `cutoff`); the pairs are then
  counted by the (unordered) pair of clusters they join, and the largest count is returned (0 for
  none). Beyond CLUSTER_MAX_PAIRS pairs an evenly spaced subset is clustered."""
  if len(src) > CLUSTER_MAX_PAIRS:
    keep = np.linspace(0, len(src) - 1, CLUSTER_MAX_PAIRS).round().astype(int)
    src, dst = src[keep], dst[keep]
  if len(src) < 2:
    return 0
  # Imported here: scipy.cluster takes 0.4 s to import, which every detector that reads this
  # module (the paper CNN among them) paid before its first answer.
  from scipy.cluster import hierarchy  # pylint: disable=g-import-not-at-top
  ends = np.concatenate([src, dst]).astype(np.float64)
  tree = hierarchy.linkage(ends, method=linkage)
  cluster = hierarchy.fcluster(tree, t=cutoff, criterion='inconsistent', depth=depth)
  a, b = cluster[:len(src)], cluster[len(src):]
  apart = a != b
  if not apart.any():
    return 0
  joined = np.stack([np.minimum(a, b)[apart], np.maximum(a, b)[apart]], 1)
  return int(np.unique(joined, axis=0, return_counts=True)[1].max())


def local_correlation(a: np.ndarray, b: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
  """Zero-mean normalised correlation of two grey images over `window` x `window` pixels, and the
  smaller of their local variances."""
  a, b = a.astype(np.float32), b.astype(np.float32)
  box = lambda x: cv2.boxFilter(x, -1, (window, window))
  ma, mb = box(a), box(b)
  va, vb = box(a * a) - ma * ma, box(b * b) - mb * mb
  return (box(a * b) - ma * mb) / np.sqrt(np.maximum(va * vb, 1e-6)), np.minimum(va, vb)


def _reproduced(grey: np.ndarray, model: np.ndarray, anchors: np.ndarray,
                settings: MapSettings) -> np.ndarray:
  """The pixels that `grey` warped by the affine `model` reproduces, in regions holding `anchors`."""
  h, w = grey.shape
  warped = cv2.warpAffine(grey, model, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
  corr, variance = local_correlation(grey, warped, settings.window)
  region = ((corr > settings.correlation) & (variance > settings.min_variance)).astype(np.uint8)
  region = cv2.morphologyEx(region, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
  _, components = cv2.connectedComponents(region)
  ys = np.clip(anchors[:, 1].astype(int), 0, h - 1)
  xs = np.clip(anchors[:, 0].astype(int), 0, w - 1)
  hit = np.setdiff1d(components[ys, xs], [0])
  chosen = np.isin(components, hit).astype(np.uint8)
  return cv2.morphologyEx(chosen, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8)).astype(bool)


@dataclasses.dataclass
class MapPairs:
  """What `copy_move_map` analyses: the grey image at the analysed size, its scale (at most 1)
  and the g2NN pairs found on it (their ends in that grey image's pixels), the mirror-wise ones
  apart (empty unless `MapSettings.mirrored`)."""
  grey: np.ndarray
  scale: float
  src: np.ndarray
  dst: np.ndarray
  mirror_src: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.float32))
  mirror_dst: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 2), np.float32))

  def every_pair(self) -> tuple[np.ndarray, np.ndarray]:
    """(src, dst) of all the pairs, the mirror-wise ones after the others (what 'clusters' reads)."""
    return (np.concatenate([self.src, self.mirror_src]),
            np.concatenate([self.dst, self.mirror_dst]))


def map_pairs(rgb: np.ndarray, settings: MapSettings = MapSettings()) -> MapPairs:
  """The SIFT half of `copy_move_map` (the slow one; it reads only `analysis_side`, `sift_side`,
  `contrast`, `min_distance` and `mirrored` of `settings`)."""
  grey, scale = _analysed_grey(rgb, settings.analysis_side)
  upscale = float(np.clip(settings.sift_side / max(grey.shape), 1.0, 2.0))
  found = _sift(grey, settings.contrast, upscale)
  src, dst = _pairs_within(found, settings.min_distance)
  if not settings.mirrored:
    return MapPairs(grey, scale, src, dst)
  mirror_src, mirror_dst = mirrored_pairs(grey, contrast=settings.contrast, found=found,
                                          min_distance=settings.min_distance, upscale=upscale)
  return MapPairs(grey, scale, src, dst, mirror_src, mirror_dst)


def copy_move_map(rgb: np.ndarray, settings: MapSettings = MapSettings()) -> CopyMoveMap:
  """Where a region of an (H, W, 3) uint8 image is repeated (see the module docstring)."""
  return map_from_pairs(rgb.shape[:2], map_pairs(rgb, settings), settings)


def map_from_pairs(shape: tuple[int, ...], pairs: MapPairs,
                   settings: MapSettings = MapSettings()) -> CopyMoveMap:
  """The other half of `copy_move_map`, for an image of `shape` (H, W): the affine models the
  pairs agree on (up to `settings.models` for the pairs, and as many for the mirror-wise pairs)
  and the pixels they reproduce."""
  h, w = shape[:2]
  grey, scale = pairs.grey, pairs.scale
  found = np.zeros(grey.shape, bool)
  kept_src, kept_dst, kept_models = [], [], []
  for src, dst in ((pairs.src, pairs.dst), (pairs.mirror_src, pairs.mirror_dst)):
    for _ in range(settings.models):
      if len(src) < settings.min_inliers:
        break
      model, inliers = cv2.estimateAffine2D(src, dst, ransacReprojThreshold=RANSAC_PIXELS)
      if model is None or int(inliers.sum()) < settings.min_inliers:
        break
      inliers = inliers.ravel().astype(bool)
      region = (_reproduced(grey, model, dst[inliers], settings)
                | _reproduced(grey, cv2.invertAffineTransform(model), src[inliers], settings))
      if region.any():
        found |= region
        kept_src.append(src[inliers])
        kept_dst.append(dst[inliers])
        kept_models.append((model, int(inliers.sum())))
      src, dst = src[~inliers], dst[~inliers]
  heat = found.astype(np.float32)
  if scale < 1:
    heat = cv2.resize(heat, (w, h), interpolation=cv2.INTER_NEAREST)
  empty = np.zeros((0, 2), np.float32)
  ends = lambda parts: np.concatenate(parts) / np.float32(scale) if parts else empty
  links = None
  if settings.decision == 'clusters':
    links = cluster_links(*pairs.every_pair())
  return CopyMoveMap(heat, ends(kept_src), ends(kept_dst), tuple(kept_models), links)

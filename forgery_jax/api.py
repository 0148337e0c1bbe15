"""The Python API: check images in memory with a finished run.

    import forgery_jax
    detector = forgery_jax.load('/tmp/run')          # its inference export (every fold of a k-fold run)
    detector = forgery_jax.load('/tmp/run', keypoint_map=True)  # a localiser, keypoint map fused
    detector = forgery_jax.load('/tmp/run', threshold='validation')  # decide at validation's threshold
    detector = forgery_jax.load('/tmp/run', pixel_threshold='validation')  # and draw a region
    result = detector.predict('photo.jpg')           # or a PIL image, or a uint8 array
    result.label, result.p_tampered, result.probabilities, result.map, result.region

`predict` takes a path, a file's bytes (or a binary file object), a PIL image or a uint8 numpy
array (H, W, 3) (or (H, W) grey, or (H, W, 4) with alpha, composited on white) and returns
one `Prediction`; a list of those, or an (N, H, W, 3) array, returns a list. Each image is
prepared as the run's training images were (ELA at full resolution, then the builder config's
resize, native crop or native size) from its pixels as the file stores them, where its traces (its
JPEG grid) lie; `map` (and `region`) are then turned as its EXIF orientation says, so that they lie
over the image as a viewer shows it (so pass a PIL image as opened, not already turned: turning
moves the grid and drops the tag). `map` is the per-pixel tamper probability at that size for
detectors that localise, else None (the paper CNN can give its gradient saliency instead:
`predict(x, saliency=True)`, `map_kind='saliency'`).
`label` is the most probable class, or with a `threshold` 'tampered' (the most probable forgery
class) when p_tampered >= threshold: a number, or 'validation', the threshold most accurate on the
run's own validation split (as the `validation_threshold` evaluator chooses it; the run's dataset
must be where its config says). With a `pixel_threshold` (a number, or 'validation': the map
threshold with the best pixel F1 on the validation split's masks, as the `pixel_threshold`
evaluator chooses it), a localiser's prediction also carries `region`, the pixels whose tamper
probability reaches it, whatever the image-level label. Nothing is written to disk.
"""

from __future__ import annotations

import dataclasses
import io
import os

import cv2
import numpy as np
from PIL import Image

from forgery_jax import image_io
from forgery_jax import runs
from forgery_jax.data import preparation as preparation_lib
from forgery_jax.detectors import base
from forgery_jax.detectors import export


@dataclasses.dataclass
class Prediction:
  """What a run says about one image."""
  label: str                          # the most probable class
  probabilities: dict[str, float]     # class -> probability
  p_tampered: float                   # 1 - p(authentic)
  map: np.ndarray | None = None       # (H, W) float32 in [0, 1], the input's size as shown; or None
  map_kind: str | None = None         # 'tamper_probability' or 'saliency'
  region: np.ndarray | None = None    # (H, W) bool, map >= the predictor's pixel_threshold, if any
  beyond_training_size: bool | None = None  # more pixels than any training file (None: unknown)


@dataclasses.dataclass
class Prepared:
  """One image ready for the detector: its pixels, the model's planes and where they lie."""
  name: str
  rgb: np.ndarray                     # full resolution, as the file stores them (what was analysed)
  planes: dict                        # the detector's input planes, made from `rgb`
  preparation: preparation_lib.Preparation
  orientation: int = 1                # EXIF orientation: how a viewer turns `rgb` (1: not at all)

  def shown(self, stored: np.ndarray) -> np.ndarray:
    """An array over the stored pixels (the image, a plane, a map) as a viewer shows the image."""
    return image_io.orient(stored, self.orientation)

  def shown_points(self, xy: np.ndarray) -> np.ndarray:
    """(P, 2) x, y positions in the stored pixels, where they lie in the image as shown."""
    return image_io.orient_points(xy, self.rgb.shape[:2], self.orientation)

  @property
  def shown_size(self) -> tuple[int, int]:
    """(height, width) of the image as shown."""
    h, w = self.rgb.shape[:2]
    return (w, h) if self.orientation >= 5 else (h, w)

  def map_to_input(self, plane_map: np.ndarray) -> np.ndarray:
    """A map over the planes at the input image's own size, as shown (0 outside a native crop)."""
    return self.shown(self._map_to_stored(plane_map))

  def _map_to_stored(self, plane_map: np.ndarray) -> np.ndarray:
    h, w = self.rgb.shape[:2]
    p = self.preparation
    plane_map = np.asarray(plane_map, np.float32)
    if p.geometry == 'native':
      return plane_map[:h, :w]
    if p.geometry == 'resize':
      return cv2.resize(plane_map, (w, h), interpolation=cv2.INTER_LINEAR)
    top, left = preparation_lib.crop_window(None, (h, w), p.resolution)
    full = np.zeros((h, w), np.float32)
    window = plane_map[:min(p.resolution, h - top), :min(p.resolution, w - left)]
    full[top:top + window.shape[0], left:left + window.shape[1]] = window
    return full


CHUNK = 16  # images prepared and scored together by `Predictor.predict`


def _pixels(x, name: str) -> tuple[np.ndarray, str, int]:
  """(RGB pixels as stored, source format, EXIF orientation) of a path, a file's bytes (or a
  binary file object), a PIL image or a uint8 array."""
  if isinstance(x, (str, os.PathLike)):
    path = os.fspath(x)
    if not os.path.exists(path):
      if os.path.islink(path):
        raise ValueError(f'{path}: a broken symbolic link (to {os.readlink(path)})')
      raise ValueError(f'{path}: no such file')
    if os.path.isdir(path):
      raise ValueError(f'{path}: is a folder')
    return image_io.decode_with_orientation(path)
  if isinstance(x, (bytes, bytearray, memoryview)):  # a file's contents: an upload, a blob
    x = io.BytesIO(bytes(x))
  if hasattr(x, 'read'):
    # Decoded as the file would be, so that its container and EXIF orientation are known.
    try:
      return image_io.decode_with_orientation(x)
    except ValueError as e:
      cause = str(e.__cause__ or e).split(' <_io.')[0]
      raise ValueError(f'{name}: not a readable image file ({cause})') from e
  if isinstance(x, Image.Image):
    fmt = image_io.SOURCE_FORMATS.get(x.format, 'array')
    return image_io.pil_to_rgb(x), fmt, image_io.exif_orientation(x)
  a = np.asarray(x)
  if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (1, 3, 4)):
    raise ValueError(f'{name}: expected a uint8 array (H, W, 3), (H, W, 4) or (H, W), or a '
                     f'file\'s bytes, got {type(x).__name__} {a.dtype} {a.shape}')
  if min(a.shape[:2]) < 1:
    raise ValueError(f'{name}: an empty image {a.shape}')
  if a.ndim == 3 and a.shape[-1] == 4:  # alpha composited on white, as for an RGBA file
    return image_io.pil_to_rgb(Image.fromarray(np.ascontiguousarray(a), 'RGBA')), 'array', 1
  if a.ndim == 2 or a.shape[-1] == 1:
    a = np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, -1)
  return np.ascontiguousarray(a), 'array', 1  # unknown history: no container-based re-encoding


class Predictor:
  """A finished run, ready to check images (the folds of a k-fold run average their answers)."""

  def __init__(self, detectors: list[base.Detector], threshold: float | None = None,
               pixel_threshold: float | None = None):
    self.detectors = detectors
    self.threshold = threshold  # None: the most probable class decides
    self.pixel_threshold = pixel_threshold  # None: no region, the map only
    first = detectors[0]
    self.config = first.config
    self.class_names = first.class_names
    self.preparation = first.preparation.for_inference()
    self.localises = first.localises
    self.with_copy_move = 'copy_move' in first.inputs(first.config)
    # The largest file any fold trained on, [height, width], where the detector scores whole files
    # at their own size and every export records it (`input_pipeline.training_sizes`); else None.
    sizes = [d.training_sizes for d in detectors]
    self.largest_training_file = None
    if self.preparation.geometry == 'native' and all(sizes):
      self.largest_training_file = max((tuple(s['largest']) for s in sizes),
                                       key=lambda hw: hw[0] * hw[1])

  def _beyond_training_size(self, prepared: Prepared) -> bool | None:
    """Whether the image holds more pixels than the largest training file (a detector that
    scores whole files was measured on files up to that size); None where that is not known."""
    if self.largest_training_file is None:
      return None
    h, w = self.largest_training_file
    return prepared.rgb.shape[0] * prepared.rgb.shape[1] > h * w

  def prepare(self, x, name: str = '') -> Prepared:
    """Decodes and prepares one image; ValueError with a message naming it if it cannot be used."""
    name = name or (os.fspath(x) if isinstance(x, (str, os.PathLike)) else 'image')
    rgb, fmt, orientation = _pixels(x, name)
    planes, _ = self.preparation.planes(rgb, filename=name, source_format=fmt,
                                        with_copy_move=self.with_copy_move)
    return Prepared(name, rgb, planes, self.preparation, orientation)

  def predict_prepared(self, prepared: list[Prepared], saliency: bool = False) -> list[Prediction]:
    """Predictions of prepared images, in order (one detector call per fold)."""
    if not prepared:
      return []
    planes = [p.planes for p in prepared]
    scores = []
    for d in self.detectors:
      scores.append(d.saliency(planes) if saliency and hasattr(d, 'saliency') else d.score(planes))
    probs = np.mean([s.probabilities for s in scores], 0)
    maps, kind = None, None
    if scores[0].maps is not None:
      kind = scores[0].map_kind
      maps = [np.mean([s.maps[i] for s in scores], 0) for i in range(len(prepared))]
    out = []
    for i, p in enumerate(probs):
      full_map = None if maps is None else prepared[i].map_to_input(maps[i])
      region = None
      if full_map is not None and kind == 'tamper_probability' and self.pixel_threshold is not None:
        region = full_map >= self.pixel_threshold
      out.append(Prediction(
          label=self.class_names[self._decide(p)],
          probabilities={c: float(v) for c, v in zip(self.class_names, p)},
          p_tampered=float(1.0 - p[0]), map=full_map, map_kind=kind, region=region,
          beyond_training_size=self._beyond_training_size(prepared[i])))
    return out

  def _decide(self, p: np.ndarray) -> int:
    if self.threshold is None:
      return int(p.argmax())
    return 1 + int(p[1:].argmax()) if 1.0 - p[0] >= self.threshold else 0

  def predict(self, x, saliency: bool = False):
    """One Prediction for one image; a list for a list of images or an (N, H, W, 3) array."""
    many = isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim == 4)
    items = list(x) if many else [x]
    results = []
    # A few at a time: a long list of photos, prepared all at once, would not fit in memory.
    for lo in range(0, len(items), CHUNK):
      prepared = [self.prepare(item, '' if isinstance(item, (str, os.PathLike))
                               else f'image {i}' if many else 'image')
                  for i, item in enumerate(items[lo:lo + CHUNK], lo)]
      results += self.predict_prepared(prepared, saliency)
    return results if many else results[0]


def _check_release_folder(manual_dir: str, workdir: str, dataset: str) -> None:
  """A `manual_dir` given for a run: a folder, and its dataset one built from a release folder."""
  if not os.path.isdir(manual_dir):
    raise ValueError(f'--manual_dir={manual_dir}: no such folder')
  # Here, not at the top: reading datasets costs predict's other uses seconds of imports.
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  if not getattr(datasets.builder_class(dataset), 'MANUAL_DOWNLOAD_INSTRUCTIONS', None):
    raise ValueError(f'--manual_dir: {workdir} trained on {dataset}, which is built from no '
                     'release folder')


def load_detectors(workdir: str, keypoint_map: bool = False, keypoint_fusion: str | None = None,
                   keypoint_mirrored: bool = False, average_with=(),
                   keypoint_decision: str | None = None, *,
                   score_flips: bool = False, data_dir: str = '',
                   manual_dir: str = '') -> list[base.Detector]:
  """Every fold's detector of a finished run, from its inference export; with `keypoint_map`, a
  localiser scores with the copy-move keypoint map fused in by `keypoint_fusion` (None: the run's
  own `model.keypoint_fusion`, else 'replace'; inference only, nothing is retrained), its map also
  matching regions copied mirror-wise with `keypoint_mirrored` and its image decision made by
  `keypoint_decision` ('inliers' or 'clusters'; None: the run's own). With `average_with` (more runs'
  workdirs, trained on the same files and split), each fold's detector is the average of that
  fold of every run (`averaged.Averaged`), the keypoint map fused once into the average. With
  `score_flips`, a localiser scores each image as the mean over its four flips
  (`localiser.flip_average`; four network passes per image). `data_dir`: where the run's datasets
  are read when it is scored on them (its validation split, `evaluate`) instead of the data_dir
  its config recorded: a run moved to another machine; `manual_dir`: the release folder they are
  built from if missing there, instead of the recorded one (a release moved). ValueError naming
  the run for a detector that has no map or an unknown rule, or runs that cannot be averaged."""
  if keypoint_fusion and not keypoint_map:
    raise ValueError(f'--keypoint_fusion={keypoint_fusion} needs --keypoint_map')
  if keypoint_mirrored and not keypoint_map:
    raise ValueError('--keypoint_mirrored needs --keypoint_map')
  if keypoint_decision and not keypoint_map:
    raise ValueError(f'--keypoint_decision={keypoint_decision} needs --keypoint_map')
  detectors = [export.load(d) for d in export.find(workdir)]
  if manual_dir:
    _check_release_folder(manual_dir, workdir, detectors[0].config.dataset.name)
  for d in detectors:
    d.config.dataset.data_dir = data_dir or d.config.dataset.data_dir
    d.config.dataset.manual_dir = manual_dir or d.config.dataset.manual_dir
  if isinstance(average_with, (str, os.PathLike)):  # one run, not its path's characters
    average_with = [average_with]
  others = runs.distinct_folders([workdir, *average_with])[1:]  # the run itself, once
  if others:
    # Here, not at the top: only an average needs it.
    from forgery_jax.detectors import averaged  # pylint: disable=g-import-not-at-top
    folds = [detectors] + [[export.load(d) for d in export.find(w)] for w in others]
    for w, loaded in zip(others, folds[1:]):
      if len(loaded) != len(detectors):
        raise ValueError(f'--average_with: {w} has {len(loaded)} folds, {workdir} has {len(detectors)}')
    try:
      detectors = [averaged.Averaged(list(members), [workdir, *others]) for members in zip(*folds)]
    except ValueError as e:
      raise ValueError(f'--average_with: {e}') from e
  if keypoint_map:
    for d in detectors:
      try:
        d.fuse_keypoint_map(keypoint_fusion, keypoint_mirrored, keypoint_decision)
      except ValueError as e:
        raise ValueError(f'--keypoint_map: {workdir}: {e}') from e
  if score_flips:
    for d in detectors:
      try:
        d.score_flips()
      except ValueError as e:
        raise ValueError(f'--score_flips: {workdir}: {e}') from e
  return detectors


def _chosen_on_validation(workdir: str, detectors: list[base.Detector], flag: str, choose) -> float:
  """The mean over a run's folds of `choose(detector, dataset)`, each fold on the dataset it
  trained on (its own validation split); `choose` returns the value, or a string saying what the
  validation split holds when there is nothing to choose on. ValueError naming the run and `flag`
  then, or when the dataset cannot be read."""
  # Here, not at the top: reading datasets costs predict's other uses seconds of imports.
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  from forgery_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  values = []
  for d in detectors:
    try:
      dataset = input_pipeline.load_trained_on(d, workdir)
    except (datasets.DatasetError, OSError, ValueError) as e:
      raise ValueError(f'{flag}=validation: {workdir}: its dataset cannot be read ({e})') from e
    value = choose(d, dataset)
    if isinstance(value, str):
      raise ValueError(f'{flag}=validation: {workdir}: its validation split holds {value}, '
                       'no threshold to choose')
    values.append(value)
  return float(np.mean(values))


def validation_threshold(workdir: str, detectors: list[base.Detector]) -> float:
  """The p(tampered) threshold most accurate on the run's validation split, for these detectors
  (fused maps included), as the `validation_threshold` evaluator chooses it; a k-fold run's folds
  each choose on their own validation split and the mean is returned. ValueError naming the run
  when there is nothing to choose on."""
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top

  def choose(d, dataset):
    idx = dataset.split.validation
    tampered = dataset.labels[idx] != 0
    if only := evaluators.single_class(tampered):
      return f'{only} files only'
    scores = d.score_split(dataset, idx, d.config.eval_batch_size,
                           desc=f'validation threshold, {dataset.name}', keep_maps=False)
    return evaluators.most_accurate_threshold(scores.p_tampered, tampered)

  return _chosen_on_validation(workdir, detectors, 'threshold', choose)


def validation_pixel_threshold(workdir: str, detectors: list[base.Detector]) -> float:
  """The map threshold with the best pixel F1 on the run's validation split's tampered files with
  a mask, for these detectors (fused maps included), as the `pixel_threshold` evaluator chooses
  it; a k-fold run's mean. ValueError naming the run for a validation split without masks."""
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  from forgery_jax.evaluation import pixel_eval  # pylint: disable=g-import-not-at-top
  from forgery_jax.evaluation import pixel_metrics  # pylint: disable=g-import-not-at-top

  def choose(d, dataset):
    chosen = pixel_eval.tampered_with_mask(dataset, dataset.split.validation)
    if not len(chosen):
      return 'no tampered file with a mask'
    scores = d.score_split(dataset, chosen, d.config.eval_batch_size,
                           desc=f'validation pixel threshold, {dataset.name}')
    masks = pixel_eval.MaskSource(d.config)
    best, _ = evaluators.best_pixel_threshold(list(scores.maps),
                                              [masks.mask(dataset, i) for i in chosen])
    return float(pixel_metrics.THRESHOLDS[best])

  return _chosen_on_validation(workdir, detectors, 'pixel_threshold', choose)


def _check_threshold(name: str, value) -> None:
  if value is not None and not (isinstance(value, (int, float)) and 0 <= value <= 1):
    raise ValueError(f"{name}: a number in [0, 1] or 'validation', got {value!r}")


def load(workdir: str, keypoint_map: bool = False, keypoint_fusion: str | None = None,
         threshold: float | str | None = None,
         pixel_threshold: float | str | None = None, keypoint_mirrored: bool = False,
         average_with=(), keypoint_decision: str | None = None, *,
         score_flips: bool = False, data_dir: str = '', manual_dir: str = '') -> Predictor:
  """The detector of a finished run (`forgery_jax.main`'s workdir), from its inference export;
  `keypoint_map`, `keypoint_mirrored`, `keypoint_decision` as in `load_detectors` (a localiser's fused maps, as `evaluate --keypoint_map`
  scores them); `average_with`: more runs of the same split, averaged with it (`load_detectors`);
  `score_flips`: a localiser's answer is the mean over each image's four flips (`load_detectors`);
  `threshold`: None (the most probable class), a number in [0, 1], or 'validation'
  (`validation_threshold`); `pixel_threshold`: None, a number in [0, 1] or 'validation'
  (`validation_pixel_threshold`), where a localiser's map calls a pixel tampered (`region`);
  `data_dir`, `manual_dir`: where the validation split is read (or built from) for them
  (`load_detectors`)."""
  detectors = load_detectors(workdir, keypoint_map, keypoint_fusion, keypoint_mirrored, average_with,
                             keypoint_decision, score_flips=score_flips, data_dir=data_dir,
                             manual_dir=manual_dir)
  _check_threshold('threshold', None if threshold == 'validation' else threshold)
  _check_threshold('pixel_threshold', None if pixel_threshold == 'validation' else pixel_threshold)
  if pixel_threshold is not None and not detectors[0].localises:
    raise ValueError(f'--pixel_threshold: {workdir}: its detector draws no map')
  if threshold == 'validation':
    threshold = validation_threshold(workdir, detectors)
  if pixel_threshold == 'validation':
    pixel_threshold = validation_pixel_threshold(workdir, detectors)
  return Predictor(detectors, threshold, pixel_threshold)

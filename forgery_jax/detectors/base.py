"""The interface every detector implements, and the scores it returns.

A detector is one class, registered by one line in `forgery_jax.detectors.REGISTRY` (or named as
`package.module:Class` in `config.method`). The experiment runner, `predict`, `evaluate` and the
Python API only ever talk to this interface:

* `inputs(config)`: the planes of a prepared example it reads (`image`, `ela`, `copy_move`, ...);
* `fit(config, dataset, run)`: trains on the dataset's train split (selecting on its validation
  split) in `run.workdir`, and returns the fitted detector;
* `save(export_dir)` / `restore(config, export_dir)`: what inference needs, and only that;
* `score(examples)`: class probabilities, and a per-pixel tamper map for detectors that localise,
  of a list of prepared examples (host arrays);
* `score_split(dataset, indices)`: the same over examples of a dataset (JAX detectors shard it over
  every device and process).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import numpy as np

from forgery_jax import progress
from forgery_jax.data import labels


@dataclasses.dataclass
class Scores:
  """What a detector says about a batch of images."""
  probabilities: np.ndarray              # (N, K): class probabilities, class 0 authentic
  maps: list[np.ndarray] | None = None   # per image (H, W) float32 in [0, 1] at its planes' size
  # (an evaluation may keep some images' maps only: the others' are then None)
  map_kind: str = 'tamper_probability'   # or 'saliency': where the decision rests, not a segmentation

  @property
  def p_tampered(self) -> np.ndarray:
    return 1.0 - self.probabilities[:, 0]

  @staticmethod
  def concatenate(parts: list[Scores], num_classes: int) -> Scores:
    if not parts:
      return Scores(np.zeros((0, num_classes), np.float32))
    maps = None if parts[0].maps is None else [m for p in parts for m in p.maps]
    return Scores(np.concatenate([p.probabilities for p in parts]), maps, parts[0].map_kind)


@dataclasses.dataclass
class Run:
  """Where a fit writes: its own folder, and the run's top folder that k-fold runs share."""
  workdir: str
  root: str


class Detector(abc.ABC):
  """A forgery detector: see the module docstring."""

  localises: ClassVar[bool] = False  # score() returns per-pixel tamper maps
  # The keys of config.model it reads: a run that changes another from configs/default.py is
  # refused (it would train and score exactly as without it). None: not checked.
  model_keys: ClassVar[tuple[str, ...] | None] = None
  # It trains through the JAX training step (training/trainer.py): config.synthesis makes its
  # forgeries there, and the step's settings (trainer.STEP_SETTINGS) are read there only.
  trains_in_step: ClassVar[bool] = False

  def __init__(self, config):
    self.config = config
    self.info: dict = {}  # what fit() reports into results.json (steps, timings, ...)
    self.preparation = None  # how images are prepared for it (set when loaded from an export)
    self.training_sizes = None  # the training files' count and largest size (where exported)
    self.split_fingerprint = ''  # which examples its dataset's splits held (exported)

  @property
  def class_names(self) -> tuple[str, ...]:
    return labels.FORGERY_TYPES if self.config.dataset.num_classes == 3 else labels.BINARY_LABELS

  def describe(self) -> str:
    """A few words naming the detector in reports (e.g. the CNN's branches)."""
    return self.config.method

  @staticmethod
  @abc.abstractmethod
  def inputs(config) -> tuple[str, ...]:
    """The planes and vectors of a prepared example this detector reads."""

  @classmethod
  def check_config(cls, config) -> None:
    """Raises ValueError for a config this detector cannot run (before any data is read)."""

  @classmethod
  def finished(cls, config, workdir: str) -> Detector | None:
    """The detector of a run that already finished in `workdir` and cannot resume training
    (then the runner only evaluates it again), or None to fit."""
    del config, workdir
    return None

  def keypoint_pairs(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The matched SIFT keypoint pairs its answer on this (H, W, 3) image rests on, (P, 2) each in
    the image's pixels (`predict`'s panel draws them), or None if it reads no keypoints."""
    if 'copy_move' not in self.inputs(self.config):
      return None
    from forgery_jax.forensics import keypoints  # pylint: disable=g-import-not-at-top
    return keypoints.evidence_pairs(rgb)

  def fuse_keypoint_map(self, rule: str | None = None, mirrored: bool = False,
                        decision: str | None = None) -> None:
    """From now on, scores with the copy-move keypoint map fused in by `rule` (None: the run's
    own `model.keypoint_fusion`; inference only), the map also matching regions copied
    mirror-wise with `mirrored`, deciding by `decision` (None: the run's own
    `model.keypoint_decision`); ValueError for a detector that cannot."""
    raise ValueError(f'a {self.config.method!r} run is not a localiser: it cannot fuse the keypoint map')

  def score_flips(self) -> None:
    """From now on, scores each image as the mean over its four flips (inference only);
    ValueError for a detector that cannot."""
    raise ValueError(f'a {self.config.method!r} run has no network map to flip: only localiser runs '
                     'score flips')

  def after_export(self) -> None:
    """Called once the inference export is written (e.g. to release training checkpoints)."""

  @classmethod
  @abc.abstractmethod
  def fit(cls, config, dataset, run: Run) -> Detector:
    """Trains on `dataset.split.train` (model selection on `validation`) and returns the detector.

    `self.info['step']` names the step the test metrics belong to in metrics.jsonl.
    """

  @abc.abstractmethod
  def save(self, export_dir: str) -> None:
    """Writes what inference needs (parameters, a booster, ...) into `export_dir`."""

  @classmethod
  @abc.abstractmethod
  def restore(cls, config, export_dir: str) -> Detector:
    """The detector `save` wrote, ready to score."""

  @abc.abstractmethod
  def score(self, examples: list[dict[str, np.ndarray]]) -> Scores:
    """Scores of prepared examples (each a dict of host arrays with at least `inputs()`)."""

  def score_split(self, dataset, indices: np.ndarray, batch_size: int = 32,
                  desc: str = '', keep_maps: bool = True) -> Scores:
    """Scores of `dataset.source[indices]`, in order (without the maps if not `keep_maps`)."""
    parts = []
    with progress.bar(total=len(indices), desc=desc or f'scoring {dataset.name}', unit='image',
                      leave=False) as bar:
      for lo in range(0, len(indices), batch_size):
        chunk = indices[lo:lo + batch_size]
        scores = self.score([dataset.source[int(i)] for i in chunk])
        parts.append(scores if keep_maps else Scores(scores.probabilities))
        bar.update(len(chunk))
    return Scores.concatenate(parts, len(self.class_names))

"""Copy-move found from SIFT keypoints alone: a map of the repeated regions, and a decision.

No parameters are learned (`forensics.keypoints.copy_move_map` is fixed), so `fit` only reports
the validation split, and the export holds nothing but its manifest. It reads the pixels and
nothing of a file's history: its false alarms on the history-matched control equal those on plain
authentic files by construction of the method, and it is blind to splicing. It is also what the
localiser fuses into its own maps with `config.model.keypoint_map`.
"""

from __future__ import annotations

import os

import numpy as np

from forgery_jax import writers
from forgery_jax.detectors import base
from forgery_jax.forensics import keypoints


def settings(config) -> keypoints.MapSettings:
  """The map's settings for a run's config (`model.keypoint_mirrored` and `keypoint_decision`;
  absent from older runs)."""
  return keypoints.MapSettings(mirrored=bool(config.model.get('keypoint_mirrored', False)),
                               decision=config.model.get('keypoint_decision', keypoints.DECISIONS[0]))


def score_images(images, map_settings: keypoints.MapSettings = keypoints.MapSettings()) -> base.Scores:
  """Binary probabilities and maps of a list of (H, W, 3) uint8 images."""
  found = [keypoints.copy_move_map(np.asarray(image), map_settings) for image in images]
  p = np.float32([f.p_tampered for f in found]).reshape(-1)
  return base.Scores(np.stack([1.0 - p, p], -1), [f.map for f in found])


def map_pairs(rgb: np.ndarray, map_settings: keypoints.MapSettings = keypoints.MapSettings()
              ) -> tuple[np.ndarray, np.ndarray]:
  """The inlier pairs of the affine models behind an image's map (what its panel draws)."""
  found = keypoints.copy_move_map(np.asarray(rgb), map_settings)
  return found.src, found.dst


class CopyMoveKeypoints(base.Detector):
  """Repeated regions matched by SIFT keypoints and an affine model (binary)."""

  localises = True
  model_keys = ('keypoint_mirrored', 'keypoint_decision')

  @staticmethod
  def inputs(config) -> tuple[str, ...]:
    del config
    return ('image',)

  @classmethod
  def check_config(cls, config) -> None:
    if config.dataset.num_classes != 2:
      raise ValueError('copy_move_keypoints is binary: config.dataset.num_classes must be 2')
    settings(config)  # its decision is one there is

  @classmethod
  def fit(cls, config, dataset, run: base.Run) -> CopyMoveKeypoints:
    from forgery_jax.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
    detector = cls(config)
    writer = writers.MetricWriter(run.workdir)
    writer.write_config(config)
    validation = dataset.split.validation
    if len(validation):
      probs = detector.score_split(dataset, validation, desc='validation').probabilities
      writer.write('validation', 0, metrics_lib.classification_metrics(
          probs, dataset.labels[validation], dataset.class_names))
    detector.info = {'step': 0, 'method': 'copy_move_keypoints', 'metrics_bytes': writer.offset()}
    writer.close()
    return detector

  def keypoint_pairs(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return map_pairs(rgb, settings(self.config))

  def describe(self) -> str:
    return 'copy-move keypoint map (SIFT + affine)'

  def save(self, export_dir: str) -> None:
    os.makedirs(export_dir, exist_ok=True)  # nothing learned: the manifest is the whole export

  @classmethod
  def restore(cls, config, export_dir: str) -> CopyMoveKeypoints:
    del export_dir
    return cls(config)

  def score(self, examples: list[dict]) -> base.Scores:
    if not examples:
      return base.Scores(np.zeros((0, 2), np.float32), [])
    return score_images([e['image'] for e in examples], settings(self.config))

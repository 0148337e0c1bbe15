"""A detector defined outside forgery_jax, as a user would write one: `config.method =
'tests.minimal_detector:MeanEla'`. Mean ELA brightness, thresholded at the midpoint of the
training classes' means; it also draws a map (the ELA plane itself), to exercise localisation."""

import json
import os

import numpy as np

from forgery_jax import detectors


class MeanEla(detectors.Detector):
  localises = True

  def __init__(self, config, threshold: float):
    super().__init__(config)
    self.threshold = threshold

  @staticmethod
  def inputs(config):
    del config
    return ('ela',)

  @classmethod
  def fit(cls, config, dataset, run):
    train = dataset.split.train
    brightness = np.array([dataset.source[int(i)]['ela'].mean() for i in train])
    tampered = dataset.labels[train] != 0
    threshold = float((brightness[tampered].mean() + brightness[~tampered].mean()) / 2)
    detector = cls(config, threshold)
    detector.info = {'step': 1, 'threshold': threshold}
    return detector

  def save(self, export_dir):
    os.makedirs(export_dir, exist_ok=True)
    with open(os.path.join(export_dir, 'threshold.json'), 'w') as f:
      json.dump({'threshold': self.threshold}, f)

  @classmethod
  def restore(cls, config, export_dir):
    with open(os.path.join(export_dir, 'threshold.json')) as f:
      return cls(config, json.load(f)['threshold'])

  def score(self, examples):
    means = np.array([e['ela'].mean() for e in examples])
    p = 1.0 / (1.0 + np.exp(-(means - self.threshold)))
    maps = [e['ela'].mean(-1).astype(np.float32) / 255.0 for e in examples]
    return detectors.Scores(np.stack([1.0 - p, p], 1), maps)

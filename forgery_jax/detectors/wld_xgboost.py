"""WLD + XGBoost (DART): the texture detector, on the same datasets and splits as the CNN.

`fit` reads the dataset's `image` plane through the same split protocol as the CNN (so both
methods see identical train / validation / test examples), computes the WLD features of every
example once (jitted, in batches; cached in the run's top folder as `wld_features.npz`), and fits an
XGBoost classifier with the DART booster and balanced sample weights on the training split. The
hyper-parameters are fixed by the config, so the validation split is only reported. The export
holds the booster in XGBoost's own JSON format (`booster.json`).
"""

from __future__ import annotations

import os
import time

from absl import logging
import numpy as np

from forgery_jax import progress
from forgery_jax import writers
from forgery_jax.detectors import base
from forgery_jax.forensics import wld

BOOSTER_FILE = 'booster.json'
FEATURES_FILE = 'wld_features.npz'


def compute_features(dataset, config, indices: np.ndarray | None = None) -> tuple[np.ndarray, float]:
  """WLD features of `dataset.source[indices]` (default: every example), and the extraction rate
  in images/s (decoding included)."""
  from forgery_jax import progress  # pylint: disable=g-import-not-at-top
  params = wld.from_config(config.wld)
  indices = np.arange(len(dataset.source)) if indices is None else np.asarray(indices)
  batch = config.wld.batch_size
  out = []
  start = time.perf_counter()
  for lo in progress.bar(range(0, len(indices), batch), desc=f'WLD features of {dataset.name}',
                         unit='batch', leave=False):
    images = np.stack([dataset.source[int(i)]['image'] for i in indices[lo:lo + batch]])
    out.append(wld.extract(images, params, batch_size=batch))
  seconds = time.perf_counter() - start
  features = np.concatenate(out) if out else np.zeros((0, params.length()), np.float32)
  return features, len(indices) / max(seconds, 1e-9)


def cached_features(dataset, config, folder: str) -> tuple[np.ndarray, float | None]:
  """Features of every example, from `folder/wld_features.npz` when they match this dataset and
  WLD config (the rate is None then)."""
  path = os.path.join(folder, FEATURES_FILE)
  key = repr((config.dataset.name, config.dataset.builder_config, config.dataset.resolution,
              len(dataset.source), sorted(config.wld.to_dict().items())))
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as cached:
      if str(cached['key']) == key:
        return cached['features'], None
  features, rate = compute_features(dataset, config)
  os.makedirs(folder, exist_ok=True)
  tmp = path + '.tmp.npz'
  np.savez(tmp, features=features, key=np.array(key))
  os.replace(tmp, path)
  return features, rate


class WldXgboost(base.Detector):
  """Weber Local Descriptors of the chroma channels, classified by XGBoost with DART."""

  model_keys = ()  # config.wld and config.xgboost

  def __init__(self, config, booster):
    super().__init__(config)
    self.booster = booster
    self.params = wld.from_config(config.wld)
    self._fit_features = None  # (dataset, features of every example) of the fit

  @staticmethod
  def inputs(config) -> tuple[str, ...]:
    del config
    return ('image',)

  @staticmethod
  def make_classifier(config, num_classes: int):
    import xgboost  # pylint: disable=g-import-not-at-top
    x = config.xgboost
    return xgboost.XGBClassifier(
        booster='dart', objective='multi:softprob', num_class=num_classes,
        n_estimators=x.n_estimators, max_depth=x.max_depth, learning_rate=x.learning_rate,
        subsample=x.subsample, colsample_bytree=x.colsample_bytree, rate_drop=x.rate_drop,
        skip_drop=x.skip_drop, tree_method='hist', n_jobs=x.threads or os.cpu_count(),
        random_state=config.seed)

  @classmethod
  def fit(cls, config, dataset, run: base.Run) -> WldXgboost:
    from forgery_jax.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
    from forgery_jax.training import trainer  # pylint: disable=g-import-not-at-top
    features, rate = cached_features(dataset, config, run.root)
    if rate is not None:
      logging.info('WLD features %s of %d images at %.1f images/s', features.shape[1:],
                   len(features), rate)
    k = config.dataset.num_classes
    split, y = dataset.split, dataset.labels
    weights = trainer.training_weights(config, dataset)[y[split.train]]
    classifier = cls.make_classifier(config, k)
    start = time.perf_counter()
    classifier.fit(features[split.train], y[split.train], sample_weight=weights)
    train_seconds = time.perf_counter() - start
    detector = cls(config, classifier.get_booster())
    detector._fit_features = (dataset, features)
    writer = writers.MetricWriter(run.workdir)
    writer.write_config(config)
    if len(split.validation):
      probs = detector.score_split(dataset, split.validation).probabilities
      writer.write('validation', config.xgboost.n_estimators,
                   metrics_lib.classification_metrics(probs, y[split.validation], dataset.class_names))
    detector.info = {'step': int(config.xgboost.n_estimators), 'method': 'wld_xgboost',
                     'num_features': int(features.shape[1]), 'train_seconds': train_seconds,
                     'feature_images_per_second': rate, 'metrics_bytes': writer.offset()}
    writer.close()
    logging.info('XGBoost fit in %.1f s', train_seconds)
    return detector

  def save(self, export_dir: str) -> None:
    os.makedirs(export_dir, exist_ok=True)
    self.booster.save_model(os.path.join(export_dir, BOOSTER_FILE))

  @classmethod
  def restore(cls, config, export_dir: str) -> WldXgboost:
    import xgboost  # pylint: disable=g-import-not-at-top
    booster = xgboost.Booster()
    try:
      booster.load_model(os.path.join(export_dir, BOOSTER_FILE))
    except xgboost.core.XGBoostError as e:
      raise ValueError(f'{export_dir}: cannot read {BOOSTER_FILE}: {progress.one_line(e)}') from e
    return cls(config, booster)

  def _probabilities(self, features: np.ndarray) -> np.ndarray:
    import xgboost  # pylint: disable=g-import-not-at-top
    probs = self.booster.predict(xgboost.DMatrix(features))
    return probs.reshape(len(features), -1)

  def score(self, examples: list[dict]) -> base.Scores:
    images = np.stack([e['image'] for e in examples])
    features = wld.extract(images, self.params, batch_size=self.config.wld.batch_size)
    return base.Scores(self._probabilities(features))

  def score_split(self, dataset, indices: np.ndarray, batch_size: int = 0, desc: str = '',
                  keep_maps: bool = True) -> base.Scores:
    del batch_size, desc, keep_maps
    if self._fit_features is not None and self._fit_features[0] is dataset:
      features = self._fit_features[1][indices]  # computed once by the fit
    else:
      features, _ = compute_features(dataset, self.config, indices)
    return base.Scores(self._probabilities(features))

"""WLD + XGBoost (DART): the texture detector, on the same datasets and splits as the CNN.

`train_and_evaluate(config, workdir)` reads the dataset's `image` plane through the same input
pipeline and split protocol as the CNN (so both methods see identical train / validation / test
examples), computes the WLD features of every example once (jitted, in batches), fits an XGBoost
classifier with the DART booster and balanced sample weights on the training split, and writes the
same files as the CNN: `metrics.jsonl` (validation and test rows), `config.json`, `results.json`
(`test/*`, shortcut baselines, per-class table, confusion matrix; mean, std and per-fold values for
k-fold splits) and the trained booster in XGBoost's own JSON format (`booster.json`). The
hyper-parameters are fixed by the config, so the validation split is only reported.
"""

from __future__ import annotations

import os
import time

from absl import logging
import ml_collections
import numpy as np
import xgboost

from forgery_jax import baselines
from forgery_jax import datasets
from forgery_jax import input_pipeline
from forgery_jax import metrics as metrics_lib
from forgery_jax import runs
from forgery_jax import train
from forgery_jax import wld
from forgery_jax import writers

BOOSTER_FILE = 'booster.json'
FEATURES_FILE = 'wld_features.npz'


def compute_features(dataset: input_pipeline.Dataset, config) -> tuple[np.ndarray, float]:
  """WLD features of every pooled example, and the extraction rate in images/s (decode included)."""
  params = wld.from_config(config.wld)
  n, batch = len(dataset.source), config.wld.batch_size
  out = []
  start = time.perf_counter()
  for lo in range(0, n, batch):
    images = np.stack([dataset.source[i]['image'] for i in range(lo, min(lo + batch, n))])
    out.append(wld.extract(images, params, batch_size=batch))
  seconds = time.perf_counter() - start
  return np.concatenate(out), n / max(seconds, 1e-9)


def cached_features(dataset, config, workdir: str) -> tuple[np.ndarray, float | None]:
  """Features from `workdir/wld_features.npz` when they match this dataset and WLD config."""
  path = os.path.join(workdir, FEATURES_FILE)
  key = repr((config.dataset.name, config.dataset.builder_config, config.dataset.resolution,
              len(dataset.source), sorted(config.wld.to_dict().items())))
  if os.path.exists(path):
    with np.load(path, allow_pickle=False) as cached:
      if str(cached['key']) == key:
        return cached['features'], None
  features, rate = compute_features(dataset, config)
  os.makedirs(workdir, exist_ok=True)
  tmp = path + '.tmp.npz'
  np.savez(tmp, features=features, key=np.array(key))
  os.replace(tmp, path)
  return features, rate


def make_classifier(config, num_classes: int) -> xgboost.XGBClassifier:
  x = config.xgboost
  return xgboost.XGBClassifier(
      booster='dart', objective='multi:softprob', num_class=num_classes,
      n_estimators=x.n_estimators, max_depth=x.max_depth, learning_rate=x.learning_rate,
      subsample=x.subsample, colsample_bytree=x.colsample_bytree, rate_drop=x.rate_drop,
      skip_drop=x.skip_drop, tree_method='hist', n_jobs=x.threads or os.cpu_count(),
      random_state=config.seed)


def _train_one(config, workdir: str, features: np.ndarray, feature_rate: float | None) -> dict:
  os.makedirs(workdir, exist_ok=True)
  builder = datasets.ensure_built(config.dataset)
  dataset = input_pipeline.load_dataset(builder, config)
  k = config.dataset.num_classes
  split, y = dataset.split, dataset.labels
  logging.info('%s, split %r: %s', builder.info.full_name, config.dataset.split, split.sizes())
  weights = (train.class_weights(y[split.train], k) if config.class_weights
             else np.ones(k, np.float32))[y[split.train]]
  writer = writers.MetricWriter(workdir)
  writer.write_config(config)
  classifier = make_classifier(config, k)
  start = time.perf_counter()
  classifier.fit(features[split.train], y[split.train], sample_weight=weights)
  train_seconds = time.perf_counter() - start
  classifier.save_model(os.path.join(workdir, BOOSTER_FILE))
  results = {}
  for name in ('validation', 'test'):
    idx = getattr(split, name)
    if not len(idx):
      continue
    probs = classifier.predict_proba(features[idx])
    values = metrics_lib.classification_metrics(probs, y[idx], dataset.class_names)
    writer.write(name, config.xgboost.n_estimators, values)
    if name == 'test':
      results.update({f'test/{key}': v for key, v in values.items()})
      results.update(baselines.accuracy_by_property(dataset, 'test', probs.argmax(1)))
  writer.close()
  results.update(baselines.shortcut_baselines(dataset))
  results.update({
      'method': 'wld_xgboost', 'num_features': int(features.shape[1]),
      'train_seconds': train_seconds, 'feature_images_per_second': feature_rate,
      'split_sizes': split.sizes(), 'class_names': list(dataset.class_names),
      'dataset': builder.info.full_name, 'config': config.to_dict()})
  runs.write_json_atomic(os.path.join(workdir, runs.RESULTS_FILE), results)
  logging.info('test: %s  (fit %.1f s)', {key: round(results[f'test/{key}'], 4)
                                           for key in train.TEST_KEYS}, train_seconds)
  return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Features once for the whole dataset, then one fit per split (or per fold)."""
  workdir = os.path.abspath(workdir)
  builder = datasets.ensure_built(config.dataset)
  pooled = input_pipeline.load_dataset(builder, config, all_for_test=True)
  features, rate = cached_features(pooled, config, workdir)
  if rate is not None:
    logging.info('WLD features %s of %d images at %.1f images/s', features.shape[1:], len(features), rate)
  return runs.run_folds(config, workdir, lambda c, w: _train_one(c, w, features, rate),
                        extra={'feature_images_per_second': rate})

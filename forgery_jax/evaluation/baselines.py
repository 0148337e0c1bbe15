"""Shortcut baselines: what a score must be compared with before it means detection.

A lookup from a file property to a class, fitted on the training split and
scored on the test split. If the detector barely beats it, the detector may
have learnt the property (file format, JPEG quantisation table) and not the
manipulation.
"""

from __future__ import annotations

import collections

import numpy as np


def lookup_accuracy(train_keys, train_labels, test_keys, test_labels) -> float:
  """Accuracy of predicting each key's majority training class (overall majority if unseen)."""
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  if not len(test_labels):
    return float('nan')
  overall = int(np.bincount(train_labels).argmax())
  by_key: dict = collections.defaultdict(collections.Counter)
  for k, y in zip(np.asarray(train_keys).tolist(), train_labels.tolist()):
    by_key[k][y] += 1
  table = {k: c.most_common(1)[0][0] for k, c in by_key.items()}
  pred = np.array([table.get(k, overall) for k in np.asarray(test_keys).tolist()])
  return float((pred == test_labels).mean())


def shortcut_baselines(dataset) -> dict[str, float]:
  """Test accuracy of the majority class and of every scalar file property the dataset has,
  and of the copy-move keypoint evidence alone where the dataset stores it."""
  tr, te = dataset.split.train, dataset.split.test
  y = dataset.labels
  out = {'baseline/majority_accuracy': lookup_accuracy(np.zeros(len(tr)), y[tr], np.zeros(len(te)), y[te])}
  for name, values in sorted(dataset.extra.items()):
    out[f'baseline/{name}_lookup_accuracy'] = lookup_accuracy(values[tr], y[tr], values[te], y[te])
  out.update(copy_move_baseline(dataset))
  return out


def copy_move_baseline(dataset) -> dict[str, float]:
  """Test accuracy of a logistic regression on the `copy_move` keypoint evidence alone, fitted
  on train + validation: what a detector that joins that evidence must beat to show its network
  adds anything. Empty if the dataset has no such feature."""
  evidence = getattr(dataset, 'copy_move', None)
  if evidence is None:
    return {}
  tr = np.concatenate([dataset.split.train, getattr(dataset.split, 'validation', [])]).astype(int)
  te = dataset.split.test
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  x_train, x_test = evidence[tr], evidence[te]
  y = dataset.labels
  if not len(te) or len(np.unique(y[tr])) < 2:
    return {}
  model = LogisticRegression(class_weight='balanced').fit(x_train, y[tr])
  return {'baseline/copy_move_logistic_accuracy': float((model.predict(x_test) == y[te]).mean())}


def accuracy_by_property(dataset, split: str, predictions: np.ndarray) -> dict[str, dict]:
  """Accuracy on `split` per value of every scalar file property (e.g. per JPEG quality).

  Shows where a detector is blind: ELA at quality 90, for instance, sees little in images last
  saved near quality 90.
  """
  idx = getattr(dataset.split, split)
  correct = np.asarray(predictions) == dataset.labels[idx]
  out = {}
  for name, values in sorted(dataset.extra.items()):
    v = values[idx]
    out[f'{split}/accuracy_by_{name}'] = {
        str(k): {'accuracy': float(correct[v == k].mean()), 'count': int((v == k).sum())}
        for k in np.unique(v).tolist()}
  return out

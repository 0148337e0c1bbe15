"""Classification metrics from class probabilities, computed on the host.

Class 0 is `authentic` in both label spaces (2 classes: authentic/tampered;
3: authentic/copy_move/splicing), so "tampered" = any class but 0. precision,
recall, f1 and auc treat tampered as the positive class; the *_authentic keys
repeat them with authentic positive, the convention of the dual-branch paper.
macro_* average over the classes; with 3 classes the one-vs-rest macro AUC (`auc_ovr`) too.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def classification_metrics(probs: np.ndarray, labels: np.ndarray,
                           class_names: tuple[str, ...] | None = None) -> dict:
  """Scalar metrics, the per-class table and the confusion matrix (rows: true, columns: predicted)."""
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels)
  num_classes = probs.shape[1]
  pred = probs.argmax(1)
  p_tampered = 1.0 - probs[:, 0]
  true_t, pred_t = labels != 0, pred != 0
  out = {'accuracy': float((pred == labels).mean()) if len(labels) else float('nan'),
         'balanced_accuracy': float(skm.balanced_accuracy_score(labels, pred)) if len(labels) else float('nan'),
         'num_examples': int(len(labels)),
         # Mean cross-entropy, unweighted (the training loss is class-weighted).
         'loss': (float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)).mean())
                  if len(labels) else float('nan'))}
  for suffix, positive in (('', True), ('_authentic', False)):
    p, r, f, _ = skm.precision_recall_fscore_support(
        true_t, pred_t, pos_label=positive, average='binary', zero_division=0)
    out.update({f'precision{suffix}': float(p), f'recall{suffix}': float(r), f'f1{suffix}': float(f)})
  out['auc'] = float(skm.roc_auc_score(true_t, p_tampered)) if len(np.unique(true_t)) == 2 else float('nan')
  p, r, f, _ = skm.precision_recall_fscore_support(
      labels, pred, labels=np.arange(num_classes), average='macro', zero_division=0)
  out.update({'macro_precision': float(p), 'macro_recall': float(r), 'macro_f1': float(f)})
  if num_classes > 2:
    present = np.unique(labels)
    out['auc_ovr'] = (float(skm.roc_auc_score(labels, probs[:, present] / probs[:, present].sum(1, keepdims=True),
                                              multi_class='ovr', labels=present))
                      if len(present) > 2 else float('nan'))
  p, r, f, support = skm.precision_recall_fscore_support(
      labels, pred, labels=np.arange(num_classes), zero_division=0)
  names = class_names or tuple(str(k) for k in range(num_classes))
  out['per_class'] = {names[k]: {'precision': float(p[k]), 'recall': float(r[k]), 'f1': float(f[k]),
                                 'support': int(support[k])} for k in range(num_classes)}
  out['confusion_matrix'] = skm.confusion_matrix(labels, pred, labels=np.arange(num_classes)).tolist()
  return out

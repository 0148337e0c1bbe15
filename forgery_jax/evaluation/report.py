"""The report of `python -m forgery_jax.evaluate`: Markdown tables and figures."""

from __future__ import annotations

import io
import json
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
from sklearn import metrics as skm

from forgery_jax import atomic
from forgery_jax import writers
from forgery_jax.evaluation import robustness as robustness_lib


def md_table(header: list[str], rows: list[list]) -> str:
  fmt = lambda v: f'{v:.3f}' if isinstance(v, float) else str(v)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(fmt(v) for v in r) + ' |' for r in rows]
  return '\n'.join(lines) + '\n'


PIXEL_COLUMNS = {'pixel_f1': 'pixel F1 at 0.5',
                 'pixel_f1_best': 'at the best threshold (optimistic)',
                 'pixel_auc': 'pixel AUC', 'pixel_iou': 'pixel IoU', 'pixel_images': 'images'}


def _pixel_scope(prefix: str) -> tuple[str, str]:
  """('test' | 'test_<config>' | 'cross/<dataset>', what map of it) of a pixel-score prefix."""
  parts = prefix.split('/')
  n = 2 if parts[0] == 'cross' else 1
  scope, rest = '/'.join(parts[:n]), parts[n:]
  maps = 'the run\'s maps'
  if rest[:1] == ['saliency']:  # a detector without maps, scored by its gradient saliency
    maps, rest = 'saliency', rest[1:]
  if rest[:1] == ['pixel_baseline']:
    return scope, f"baseline: {'/'.join(rest[1:])}"
  if not rest:
    return scope, maps
  forgery_type = '/'.join(rest)
  return scope, f'saliency: {forgery_type}' if maps == 'saliency' else forgery_type


def pixel_table(results: dict, spread: str = '_ci95') -> tuple[str, set[str]]:
  """The pixel scores of a run's results (the test split, each `also_test` config, a cross dataset;
  per forgery type and beside the baselines on the same files) as one Markdown table, each cell
  with its spread: `_ci95` (a 95 % interval) or `_std` (over folds); and the keys it shows. Empty
  for a run without pixel scores. The robustness and pixel-threshold scores have their own places."""
  prefixes = [k.removesuffix('/pixel_f1') for k in results if k.endswith('/pixel_f1')
              and not k.startswith(('robustness/', 'pixel_threshold/'))]
  if not prefixes:
    return '', set()
  order = {scope: i for i, scope in enumerate(dict.fromkeys(_pixel_scope(p)[0] for p in prefixes))}
  kind = lambda what: (0 if what in ('the run\'s maps', 'saliency')
                       else 2 if what.startswith('baseline') else 1)
  rows, shown = [], set()
  for p in sorted(prefixes, key=lambda p: (order[_pixel_scope(p)[0]], kind(_pixel_scope(p)[1]), p)):
    row = list(_pixel_scope(p))
    for name in PIXEL_COLUMNS:
      key = f'{p}/{name}'
      v = results.get(key)
      shown |= {key, f'{key}_std', f'{key}_ci95', f'{key}_threshold'}
      if v is None:
        row.append('')
      elif name == 'pixel_images':
        row.append(int(round(v)))
      else:
        cell, bounds = f'{v:.3f}', results.get(f'{key}{spread}')
        if spread == '_std' and bounds is not None:
          cell += f' ± {bounds:.3f}'
        elif spread == '_ci95' and bounds:
          cell += f' [{bounds[0]:.3f}, {bounds[1]:.3f}]'
        if (threshold := results.get(f'{key}_threshold')) is not None:
          cell += f' at {threshold:.2f}'
        row.append(cell)
    rows.append(row)
  return md_table(['files', 'map', *PIXEL_COLUMNS.values()], rows), shown


def _save(fig, path: str, dpi: float | None = None) -> None:
  """A figure as PNG, replaced whole (`atomic.write_bytes`)."""
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=dpi)
  atomic.write_bytes(path, buf.getvalue())


def _confusion(out: str, probs: np.ndarray, labels: np.ndarray, class_names) -> str:
  cm = skm.confusion_matrix(labels, probs.argmax(1), labels=np.arange(len(class_names)))
  fig, ax = plt.subplots(figsize=(4, 4))
  ax.imshow(cm, cmap='Blues')
  for (r, c), v in np.ndenumerate(cm):
    ax.text(c, r, str(v), ha='center', va='center')
  ax.set_xticks(range(len(class_names)), class_names, rotation=30)
  ax.set_yticks(range(len(class_names)), class_names)
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title('test confusion matrix')
  fig.tight_layout()
  _save(fig, os.path.join(out, 'confusion.png'))
  plt.close(fig)
  return 'confusion.png'


def _roc(out: str, probs: np.ndarray, labels: np.ndarray) -> str | None:
  tampered = labels != 0
  if not 0 < tampered.sum() < len(labels):
    return None
  fpr, tpr, _ = skm.roc_curve(tampered, 1 - probs[:, 0])
  fig, ax = plt.subplots(figsize=(4, 4))
  ax.plot(fpr, tpr, label=f'AUC {skm.auc(fpr, tpr):.3f}')
  ax.plot([0, 1], [0, 1], ':', color='grey')
  ax.set_xlabel('false positive rate')
  ax.set_ylabel('true positive rate (tampered)')
  ax.legend(loc='lower right')
  fig.tight_layout()
  _save(fig, os.path.join(out, 'roc.png'))
  plt.close(fig)
  return 'roc.png'


def _curves(out: str, workdir: str) -> str | None:
  metrics_path = os.path.join(workdir, writers.METRICS_FILE)
  if not os.path.exists(metrics_path):
    return None
  with open(metrics_path) as f:
    lines = [json.loads(l) for l in f]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
  for split, style in (('train', '.-'), ('validation', 'o-')):
    pts = [l for l in lines if l['split'] == split]
    if pts and 'loss' in pts[0]:
      ax1.plot([p['step'] for p in pts], [p['loss'] for p in pts], style, label=split)
    if pts:
      ax2.plot([p['step'] for p in pts], [p['accuracy'] for p in pts], style, label=split)
  ax1.set_title('loss (train: class-weighted)')
  ax2.set_title('accuracy')
  for ax in (ax1, ax2):
    ax.set_xlabel('step')
    ax.legend()
  fig.tight_layout()
  _save(fig, os.path.join(out, 'curves.png'))
  plt.close(fig)
  return 'curves.png'


def _robustness(out: str, rows: list[dict]) -> str:
  kinds = list(robustness_lib.ATTACKS)
  fig, axes = plt.subplots(1, len(kinds), figsize=(3.2 * len(kinds), 3), sharey=True)
  clean = next(r['accuracy'] for r in rows if r['attack'] == 'none')
  for ax, kind in zip(axes, kinds):
    pts = [r for r in rows if r['attack'] == kind]
    ax.plot([p['strength'] for p in pts], [p['accuracy'] for p in pts], 'o-')
    ax.axhline(clean, ls=':', color='grey', label='no attack')
    ax.set_title(kind)
    ax.set_ylim(0, 1)
  axes[0].set_ylabel('test accuracy')
  axes[0].legend()
  fig.tight_layout()
  _save(fig, os.path.join(out, 'robustness.png'))
  plt.close(fig)
  return 'robustness.png'


def map_grid(out: str, items: list[dict]) -> str | None:
  """maps.png: the best and the worst maps (by pixel F1) beside their images and masks."""
  if not items:
    return None
  fig, axes = plt.subplots(3, len(items), figsize=(2.2 * len(items), 6.6), squeeze=False)
  for col, item in enumerate(items):
    for row, (plane, title) in enumerate(((item['image'], f"{item['rank']}: F1 {item['f1']:.2f}"),
                                          (item['mask'][..., 0], 'mask'),
                                          (item['map'], 'map'))):
      ax = axes[row, col]
      ax.imshow(plane, cmap=None if plane.ndim == 3 else 'gray', vmin=0,
                vmax=None if plane.ndim == 3 else (255 if plane.dtype == np.uint8 else 1))
      ax.set_title(title if row else f"{title}\n{item['name'][-28:]}", fontsize=7)
      ax.axis('off')
  fig.tight_layout()
  _save(fig, os.path.join(out, 'maps.png'), dpi=110)
  plt.close(fig)
  return 'maps.png'


def figures(out: str, workdir: str, probs: np.ndarray, labels: np.ndarray, class_names,
            robustness_rows: list[dict] | None, map_items: list[dict] | None = None) -> list[str]:
  """confusion.png, roc.png, curves.png, robustness.png and maps.png (where they apply)."""
  made = [_confusion(out, probs, labels, class_names), _roc(out, probs, labels),
          _curves(out, workdir), _robustness(out, robustness_rows) if robustness_rows else None,
          map_grid(out, map_items or [])]
  return [m for m in made if m]

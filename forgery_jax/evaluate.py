"""Does it generalise, and does it survive recompression? A report on one or more finished runs.

    python -m forgery_jax.evaluate --workdir=RUN [--runs=RUN2,RUN3] [--cross] [--robustness]

Each run is read with its own config.json (CNN or WLD + XGBoost). Writes RUN/report/:
* report.md: the test metrics of every run; with `--cross`, the train x test matrix (every run
  on the test split of its own dataset and on all examples of the other runs' datasets); with
  `--robustness`, RUN's test split after JPEG recompression (quality 50-100), resizing (0.5-1.5),
  Gaussian blur and Gaussian noise, one metrics row per (attack, strength); with several runs, an
  ablation table in the style of the dual-branch paper's Table 1;
* confusion.png, roc.png, curves.png (training and validation curves from metrics.jsonl) and,
  with `--robustness`, robustness.png.

Attacks are applied to the full-resolution source file (found through the dataset's
`manual_dir`) before ELA, exactly where a re-saved or resized file would change; for the synthetic
set, which has no source files, to the stored native-resolution crop.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging
import cv2
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np
from sklearn import metrics as skm

from forgery_jax import codecs
from forgery_jax import datasets
from forgery_jax import input_pipeline
from forgery_jax import metrics as metrics_lib
from forgery_jax import predict
from forgery_jax import release_builder
from forgery_jax import releases
from forgery_jax import writers

ATTACKS = {  # kind -> strengths
    'jpeg': (50, 60, 70, 80, 90, 100),   # quality of one extra JPEG save
    'resize': (0.5, 0.75, 1.25, 1.5),    # scale factor (bicubic)
    'blur': (0.5, 1.0, 2.0),             # Gaussian sigma, pixels
    'noise': (2.0, 5.0, 10.0),           # Gaussian sigma, grey levels
}
ROW_KEYS = ('accuracy', 'balanced_accuracy', 'precision', 'recall', 'f1', 'auc')


def attack(rgb: np.ndarray, kind: str, strength: float, rng: np.random.Generator) -> np.ndarray:
  """One post-processing of an (H, W, 3) uint8 image."""
  if kind == 'jpeg':
    return codecs.jpeg_roundtrip(rgb, int(strength))
  if kind == 'resize':
    h, w = rgb.shape[:2]
    size = (max(1, round(w * strength)), max(1, round(h * strength)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
  if kind == 'blur':
    return cv2.GaussianBlur(rgb, (0, 0), strength)
  if kind == 'noise':
    return np.clip(rgb + rng.normal(0, strength, rgb.shape), 0, 255).astype(np.uint8)
  raise ValueError(f'unknown attack {kind!r}; choose one of {sorted(ATTACKS)}')


def load_dataset(config, all_for_test: bool = False) -> input_pipeline.Dataset:
  builder = datasets.ensure_built(config.dataset)
  return input_pipeline.load_dataset(builder, config, all_for_test=all_for_test)


def score(detector, dataset, indices: np.ndarray, batch_size: int) -> np.ndarray:
  """Class probabilities of the detector on the stored planes of `indices`."""
  probs = []
  for lo in range(0, len(indices), batch_size):
    planes = [dataset.source[int(i)] for i in indices[lo:lo + batch_size]]
    probs.append(detector(planes, batch_size)[0])
  return np.concatenate(probs) if probs else np.zeros((0, len(dataset.class_names)))


def _row(probs: np.ndarray, labels: np.ndarray, class_names) -> dict:
  m = metrics_lib.classification_metrics(probs, labels, class_names)
  return {k: m[k] for k in ROW_KEYS} | {'num_examples': m['num_examples']}


def _sources(config) -> dict[str, releases.SourceFile] | None:
  """filename -> source file of a real release (None for the synthetic set)."""
  lister = getattr(datasets.builder_class(config.dataset.name), 'list_release', None)
  if lister is None:  # the builder makes its examples (the synthetic set): no source files
    return None
  if not config.dataset.manual_dir:
    raise ValueError(f'robustness on {config.dataset.name} needs its source files: the run\'s '
                     'config.dataset.manual_dir is empty')
  return {f.filename: f for f in lister(config.dataset.manual_dir, [])}


def robustness(detector, config, dataset, batch_size: int, max_examples: int = 0,
               seed: int = 0) -> list[dict]:
  """Metrics on the test split after every (attack, strength), plus the unattacked row."""
  idx = dataset.split.test[:max_examples or None]
  labels = dataset.labels[idx]
  preparation = predict.preprocessing(config)
  sources = _sources(config)
  originals = []
  for i in idx:
    ex = dataset.source[int(i)]
    if sources is None:
      originals.append((ex['image'], 'jpeg'))
    else:
      source = sources[ex['filename'].decode() if isinstance(ex['filename'], bytes) else ex['filename']]
      originals.append(codecs.decode_file(source.path))
  rng = np.random.default_rng(seed)
  rows = []
  cases = [('none', 0)] + [(kind, s) for kind, strengths in ATTACKS.items() for s in strengths]
  for kind, strength in cases:
    planes = []
    for rgb, fmt in originals:
      attacked = rgb if kind == 'none' else attack(rgb, kind, strength, rng)
      recode = preparation.recoding.quality('', 'jpeg' if kind == 'jpeg' else fmt)
      full = release_builder.full_resolution_planes(attacked, recode,
                                                    with_copy_move=preparation.copy_move)
      planes.append(release_builder.fit_planes(full, preparation.resolution, preparation.crop))
    probs = np.concatenate([detector(planes[lo:lo + batch_size], batch_size)[0]
                            for lo in range(0, len(planes), batch_size)])
    rows.append({'attack': kind, 'strength': strength, **_row(probs, labels, dataset.class_names)})
    logging.info('robustness %s %s: accuracy %.4f', kind, strength, rows[-1]['accuracy'])
  return rows


def _run_name(workdir: str, config) -> str:
  return f"{os.path.basename(os.path.normpath(workdir))} ({config.dataset.name}, {'+'.join(config.model.branches) if config.get('method', 'cnn') == 'cnn' else 'wld_xgboost'})"


def _md_table(header: list[str], rows: list[list]) -> str:
  fmt = lambda v: f'{v:.3f}' if isinstance(v, float) else str(v)
  lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(fmt(v) for v in r) + ' |' for r in rows]
  return '\n'.join(lines) + '\n'


def _figures(out: str, workdir: str, probs: np.ndarray, labels: np.ndarray, class_names,
             robustness_rows: list[dict] | None) -> list[str]:
  made = []
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
  fig.savefig(os.path.join(out, 'confusion.png'))
  plt.close(fig)
  made.append('confusion.png')
  tampered = labels != 0
  if 0 < tampered.sum() < len(labels):
    fpr, tpr, _ = skm.roc_curve(tampered, 1 - probs[:, 0])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(fpr, tpr, label=f'AUC {skm.auc(fpr, tpr):.3f}')
    ax.plot([0, 1], [0, 1], ':', color='grey')
    ax.set_xlabel('false positive rate')
    ax.set_ylabel('true positive rate (tampered)')
    ax.legend(loc='lower right')
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'roc.png'))
    plt.close(fig)
    made.append('roc.png')
  metrics_path = os.path.join(workdir, writers.METRICS_FILE)
  if os.path.exists(metrics_path):
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
    fig.savefig(os.path.join(out, 'curves.png'))
    plt.close(fig)
    made.append('curves.png')
  if robustness_rows:
    fig, axes = plt.subplots(1, len(ATTACKS), figsize=(3.2 * len(ATTACKS), 3), sharey=True)
    clean = next(r['accuracy'] for r in robustness_rows if r['attack'] == 'none')
    for ax, kind in zip(axes, ATTACKS):
      pts = [r for r in robustness_rows if r['attack'] == kind]
      ax.plot([p['strength'] for p in pts], [p['accuracy'] for p in pts], 'o-')
      ax.axhline(clean, ls=':', color='grey', label='no attack')
      ax.set_title(kind)
      ax.set_ylim(0, 1)
    axes[0].set_ylabel('test accuracy')
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'robustness.png'))
    plt.close(fig)
    made.append('robustness.png')
  return made


def evaluate(workdir: str, runs: list[str], cross: bool, with_robustness: bool,
             batch_size: int = 16, max_examples: int = 0) -> dict:
  """Writes the report of `workdir` (and `runs`); returns its tables as a dict."""
  all_runs = [workdir] + [r for r in runs if r != workdir]
  loaded = []
  for w in all_runs:
    detector = predict.load_detector(w)
    if hasattr(detector, 'with_saliency'):
      detector.with_saliency = False
    loaded.append((w, detector, detector.config))
  out = os.path.join(workdir, 'report')
  os.makedirs(out, exist_ok=True)
  report = {'runs': []}
  own = {}
  for w, detector, config in loaded:
    dataset = load_dataset(config)
    probs = score(detector, dataset, dataset.split.test, batch_size)
    own[w] = (dataset, probs)
    report['runs'].append({'run': _run_name(w, config), 'split': config.dataset.split,
                           **_row(probs, dataset.labels[dataset.split.test], dataset.class_names)})
  md = [f'# Evaluation of {workdir}\n', '## Test metrics\n',
        _md_table(['run', 'split', *ROW_KEYS, 'test examples'],
                  [[r['run'], r['split'], *[r[k] for k in ROW_KEYS], r['num_examples']]
                   for r in report['runs']])]
  if len(loaded) > 1:
    md += ['\n## Ablation (Table 1 style)\n',
           _md_table(['dataset', 'split', 'input', 'accuracy', 'precision', 'recall', 'F1', 'AUC'],
                     [[c.dataset.name, c.dataset.split,
                       '+'.join(c.model.branches).upper() if c.get('method', 'cnn') == 'cnn' else 'WLD+XGBoost',
                       *[r[k] for k in ('accuracy', 'precision', 'recall', 'f1', 'auc')]]
                      for (_, _, c), r in zip(loaded, report['runs'])])]
  if cross:
    names = list(dict.fromkeys(c.dataset.name for _, _, c in loaded))
    matrix = []
    for w, detector, config in loaded:
      row = [_run_name(w, config)]
      for name in names:
        if name == config.dataset.name:
          dataset, probs = own[w]
          idx = dataset.split.test
        else:
          other = next(c for _, _, c in loaded if c.dataset.name == name).copy_and_resolve_references()
          other.dataset.num_classes = config.dataset.num_classes
          dataset = load_dataset(other, all_for_test=True)
          idx = dataset.split.test
          probs = score(detector, dataset, idx, batch_size)
        r = _row(probs, dataset.labels[idx], dataset.class_names)
        row.append(f"{r['accuracy']:.3f} / {r['auc']:.3f} (n={r['num_examples']})")
      matrix.append(row)
    report['cross'] = {'datasets': names, 'rows': matrix}
    md += ['\n## Cross-dataset: accuracy / AUC (rows: trained on; columns: tested on; own dataset: '
           'its test split, others: every example)\n', _md_table(['run', *names], matrix)]
  robustness_rows = None
  if with_robustness:
    _, detector, config = loaded[0]
    dataset = own[workdir][0]
    robustness_rows = robustness(detector, config, dataset, batch_size, max_examples)
    report['robustness'] = robustness_rows
    md += [f'\n## Robustness of {_run_name(workdir, config)} (test split'
           f'{f", first {max_examples}" if max_examples else ""})\n',
           _md_table(['attack', 'strength', *ROW_KEYS],
                     [[r['attack'], r['strength'], *[r[k] for k in ROW_KEYS]] for r in robustness_rows])]
  dataset, probs = own[workdir]
  figures = _figures(out, workdir, probs, dataset.labels[dataset.split.test], dataset.class_names,
                     robustness_rows)
  md += ['\n## Figures\n'] + [f'![{f}]({f})\n' for f in figures]
  with open(os.path.join(out, 'report.md'), 'w') as f:
    f.write('\n'.join(md))
  with open(os.path.join(out, 'report.json'), 'w') as f:
    json.dump(report, f, indent=2)
  return report


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  try:
    evaluate(f.workdir, f.runs, f.cross, f.robustness, f.batch_size, f.max_examples)
  except (ValueError, OSError, datasets.DatasetError) as e:
    sys.exit(f'error: {e}')
  print(os.path.join(f.workdir, 'report', 'report.md'))


if __name__ == '__main__':
  # Defined here, not at import, so that importing this module claims no flag names.
  flags.DEFINE_string('workdir', None, 'The run to report on; the report goes to WORKDIR/report.')
  flags.DEFINE_list('runs', [], 'More runs: for the ablation table and the cross-dataset matrix.')
  flags.DEFINE_bool('cross', False, "Evaluate every run on every run's dataset.")
  flags.DEFINE_bool('robustness', False, 'Attack the test split of WORKDIR.')
  flags.DEFINE_integer('max_examples', 0, 'Robustness on the first N test examples only (0 = all).')
  flags.DEFINE_integer('batch_size', 16, 'Images per accelerator call.')
  flags.mark_flags_as_required(['workdir'])
  app.run(main)

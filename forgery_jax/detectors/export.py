"""The inference export of a finished run: what `load`, `predict` and `evaluate` read.

    <workdir>/export/detector.json   method, the full config, how images are prepared, class names,
                                     the fit's record (steps, timings) and, for files read at their
                                     own size, the training files' count and largest size
    <workdir>/export/...             the detector's own payload (parameters, a booster)

No optimiser state. It is written into `export.tmp/` and renamed when complete, so a failure never
leaves half an export, and an earlier export is only replaced by a complete one. A k-fold run has
one export per `fold_<k>/`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

import jax
from jax.experimental import multihost_utils
import ml_collections

from forgery_jax import detectors
from forgery_jax.data.preparation import Preparation

EXPORT_DIR = 'export'
MANIFEST = 'detector.json'
REQUIRED = ('method', 'config', 'preparation', 'info')  # the keys `load` reads
FORMAT = 1


def write(detector: detectors.Detector, workdir: str, preparation: Preparation,
          training_sizes: dict | None = None, split_fingerprint: str = '') -> str:
  """Writes `workdir/export` (every process calls it: a JAX detector's save is collective);
  `training_sizes`: `input_pipeline.training_sizes` of what the fit read, kept when given;
  `split_fingerprint`: which examples its dataset's splits held, checked whenever the run's
  dataset is read again to score it (`input_pipeline.check_trained_on`)."""
  final = os.path.join(workdir, EXPORT_DIR)
  tmp, old = final + '.tmp', final + '.old'
  primary = jax.process_index() == 0
  if primary and os.path.exists(tmp):
    shutil.rmtree(tmp)
  _sync('export: start')
  detector.save(tmp)
  _sync('export: saved')
  if primary:
    manifest = {'format': FORMAT, 'method': detector.config.method,
                'config': detector.config.to_dict(), 'preparation': preparation.to_dict(),
                'class_names': list(detector.class_names), 'inputs': list(detector.inputs(detector.config)),
                'localises': detector.localises, 'info': detector.info}
    if training_sizes is not None:
      manifest['training_sizes'] = training_sizes
    if split_fingerprint:
      manifest['split_fingerprint'] = split_fingerprint
    with open(os.path.join(tmp, MANIFEST), 'w') as f:
      json.dump(manifest, f, indent=2, sort_keys=True)
    if os.path.exists(final):
      os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
  _sync('export: renamed')
  return final


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def read_manifest(export_dir: str) -> dict:
  path = os.path.join(export_dir, MANIFEST)
  try:
    with open(path) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f'{export_dir}: not a readable forgery_jax export ({e})') from e
  missing = [k for k in REQUIRED if not isinstance(manifest, dict) or k not in manifest]
  if missing:
    raise ValueError(f'{export_dir}: not a readable forgery_jax export ({MANIFEST} lacks '
                     f'{", ".join(missing)})')
  return manifest


def load(export_dir: str) -> detectors.Detector:
  """The detector of one export, ready to score, with `.preparation` and `.info` set."""
  manifest = read_manifest(export_dir)
  config = ml_collections.ConfigDict(manifest['config'])
  detector = detectors.get(manifest['method']).restore(config, export_dir)
  detector.info = manifest['info']
  detector.preparation = Preparation.from_dict(manifest['preparation'])
  detector.training_sizes = manifest.get('training_sizes')  # absent from earlier exports
  detector.split_fingerprint = manifest.get('split_fingerprint', '')  # the same
  return detector


def find(workdir: str) -> list[str]:
  """The export of a run, or of each fold of a k-fold run, in fold order; or `workdir` itself, an
  export copied on its own (the folder that holds its manifest)."""
  if not os.path.isdir(workdir):
    raise ValueError(f'{workdir}: no such folder')
  own = os.path.join(workdir, EXPORT_DIR)
  if os.path.exists(os.path.join(own, MANIFEST)):
    return [own]
  if os.path.exists(os.path.join(workdir, MANIFEST)):
    return [workdir]
  folds = sorted(glob.glob(os.path.join(workdir, 'fold_*', EXPORT_DIR, MANIFEST)),
                 key=lambda p: int(p.split('fold_')[-1].split(os.sep)[0]))
  if folds:
    return [os.path.dirname(p) for p in folds]
  if os.path.exists(os.path.join(workdir, 'config.json')):
    raise ValueError(f'{workdir} holds no finished model: no {EXPORT_DIR}/{MANIFEST} in it or its '
                     'folds (is the run still training, or from an older forgery_jax?)')
  raise ValueError(f'{workdir} is not a forgery_jax run: it has no {EXPORT_DIR}/{MANIFEST} '
                   f'(nor is it an export: no {MANIFEST})')

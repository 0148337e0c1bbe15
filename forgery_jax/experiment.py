"""The experiment runner: one path for every detector.

`run(config, workdir)` builds the dataset if needed, applies the split protocol (every fold of a
k-fold split in `workdir/fold_<k>`, averaged), fits the detector `config.method` names, writes its
inference export (`workdir/export`), runs the evaluators `config.evals` names, and writes
`workdir/results.json`: the evaluators' keys, the fit's record (steps, timings), the split sizes,
the dataset's content fingerprint, the config, and the software and machine that ran it.
"""

from __future__ import annotations

import functools
import json
import os

import jax
import ml_collections

from forgery_jax import detectors
from forgery_jax import runs
from forgery_jax import runtime
from forgery_jax import synthesis
from forgery_jax.data import datasets
from forgery_jax.data import splits
from forgery_jax.data import input_pipeline
from forgery_jax.data import labels
from forgery_jax.detectors import export
from forgery_jax.evaluation import evaluators
from forgery_jax.evaluation import robustness
from forgery_jax.training import trainer

RESULTS_FILE = runs.RESULTS_FILE
SPLIT_FILE = 'split.json'  # which examples the run's splits hold, written when it starts
TEST_KEYS = ('accuracy', 'precision', 'recall', 'f1', 'auc')
_INTERNAL_INFO = ('step', 'metrics_bytes')  # fit bookkeeping that results.json leaves out


def check(config) -> type[detectors.Detector]:
  """The detector class of `config`, after the checks that need no data (fail before any work)."""
  cls = detectors.get(config.method)
  _check_sequence_types(config)
  _check_dataset(config.dataset)
  for name in config.evals:
    evaluators.get(name)
  input_pipeline.extra_authentic_specs(config)
  _check_numbers(config)
  _check_evaluated_datasets(config)
  if 'synthesis' in config:
    synthesis.check_config(config.synthesis)
  _check_model_keys(config, cls)
  _check_training_step(config, cls)
  cls.check_config(config)
  return cls


def _check_sequence_types(config) -> None:
  """The items of each tuple are of the kind its default's are (whole numbers, numbers, names; an
  empty default: names): ml_collections checks only that a tuple is given, so a quoted
  `--config.synthesis.feather_sigmas='"(0.0,)"'` would otherwise end in a TypeError from deep in a
  later check, naming no key."""
  defaults = _default_values()
  number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
  whole = lambda v: isinstance(v, int) and not isinstance(v, bool)
  for key, value in runs.flat(config.to_dict()).items():
    if not isinstance(value, list):
      continue
    known = defaults.get(key, value)
    if not isinstance(known, list):
      continue
    if known and all(whole(v) for v in known):
      kind, fits = 'whole numbers', whole
    elif known and all(number(v) for v in known):
      kind, fits = 'numbers', number
    elif all(isinstance(v, str) for v in known):
      kind, fits = 'names (strings)', lambda v: isinstance(v, str)
    else:
      continue
    if not all(fits(v) for v in value):
      raise ValueError(f'config.{key} {tuple(value)}: a tuple of {kind}')


def _check_dataset(dc) -> None:
  """The run's own dataset, builder config, split, fold and classes are ones that exist."""
  datasets.builder_config_name(dc.name, dc.resolution, dc.builder_config)
  if dc.split not in splits.PROTOCOLS:
    raise ValueError(f'config.dataset.split {dc.split!r}: one of {splits.PROTOCOLS}')
  if dc.split in splits.KFOLD_PROTOCOLS:
    if not dc.num_folds >= 2:
      raise ValueError('config.dataset.num_folds must be at least 2 for the kfold split')
    if not -1 <= dc.fold < dc.num_folds:
      raise ValueError(f'config.dataset.fold {dc.fold}: a fold from 0 to {dc.num_folds - 1}, or -1 '
                       'for every fold')
  elif dc.fold != -1:
    raise ValueError(f'config.dataset.fold {dc.fold}: only a k-fold split has folds, not '
                     f'{dc.split!r}')
  if dc.num_classes not in (2, 3):
    raise ValueError(f'config.dataset.num_classes {dc.num_classes}: 2 (authentic / tampered) or 3 '
                     '(authentic / copy-move / splicing)')
  unknown = [c for c in dc.get('train_classes', ()) if c not in labels.FORGERY_TYPES]
  if unknown:
    raise ValueError(f'config.dataset.train_classes {tuple(dc.train_classes)}: names from '
                     f'{labels.FORGERY_TYPES}')
  if not 0 < dc.get('train_fraction', 1.0) <= 1:
    raise ValueError(f'config.dataset.train_fraction {dc.train_fraction}: a share, above 0 and at '
                     'most 1')


def _check_training_step(config, cls: type[detectors.Detector]) -> None:
  """Refuses, for a method that fits without the JAX training step (WLD + XGBoost, the keypoint
  map), the forgeries made inside it and a change of that step's settings from
  configs/default.py: the run would read the real files only, and train the same without them."""
  if cls.trains_in_step:
    return
  if 'synthesis' in config and (config.synthesis.fraction or config.synthesis.last_save):
    raise ValueError(f'config.synthesis: method {config.method!r} does not train through the JAX '
                     'training step in which the forgeries and last saves are made, so the run '
                     'would read the real files only')
  if cls.model_keys is None:  # a detector named as package.module:Class may read them itself
    return
  changed = [k for k in _changed_from_default(config) if k.startswith(trainer.STEP_SETTINGS)]
  if changed:
    raise ValueError(f"config.{', config.'.join(changed)}: settings of the JAX training step, "
                     f'which method {config.method!r} does not train through, so the run would be '
                     f"the same without {'them' if len(changed) > 1 else 'it'}")


def _check_model_keys(config, cls: type[detectors.Detector]) -> None:
  """Refuses a change to a `config.model` key that this method never reads (the localiser's
  `ela_qualities` on a 'cnn' run, say): the run would be the same as without it."""
  if cls.model_keys is None:
    return
  ignored = sorted({k.split('.')[1] for k in _changed_from_default(config)
                    if k.startswith('model.') and k.split('.')[1] not in cls.model_keys})
  if ignored:
    raise ValueError(f"config.model.{', config.model.'.join(ignored)}: not read by method "
                     f"{config.method!r}, so the run would be the same without "
                     f"{'them' if len(ignored) > 1 else 'it'}; it reads {list(cls.model_keys)}")


def _changed_from_default(config) -> list[str]:
  """The dotted keys of `config` whose values differ from those of configs/default.py (keys it
  does not have included)."""
  defaults = _default_values()
  return sorted(k for k, v in runs.flat(config.to_dict()).items()
                if v != defaults.get(k, object()))


@functools.cache
def _default_values() -> dict:
  """configs/default.py as {'dotted.key': value} (read, never changed)."""
  from configs import default  # pylint: disable=g-import-not-at-top
  return runs.flat(default.get_config().to_dict())


# Dotted config keys holding whole numbers, and the least each may take (absent keys: not checked).
_AT_LEAST = {'batch_size': 1, 'eval_batch_size': 1, 'num_epochs': 1, 'log_every_steps': 1,
             'early_stopping_patience': 1, 'validate_every_epochs': 1, 'seed': 0,
             'dataset.split_seed': 0, 'warmup_steps': 0, 'checkpoint.keep': 1,
             'checkpoint.every_steps': 0, 'input.crop': 0, 'input.crop_align': 1,
             'input.prefetch': 0, 'input.num_threads': 0, 'input.worker_processes': 0,
             'dataset.resolution': 1, 'model.features': 1, 'model.hidden': 1, 'model.stem': 1,
             'robustness.max_examples': 0}


def _value(config, key: str):
  """The value at a dotted key, or None where the config has no such key."""
  for part in key.split('.'):
    if part not in config:
      return None
    config = config[part]
  return config


def _check_numbers(config) -> None:
  """Sizes, counts and rates that only make sense one way: one error line now, not a traceback
  from inside the fit (a batch of 0 divides by zero, a log interval of 0 too, a negative worker
  count fails in grain) or a run that quietly does something else (a negative learning rate
  climbs the loss; with no checkpoint kept a resume starts from the best one, not the last)."""
  for key, least in _AT_LEAST.items():
    value = _value(config, key)
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                  and value >= least):
      raise ValueError(f'{key} {value}: a whole number, {least} or more')
  if 'learning_rate' in config and not config.learning_rate > 0:
    raise ValueError(f'learning_rate {config.learning_rate}: above 0')
  if 'lr_decay' in config and not config.lr_decay >= 0:
    raise ValueError(f'lr_decay {config.lr_decay}: 0 or more')
  if config.get('early_stopping_ties', 'first') not in ('first', 'loss'):
    raise ValueError(f"early_stopping_ties {config.early_stopping_ties!r}: 'first' or 'loss'")
  for key in ('test_fraction', 'validation_fraction'):
    value = config.dataset.get(key, 0.5)
    if not 0 < value < 1:
      raise ValueError(f'dataset.{key} {value}: a share, above 0 and below 1')


def _check_evaluated_datasets(config) -> None:
  """The datasets the evaluators read only after training (`dataset.also_test`,
  `dataset.control` and its reference, `cross_dataset`, the release's files for `robustness`)
  exist: a misspelt name is refused before the fit, not an hour later."""
  def named(key: str, check, *args):
    try:
      check(*args)
    except datasets.DatasetError as e:
      raise datasets.DatasetError(f'{key}: {e}') from None
  own = (('config.dataset.also_test', c) for c in config.dataset.also_test)
  for key, builder_config in (*own, ('config.dataset.control', config.dataset.control),
                              ('config.dataset.control_reference', config.dataset.control_reference)):
    if builder_config:
      named(key, datasets.check_builder_config, config.dataset.name, builder_config)
  cross = config.cross_dataset
  if cross.name:
    datasets.builder_class(cross.name, 'config.cross_dataset.name')
    for builder_config in (cross.builder_config, *cross.also_test):
      named('config.cross_dataset', datasets.builder_config_name, cross.name,
            config.dataset.resolution, builder_config)
    input_pipeline.check_not_extra_authentic(config, cross.name)
  if 'robustness' in config.evals:
    robustness.check_sources(config)


def run_one(config, workdir: str, root: str, environment: dict) -> dict:
  """One fit and its evaluations in `workdir`; returns what results.json holds (`environment`:
  what runs it)."""
  cls = check(config)
  os.makedirs(workdir, exist_ok=True)
  dataset = input_pipeline.load(config)
  split_fingerprint = dataset.split_fingerprint
  _same_split_as_when_started(config, workdir, dataset, split_fingerprint)
  training = input_pipeline.with_extra_authentic(dataset, config)  # what the fit reads
  context = evaluators.Context(config, dataset, workdir, write_metrics=True,
                               batch_size=config.eval_batch_size)
  detector = cls.finished(config, workdir)
  if detector is None:
    evaluators.load_datasets(context, config.evals)  # what cannot be read fails now, not after the fit
    detector = cls.fit(config, training, detectors.Run(workdir, root))
    export.write(detector, workdir, dataset.preparation, input_pipeline.training_sizes(training),
                 split_fingerprint)
    if jax.process_index() == 0:  # what the export was fitted on (a refitting method's new split)
      runs.write_json_atomic(os.path.join(workdir, SPLIT_FILE),
                             _split_record(config, dataset, split_fingerprint))
    detector.after_export()
  results = evaluators.run_all(detector, context, config.evals)
  results.update({k: v for k, v in detector.info.items() if k not in _INTERNAL_INFO})
  results.update({'method': config.method, 'split_sizes': training.split.sizes(),
                  'class_names': list(dataset.class_names), 'dataset': dataset.name,
                  'dataset_fingerprint': dataset.fingerprint,
                  'split_fingerprint': split_fingerprint,
                  'num_devices': jax.device_count(), 'config': config.to_dict(),
                  'environment': environment})
  if jax.process_index() == 0:
    runs.write_results(workdir, results)
  return results


# config.dataset fields that say where the files are or what else is scored, not how they split
_NOT_SPLIT_FIELDS = ('data_dir', 'manual_dir', 'also_test', 'control', 'control_reference',
                     'extra_authentic')


def _split_asked(config) -> dict:
  """The `config.dataset` fields that decide the split, as `SPLIT_FILE` holds them read back."""
  asked = {k: v for k, v in config.dataset.to_dict().items() if k not in _NOT_SPLIT_FIELDS}
  return json.loads(json.dumps(asked))  # tuples as lists


def _split_record(config, dataset: input_pipeline.Dataset, split_fingerprint: str) -> dict:
  return {'dataset': dataset.name, 'asked': _split_asked(config), 'sizes': dataset.split.sizes(),
          'split_fingerprint': split_fingerprint}


def _same_split_as_when_started(config, workdir: str, dataset: input_pipeline.Dataset,
                                split_fingerprint: str) -> None:
  """Refuses to go on (resume, evaluate again) when the split asked for is the one the run
  recorded (`SPLIT_FILE`) but the dataset, since rebuilt from other files, splits otherwise: its
  test split would hold files the run trained on. Another split asked for is left to the checks
  of a changed config. Records the split when the run starts (not for a run that finished
  without a record)."""
  path = os.path.join(workdir, SPLIT_FILE)
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
    if recorded.get('asked') == _split_asked(config):
      input_pipeline.check_trained_on(dataset, recorded.get('split_fingerprint', ''), workdir)
  elif jax.process_index() == 0 and not os.path.exists(os.path.join(workdir, export.EXPORT_DIR)):
    runs.write_json_atomic(path, _split_record(config, dataset, split_fingerprint))


# The folders a run reads its datasets from (none of them changes what is trained).
_FOLDER_FIELDS = (('dataset', 'data_dir'), ('dataset', 'manual_dir'),
                  ('cross_dataset', 'manual_dir'))


def _absolute_folders(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose dataset folders are absolute: the run records them, and evaluate,
  predict or a resume started from another folder read them from that record (a relative
  `../shared/datasets/casia1` named a folder that is not there)."""
  config = ml_collections.ConfigDict(config.to_dict())
  for section, field in _FOLDER_FIELDS:
    if section in config and config[section][field]:
      config[section][field] = os.path.abspath(os.path.expanduser(config[section][field]))
  return config


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the experiment `config` describes in `workdir`; returns what results.json holds.

  With a k-fold split (`kfold`, `random_kfold`) and `config.dataset.fold < 0`, every fold
  runs in `workdir/fold_<k>` and results.json holds the mean over folds under the same keys,
  with the per-fold values beside them.
  """
  check(config)
  if os.path.isfile(os.path.join(workdir, export.MANIFEST)):
    raise ValueError(f"--workdir={workdir} is a run's model export (it holds {export.MANIFEST}), "
                     "not a run's folder: train into another --workdir")
  config = _absolute_folders(config)
  root = os.path.abspath(runtime.output_folder(workdir, '--workdir'))
  environment = runtime.environment()  # once, at the start: the code that trains
  with runs.only_writer(root):
    return runs.run_folds(config, root, lambda c, w: run_one(c, w, root, environment))

"""End to end on the tiny config: results, export, checkpoints, resume, bad input."""

import json
import os
import pathlib
import subprocess
import sys

import jax
import ml_collections
import pytest

from forgery_jax import experiment
from forgery_jax import runs
from forgery_jax.data import datasets
from forgery_jax.detectors import export
from forgery_jax.training import checkpointing
from forgery_jax.training import task
from forgery_jax.training import trainer
from tests.conftest import with_file_size_limit

REPO = pathlib.Path(__file__).resolve().parents[1]


def _lines(workdir, split):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [r for r in map(json.loads, f) if r['split'] == split]


@pytest.fixture(scope='module')
def finished_run(tiny_config, tmp_path_factory):
  """A 1-epoch run that keeps its final training state, then the same workdir continued to 2
  epochs and tested on a second dataset."""
  workdir = str(tmp_path_factory.mktemp('run'))
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1
  config.checkpoint.keep_final = True
  first = experiment.run(config, workdir)
  config.num_epochs = 2
  # Cross-dataset: the tiny set's own pooled splits stand in for another dataset.
  config.cross_dataset.name = 'synthetic_forgery'
  config.cross_dataset.builder_config = 'tiny'
  config.dataset.also_test = ('tiny',)  # the same files again: must score exactly as `test`
  second = experiment.run(config, workdir)
  return workdir, first, second


def test_writes_results_checkpoints_and_metrics(finished_run):
  workdir, first, _ = finished_run
  with open(os.path.join(workdir, 'results.json')) as f:
    results = json.load(f)
  for k in ('accuracy', 'precision', 'recall', 'f1', 'auc'):
    assert 0.0 <= results[f'test/{k}'] <= 1.0
  for k in ('accuracy', 'auc'):  # beside their 95 % intervals over the split's groups
    assert results[f'test/{k}_ci95'][0] <= results[f'test/{k}'] <= results[f'test/{k}_ci95'][1]
  assert results['config']['dataset']['name'] == 'synthetic_forgery'
  # the tiny set read again gives the same content fingerprint (its build is shared by the module)
  from forgery_jax.data import input_pipeline  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict(results['config'])
  assert results['dataset_fingerprint'] == input_pipeline.load(config).fingerprint
  assert len(results['dataset_fingerprint']) == 64
  # the software and machine that ran it
  assert results['environment']['packages']['jax'] == jax.__version__
  assert results['environment']['device_count'] == results['num_devices']
  assert results['test/num_examples'] == results['split_sizes']['test'] == 32
  assert sum(map(sum, results['test/confusion_matrix'])) == 32
  assert 'baseline/majority_accuracy' in results and 'baseline/jpeg_quality_lookup_accuracy' in results
  by_quality = results['test/accuracy_by_jpeg_quality']
  assert sum(v['count'] for v in by_quality.values()) == 32
  assert os.listdir(os.path.join(workdir, checkpointing.CHECKPOINT_DIR))  # keep_final
  manifest = export.read_manifest(os.path.join(workdir, export.EXPORT_DIR))
  assert manifest['method'] == 'cnn' and manifest['preparation']['geometry'] == 'crop'
  assert any(p.startswith('events') for p in os.listdir(os.path.join(workdir, 'tensorboard')))
  assert first['final_step'] == 64 // 8


def test_resume_continues_from_saved_step(finished_run):
  workdir, first, second = finished_run
  steps_per_epoch = first['final_step']
  assert second['resumed_from_step'] == steps_per_epoch
  assert second['final_step'] == 2 * steps_per_epoch
  train_steps = [r['step'] for r in _lines(workdir, 'train')]
  assert len(train_steps) == len(set(train_steps)), 'a resumed run repeated steps'
  assert max(train_steps) == 2 * steps_per_epoch
  assert [r['step'] for r in _lines(workdir, 'validation')] == [steps_per_epoch, 2 * steps_per_epoch]


def test_cross_dataset_evaluation_uses_every_example(finished_run):
  _, first, second = finished_run
  assert not any(k.startswith('cross/') for k in first)
  prefix = 'cross/synthetic_forgery/tiny/2.0.0'
  assert second[f'{prefix}/num_examples'] == 64 + 32 + 32
  assert sum(map(sum, second[f'{prefix}/confusion_matrix'])) == 128
  assert 0.0 <= second[f'{prefix}/accuracy'] <= 1.0


def test_also_test_scores_the_same_files_prepared_another_way(finished_run):
  _, first, second = finished_run
  assert not any(k.startswith('test_tiny/') for k in first)
  for k in ('accuracy', 'auc', 'num_examples', 'confusion_matrix'):
    assert second[f'test_tiny/{k}'] == second[f'test/{k}']
  assert second['test_tiny/baseline/majority_accuracy'] == second['baseline/majority_accuracy']


def test_validation_every_kth_epoch_and_the_last(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs, config.validate_every_epochs = 3, 2  # 8 steps an epoch
  config.evals = ('test',)
  result = experiment.run(config, str(tmp_path / 'run'))
  assert result['final_step'] == 24 and result['best_step'] in (16, 24)
  assert [r['step'] for r in _lines(str(tmp_path / 'run'), 'validation')] == [16, 24]
  config.validate_every_epochs = 0
  with pytest.raises(ValueError, match='validate_every_epochs 0: a whole number, 1 or more'):
    experiment.run(config, str(tmp_path / 'bad'))
  assert not (tmp_path / 'bad').exists()


def test_random_flips_move_every_plane_of_an_example_together():
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  planes = np.arange(16 * 4 * 4 * 3, dtype=np.uint8).reshape(16, 4, 4, 3)
  out = task.random_flips({'ela': planes, 'image': planes, 'label': np.zeros(16)}, jax.random.key(0))
  np.testing.assert_array_equal(out['ela'], out['image'])
  seen = set()
  for x, y in zip(planes, np.asarray(out['ela'])):
    kind = [k for k, f in enumerate((x, x[:, ::-1], x[::-1], x[::-1, ::-1])) if np.array_equal(f, y)]
    assert kind, 'an output is not a flip of its input'
    seen.add(kind[0])
  assert len(seen) >= 3  # flips happen, and not all alike


def test_corrupt_latest_checkpoint_falls_back_and_is_kept(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 2
  config.checkpoint.every_steps = 4
  config.checkpoint.keep_final = True
  experiment.run(config, str(tmp_path))
  latest = tmp_path / checkpointing.CHECKPOINT_DIR
  step_dir = sorted(latest.iterdir(), key=lambda p: int(p.name))[-1]
  assert step_dir.name == '16'
  for f in (step_dir / 'state').rglob('*'):
    if f.is_file() and f.stat().st_size > 100:
      f.write_bytes(b'\0' * 16)  # truncate the array data
  before = {p.relative_to(step_dir): p.read_bytes() for p in step_dir.rglob('*') if p.is_file()}
  config.num_epochs = 3
  results = experiment.run(config, str(tmp_path))
  # Resumed from the newest readable checkpoint (one manager: step 16 has no second copy).
  assert results['resumed_from_step'] == 12 and results['final_step'] == 24
  moved = tmp_path / checkpointing.UNREADABLE_DIR / f'{checkpointing.CHECKPOINT_DIR}_16'
  after = {p.relative_to(moved): p.read_bytes() for p in moved.rglob('*') if p.is_file()}
  assert before == after  # moved aside intact, not deleted
  steps = [r['step'] for r in _lines(str(tmp_path), 'train')]
  assert len(steps) == len(set(steps)), 'a resumed run logged a step twice'


def test_a_failed_save_names_its_step_its_cause_and_the_checkpoint_to_resume_from(tmp_path,
                                                                                  monkeypatch):
  """A full disk failed a save with Orbax's message about its database files (and training went
  on to the next save); the error names the step, the cause and where the same command resumes."""
  import errno
  import jax.numpy as jnp
  state = {'w': jnp.arange(3.0)}
  ckpts = checkpointing.RunCheckpoints(str(tmp_path / 'sync'), keep=2)
  ckpts.save(4, state, {}, {'step': 4})
  ckpts.wait()

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')
  monkeypatch.setattr(ckpts.manager, 'save', full)
  with pytest.raises(checkpointing.CheckpointError,
                     match=r'sync/checkpoints: saving the checkpoint of step 8 failed \(No space '
                           r'left on device\); the newest complete checkpoint is step 4: make room '
                           r'or fix the folder, then run the same command to resume'):
    ckpts.save(8, state, {}, {'step': 8})
  # A save in the background fails as Orbax reports it: on the next save or wait.
  ckpts = checkpointing.RunCheckpoints(str(tmp_path / 'async'), keep=2)
  monkeypatch.setattr(ckpts.manager, 'save', lambda *args, **kwargs: None)
  ckpts.save(4, state, {}, {'step': 4})

  def failed():
    raise ValueError('RESOURCE_EXHAUSTED: Error writing "0.w/0" in OCDBT database at local file '
                     '".../4.orbax-checkpoint-tmp/state": Failed to write 12 bytes to file 18: No '
                     "space left on device [os_error_code='28']")
  monkeypatch.setattr(ckpts.manager, 'wait_until_finished', failed)
  failure = (r'saving the checkpoint of step 4 failed \(No space left on device\); no checkpoint '
             r'is complete yet, so it starts again')
  with pytest.raises(checkpointing.CheckpointError, match=failure):
    ckpts.save(8, state, {}, {'step': 8})
  # Asked at each log step (`check`), once the background save has ended: not a whole
  # checkpoint interval later.
  monkeypatch.setattr(ckpts.manager, 'is_saving_in_progress', lambda: True)
  ckpts.check()  # still in flight: no wait
  monkeypatch.setattr(ckpts.manager, 'is_saving_in_progress', lambda: False)
  with pytest.raises(checkpointing.CheckpointError, match=failure):
    ckpts.check()


def test_a_resumed_run_keeps_its_best_checkpoint_beside_the_latest(tmp_path):
  """The best checkpoint stays beside the latest N after a resume. Orbax's BestN policy ranked by
  metrics it never wrote to disk, so a resumed run deleted the best at its first save beyond the
  latest N, and its end failed restoring it."""
  import jax.numpy as jnp
  state = {'w': jnp.arange(3.0)}
  ckpts = checkpointing.RunCheckpoints(str(tmp_path), keep=2)
  for step in (1, 2, 3):
    ckpts.save(step, state, {}, {'step': step, 'best_step': 1})
  ckpts.wait()
  ckpts.close()
  assert sorted(ckpts.steps()) == [1, 2, 3]
  ckpts = checkpointing.RunCheckpoints(str(tmp_path), keep=2)  # the same run, resumed
  step, _, _, meta = ckpts.restore_latest(checkpointing.abstract_like(state))
  assert (step, meta['best_step']) == (3, 1)
  for step in (4, 5):
    ckpts.save(step, state, {}, {'step': step, 'best_step': 1})
  ckpts.wait()
  assert sorted(ckpts.steps()) == [1, 4, 5]
  assert ckpts.restore(1, checkpointing.abstract_like(state))[3]['step'] == 1
  ckpts.save(6, state, {}, {'step': 6, 'best_step': 6})  # a new best: the old one goes
  ckpts.wait()
  assert sorted(ckpts.steps()) == [5, 6]
  with pytest.raises(checkpointing.CheckpointError, match=r'/checkpoints/1 is missing: the '
                     r'checkpoint of step 1, which this run names, was removed'):
    ckpts.restore(1, checkpointing.abstract_like(state))
  ckpts.close()


def test_a_run_whose_checkpoint_cannot_be_written_stops_with_one_line_and_resumes(tiny_config,
                                                                                   tmp_path):
  """Through `main`, a real failed write (the file-size limit standing in for a full disk): one
  error line naming the step and the cause, Orbax's tracebacks left out; then, with room, the same
  command runs to the end, each step logged once."""
  args = ['--config=configs/tiny.py', f'--workdir={tmp_path}',
          f'--config.dataset.data_dir={tiny_config.dataset.data_dir}']
  env = {**os.environ, 'FORGERY_JAX_COMPILATION_CACHE': 'off'}
  result = subprocess.run([*with_file_size_limit('forgery_jax.main', 1_000_000), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: {tmp_path}/checkpoints: saving the checkpoint of step 8 failed (File too large); no '
      'checkpoint is complete yet, so it starts again: make room or fix the folder, then run the '
      'same command to resume')
  assert 'Traceback' not in result.stderr
  again = _main(*args)
  assert again.returncode == 0, again.stderr[-2000:]
  steps = [r['step'] for r in _lines(str(tmp_path), 'train')]
  assert steps == [4, 8, 12, 16]


def test_an_attempt_that_saved_no_checkpoint_leaves_no_metrics_behind(tiny_config, tmp_path):
  """A run stopped before its first complete checkpoint (killed in the first epoch, or its save
  failed) starts again at step 0: the lines it wrote are not kept beside the new ones."""
  (tmp_path / 'metrics.jsonl').write_text(
      '{"split": "train", "step": 4, "loss": 9.0}\n{"split": "train", "step": 8, "loss": 9.0}\n')
  experiment.run(tiny_config, str(tmp_path))
  steps = [r['step'] for r in _lines(str(tmp_path), 'train')]
  assert steps == sorted(set(steps)) and steps[0] == 4
  assert all(r['loss'] != 9.0 for r in _lines(str(tmp_path), 'train'))


def test_checkpoint_of_other_config_is_a_clear_error(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1
  config.checkpoint.keep_final = True
  experiment.run(config, str(tmp_path))
  config.model.hidden = 64  # different parameter shapes
  # Named by the config the run started with (config.json) ...
  with pytest.raises(ValueError, match=r"holds an unfinished run of another training config "
                                       r"\(fields \['model.hidden'\]\)"):
    experiment.run(config, str(tmp_path))
  # ... and, without it, by the checkpoint's own shapes.
  (tmp_path / 'config.json').rename(tmp_path / 'config_of_the_run.json')
  stored = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
  with pytest.raises(checkpointing.CheckpointError,
                     match=r'head.kernel.value is stored as float32 \(256, 2\), the config makes it '
                           r'float32 \(64, 2\).*\nIt was written by a different config'):
    experiment.run(config, str(tmp_path))
  # From the command line: the error, and nothing after it (the mismatch is found from the
  # checkpoint's metadata, before any read is in flight to print tracebacks at exit).
  result = _main('--config=configs/tiny.py', f'--workdir={tmp_path}', '--config.num_epochs=1',
                 f'--config.dataset.data_dir={config.dataset.data_dir}',
                 '--config.checkpoint.keep_final=True', '--config.model.hidden=64')
  assert result.returncode == 1
  assert result.stderr.rstrip().endswith('or move that checkpoint aside to resume from an earlier one.')
  assert 'Traceback' not in result.stderr and 'trying an older checkpoint' not in result.stderr
  assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == stored


def test_resuming_under_another_training_config_is_refused(tiny_config, tmp_path):
  """A run with training state, rerun with another split, rate or seed, went on as a mixture of
  two runs (same shapes: nothing stopped it) and its config.json then named only the second."""
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1
  config.checkpoint.keep_final = True
  experiment.run(config, str(tmp_path))
  stored = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
  for field, value in (('dataset.split_seed', 1), ('learning_rate', 0.01), ('seed', 3),
                       ('input.crop_on_region', False)):
    changed = config.copy_and_resolve_references()
    *section, key = field.split('.')
    (changed[section[0]] if section else changed)[key] = value
    with pytest.raises(ValueError, match=rf"another training config \(fields \['{field}'\]\): resume "
                                         'it with the config it started with'):
      experiment.run(changed, str(tmp_path))
    assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == stored
  # What does not change the training (the input threads, an evaluation) resumes as before.
  config.input.num_threads = 1
  config.evals = ('test',)
  assert experiment.run(config, str(tmp_path))['resumed_from_step'] == 8


def test_finished_run_keeps_only_its_export_and_is_evaluated_again(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1
  first = experiment.run(config, str(tmp_path))
  assert not (tmp_path / checkpointing.CHECKPOINT_DIR).exists()
  assert set(os.listdir(tmp_path)) == {'export', 'config.json', 'metrics.jsonl', 'results.json',
                                       'split.json', 'tensorboard'}
  lines = (tmp_path / 'metrics.jsonl').read_text()
  config.cross_dataset.name = 'synthetic_forgery'  # an evaluation-only change: evaluated again
  config.cross_dataset.builder_config = 'tiny'
  config.dataset.control = 'tiny'  # the history-matched control is scored, not trained on
  again = experiment.run(config, str(tmp_path))
  assert (tmp_path / 'metrics.jsonl').read_text() == lines  # the test row is not written twice
  tests = lambda r: {k: v for k, v in r.items() if k.startswith('test/')}
  assert tests(again) == tests(first)
  assert 'cross/synthetic_forgery/tiny/2.0.0/accuracy' in again
  assert again['control/tiny/false_alarm_rate'] == again['control/tiny/reference_false_alarm_rate']
  # What it held before is kept, once: scored again alike, nothing more is kept.
  (kept,) = (tmp_path / runs.REPLACED_RESULTS_DIR).iterdir()
  assert json.loads(kept.read_text()) == json.loads(json.dumps(first))
  experiment.run(config, str(tmp_path))
  assert len(list((tmp_path / runs.REPLACED_RESULTS_DIR).iterdir())) == 1
  config.model.hidden = 64  # a training change cannot continue a run whose state is gone
  with pytest.raises(ValueError, match=r"another training config \(fields \['model.hidden'\]\)"):
    experiment.run(config, str(tmp_path))


def _main(*args):
  return subprocess.run([sys.executable, '-m', 'forgery_jax.main', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300, check=False)


def test_unknown_config_field_is_a_clear_error(tmp_path):
  result = _main('--config=configs/tiny.py', f'--workdir={tmp_path}', '--config.batch_size=3',
                 '--config.model.brnches=ela')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      "error: --config.model.brnches: config.model has no field 'brnches' (did you mean "
      "'branches'?)"]
  assert not os.listdir(tmp_path)


@pytest.mark.parametrize('config, message', [
    ('configs/nope.py', "cannot load it ([Errno 2] No such file or directory: 'configs/nope.py')"),
    ('configs/localiser_synthetic.py:bogus',
     "ValueError: configs/localiser_synthetic.py:<mode> takes one of ('only', 'both'), got 'bogus'"),
])
def test_bad_config_file_is_one_error_line(tmp_path, config, message):
  result = _main(f'--config={config}', f'--workdir={tmp_path}', '--config.batch_size=3')
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [f'error: --config={config}: {message}']
  assert not os.listdir(tmp_path)


def test_unknown_dataset_is_a_clear_error(tmp_path):
  result = _main('--config=configs/tiny.py', f'--workdir={tmp_path}',
                 '--config.dataset.name=casia_v9')
  assert result.returncode != 0
  assert "unknown dataset 'casia_v9'" in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.parametrize('fields, message', [
    ({'cross_dataset.name': 'nope'},
     r"unknown dataset 'nope': config.cross_dataset.name must be one of \['casia1'"),
    ({'cross_dataset.name': 'casia1', 'cross_dataset.builder_config': 'nat'},
     r"config.cross_dataset: dataset 'casia1' has no builder config 'nat'; it has \['paper128'"),
    ({'cross_dataset.name': 'casia1'},  # none at the tiny config's resolution
     r"config.cross_dataset: dataset 'casia1' has no builder config at resolution 32 "
     r"\(its resolutions: \[128, 256\]\); name one of \['paper128'"),
    ({'dataset.also_test': ('nat',)},
     r"config.dataset.also_test: dataset 'synthetic_forgery' has no builder config 'nat'"),
    ({'dataset.control': 'nope'},
     r"config.dataset.control: dataset 'synthetic_forgery' has no builder config 'nope'"),
    ({'dataset.control': 'tiny', 'dataset.control_reference': 'nope'},
     r"config.dataset.control_reference: dataset 'synthetic_forgery' has no builder config"),
])
def test_datasets_read_after_training_are_checked_before_it(tiny_config, tmp_path, fields, message):
  """The evaluators read `cross_dataset`, `dataset.also_test` and `dataset.control` only once the
  fit is done: a misspelt name is refused before anything is written, not an hour later."""
  config = tiny_config.copy_and_resolve_references()
  for field, value in fields.items():
    section, key = field.split('.')
    config[section][key] = value
  with pytest.raises(datasets.DatasetError, match=message):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_a_cross_dataset_that_cannot_be_built_fails_before_the_fit(tiny_config, tmp_path):
  """The datasets the evaluators will read are loaded (built where needed) before training."""
  config = tiny_config.copy_and_resolve_references()
  config.cross_dataset.update(name='micc_f220', builder_config='native',
                              manual_dir=str(tmp_path / 'none'))
  with pytest.raises(datasets.DatasetError, match=r'building micc_f220/native/.* failed'):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run' / 'export').exists()
  assert not (tmp_path / 'run' / 'metrics.jsonl').exists()


@pytest.mark.parametrize('field, value, message', [
    ('batch_size', 0, 'batch_size 0: a whole number, 1 or more'),
    ('eval_batch_size', -2, 'eval_batch_size -2: a whole number, 1 or more'),
    ('learning_rate', -1.0, r'learning_rate -1.0: above 0'),
    ('dataset.validation_fraction', 1.5, r'dataset.validation_fraction 1.5: a share, above 0 and below 1'),
    ('dataset.test_fraction', 0.0, r'dataset.test_fraction 0.0: a share'),
    ('seed', -1, 'seed -1: a whole number, 0 or more'),
    ('dataset.split_seed', -3, 'dataset.split_seed -3: a whole number, 0 or more'),
    ('log_every_steps', 0, 'log_every_steps 0: a whole number, 1 or more'),
    ('early_stopping_patience', 0, 'early_stopping_patience 0: a whole number, 1 or more'),
    ('lr_decay', -1.0, r'lr_decay -1.0: 0 or more'),
    ('early_stopping_ties', 'lose', r"early_stopping_ties 'lose': 'first' or 'loss'"),
    ('checkpoint.keep', 0, 'checkpoint.keep 0: a whole number, 1 or more'),
    ('input.crop_align', 0, 'input.crop_align 0: a whole number, 1 or more'),
    ('input.prefetch', -1, 'input.prefetch -1: a whole number, 0 or more'),
    ('input.worker_processes', -1, 'input.worker_processes -1: a whole number, 0 or more'),
    ('validate_every_epochs', 0, 'validate_every_epochs 0: a whole number, 1 or more'),
    ('ema_decay', 1.5, r'config.ema_decay must be in \[0, 1\)'),
    ('lr_schedule', 'nope', r"config.lr_schedule='nope': one of"),
    # A quoted tuple on the command line arrives as a tuple of one string.
    ('synthesis.feather_sigmas', ('(0.0,)',),
     r"config.synthesis.feather_sigmas \('\(0.0,\)',\): a tuple of numbers"),
    ('synthesis.donor_quality', (50.5, 95), r'config.synthesis.donor_quality \(50.5, 95\): a tuple of whole numbers'),
    ('dataset.also_test', (1,), r'config.dataset.also_test \(1,\): a tuple of names'),
    ('dataset.split', 'groupd', r"config.dataset.split 'groupd': one of"),
    ('dataset.num_classes', 4, 'config.dataset.num_classes 4: 2'),
    ('dataset.fold', 3, r"config.dataset.fold 3: only a k-fold split has folds, not 'grouped'"),
    ('dataset.train_classes', ('copy-move',), r"config.dataset.train_classes \('copy-move',\): names from"),
    ('dataset.train_fraction', 0.0, 'config.dataset.train_fraction 0.0: a share'),
    ('model.features', 0, 'model.features 0: a whole number, 1 or more'),
    ('model.head', 'pooled', r"model.head must be one of \('flatten', 'pool'\), got 'pooled'"),
    ('model.dtype', 'float16', r"config.model.dtype 'float16': one of"),
    ('model.srm_clip', 0.0, 'model.srm_clip 0.0: above 0'),
    ('robustness.max_examples', -1, 'robustness.max_examples -1: a whole number, 0 or more'),
    ('early_stopping_metric', 'nope', 'config.early_stopping_metric must be one of'),
    ('early_stopping_metric', 'pixel_f1', r"config.early_stopping_metric='pixel_f1' scores validation "
                                          r"maps, which method 'cnn' does not draw"),
])
def test_sizes_and_rates_that_make_no_sense_are_one_error_before_any_work(tiny_config, tmp_path,
                                                                          field, value, message):
  """A batch of 0 was a ZeroDivisionError from inside the fit; a negative rate trained quietly; a
  misspelt split, head or class was refused only once the dataset had been read."""
  config = tiny_config.copy_and_resolve_references()
  *section, key = field.split('.')
  (config[section[0]] if section else config)[key] = value
  with pytest.raises(ValueError, match=message):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('field, value, message', [
    ('keypoint_fusion', 'maximum', r"keypoint fusion 'maximum' \(model.keypoint_fusion\): choose from"),
    ('keypoint_decision', 'cluster', r"keypoint decision 'cluster' \(model.keypoint_decision\): choose"),
    ('loss_weights.dice', -1.0, r'model.loss_weights .*: 0 or more each'),
    ('constrained_filters', -1, 'model.constrained_filters -1: a number of filters'),
])
def test_a_localiser_setting_that_names_nothing_is_refused_before_any_work(tiny_config, tmp_path,
                                                                           field, value, message):
  """A misspelt rule is refused at the start, not (for the fusion rule) when the run's maps are
  first scored after its training."""
  config = tiny_config.copy_and_resolve_references()
  config.method = 'localiser'
  *section, key = field.split('.')
  (config.model[section[0]] if section else config.model)[key] = value
  with pytest.raises(ValueError, match=message):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('method, field, value, message', [
    ('cnn', 'ela_qualities', (75, 85), r"config.model.ela_qualities: not read by method 'cnn'"),
    ('cnn', 'levels', (8, 16), r"config.model.levels: not read by method 'cnn'"),
    ('cnn', 'score_flips', True, r"config.model.score_flips: not read by method 'cnn'"),
    ('localiser', 'branches', ('ela',), r"config.model.branches: not read by method 'localiser'.*"
                                        r"it reads \['ela_qualities'"),
    ('wld_xgboost', 'hidden', 64, r"config.model.hidden: not read by method 'wld_xgboost'.*it reads \[\]"),
])
def test_a_model_setting_the_method_never_reads_is_refused(tiny_config, tmp_path, method, field,
                                                           value, message):
  """config.model holds every detector's settings: one the chosen method ignores would give a run
  identical to one without it (an ablation that changed nothing), so it is refused before any work."""
  config = tiny_config.copy_and_resolve_references()
  config.method = method
  config.model[field] = value
  with pytest.raises(ValueError, match=message):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('method', ['wld_xgboost', 'copy_move_keypoints'])
@pytest.mark.parametrize('field, value', [('fraction', 0.5), ('last_save', True)])
def test_synthesis_for_a_method_that_cannot_read_it_is_refused(tiny_config, tmp_path, method, field,
                                                               value):
  """The forgeries are made inside the JAX training step: a detector without one ignored them."""
  config = tiny_config.copy_and_resolve_references()
  config.method = method
  config.synthesis[field] = value
  with pytest.raises(ValueError, match=f"config.synthesis: method '{method}' does not train through"):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('method', ['wld_xgboost', 'copy_move_keypoints'])
@pytest.mark.parametrize('field, value', [('learning_rate', 1e-2), ('num_epochs', 30),
                                          ('augment_flips', True), ('input.crop', 192),
                                          ('checkpoint.keep', 1)])
def test_a_training_step_setting_for_a_method_without_one_is_refused(tiny_config, tmp_path, method,
                                                                     field, value):
  """WLD + XGBoost and the keypoint map fit without the JAX training step: a change to its
  learning rate, epochs, flips, windows or checkpoints would give the same run."""
  from configs import wld_xgboost  # pylint: disable=g-import-not-at-top
  config = wld_xgboost.get_config()
  config.update(method=method, dataset=tiny_config.dataset.copy_and_resolve_references())
  experiment.check(config)  # as its config file gives it
  *section, key = field.split('.')
  (config[section[0]] if section else config)[key] = value
  with pytest.raises(ValueError, match=rf"config.{field}: settings of the JAX training step, which "
                                       rf"method '{method}' does not train through"):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_robustness_without_the_release_folder_is_refused_before_training(tiny_config, tmp_path):
  """The robustness evaluator re-reads a real release's files, so their folder must be named
  even where the dataset is already built."""
  config = tiny_config.copy_and_resolve_references()
  config.dataset.update(name='casia1', builder_config='paper128', resolution=128, manual_dir='')
  config.evals = ('test', 'robustness')
  with pytest.raises(ValueError, match=r"robustness on casia1 needs its source files: the run's "
                                       r'config.dataset.manual_dir is empty'):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_workdir_that_is_a_file_is_a_clear_error(tmp_path):
  workdir = tmp_path / 'results.txt'
  workdir.write_text('kept')
  result = _main('--config=configs/tiny.py', f'--workdir={workdir}')
  assert result.returncode != 0
  assert f'--workdir={workdir} is a file, not a folder' in result.stderr
  assert 'Traceback' not in result.stderr
  assert workdir.read_text() == 'kept'


def test_workdir_that_is_a_runs_export_is_refused(tiny_config, tmp_path):
  """A run's `export/` (or a copy of it) named as --workdir would gain checkpoints and an export
  of its own inside it; it is refused before any work, nothing in it changed."""
  model = tmp_path / 'export'
  model.mkdir()
  (model / 'detector.json').write_text('{}')
  with pytest.raises(ValueError, match=r"--workdir=.*export is a run's model export \(it holds "
                                       r"detector.json\), not a run's folder"):
    experiment.run(tiny_config, str(model))
  assert [p.name for p in model.iterdir()] == ['detector.json']


def test_unknown_method_is_a_clear_error(tmp_path):
  result = _main('--config=configs/tiny.py', f'--workdir={tmp_path}', '--config.method=svm')
  assert result.returncode != 0
  assert "config.method must be one of ['cnn', 'copy_move_keypoints', 'localiser', 'wld_xgboost']" in result.stderr
  assert "got 'svm'" in result.stderr
  assert 'Traceback' not in result.stderr


def test_early_stopping_ties_keep_the_first_or_the_lower_loss():
  best = {'best_accuracy': 0.9, 'best_loss': 0.5}
  assert trainer.improves({'accuracy': 0.95, 'loss': 0.9}, best, 'first')
  assert not trainer.improves({'accuracy': 0.9, 'loss': 0.1}, best, 'first')
  assert trainer.improves({'accuracy': 0.9, 'loss': 0.1}, best, 'loss')
  assert not trainer.improves({'accuracy': 0.9, 'loss': 0.6}, best, 'loss')
  assert not trainer.improves({'accuracy': 0.85, 'loss': 0.01}, best, 'loss')
  with pytest.raises(ValueError, match='early_stopping_ties'):
    trainer.improves({'accuracy': 0.9, 'loss': 0.1}, best, 'last')


def test_early_stopping_can_follow_another_metric():
  best = {'best_accuracy': 0.9, 'best_score': 0.3, 'best_loss': 0.5}
  assert trainer.improves({'accuracy': 0.5, 'pixel_f1': 0.31, 'loss': 0.9}, best, 'first', 'pixel_f1')
  assert not trainer.improves({'accuracy': 1.0, 'pixel_f1': 0.29, 'loss': 0.1}, best, 'loss', 'pixel_f1')
  assert trainer.improves({'accuracy': 0.1, 'pixel_f1': 0.3, 'loss': 0.4}, best, 'loss', 'pixel_f1')
  config = ml_collections.ConfigDict({'early_stopping_metric': 'auc'})
  with pytest.raises(ValueError, match="early_stopping_metric must be one of.*got 'auc'"):
    trainer.check_selection_metric(config)


def test_learning_rate_schedules():
  paper = ml_collections.ConfigDict({'learning_rate': 1e-3, 'lr_decay': 1e-4})  # no lr_schedule
  assert trainer.learning_rate_schedule(paper)(10_000) == pytest.approx(1e-3 / 2)
  cosine = ml_collections.ConfigDict({'learning_rate': 1e-3, 'lr_decay': 0.0,
                                      'lr_schedule': 'cosine', 'warmup_steps': 10})
  rate = trainer.learning_rate_schedule(cosine, total_steps=110)
  assert float(rate(0)) == 0.0 and float(rate(5)) == pytest.approx(5e-4)
  assert float(rate(10)) == pytest.approx(1e-3)
  assert float(rate(60)) == pytest.approx(5e-4)  # half way down the cosine
  assert float(rate(110)) == pytest.approx(0.0, abs=1e-12)
  with pytest.raises(ValueError, match="needs more training steps"):
    trainer.learning_rate_schedule(cosine, total_steps=10)
  cosine.lr_schedule = 'step'
  with pytest.raises(ValueError, match="lr_schedule='step'"):
    trainer.learning_rate_schedule(cosine, total_steps=110)


def test_cosine_schedule_ends_at_the_runs_last_step(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1  # 64 training files, batch 8: 8 steps
  config.lr_schedule, config.warmup_steps = 'cosine', 8
  with pytest.raises(ValueError, match=r'needs more training steps \(8\)'):
    experiment.run(config, str(tmp_path / 'too_short'))
  config.warmup_steps = 7
  result = experiment.run(config, str(tmp_path / 'run'))
  assert result['final_step'] == 8
  with open(os.path.join(tmp_path, 'run', 'results.json')) as f:
    assert json.load(f)['config']['lr_schedule'] == 'cosine'


def test_the_initial_model_is_compiled_once_per_config_and_equals_the_one_built_op_by_op(tiny_config):
  """`trainer.initial_model` initialises in one compiled program the very bits `create_model`
  draws op by op; the folds of one k-fold run share the program, and another model gets its own."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from forgery_jax.detectors import paper_cnn  # pylint: disable=g-import-not-at-top

  def leaves(model):
    return [np.asarray(x) for x in jax.tree.leaves(nnx.state(model))]

  config = ml_collections.ConfigDict(tiny_config.to_dict())
  config.seed = 3
  eager = leaves(paper_cnn.create_model(config, nnx.Rngs(params=3)))
  trainer._INITIALISERS.clear()  # pylint: disable=protected-access
  compiled = leaves(trainer.initial_model(paper_cnn.create_model, config))
  assert len(compiled) == len(eager) and all(np.array_equal(a, b) for a, b in zip(compiled, eager))
  config.dataset.fold = 2
  again = leaves(trainer.initial_model(paper_cnn.create_model, config))
  assert len(trainer._INITIALISERS) == 1  # pylint: disable=protected-access
  assert all(np.array_equal(a, b) for a, b in zip(again, eager))
  config.seed = 4
  other = leaves(trainer.initial_model(paper_cnn.create_model, config))
  assert len(trainer._INITIALISERS) == 2  # pylint: disable=protected-access
  assert not all(np.array_equal(a, b) for a, b in zip(other, eager))

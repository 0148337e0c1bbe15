"""The training read path: grain over array_record, no TensorFlow, deterministic order."""

import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image
import pytest

import forgery_jax
from forgery_jax import predict
from forgery_jax.data import datasets
from forgery_jax.data import input_pipeline
from forgery_jax.detectors import export

REPO = pathlib.Path(__file__).resolve().parents[1]
KEYS = ('ela', 'image')


def test_training_path_never_imports_tensorflow(tiny_config):
  script = textwrap.dedent(f'''
      import sys
      from configs import tiny
      from forgery_jax.data import datasets, input_pipeline
      from forgery_jax.detectors import paper_cnn
      from forgery_jax.training import trainer
      config = tiny.get_config()
      config.dataset.data_dir = {tiny_config.dataset.data_dir!r}
      builder = datasets.ensure_built(config.dataset)
      ds = input_pipeline.load_dataset(builder, config)
      keys = paper_cnn.PaperCnn.inputs(config)
      batch = next(input_pipeline.train_iterator(ds, config, keys, process_index=0, process_count=1))
      assert batch['ela'].shape == (8, 32, 32, 3), batch['ela'].shape
      assert 'tensorflow' not in sys.modules, 'TensorFlow was imported on the training path'
      print('OK')
  ''')
  result = subprocess.run([sys.executable, '-c', script], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0 and 'OK' in result.stdout, result.stderr[-3000:]


def test_iterator_is_deterministic_and_resumable(tiny_config):
  builder = datasets.get_builder(tiny_config.dataset)
  ds = input_pipeline.load_dataset(builder, tiny_config)
  kwargs = dict(process_index=0, process_count=1)
  it = input_pipeline.train_iterator(ds, tiny_config, KEYS, **kwargs)
  batches = [next(it) for _ in range(5)]
  again = input_pipeline.train_iterator(ds, tiny_config, KEYS, **kwargs)
  for _ in range(2):
    next(again)
  state = again.get_state()
  resumed = input_pipeline.train_iterator(ds, tiny_config, KEYS, **kwargs)
  resumed.set_state(state)
  for expected in batches[2:]:
    got = next(resumed)
    np.testing.assert_array_equal(got['ela'], expected['ela'])
    np.testing.assert_array_equal(got['label'], expected['label'])


def test_epochs_are_reshuffled_and_cover_the_train_split(tiny_config):
  builder = datasets.get_builder(tiny_config.dataset)
  ds = input_pipeline.load_dataset(builder, tiny_config)
  it = input_pipeline.train_iterator(ds, tiny_config, KEYS, process_index=0, process_count=1)
  per_epoch = len(ds.split.train) // tiny_config.batch_size
  epochs = [[next(it)['image'] for _ in range(per_epoch)] for _ in range(2)]
  e0, e1 = (np.concatenate(e) for e in epochs)
  assert not np.array_equal(e0, e1)
  key = lambda a: sorted(x.tobytes() for x in a)
  assert key(e0) == key(e1)  # same examples, other order


def test_process_shards_partition_each_global_batch(tiny_config):
  builder = datasets.get_builder(tiny_config.dataset)
  ds = input_pipeline.load_dataset(builder, tiny_config)
  whole = next(input_pipeline.eval_batches(ds, ds.split.test, tiny_config, KEYS, process_index=0, process_count=1))
  parts = [next(input_pipeline.eval_batches(ds, ds.split.test, tiny_config, KEYS, process_index=p, process_count=2))
           for p in range(2)]
  np.testing.assert_array_equal(np.concatenate([p['image'] for p in parts]), whole['image'])
  assert whole['valid'].all()


def test_train_fraction_thins_the_training_split_only(tmp_path):
  from configs import localiser_casia1
  config = localiser_casia1.get_config()
  config.dataset.update(builder_config='native', data_dir=str(tmp_path),
                        manual_dir=str(REPO / 'tfds_builders' / 'casia1' / 'dummy_data'),
                        validation_fraction=0.25, test_fraction=0.25)
  whole = input_pipeline.load(config)
  config.dataset.train_fraction = 0.5
  half = input_pipeline.load(config)
  assert set(half.split.train) < set(whole.split.train)
  np.testing.assert_array_equal(half.split.validation, whole.split.validation)
  np.testing.assert_array_equal(half.split.test, whole.split.test)


def test_extra_authentic_files_join_the_training_split_only(tmp_path, capsys):
  from configs import copy_move_keypoints
  from configs import localiser_casia1
  from forgery_jax import experiment
  from forgery_jax.training import trainer
  dummy = REPO / 'tfds_builders'
  config = localiser_casia1.get_config()
  config.dataset.update(builder_config='native', data_dir=str(tmp_path),
                        manual_dir=str(dummy / 'casia1' / 'dummy_data'), validation_fraction=0.25,
                        test_fraction=0.25)
  config.cross_dataset.name = ''
  config.batch_size = 2
  dataset = input_pipeline.load(config)
  config.dataset.extra_authentic = (f"micc_f220:native:{dummy / 'micc_f220' / 'dummy_data'}",)
  joined = input_pipeline.with_extra_authentic(dataset, config)

  micc = input_pipeline.load(config, all_for_test=True, name='micc_f220', builder_config='native',
                             manual_dir=str(dummy / 'micc_f220' / 'dummy_data'))
  authentic = np.flatnonzero(micc.labels == 0)
  assert len(authentic) == 3 and len(micc.labels) == 7  # the dummy tree's *_scale.jpg originals
  n = len(dataset.source)
  added = np.arange(n, n + len(authentic))
  np.testing.assert_array_equal(joined.split.train, np.concatenate([dataset.split.train, added]))
  np.testing.assert_array_equal(joined.split.validation, dataset.split.validation)
  np.testing.assert_array_equal(joined.split.test, dataset.split.test)
  assert (joined.labels[added] == 0).all() and (joined.forgery_types[added] == 0).all()
  assert [joined.groups[i] for i in added] == [f'micc_f220/{micc.groups[i]}' for i in authentic]
  for row, i in zip(added, authentic):  # the same file, its planes at its own size
    mine, theirs = joined.source[int(row)], micc.source[int(i)]
    assert mine['filename'] == theirs['filename']
    np.testing.assert_array_equal(mine['image'], theirs['image'])
  for row in dataset.split.validation.tolist() + dataset.split.test.tolist():
    assert joined.source[row]['filename'] == dataset.source[row]['filename']
  # Class weights count them; the training batches read them (2 epochs cover every train row).
  counts = np.bincount(joined.labels[joined.split.train], minlength=2)
  assert counts[0] == np.sum(dataset.labels[dataset.split.train] == 0) + 3
  np.testing.assert_allclose(trainer.training_weights(config, joined), trainer.class_weights(counts))
  config.num_epochs = 2
  rows = input_pipeline.train_iterator(joined, config, ('image', 'mask'), process_index=0,
                                       process_count=1)
  shapes = {b['image'].shape for b in rows}
  assert shapes == {(2, 192, 192, 3)}
  # The run's record counts the training files its fit read (a detector with nothing to train).
  keypoints = copy_move_keypoints.get_config()
  keypoints.update(evals=('test',), dataset=config.dataset, cross_dataset=config.cross_dataset)
  results = experiment.run(keypoints, str(tmp_path / 'run'))
  assert results['split_sizes'] == joined.split.sizes() != dataset.split.sizes()
  # Its export keeps the largest of them, against which predict measures an image read whole.
  largest = list(max((joined.source[int(i)]['image'].shape[:2] for i in joined.split.train),
                     key=lambda hw: hw[0] * hw[1]))
  manifest = export.read_manifest(export.find(str(tmp_path / 'run'))[0])
  assert manifest['training_sizes'] == {'files': len(joined.split.train), 'largest': largest}
  for name, (h, w) in (('as_large', largest), ('larger', (largest[0] + 8, largest[1]))):
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(tmp_path / f'{name}.png')
  rows, _ = predict.predict_paths(str(tmp_path / 'run'), [str(tmp_path / 'as_large.png'),
                                  str(tmp_path / 'larger.png')], str(tmp_path / 'out'), panels=False)
  assert [r['beyond_training_size'] for r in rows] == [False, True]
  assert forgery_jax.load(str(tmp_path / 'run')).predict(
      np.zeros((largest[0], largest[1] + 8, 3), np.uint8)).beyond_training_size
  assert (f'1 of 2 images hold more pixels than the largest file the run trained on '
          f'({largest[0]} x {largest[1]})') in capsys.readouterr().err

  # What cannot be: the run's own release, another plane geometry, testing on a training release.
  config.dataset.extra_authentic = ('casia1:native',)
  with pytest.raises(ValueError, match="'casia1:native' is the run's own release"):
    input_pipeline.extra_authentic_specs(config)
  config.dataset.extra_authentic = ('micc_f220',)
  with pytest.raises(ValueError, match='is not NAME:CONFIG'):
    input_pipeline.extra_authentic_specs(config)
  config.dataset.extra_authentic = (f"micc_f220:paper128:{dummy / 'micc_f220' / 'dummy_data'}",)
  with pytest.raises(ValueError, match='micc_f220:paper128 has planes .*128'):
    input_pipeline.with_extra_authentic(dataset, config)
  config.dataset.extra_authentic = ('micc_f220:native',)
  config.cross_dataset.update(name='micc_f220', builder_config='native')
  with pytest.raises(ValueError, match="cross dataset 'micc_f220': its authentic files joined"):
    experiment.check(config)


def test_the_content_fingerprint_follows_every_byte_and_the_order():
  a = {'image': np.zeros((2, 2, 3), np.uint8), 'label': np.int64(1), 'filename': b'a.jpg'}
  b = {'image': np.ones((2, 2, 3), np.uint8), 'label': np.int64(0), 'filename': b'b.jpg'}
  same = input_pipeline.content_fingerprint([a, b])
  assert same == input_pipeline.content_fingerprint([dict(a), dict(b)])
  assert len(same) == 64
  changed = dict(b, image=b['image'].copy())
  changed['image'][1, 1, 2] = 2
  assert input_pipeline.content_fingerprint([a, changed]) != same
  assert input_pipeline.content_fingerprint([b, a]) != same
  assert input_pipeline.content_fingerprint([a, dict(b, label=np.int32(0))]) != same   # the dtype too


def test_two_builds_of_one_dataset_have_one_fingerprint(tiny_config, tmp_path):
  config = tiny_config.copy_and_resolve_references()
  first = input_pipeline.load(config)
  config.dataset.data_dir = str(tmp_path)
  second = input_pipeline.load(config)   # built again, into another folder
  assert second.fingerprint == first.fingerprint


@pytest.mark.filterwarnings('ignore:The least populated class')  # the dummy tree's few files
def test_a_run_refuses_its_dataset_rebuilt_from_other_files(tmp_path):
  """A release folder that changed between a run and its rerun (a file lost or added) is split
  otherwise, so the run's test split would hold files it trained on: resuming, evaluating again
  (the same command, `evaluate`) and averaging it with a run of the old files are refused. The
  same files built again elsewhere pass."""
  from configs import copy_move_keypoints
  from forgery_jax import evaluate
  from forgery_jax import experiment
  release = tmp_path / 'release'
  shutil.copytree(REPO / 'tfds_builders' / 'casia1' / 'dummy_data', release)
  config = copy_move_keypoints.get_config()
  config.dataset.update(builder_config='native', data_dir=str(tmp_path / 'tfds'),
                        manual_dir=str(release), validation_fraction=0.25, test_fraction=0.25)
  config.cross_dataset.name = ''
  config.evals = ('test',)
  workdir, other = str(tmp_path / 'run'), str(tmp_path / 'other')
  first = experiment.run(config, workdir)
  experiment.run(config, other)
  again = config.copy_and_resolve_references()
  again.dataset.data_dir = str(tmp_path / 'tfds_again')  # the same files, built again
  assert experiment.run(again, workdir)['split_fingerprint'] == first['split_fingerprint']

  os.remove(sorted((release / 'Au').iterdir())[0])  # one authentic file fewer, rebuilt in place
  for built in ('tfds', 'tfds_again'):
    shutil.rmtree(tmp_path / built)
  stale = r'run: casia1/native/.* is not split as when the run trained \(split fingerprint '
  with pytest.raises(datasets.DatasetError, match=stale):
    experiment.run(config, workdir)
  with pytest.raises(datasets.DatasetError, match=stale):
    evaluate.load_run(workdir)
  assert input_pipeline.load(config).split_fingerprint != first['split_fingerprint']
  # Another split asked for is another run: not refused as a rebuilt dataset (a method that
  # refits, as this one does, fits again; a trained one is refused as another config).
  reseeded = config.copy_and_resolve_references()
  reseeded.dataset.split_seed = 1
  assert experiment.run(reseeded, workdir)['split_fingerprint'] != first['split_fingerprint']
  # A new run on the new files is its own run; it cannot be averaged with one of the old files.
  experiment.run(config, str(tmp_path / 'new'))
  with pytest.raises(ValueError, match=r"other: its casia1 was split otherwise than .*new's"):
    evaluate.load_run(str(tmp_path / 'new'), average_with=[other])

"""The training read path: grain over array_record, no TensorFlow, deterministic order."""

import pathlib
import subprocess
import sys
import textwrap

import numpy as np

from forgery_jax.data import datasets
from forgery_jax.data import input_pipeline

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

"""Smoke test: `python -m benchmarks.run --quick` runs every CPU row and writes them as JSON.

No timing is asserted here: the figures live in the benchmark's own table.
"""

import json
import pathlib
import subprocess
import sys

import pytest

from benchmarks import run

REPO = pathlib.Path(__file__).resolve().parents[1]
ROWS = ('ela vs paper recipe', 'ela vs codec floor', 'srm residual', 'JPEG round trip',
        'train step 32x32', 'train step 32x32, batch 16, XLA_FLAGS=', 'train step profile', 'localiser step', 'input pipeline vs train step',
        'input pipeline per worker process', 'dataset build', 'predict, paper model, no panels',
        'predict, first result')


def test_quick_benchmark_prints_every_row(tmp_path):
  out = tmp_path / 'rows.json'
  result = subprocess.run([sys.executable, '-m', 'benchmarks.run', '--quick', '--json', str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.startswith('machine: ')
  rows = json.loads(out.read_text())
  for prefix in ROWS:
    assert any(r['name'].startswith(prefix) for r in rows), prefix
    assert any(line.startswith(f'| {prefix}') for line in result.stdout.splitlines()), prefix
  for r in rows:
    assert {'name', 'ours', 'reference', 'ratio', 'unit', 'target'} <= set(r)
    assert r['ours'] > 0 and (r['ratio'] is None or r['ratio'] > 0)


def test_a_batch_too_large_for_the_device_is_skipped_not_fatal():
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import training  # pylint: disable=g-import-not-at-top

  def out_of_memory():
    raise jax.errors.JaxRuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to allocate')

  def other_failure():
    raise jax.errors.JaxRuntimeError('INTERNAL: something else')

  assert training.step_rate_or_none(lambda: 12.5) == 12.5
  assert training.step_rate_or_none(out_of_memory) is None
  with pytest.raises(jax.errors.JaxRuntimeError, match='INTERNAL'):
    training.step_rate_or_none(other_failure)


def test_json_that_cannot_be_written_is_refused_before_timing(tmp_path):
  (tmp_path / 'notes.txt').write_text('kept')
  for target, message in ((tmp_path / 'notes.txt' / 'rows.json', 'notes.txt is not a folder'),
                          (tmp_path, 'a folder, not a file')):
    with pytest.raises(SystemExit, match=message):
      run.main(['--quick', '--only=ela', '--json', str(target)])
  assert (tmp_path / 'notes.txt').read_text() == 'kept'


def test_options_that_cannot_work_are_refused_before_timing(tmp_path):
  """A bad batch list, a group this backend cannot run, or a --data_dir without a built release:
  one error before any row is timed, and nothing written into the folder named."""
  import jax  # pylint: disable=g-import-not-at-top
  for args, message in ((['--gpu_batches=256,abc'], 'give batch sizes >= 1'),
                        (['--gpu_batches=0'], 'give batch sizes >= 1'),
                        ([f'--data_dir={tmp_path / "typo"}'], 'typo: no such folder'),
                        ([f'--data_dir={tmp_path}'], 'neither casia1 nor micc_f220 is built there')):
    with pytest.raises(SystemExit, match=message):
      run.main(['--quick', '--only=pipeline', *args])
  assert not any(tmp_path.iterdir())
  elsewhere = 'train' if jax.default_backend() == 'gpu' else 'gpu'
  with pytest.raises(SystemExit, match=rf"--only names \['{elsewhere}'\], which run only where"):
    run.main(['--quick', f'--only=ela,{elsewhere}'])


def test_the_data_dir_rows_read_the_release_built_there(tmp_path):
  from benchmarks import data  # pylint: disable=g-import-not-at-top
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  datasets.build('micc_f220', 'paper128', str(tmp_path), str(REPO / 'tfds_builders' / 'micc_f220' / 'dummy_data'))
  assert data.prepared_release(str(tmp_path)) == 'micc_f220'

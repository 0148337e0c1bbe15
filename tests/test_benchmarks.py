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

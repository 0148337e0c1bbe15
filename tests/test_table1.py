"""experiments.table1 refuses what cannot work before the first of its twelve runs."""

import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('flags, message', [
    (['--only=micc'], "error: --only=micc: ['micc'] names no row; the rows are ['casia1', "
                      "'micc_f220', 'casia2']"),
    (['--only=micc_f220', '--datasets_dir={tmp}/nothing', '--data_dir={tmp}/tfds'],
     'error: building micc_f220/paper128/2.2.0 failed (exit 1); the error is printed above'),
])
def test_a_bad_row_or_release_folder_fails_before_any_run(flags, message, tmp_path):
  """A misspelt row printed an empty table; a missing release folder failed only when its row's
  turn came, after the rows before it had trained."""
  workdir = tmp_path / 'table'
  result = subprocess.run([sys.executable, '-m', 'experiments.table1', f'--workdir={workdir}',
                           *[f.format(tmp=tmp_path) for f in flags]],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == message
  assert not workdir.exists()

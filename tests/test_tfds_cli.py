"""`tfds build tfds_builders/<name>` works on the project's builders (TFDS folder convention)."""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_tfds_build_synthetic_tiny(tmp_path):
  tfds_cli = shutil.which('tfds', path=os.path.dirname(sys.executable)) or shutil.which('tfds')
  if tfds_cli is None:
    pytest.skip('the tfds command is not installed')
  result = subprocess.run(
      [tfds_cli, 'build', 'tfds_builders/synthetic_forgery', '--config=tiny',
       '--file_format=array_record', f'--data_dir={tmp_path}'],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  prepared = tmp_path / 'synthetic_forgery' / 'tiny' / '2.0.0'
  assert (prepared / 'dataset_info.json').exists()
  assert len(list(prepared.glob('*.array_record-*'))) == 3

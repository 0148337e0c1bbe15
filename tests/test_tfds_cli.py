"""`tfds build tfds_builders/<name>` works on the project's builders (TFDS folder convention)."""

import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from configs import tiny
from forgery_jax.data import build_lock
from forgery_jax.data import datasets

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tfds_cli() -> str:
  tfds_cli = shutil.which('tfds', path=os.path.dirname(sys.executable)) or shutil.which('tfds')
  if tfds_cli is None:
    pytest.skip('the tfds command is not installed')
  return tfds_cli


def test_tfds_build_synthetic_tiny(tmp_path):
  tfds_cli = _tfds_cli()
  result = subprocess.run(
      [tfds_cli, 'build', 'tfds_builders/synthetic_forgery', '--config=tiny',
       '--file_format=array_record', f'--data_dir={tmp_path}'],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  prepared = tmp_path / 'synthetic_forgery' / 'tiny' / '2.0.0'
  assert (prepared / 'dataset_info.json').exists()
  assert len(list(prepared.glob('*.array_record-*'))) == 3


def test_tfds_build_waits_for_a_build_under_way_and_finds_the_dataset_ready(tmp_path):
  """`tfds build` took no lock: beside a run building the same dataset it built it a second time
  (the later of the two then fails at TFDS's last rename, and a run's build removes the folder an
  unlocked build writes into as a killed build's). Its builders now hold the runs' build lock."""
  config = tiny.get_config()
  config.dataset.data_dir = str(tmp_path)
  builder = datasets.get_builder(config.dataset)
  log = tmp_path / 'tfds_build.log'
  with build_lock.held(builder), open(log, 'w') as err:  # a run's build under way
    cli = subprocess.Popen(  # pylint: disable=consider-using-with
        [_tfds_cli(), 'build', 'tfds_builders/synthetic_forgery', '--config=tiny',
         '--file_format=array_record', f'--data_dir={tmp_path}'],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 300
    while 'is being built by' not in log.read_text() and cli.poll() is None:
      assert time.monotonic() < deadline, 'tfds build neither waited nor ended'
      time.sleep(0.5)
    assert cli.poll() is None, log.read_text()[-3000:]  # waiting, not building beside it
    datasets.build('synthetic_forgery', 'tiny', str(tmp_path), None, lock_held=True)  # the run's
    built = {p: p.stat().st_mtime_ns for p in (tmp_path / 'synthetic_forgery').rglob('*')}
  assert cli.wait(300) == 0, log.read_text()[-3000:]
  assert f'synthetic_forgery/tiny/2.0.0 is being built by pid {os.getpid()}' in log.read_text()
  # The run's build found ready and left as it was: not one file written again, none added.
  assert {p: p.stat().st_mtime_ns for p in (tmp_path / 'synthetic_forgery').rglob('*')} == built
  assert datasets.get_builder(config.dataset).is_prepared()

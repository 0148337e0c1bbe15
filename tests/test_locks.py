"""forgery_jax.locks: one run writing into a workdir, one process building a dataset."""

import os
import signal
import subprocess
import sys
import threading

import pytest

from configs import tiny
from forgery_jax import locks
from forgery_jax.data import build_lock
from forgery_jax.data import datasets

_HOLD = 'import sys, time; from forgery_jax import locks\nwith locks.held(sys.argv[1]):\n  print("held", flush=True); time.sleep(600)'


def test_a_held_lock_is_busy_with_its_holder_named_and_freed_when_its_holder_is_killed(tmp_path):
  path = str(tmp_path / 'sub' / 'run.lock')
  holder = subprocess.Popen([sys.executable, '-c', _HOLD, path], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(locks.Busy, match=rf'^busy: pid {holder.pid} on .*, since \d{{4}}-'):
      with locks.held(path, busy='busy: {holder}'):
        pass
  finally:
    holder.send_signal(signal.SIGKILL)  # no chance to let go: the OS frees the lock
    holder.wait()
  assert os.path.exists(path)  # left behind by the killed holder, unlocked
  with locks.held(path, busy='busy: {holder}'):
    assert open(path).read().startswith(f'pid {os.getpid()} on ')
  assert not os.path.exists(path)  # removed by a holder that ends


def test_a_process_waits_for_a_held_lock_when_not_told_busy(tmp_path, monkeypatch):
  path = str(tmp_path / 'build.lock')
  order, said, waiting = [], [], threading.Event()
  monkeypatch.setattr(locks.progress, 'write', lambda line: [said.append(line), waiting.set()])

  def wait_then_hold():
    with locks.held(path):
      order.append('waiter')

  with locks.held(path):
    waiter = threading.Thread(target=wait_then_hold)
    waiter.start()
    assert waiting.wait(10), 'the waiter never found the lock held'
    order.append('holder done')
  waiter.join(10)
  assert order == ['holder done', 'waiter']
  assert len(said) == 1 and said[0].startswith(f'pid {os.getpid()} on ')  # the holder, named
  assert said[0].endswith(f'holds {path}; waiting')


def test_runs_started_side_by_side_build_their_dataset_once(tmp_path, monkeypatch):
  """Seeds started together on a fresh data_dir: the second built the dataset again and failed
  at TFDS's rename after the whole build. Now it waits for the first build and reads it."""
  config = tiny.get_config()
  config.dataset.data_dir = str(tmp_path)
  builds = []
  run = subprocess.run
  monkeypatch.setattr(datasets.subprocess, 'run', lambda cmd, **kw: builds.append(cmd) or run(cmd, **kw))
  waiting = threading.Event()
  monkeypatch.setattr(locks.progress, 'write', lambda line: waiting.set())
  lock = build_lock.lock_file(datasets.get_builder(config.dataset))
  second = []
  with locks.held(lock):  # the first run's build is under way
    thread = threading.Thread(target=lambda: second.append(datasets.ensure_built(config.dataset)))
    thread.start()
    assert waiting.wait(60) and not builds, 'the second run did not wait for the first build'
    datasets._build_in_child(config.dataset)  # pylint: disable=protected-access
  thread.join(60)
  assert len(builds) == 1 and second and second[0].is_prepared()

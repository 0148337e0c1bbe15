"""The same `main` as 2 JAX processes on 127.0.0.1 (CPU collectives) matches 1 process, and a
SIGTERM or Ctrl-C to one of them stops both at the same step.

Each process has one CPU device and reads its half of every global batch of 8; the mesh spans
both processes' devices. Losses and test metrics agree with the single-process run within float
tolerance (the global mean is summed in another order).
"""

import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import forgery_jax

REPO = pathlib.Path(__file__).resolve().parents[1]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _command(tiny_config, workdir, *extra):
  return [sys.executable, '-m', 'forgery_jax.main', '--config=configs/tiny.py', f'--workdir={workdir}',
          f'--config.dataset.data_dir={tiny_config.dataset.data_dir}', '--config.num_epochs=1',
          '--config.log_every_steps=1', *extra]


def _train_losses(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    return [r['loss'] for r in map(json.loads, f) if r['split'] == 'train']


def test_two_processes_match_one(tiny_config, tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  single = subprocess.run(_command(tiny_config, tmp_path / 'one'), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert single.returncode == 0, single.stderr[-3000:]
  port = _free_port()
  procs = [subprocess.Popen(
      _command(tiny_config, tmp_path / 'two', f'--coordinator_address=127.0.0.1:{port}',
               '--num_processes=2', f'--process_id={i}'),
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  assert 'JAX process 1/2' in outs[1][1]
  np.testing.assert_allclose(_train_losses(tmp_path / 'two'), _train_losses(tmp_path / 'one'),
                             rtol=1e-4, atol=1e-5)
  one = json.loads((tmp_path / 'one' / 'results.json').read_text())
  two = json.loads((tmp_path / 'two' / 'results.json').read_text())
  assert two['num_devices'] == 2 and one['num_devices'] == 1
  for k in ('accuracy', 'auc', 'f1'):
    assert abs(two[f'test/{k}'] - one[f'test/{k}']) < 1e-3, k
  assert os.listdir(tmp_path / 'two' / 'export')  # written once, by the processes together
  # Its export is read by one process, as predict and evaluate read it (it failed: Orbax placed the
  # arrays over the two processes' devices that the export recorded).
  photo = np.random.default_rng(0).integers(0, 256, (48, 40, 3), np.uint8)
  answers = [forgery_jax.load(str(tmp_path / run)).predict(photo) for run in ('one', 'two')]
  assert abs(answers[1].p_tampered - answers[0].p_tampered) < 1e-3


# A minute each on two cores: the Ctrl-C case is left to the slow runs (Ctrl-C outside training,
# below, and in one process, in test_preemption, stay in the default suite).
@pytest.mark.parametrize('signum', [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_sigterm_on_one_process_saves_the_same_step_on_both(tiny_config, tmp_path, signum):
  """Orbax's preemption sync point: a SIGTERM to one process stops both at one step, saved once;
  the same command then resumes both and finishes. So does a Ctrl-C (SIGINT), which aborted the
  process it reached and left the other waiting in its collectives."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  workdir = tmp_path / 'run'
  extra = ('--config.num_epochs=4', '--config.checkpoint.keep_final=True')

  def start(port):
    return [subprocess.Popen(
        _command(tiny_config, workdir, f'--coordinator_address=127.0.0.1:{port}',
                 '--num_processes=2', f'--process_id={i}', *extra),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]

  procs = start(_free_port())
  deadline = time.time() + 300
  while (not (workdir / 'metrics.jsonl').exists() or len(_train_losses(workdir)) < 5) \
      and time.time() < deadline and all(p.poll() is None for p in procs):
    time.sleep(0.05)
  procs[1].send_signal(signum)
  outs = [p.communicate(timeout=300) for p in procs]
  assert [p.returncode for p in procs] == [143, 128 + signum], [e[-2000:] for _, e in outs]
  steps = [int(re.search(rf'stopped by {name} at step (\d+)', e).group(1))
           for (_, e), name in zip(outs, ('SIGTERM', signal.Signals(signum).name))]
  assert steps[0] == steps[1] and 5 <= steps[0] < 32
  assert str(steps[0]) in os.listdir(workdir / 'checkpoints')
  procs = start(_free_port())
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
  results = json.loads((workdir / 'results.json').read_text())
  assert results['resumed_from_step'] == steps[0] and results['final_step'] == 32
  logged = [r['step'] for r in map(json.loads, (workdir / 'metrics.jsonl').read_text().splitlines())
            if r['split'] == 'train']
  assert logged == list(range(1, 33)), 'a step was lost or logged twice'


def test_a_process_killed_outright_ends_the_other_with_one_line(tiny_config, tmp_path):
  """SIGKILL to process 1 in the middle of training: process 0's next collective fails, and it
  ends at once with one line (it waited 30 s for the lost process at JAX's shutdown barrier, then
  printed a traceback and aborted with a C++ stack trace, exit 134); the same command resumes both
  to the end with no step lost or logged twice. (A killed process 0, which hosts JAX's
  coordination service, still ends the others in JAX's own abort: README, "Several hosts".)"""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  workdir = tmp_path / 'run'

  def start():
    port = _free_port()
    return [subprocess.Popen(
        _command(tiny_config, workdir, f'--coordinator_address=127.0.0.1:{port}',
                 '--num_processes=2', f'--process_id={i}', '--config.num_epochs=2'),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)]

  procs = start()
  deadline = time.time() + 300
  while (not (workdir / 'metrics.jsonl').exists() or len(_train_losses(workdir)) < 5) \
      and time.time() < deadline and all(p.poll() is None for p in procs):
    time.sleep(0.05)
  procs[1].kill()
  killed = time.time()
  _, err = procs[0].communicate(timeout=300)
  procs[1].communicate(timeout=60)
  assert time.time() - killed < 20
  assert procs[0].returncode == 1, err[-3000:]
  last = err.strip().splitlines()[-1]
  assert re.fullmatch(
      r'error: another process of this run is gone \(Gloo all-reduce failed: .*by peer.*\): killed, '
      r'or its host lost; process 0 stops too\. Run the same command on every process to resume '
      r'from the last checkpoint', last), last
  assert 'Traceback' not in err and 'Check failure' not in err
  procs = start()
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
  assert json.loads((workdir / 'results.json').read_text())['final_step'] == 16
  logged = [r['step'] for r in map(json.loads, (workdir / 'metrics.jsonl').read_text().splitlines())
            if r['split'] == 'train']
  assert logged == list(range(1, 17)), 'a step was lost or logged twice'


_BAD_ON_ONE = '--config.validate_every_epochs=0'


@pytest.mark.parametrize('stopped, how, reason', [
    (0, 'ctrl-c', 'Ctrl-C'),
    (1, 'ctrl-c', 'Ctrl-C'),
    (1, 'error', 'validate_every_epochs 0: a whole number, 1 or more'),
])
def test_a_process_stopped_outside_training_stops_the_others_with_one_line(
    tiny_config, tmp_path, stopped, how, reason):
  """A Ctrl-C outside the training loop (here while the run starts) stopped only the process it
  reached: the other waited in a collective (30 s, then a gloo traceback; on a resumed run, in
  its restore, until JAX's 300 s shutdown timeout aborted both with C++ stack traces). So did an
  error of one process's own (here a config field given to it alone). Now the other is told and
  ends at once with one line naming the stopped process and why; the same command then runs to
  the end. Process 0 also hosts JAX's coordination service."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=1')
  workdir = tmp_path / 'run'
  port = _free_port()
  start = time.time()
  procs = [subprocess.Popen(
      _command(tiny_config, workdir, f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
               f'--process_id={i}', *([_BAD_ON_ONE] if how == 'error' and i == stopped else [])),
      cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  errs = [[], []]

  def read(i):
    for line in procs[i].stderr:
      errs[i].append(line)
      if how == 'ctrl-c' and i == stopped and f'JAX process {stopped}/2' in line:
        procs[i].send_signal(signal.SIGINT)

  readers = [threading.Thread(target=read, args=(i,)) for i in range(2)]
  for reader in readers:
    reader.start()
  for p in procs:
    p.wait(timeout=300)
  for reader in readers:
    reader.join()
  other = 1 - stopped
  assert time.time() - start < 60
  assert procs[stopped].returncode in ((-signal.SIGINT, 130) if how == 'ctrl-c' else (1,)), \
      ''.join(errs[stopped])[-2000:]
  if how == 'error':
    assert errs[stopped][-1].strip() == f'error: {reason}'
  assert procs[other].returncode == 1, ''.join(errs[other])[-2000:]
  assert errs[other][-1].strip() == (
      f'error: process {stopped} of this run stopped ({reason}); process {other} stops too. Run the '
      'same command on every process to resume from the last checkpoint')
  assert not any('Traceback' in line for line in errs[other])
  port = _free_port()
  procs = [subprocess.Popen(
      _command(tiny_config, workdir, f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2',
               f'--process_id={i}'),
      cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [e[-2000:] for _, e in outs]
  assert json.loads((workdir / 'results.json').read_text())['final_step'] == 8


@pytest.mark.parametrize('flags, message', [
    (['--num_processes=2'], '--num_processes and --process_id need --coordinator_address'),
    (['--process_id=1'], '--num_processes and --process_id need --coordinator_address'),
    (['--coordinator_address=127.0.0.1:1234', '--num_processes=2', '--process_id=2'],
     '--process_id=2: from 0 to --num_processes - 1 (1)'),
    (['--coordinator_address=127.0.0.1:1234', '--num_processes=0', '--process_id=0'],
     '--num_processes=0: at least 1'),
    (['--coordinator_address=localhost', '--num_processes=1', '--process_id=0'],
     '--coordinator_address=localhost: host:port'),
    (['--distributed'], '--distributed: JAX found no cluster it knows in the environment'),
    (['--coordinator_address=127.0.0.1:1234', '--num_processes=2', '--process_id=0',
      '--initialization_timeout=0'], '--initialization_timeout=0: at least 1 (seconds)'),
    # Alone, each waited JAX's 300 s and then aborted with a C++ stack trace.
    (['--coordinator_address=127.0.0.1:{port}', '--num_processes=2', '--process_id=0',
      '--initialization_timeout=3'], '--coordinator_address=127.0.0.1:{port}: not every process '
     'joined within 3 s (this is process 0); start each with the same --coordinator_address'),
    (['--coordinator_address=127.0.0.1:{port}', '--num_processes=2', '--process_id=1',
      '--initialization_timeout=3'], '--coordinator_address=127.0.0.1:{port}: not every process '
     'joined within 3 s (this is process 1)'),
])
def test_multi_host_flags_that_cannot_work_are_one_error_line(tiny_config, tmp_path, flags, message):
  """`--num_processes=2` alone trained one process by itself (its partner would have trained
  alone into the same workdir); the others were tracebacks from inside JAX (`--distributed`
  outside a cluster too)."""
  port = _free_port()
  flags = [f.format(port=port) for f in flags]
  message = message.format(port=port)
  no_cluster = {k: v for k, v in os.environ.items()  # what JAX would take the processes from
                if not k.startswith(('SLURM_', 'OMPI_', 'PMI_', 'KUBERNETES_', 'TPU_', 'MEGASCALE_'))}
  result = subprocess.run(_command(tiny_config, tmp_path / 'run', *flags), cwd=REPO, env=no_cluster,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(f'error: {message}')
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'run').exists()

"""Killed and resumed runs end bit-identical to an uninterrupted one; SIGTERM saves first.

Each run is `python -m forgery_jax.main` on the tiny config (4 epochs of 8 steps, a checkpoint
every 2 steps, a metrics line every step, the final training state kept), killed with SIGKILL at
random moments: during steps, evaluations and asynchronous checkpoint saves.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from forgery_jax.detectors import paper_cnn
from forgery_jax.training import checkpointing
from forgery_jax.training import mesh as mesh_lib
from forgery_jax.training import trainer

REPO = pathlib.Path(__file__).resolve().parents[1]


def _command(tiny_config, workdir):
  return [sys.executable, '-m', 'forgery_jax.main', '--config=configs/tiny.py', f'--workdir={workdir}',
          f'--config.dataset.data_dir={tiny_config.dataset.data_dir}', '--config.num_epochs=4',
          '--config.checkpoint.every_steps=2', '--config.log_every_steps=1',
          '--config.checkpoint.keep_final=True']


def _train_lines(workdir) -> int:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum('"split": "train"' in line for line in f)


# The run with Ctrl-C handled as in a terminal, even where the tests run with SIGINT ignored (in
# the background, which the child would inherit).
_WITH_CTRL_C = ('import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); '
                "runpy.run_module('forgery_jax.main', run_name='__main__', alter_sys=True)")


def _start_and_interrupt(tiny_config, workdir, after_lines: int, sig) -> subprocess.Popen:
  command = _command(tiny_config, workdir)
  if sig == signal.SIGINT:
    command = [sys.executable, '-c', _WITH_CTRL_C, *command[3:]]
  proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  deadline = time.time() + 240
  while _train_lines(workdir) < after_lines and proc.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  if proc.poll() is None:
    proc.send_signal(sig)
  return proc


def _final_state(tiny_config, workdir):
  config = tiny_config.copy_and_resolve_references()
  task = paper_cnn.PaperCnn.task(config, np.ones(2, np.float32))
  _, state = trainer.create_state(config, mesh_lib.make_mesh(), task)
  ckpts = checkpointing.RunCheckpoints(str(workdir), keep=3)
  step, state, _, _ = ckpts.restore_latest(checkpointing.abstract_like(state))
  ckpts.close()
  return step, jax.tree.leaves(jax.device_get(state))


def _metrics(workdir):
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  return [{k: v for k, v in r.items() if k != 'examples_per_second'} for r in rows]


def _results(workdir):
  with open(os.path.join(workdir, 'results.json')) as f:
    return {k: v for k, v in json.load(f).items() if k.startswith('test/')}


@pytest.fixture(scope='module')
def reference(tiny_config, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('uninterrupted')
  result = subprocess.run(_command(tiny_config, workdir), cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def _export(workdir):
  from forgery_jax.detectors import export  # pylint: disable=g-import-not-at-top
  detector = export.load(os.path.join(workdir, export.EXPORT_DIR))
  return jax.tree.leaves(jax.device_get(detector.state))


def _assert_identical(tiny_config, workdir, reference):
  step, leaves = _final_state(tiny_config, workdir)
  ref_step, ref_leaves = _final_state(tiny_config, reference)
  assert step == ref_step == 32
  assert len(leaves) == len(ref_leaves)
  assert all(np.array_equal(a, b) for a, b in zip(leaves, ref_leaves)), 'parameters differ'
  exported, ref_exported = _export(workdir), _export(reference)
  assert all(np.array_equal(a, b) for a, b in zip(exported, ref_exported)), 'exports differ'
  assert _metrics(workdir) == _metrics(reference)
  assert _results(workdir) == _results(reference)


def test_three_sigkills_then_resume_is_bit_identical(tiny_config, reference, tmp_path):
  rng = np.random.default_rng(0)
  kills = 0
  for after in sorted(rng.choice(np.arange(2, 30), size=3, replace=False)):
    proc = _start_and_interrupt(tiny_config, tmp_path, int(after), signal.SIGKILL)
    proc.communicate(timeout=240)
    kills += proc.returncode == -signal.SIGKILL
  assert kills == 3, 'a run finished before it could be killed'
  result = subprocess.run(_command(tiny_config, tmp_path), cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_identical(tiny_config, tmp_path, reference)


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT])
def test_sigterm_or_ctrl_c_saves_a_checkpoint_then_exits(tiny_config, reference, tmp_path, sig):
  """SIGTERM (a preemption) and Ctrl-C: the steps since the last checkpoint are kept (a Ctrl-C
  was a KeyboardInterrupt traceback, losing them)."""
  proc = _start_and_interrupt(tiny_config, tmp_path, 11, sig)
  _, stderr = proc.communicate(timeout=240)
  assert proc.returncode == 128 + sig, stderr[-3000:]
  name = signal.Signals(sig).name
  assert f'preempted: stopped by {name} at step' in stderr
  step = int(stderr.split(f'stopped by {name} at step ')[1].split(';')[0])
  assert str(step) in os.listdir(tmp_path / checkpointing.CHECKPOINT_DIR)
  result = subprocess.run(_command(tiny_config, tmp_path), cwd=REPO, capture_output=True, text=True,
                          timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_identical(tiny_config, tmp_path, reference)


def test_a_second_run_into_a_running_ones_workdir_is_refused(tiny_config, reference, tmp_path):
  """The same command started twice: the second is one error line naming the first, which ends
  as an uninterrupted run does (no interleaved metrics, no second writer of its checkpoints)."""
  first = subprocess.Popen(_command(tiny_config, tmp_path), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while _train_lines(tmp_path) < 2 and first.poll() is None and time.time() < deadline:
    time.sleep(0.02)
  assert first.poll() is None, 'the first run ended before the second started'
  first.send_signal(signal.SIGSTOP)  # held mid-run, however fast the machine, while the second starts
  try:
    second = subprocess.run(_command(tiny_config, tmp_path), cwd=REPO, capture_output=True,
                            text=True, timeout=600, check=False)
  finally:
    first.send_signal(signal.SIGCONT)
  _, stderr = first.communicate(timeout=240)
  assert first.returncode == 0, stderr[-3000:]
  assert second.returncode == 1
  assert f'error: {tmp_path}: a run is still writing here (pid {first.pid} on ' in second.stderr
  _assert_identical(tiny_config, tmp_path, reference)


def test_an_experiment_stopped_by_a_signal_says_so_and_exits_as_main_does(capsys):
  """experiments.learning_curve and table1 train through experiment.run: a Ctrl-C or SIGTERM
  there ends as in `forgery_jax.main` (one line, 128 + the signal), not in a traceback."""
  import experiments  # pylint: disable=g-import-not-at-top

  def stopped():
    raise trainer.Preempted('stopped by SIGINT at step 3; the checkpoint is in X: run the same '
                            'command to resume', signal.SIGINT)

  with pytest.raises(SystemExit) as exit_:
    experiments.one_error_line(stopped)()
  assert exit_.value.code == 128 + signal.SIGINT
  assert capsys.readouterr().err == ('preempted: stopped by SIGINT at step 3; the checkpoint is in '
                                     'X: run the same command to resume\n')


def _processes() -> dict[int, tuple[int, str]]:
  """{pid: (parent pid, state)} of every process, from /proc."""
  out = {}
  for entry in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{entry}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()  # after the command name, which may hold spaces
    except (OSError, IndexError):
      continue
    out[int(entry)] = (int(fields[1]), fields[0])
  return out


@pytest.mark.skipif(not os.path.isdir('/proc/self'), reason='reads processes from /proc (Linux)')
def test_batch_worker_processes_end_with_a_killed_training_process(tiny_config, tmp_path):
  """With `input.worker_processes`, a training process killed outright (SIGKILL: the
  out-of-memory killer, a scheduler's hard stop) left its batch workers running, about 400 MB
  each, for as long as the machine ran; they now exit within seconds."""
  proc = subprocess.Popen(
      [*_command(tiny_config, tmp_path), '--config.num_epochs=1000',
       '--config.early_stopping_patience=1000', '--config.input.worker_processes=2'],
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  workers = []
  try:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and _train_lines(tmp_path) < 2:  # training, so workers run
      assert proc.poll() is None, 'the run ended before it was killed'
      time.sleep(0.5)
    workers = [pid for pid, (parent, _) in _processes().items() if parent == proc.pid]
    assert len(workers) >= 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 30
    alive = lambda: [p for p in workers if _processes().get(p, (0, 'Z'))[1] != 'Z']
    while alive() and time.monotonic() < deadline:
      time.sleep(0.2)
    assert alive() == []
  finally:
    proc.kill()
    for pid in workers:
      try:
        os.kill(pid, signal.SIGKILL)
      except ProcessLookupError:
        pass

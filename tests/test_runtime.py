"""What results.json and reports record about the software and machine that made them."""

import os
import pathlib
import platform
import shutil
import subprocess
import sys

import jax
import pytest

import forgery_jax
from forgery_jax import runtime

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_environment_names_the_installed_versions_and_devices():
  env = runtime.environment()
  assert env['packages']['jax'] == jax.__version__
  assert env['python'] == platform.python_version()
  assert env['backend'] == jax.default_backend()
  assert env['device_count'] == jax.device_count() and env['devices']
  assert env['code']['version'] == forgery_jax.__version__
  assert env['cpu'] and env['cpu_count'] >= 1
  line = runtime.describe(env)
  assert f'JAX {jax.__version__}' in line and env['cpu'] in line


def _git(*args, cwd):
  return subprocess.run(['git', *args], cwd=cwd, check=True, capture_output=True,
                        text=True).stdout.strip()


@pytest.mark.skipif(shutil.which('git') is None, reason='git is not installed')
def test_code_revision_reads_the_checkout_that_holds_the_package(tmp_path):
  repo = tmp_path / 'checkout'
  (repo / 'forgery_jax').mkdir(parents=True)
  (repo / 'forgery_jax' / 'a.py').write_text('x = 1\n')
  _git('init', '-q', cwd=repo)
  _git('add', '.', cwd=repo)
  _git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'first', cwd=repo)
  commit = _git('rev-parse', 'HEAD', cwd=repo)
  assert runtime.code_revision(str(repo)) == {'version': forgery_jax.__version__,
                                              'git_commit': commit, 'git_modified': False}
  (repo / 'forgery_jax' / 'a.py').write_text('x = 2\n')
  assert runtime.code_revision(str(repo))['git_modified'] is True
  (repo / 'forgery_jax' / 'a.py').write_text('x = 1\n')
  (repo / 'notes.txt').write_text('untracked files do not count\n')
  assert runtime.code_revision(str(repo))['git_modified'] is False
  # A package directory inside some other repository (a virtual environment in a checkout):
  # that repository's commit is not the code's, so none is recorded.
  inner = repo / 'venv' / 'site-packages'
  inner.mkdir(parents=True)
  assert runtime.code_revision(str(inner)) == {'version': forgery_jax.__version__}
  # No repository at all.
  outside = tmp_path / 'wheel'
  outside.mkdir()
  assert runtime.code_revision(str(outside)) == {'version': forgery_jax.__version__}


@pytest.mark.parametrize('before, after', [
    ('', '--xla_gpu_deterministic_ops=true'),
    ('--xla_force_host_platform_device_count=8',
     '--xla_force_host_platform_device_count=8 --xla_gpu_deterministic_ops=true'),
    ('--xla_gpu_deterministic_ops=false', '--xla_gpu_deterministic_ops=false'),  # the user's choice
])
def test_deterministic_gpu_kernels_are_asked_for_unless_xla_flags_says_otherwise(
    monkeypatch, before, after):
  monkeypatch.setenv('XLA_FLAGS', before)
  runtime.deterministic_gpu_ops()
  runtime.deterministic_gpu_ops()  # twice: still once
  assert os.environ['XLA_FLAGS'] == after


COMMANDS = ('forgery_jax.main', 'forgery_jax.predict', 'forgery_jax.evaluate', 'benchmarks.run')

_ASKS_FIRST = """
import importlib, sys
from forgery_jax import runtime
class Asked(Exception): pass
def asked(): raise Asked
runtime.deterministic_gpu_ops = asked
for name in sys.argv[1:]:
  module = importlib.import_module(name)
  module.jax = None  # any use of JAX before the call fails otherwise
  try:
    module.main([] if name == 'benchmarks.run' else [name])  # argparse's argv, absl's
    print(name, 'returned')
  except Asked:
    print(name, 'asked first')
  except Exception as e:  # pylint: disable=broad-except
    print(name, 'failed:', type(e).__name__)
"""


def test_every_command_asks_for_deterministic_kernels_first():
  """First, before anything can start JAX's backend, which reads XLA_FLAGS once. In a process of
  its own: the commands define absl flags of the same names."""
  out = subprocess.run([sys.executable, '-c', _ASKS_FIRST, *COMMANDS], cwd=REPO, capture_output=True,
                       text=True, timeout=300, check=True).stdout.splitlines()
  assert out == [f'{name} asked first' for name in COMMANDS]


def test_output_folder_is_made_or_refused_with_the_flag_named(tmp_path):
  nested = tmp_path / 'a' / 'b'
  assert runtime.output_folder(str(nested), '--output') == str(nested) and nested.is_dir()
  runtime.output_folder(str(nested), '--output')  # an existing folder is fine
  a_file = tmp_path / 'a' / 'notes.txt'
  a_file.write_text('kept')
  with pytest.raises(ValueError, match=r'--output=.*notes.txt is a file, not a folder'):
    runtime.output_folder(str(a_file), '--output')
  with pytest.raises(ValueError, match=r'--workdir=.*notes.txt/run: the folder cannot be made'):
    runtime.output_folder(str(a_file / 'run'), '--workdir')
  assert a_file.read_text() == 'kept'


_HELPER = '''
import os, signal, subprocess, sys, time
if sys.argv[1] == 'parent':  # starts the helper, says its pid, then waits to be killed
  if sys.argv[4] == 'ignored':  # inherited by the helper, as from a shell's background job
    signal.signal(signal.SIGINT, signal.SIG_IGN)
  helper = subprocess.Popen([sys.executable, '-c', sys.argv[3], 'helper', sys.argv[2]])
  print(helper.pid, flush=True)
  time.sleep(600)
else:  # the helper: what a dataset build does, half a file written until it ends
  from forgery_jax import runtime
  runtime.exit_with_parent(graceful=True, poll_seconds=0.1)
  half = os.path.join(sys.argv[2], 'half_written')
  open(half, 'w').close()
  try:
    time.sleep(600)
  finally:
    os.remove(half)
    open(os.path.join(sys.argv[2], 'cleaned_up'), 'w').close()
'''


@pytest.mark.parametrize('sigint', ['default', 'ignored'])
def test_a_helper_ends_with_its_parent_and_cleans_up_first(tmp_path, sigint):
  """A process started by a run (a dataset build) outlived the run when the run was killed
  outright, and went on unguarded by the build lock; with `exit_with_parent(graceful=True)` it
  stops as Ctrl-C would stop it, its `finally` blocks run, even where SIGINT is ignored (a run
  started in the background by a non-interactive shell)."""
  import time
  parent = subprocess.Popen(
      [sys.executable, '-c', _HELPER, 'parent', str(tmp_path), _HELPER, sigint], cwd=REPO,
      stdout=subprocess.PIPE, text=True)
  helper = int(parent.stdout.readline())
  deadline = time.monotonic() + 60
  while not (tmp_path / 'half_written').exists() and time.monotonic() < deadline:
    time.sleep(0.1)
  parent.kill()
  parent.wait()
  deadline = time.monotonic() + 30
  while not (tmp_path / 'cleaned_up').exists() and time.monotonic() < deadline:
    time.sleep(0.1)
  assert (tmp_path / 'cleaned_up').exists() and not (tmp_path / 'half_written').exists()
  time.sleep(1)
  try:
    os.kill(helper, 0)
    with open(f'/proc/{helper}/stat') as f:
      assert f.read().rsplit(')', 1)[1].split()[0] == 'Z', 'the helper still runs'
  except (ProcessLookupError, FileNotFoundError):
    pass  # gone


_ARGPARSE_EXPERIMENTS = sorted(
    p.stem for p in (pathlib.Path(__file__).parents[1] / 'experiments').glob('*.py')
    if 'argparse.ArgumentParser' in p.read_text())
_PATH_OPTIONS = ('--workdir', '--cache', '--output', '--manual_dir', '--json', '--photos', '--other')


class _Parsed(Exception):
  """Stops an experiment's `main` once its arguments are read."""


@pytest.mark.parametrize('name', _ARGPARSE_EXPERIMENTS)
def test_every_experiments_folder_option_reads_a_leading_tilde_as_home(name, monkeypatch, tmp_path):
  """`--cache=~/scores` made a folder named ~ in the current one: the shell leaves ~ after = as
  it is. Every path option of every argparse experiment goes through `runtime.home`."""
  import argparse  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('HOME', str(tmp_path))
  parse = argparse.ArgumentParser.parse_args

  def parse_with_tildes(parser, argv=None, namespace=None):
    options = [a for a in parser._actions if set(a.option_strings) & set(_PATH_OPTIONS)]  # pylint: disable=protected-access
    args = [f'{a.option_strings[0]}=~/{a.dest}' for a in options]
    args += [f'{a.option_strings[0]}=x' for a in parser._actions  # pylint: disable=protected-access
             if a.required and a not in options]
    raise _Parsed(options, parse(parser, args, namespace))

  monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_with_tildes)
  with pytest.raises(_Parsed) as parsed:
    importlib.import_module(f'experiments.{name}').main([])
  options, namespace = parsed.value.args
  assert options, f'experiments.{name} has no path option'
  for option in options:
    assert getattr(namespace, option.dest) == str(tmp_path / option.dest), option.option_strings


@pytest.mark.parametrize('name', _ARGPARSE_EXPERIMENTS)
def test_every_experiments_count_option_refuses_a_number_below_its_least(name, monkeypatch, capsys):
  """`--limit=-3` read as "all but the last three files" (a slice) and ran for minutes; `--crop=0`
  failed inside a child process. Every whole-number option of every argparse experiment is an
  `experiments.whole_number`, and one below its least is a usage error naming the option."""
  import argparse  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  parse = argparse.ArgumentParser.parse_args
  refused = []

  def parse_each_count_too_small(parser, argv=None, namespace=None):
    actions = [a for a in parser._actions if a.option_strings]  # pylint: disable=protected-access
    assert not [a.dest for a in actions if a.type is int and not a.choices], f'experiments.{name}: a plain int option'
    required = [f'{a.option_strings[0]}=x' for a in actions if a.required]
    for a in actions:
      if hasattr(a.type, 'minimum'):
        with pytest.raises(SystemExit) as exit_info:
          parse(parser, [*required, f'{a.option_strings[0]}={a.type.minimum - 1}'], namespace)
        assert exit_info.value.code == 2
        assert f'argument {a.option_strings[0]}: {a.type.minimum - 1}: ' in capsys.readouterr().err
        refused.append(a.dest)
    raise _Parsed()

  monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', parse_each_count_too_small)
  with pytest.raises(_Parsed):
    importlib.import_module(f'experiments.{name}').main([])
  counts = {'jpeg_agreement': ['limit'], 'dense_copy_move': ['limit'], 'keypoint_decision': ['limit'],
            'step_determinism': ['crop', 'batch', 'steps', 'processes']}
  assert set(counts.get(name, [])) <= set(refused)

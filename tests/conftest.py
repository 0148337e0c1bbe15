"""Shared fixtures: paths to the real data beside the checkout, and a tiny built dataset."""

from __future__ import annotations

import atexit
import os
import re
import pathlib
import shutil
import sys
import tempfile

import ml_collections
import pytest

from forgery_jax import runtime

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('FORGERY_JAX_SHARED', REPO.parent / 'shared'))

# The tests that train in this process train as `main` does: with deterministic GPU kernels.
runtime.deterministic_gpu_ops()

# The suite compiles the same tiny models many times over: in each resumed run, in every test
# that trains the tiny config, and in the subprocesses of the preemption, multi-host and command
# line tests. One XLA compilation cache for the session compiles each program once: set in the
# environment, so that subprocesses share it too (predict's and evaluate's own cache goes there
# rather than to the user's home), and removed at exit. A cached program is the same executable,
# so no result changes.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  _XLA_CACHE = tempfile.mkdtemp(prefix='forgery_jax_test_xla_cache_')
  atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
  os.environ['JAX_COMPILATION_CACHE_DIR'] = _XLA_CACHE
  os.environ.setdefault(runtime.CACHE_ENV, _XLA_CACHE)
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')


def shared_path(*parts: str) -> pathlib.Path:
  """A file or folder under ../shared (or $FORGERY_JAX_SHARED); skips the test if absent."""
  path = SHARED.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'real data not found at {path} (set FORGERY_JAX_SHARED to the shared/ folder)')
  return path


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory) -> str:
  """The session's TFDS folder. Building a dataset needs TensorFlow, reading it does not: on a
  machine without TensorFlow (an accelerator's, say), $FORGERY_JAX_TEST_TFDS_DIR names a folder of
  datasets built elsewhere (`tiny_config`'s), copied in so that the tests never write to it."""
  path = tmp_path_factory.mktemp('tfds')
  prebuilt = os.environ.get('FORGERY_JAX_TEST_TFDS_DIR')
  if prebuilt:
    if not os.path.isdir(prebuilt):
      pytest.exit(f'FORGERY_JAX_TEST_TFDS_DIR={prebuilt}: no such folder', returncode=4)
    shutil.copytree(prebuilt, path, dirs_exist_ok=True)
  return str(path)


@pytest.fixture(scope='session')
def tiny_config(tfds_dir) -> ml_collections.ConfigDict:
  """configs/tiny.py with the dataset in a session temp dir, built once."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.dataset.data_dir = tfds_dir
  datasets.ensure_built(config.dataset)
  return config


_OWN_MODULES = {p.name for p in (REPO / 'forgery_jax').rglob('*.py')}


def assert_no_library_info(stderr: str) -> None:
  """Every absl INFO line of a command's output comes from forgery_jax itself."""
  for line in stderr.splitlines():
    m = re.match(r'^I\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\]', line)
    if m:
      assert m.group(1) in _OWN_MODULES, f'library INFO line: {line}'


def with_file_size_limit(module: str, limit: int) -> list[str]:
  """The command line that runs `python -m module` with files limited to `limit` bytes: a write
  past it fails as a full disk does (`File too large` instead of `No space left on device`), on
  any machine and without privileges. Append the module's arguments."""
  code = ('import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); '
          f'resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); '
          'sys.argv = sys.argv[:1] + sys.argv[2:]; '
          f'runpy.run_module({module!r}, run_name="__main__")')
  return [sys.executable, '-c', code, '-']

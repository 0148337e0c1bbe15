"""Process-wide settings every command applies: quiet library logs, JAX's compilation cache."""

from __future__ import annotations

import contextlib
import importlib
import logging as std_logging
import os
import sys

CACHE_ENV = 'FORGERY_JAX_COMPILATION_CACHE'


class _QuietLibraries:
  """Drops INFO records of libraries that log every checkpoint and compilation."""

  NOISY = ('/orbax/', '/jax/', '/jaxlib/', '/grain/', '/absl/', '/tensorflow_datasets/',
           '/flax/', '/etils/')

  def filter(self, record) -> bool:
    return record.levelno > std_logging.INFO or not any(n in record.pathname for n in self.NOISY)


@contextlib.contextmanager
def native_stderr_silenced():
  """Drops what C++ code writes to stderr meanwhile: TensorFlow prints its start-up lines (CPU
  features, oneDNN) at import, before any log level applies."""
  sys.stderr.flush()
  saved = os.dup(2)
  devnull = os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    yield
  finally:
    os.dup2(saved, 2)
    os.close(devnull)
    os.close(saved)


def import_tensorflow_quietly() -> None:
  """Imports TensorFlow (where installed) without its start-up lines; later imports reuse it."""
  with native_stderr_silenced():
    try:
      importlib.import_module('tensorflow')
    except ImportError:
      pass


def quiet_libraries() -> None:
  """Library INFO lines off in every command's output; forgery_jax's own lines stay."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # the child process that builds datasets
  from absl import logging  # pylint: disable=g-import-not-at-top
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())
  for name in ('orbax', 'jax', 'grain', 'tensorflow_datasets'):  # Python loggers of their own
    std_logging.getLogger(name).setLevel(std_logging.WARNING)


def cache_dir() -> str:
  """$FORGERY_JAX_COMPILATION_CACHE, else ~/.cache/forgery_jax/jax ('' or 'off' turns it off)."""
  return os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser('~'), '.cache', 'forgery_jax',
                                                 'jax'))


def compilation_cache() -> None:
  """JAX's persistent compilation cache: a second `predict` (or run) compiles nothing again."""
  path = cache_dir()
  if not path or path == 'off':
    return
  import jax  # pylint: disable=g-import-not-at-top
  try:
    os.makedirs(path, exist_ok=True)
  except OSError:
    return  # a read-only home: no cache, nothing else changes
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)

"""Process-wide settings every command applies (quiet library logs, JAX's compilation cache, its
output folder checked), and the description of the software and machine that results.json and
reports record."""

from __future__ import annotations

import contextlib
import importlib
from importlib import metadata
import logging as std_logging
import os
import platform
import subprocess
import sys

import forgery_jax

CACHE_ENV = 'FORGERY_JAX_COMPILATION_CACHE'


class _QuietLibraries:
  """Drops INFO records of libraries that log every checkpoint and compilation, and the
  tracebacks of Orbax's background threads: a failed save is logged by each of them (four
  tracebacks, 300 lines, for one full disk) and raised again in the main thread, where the
  command reports it in one line."""

  NOISY = ('/orbax/', '/jax/', '/jaxlib/', '/grain/', '/absl/', '/tensorflow_datasets/',
           '/flax/', '/etils/')

  def filter(self, record) -> bool:
    if record.exc_info and '/orbax/' in record.pathname:
      record.exc_info, record.exc_text = None, None
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


def home(path: str) -> str:
  """`path` with a leading ~ read as the home folder: the shell leaves `--workdir=~/runs` as it is
  (it expands ~ only at the start of a word), which made a folder named ~ in the current one."""
  return os.path.expanduser(path) if path.startswith('~') else path


def home_in_flags() -> None:
  """Every string (or list of strings) flag of the command that starts with ~, read as `home`."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  for name in list(flags.FLAGS):
    value = flags.FLAGS[name].value
    if isinstance(value, str) and value.startswith('~'):
      flags.FLAGS[name].value = home(value)
    elif isinstance(value, list) and any(isinstance(v, str) and v.startswith('~') for v in value):
      flags.FLAGS[name].value = [home(v) if isinstance(v, str) else v for v in value]


PARENT_ENV = 'FORGERY_JAX_PARENT_PID'  # set for a child process that should end with its parent
_GRACE_SECONDS = 60.0


def exit_with_parent(graceful: bool = False, poll_seconds: float = 1.0) -> None:
  """Ends this process soon after the process that started it is gone (its parent changes): a
  process killed outright (SIGKILL, the out-of-memory killer, a scheduler's hard stop) left its
  helpers running. `graceful` (called from the main thread): first as Ctrl-C does, by SIGTERM
  (which then, as for any SIGTERM, raises KeyboardInterrupt in the main thread, so that `finally`
  blocks remove what was half written), and at once after a minute."""
  import signal  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  parent = os.getppid()
  if graceful:
    signal.signal(signal.SIGTERM, _interrupt)

  def watch():
    while os.getppid() == parent:
      time.sleep(poll_seconds)
    if graceful:
      os.kill(os.getpid(), signal.SIGTERM)
      time.sleep(_GRACE_SECONDS)
    os._exit(1)  # pylint: disable=protected-access

  threading.Thread(target=watch, name='exit_with_parent', daemon=True).start()


def _interrupt(signum, frame):
  del signum, frame
  raise KeyboardInterrupt


def quiet_libraries() -> None:
  """Library INFO lines off in every command's output; forgery_jax's own lines stay."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # the child process that builds datasets
  from absl import logging  # pylint: disable=g-import-not-at-top
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietLibraries) for f in handler.filters):
    handler.addFilter(_QuietLibraries())
  for name in ('orbax', 'jax', 'grain', 'tensorflow_datasets'):  # Python loggers of their own
    std_logging.getLogger(name).setLevel(std_logging.WARNING)
  if sys.unraisablehook is sys.__unraisablehook__:
    sys.unraisablehook = _orbax_leftovers_dropped


def _orbax_leftovers_dropped(unraisable) -> None:
  """After Orbax's background save fails, TensorStore's callbacks can find its event loop closed;
  and after a restore fails on one array, its reads of the others are abandoned and each printed
  a traceback of pages (TensorStore's whole spec) when collected. Those say nothing the
  save's or restore's own error does not (it is reported); any other unraisable exception is
  printed as Python prints it."""
  closed_loop = (isinstance(unraisable.exc_value, RuntimeError)
                 and str(unraisable.exc_value) == 'Event loop is closed')
  code = getattr(unraisable.object, 'cr_code', None)  # a coroutine never finished
  abandoned_read = code is not None and f'{os.sep}orbax{os.sep}' in code.co_filename
  if not (closed_loop or abandoned_read):
    sys.__unraisablehook__(unraisable)


DETERMINISTIC_GPU_FLAG = '--xla_gpu_deterministic_ops'


def deterministic_gpu_ops() -> None:
  """Asks XLA for deterministic GPU kernels (in XLA_FLAGS, so before JAX starts its backend).

  Without them XLA may use GPU kernels whose sums are not ordered the same from one compilation
  or run to the next: on one H200 the localiser trained with synthesis ended a resumed run with
  other parameters than an uninterrupted one (tests/test_localiser.py), and with them it repeated
  them exactly. The flag concerns GPUs alone. An XLA_FLAGS that already names it (`=false` trades
  the exactness for speed, up to 3.7x on that GPU: README) is left as it is.
  """
  flags = os.environ.get('XLA_FLAGS', '')
  if DETERMINISTIC_GPU_FLAG not in flags:
    os.environ['XLA_FLAGS'] = f'{flags} {DETERMINISTIC_GPU_FLAG}=true'.strip()


def cache_dir() -> str:
  """$FORGERY_JAX_COMPILATION_CACHE, else ~/.cache/forgery_jax/jax ('' or 'off' turns it off)."""
  return os.environ.get(CACHE_ENV, os.path.join(os.path.expanduser('~'), '.cache', 'forgery_jax',
                                                 'jax'))


def output_folder(path: str, flag: str) -> str:
  """Makes a command's output folder (and its parents): a path that is a file, or a folder that
  cannot be made or written, is one ValueError naming the flag and the path."""
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f'{flag}={path} is a file, not a folder')
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ValueError(f'{flag}={path}: the folder cannot be made ({e.strerror})') from None
  if not os.access(path, os.W_OK | os.X_OK):
    raise ValueError(f'{flag}={path}: the folder is not writable')
  return path


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


# The distributions whose versions can change a figure: numerics (JAX, XLA, NumPy), the training
# loop, the data path (TFDS, grain, the image codecs) and the classical detectors.
RECORDED_PACKAGES = (
    'jax', 'jaxlib', 'jax-cuda12-plugin', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'grain',
    'array-record', 'tensorflow-datasets', 'tensorflow', 'tensorflow-cpu', 'pillow',
    'opencv-python-headless', 'scikit-image', 'scikit-learn', 'scipy', 'xgboost', 'xgboost-cpu')


def _cpu_model() -> str:
  """The CPU's name: XLA's CPU code and its rounding can differ from one CPU to another."""
  try:
    with open('/proc/cpuinfo', encoding='utf-8') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  if sys.platform == 'darwin':
    try:
      return subprocess.run(['sysctl', '-n', 'machdep.cpu.brand_string'], capture_output=True,
                            text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
      pass
  return platform.processor() or platform.machine()


_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def code_revision(root: str = _PACKAGE_ROOT) -> dict:
  """forgery_jax's version and, where `root` (the directory holding the package) is a git
  checkout's top, its commit and whether tracked files differ from it."""
  code = {'version': forgery_jax.__version__}
  try:
    top, commit = subprocess.run(['git', '-C', root, 'rev-parse', '--show-toplevel', 'HEAD'],
                                 capture_output=True, text=True, timeout=10,
                                 check=True).stdout.split()
    if os.path.realpath(top) != os.path.realpath(root):
      return code  # installed inside some other repository: its commit is not this code's
    changed = subprocess.run(['git', '-C', root, 'status', '--porcelain', '--untracked-files=no'],
                             capture_output=True, text=True, timeout=30, check=True).stdout
  except (OSError, subprocess.SubprocessError):
    return code  # an installed wheel, or no git
  code.update(git_commit=commit, git_modified=bool(changed.strip()))
  return code


def environment() -> dict:
  """What ran a command: the code's revision, Python, the recorded packages' versions (those
  installed), the platform, the CPU, JAX's backend and devices, and XLA_FLAGS when set. Two runs
  of one config and seed agree exactly only where this agrees too."""
  import jax  # pylint: disable=g-import-not-at-top
  packages = {}
  for name in RECORDED_PACKAGES:
    try:
      packages[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      pass
  devices = jax.devices()
  env = {'code': code_revision(), 'python': platform.python_version(),
         'platform': f'{platform.system()} {platform.machine()}', 'cpu': _cpu_model(),
         'cpu_count': os.cpu_count(), 'packages': packages, 'backend': jax.default_backend(),
         'devices': sorted({d.device_kind for d in devices}), 'device_count': len(devices),
         'process_count': jax.process_count()}
  if os.environ.get('XLA_FLAGS'):
    env['xla_flags'] = os.environ['XLA_FLAGS']
  return env


def describe(env: dict) -> str:
  """One line of `environment()`: report.md's first line."""
  code = env['code']
  revision = code.get('git_commit', '')[:12] + (' with local changes' if code.get('git_modified')
                                                else '')
  packages = env['packages']
  return (f"forgery_jax {code['version']}{f' ({revision})' if revision else ''}, "
          f"JAX {packages.get('jax', '?')}, Python {env['python']}, {env['platform']}, "
          f"{env['device_count']} {'/'.join(env['devices'])} device(s), CPU {env['cpu']}")

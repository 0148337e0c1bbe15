"""Entry point: `python -m forgery_jax.main --config=configs/default.py --workdir=DIR`.

Any config field can be overridden on the command line, e.g.
`--config.dataset.split=random --config.model.branches="('ela',)"`. The work itself is
`forgery_jax.experiment.run(config, workdir)`.
"""

import re
import sys

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from forgery_jax import experiment
from forgery_jax import processes
from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax.data import datasets
from forgery_jax.training import checkpointing
from forgery_jax.training import trainer

_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, metrics and results.json.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-host: host:port of process 0, e.g. 10.0.0.1:1234. '
    'With --num_processes and --process_id; or set --distributed on a cluster JAX detects.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Multi-host: number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Multi-host: this process (0 .. n-1).')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False, 'Multi-host with addresses from the '
                                 'environment (SLURM, Open MPI, Kubernetes, Cloud TPU).')
_INITIALIZATION_TIMEOUT = flags.DEFINE_integer(
    'initialization_timeout', 300, 'Multi-host: seconds to wait for every process to join.')
config_flags.DEFINE_config_file('config', None, 'Training configuration file.', lock_config=True)
flags.mark_flags_as_required(['config', 'workdir'])


def _check_processes() -> None:
  """The multi-host flags, before JAX starts: without a way to meet the other processes each
  would train alone into the same workdir; a process id out of range or an address without a
  port fails inside JAX with a traceback."""
  coordinator, count, index = _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
  if (count is not None or index is not None) and not (coordinator or _DISTRIBUTED.value):
    progress.exit_with_error('--num_processes and --process_id need --coordinator_address '
                             '(or --distributed)')
  if count is not None and count < 1:
    progress.exit_with_error(f'--num_processes={count}: at least 1')
  if index is not None and not (index >= 0 and (count is None or index < count)):
    progress.exit_with_error(f'--process_id={index}: from 0 to --num_processes - 1'
                             + (f' ({count - 1})' if count is not None else ''))
  if _INITIALIZATION_TIMEOUT.value < 1:
    progress.exit_with_error(f'--initialization_timeout={_INITIALIZATION_TIMEOUT.value}: at least 1 (seconds)')
  host, _, port = (coordinator or '').rpartition(':')
  if coordinator and not (host and port.isdigit()):
    progress.exit_with_error(f'--coordinator_address={coordinator}: host:port, e.g. 10.0.0.1:1234')


def main(argv):
  runtime.deterministic_gpu_ops()  # before the backend starts: resumed runs repeat on GPUs too
  runtime.quiet_libraries()
  runtime.home_in_flags()
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  _check_processes()
  if _COORDINATOR.value or _DISTRIBUTED.value:
    # CPU processes exchange arrays through gloo; GPUs and TPUs use their own collectives.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    processes.join(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                   timeout=_INITIALIZATION_TIMEOUT.value)
  config = flags.FLAGS.config
  try:
    with processes.stop_together(stops_every_process=(trainer.Preempted,)):
      logging.info('JAX process %d/%d, local devices %s', jax.process_index(), jax.process_count(),
                   jax.local_devices())
      results = experiment.run(config, _WORKDIR.value)
  except trainer.Preempted as e:
    logging.warning('%s', e)
    print(f'preempted: {e}', file=sys.stderr)
    sys.exit(128 + e.signum)
  except (checkpointing.CheckpointError, datasets.DatasetError, ValueError, OSError) as e:
    logging.error('%s', e)
    progress.exit_with_error(e)
  if jax.process_index() == 0:
    summary = '  '.join(f'{k} {results[f"test/{k}"]:.4f}' for k in experiment.TEST_KEYS
                        if f'test/{k}' in results)
    print(f'test: {summary}\nresults: {_WORKDIR.value}/{experiment.RESULTS_FILE}')


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing; a bad flag, config file or --config.<field> override becomes one
  `error:` line."""
  config_file = next((a.split('=', 1)[1] for a in argv[1:] if a.startswith('--config=')), '')
  try:
    remaining = flags.FLAGS(argv)
    if flags.FLAGS.config is not None:
      flags.FLAGS.config.keys()  # a config file that cannot be read fails here, not later
    return remaining
  except flags.Error as e:
    if 'Traceback (most recent call last)' in str(e):  # an exception in the file's get_config
      raise SystemExit(f'error: --config={config_file}: {_last_line(e)}') from None
    raise SystemExit(f'error: {e}\nPass --helpfull to see the flags.') from None
  except (OSError, SyntaxError) as e:  # the config file is missing or is not Python
    raise SystemExit(f'error: --config={config_file}: cannot load it ({_last_line(e)})') from None
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    # ml_collections raises these for --config.<field> overrides it cannot apply.
    overrides = [a for a in argv[1:] if a.startswith('--config.')]
    while e.args and isinstance(e.args[0], BaseException):  # AttributeError(KeyError(...))
      e = e.args[0]
    message = ' '.join(str(e.args[0] if e.args else e).split())
    unknown = _unknown_field(e, overrides)
    if unknown:
      raise SystemExit(f'error: {unknown}') from None
    raise SystemExit(f'error: bad config override among {overrides}: {message}') from None


def _unknown_field(error: BaseException, overrides: list[str]) -> str:
  """"--config.model.nme: config.model has no field 'nme'" for ml_collections' AttributeError
  ("'nme'") or KeyError('nme') when one override names that field; '' otherwise."""
  if not (isinstance(error, (AttributeError, KeyError)) and error.args
          and isinstance(error.args[0], str)):
    return ''
  quoted = re.match(r"""^['"]?([\w-]+)['"]?(?:\s+Did you mean "([\w-]+)".*)?$""", error.args[0].strip())
  if not quoted:
    return ''
  field, suggestion = quoted.groups()
  paths = [o.split('=', 1)[0].split('.')[1:] for o in overrides]  # --config.a.b=1 -> [a, b]
  found = [path for path in paths if field in path]
  if len(found) != 1:
    return ''
  path = found[0]
  parent = '.'.join(['config', *path[:path.index(field)]])
  hint = f" (did you mean '{suggestion}'?)" if suggestion else ''
  return f"--config.{'.'.join(path)}: {parent} has no field '{field}'{hint}"


def _last_line(error: BaseException) -> str:
  return next((l.strip() for l in reversed(str(error).splitlines()) if l.strip()), type(error).__name__)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)

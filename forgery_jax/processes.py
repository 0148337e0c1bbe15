"""Several JAX processes meet, and stop together: processes that cannot meet end with one line
(`join`), and one that stops outside the training loop (a Ctrl-C while the data is read or the
model evaluated, an error on one process only) tells the others through JAX's coordination
service, and each ends with one line instead of waiting in its collectives (`stop_together`). A
process killed outright says nothing: the others end with one line when a collective fails
because its connection closed.

Without it, the others waited for the stopped one in a collective with no timeout, and the stopped
one waited for them in JAX's shutdown barrier, until that barrier's timeout (300 s) aborted both
with C++ stack traces. Inside the training loop SIGTERM and a first Ctrl-C already stop every
process at one step (the trainer's preemption sync point); this covers the rest of a run.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from typing import NoReturn

from absl import logging
import jax
from jax._src import distributed  # its coordination client, as Orbax reads it: JAX has no public handle

from forgery_jax import progress

_KEYS = 'forgery_jax/stopped/'
_POLLS_PER_SECOND = 100  # over all processes together: each asks every max(0.5, N / 100) s
_RESUME = 'Run the same command on every process to resume from the last checkpoint'
_SHUTDOWN_WAIT_SECONDS = 30  # the stopped process waits at most this for the others to leave


def join(coordinator_address: str | None, num_processes: int | None, process_id: int | None, *,
         timeout: int) -> None:
  """`jax.distributed.initialize`; where the processes cannot meet, one error line instead of
  JAX's traceback, or of its abort with a C++ stack trace when not every process joined in time
  (this process ends first, `timeout` seconds after it started waiting). None: from the cluster's
  environment (SLURM, Open MPI, Kubernetes, Cloud TPU)."""
  joined = threading.Event()
  where = f'--coordinator_address={coordinator_address}' if coordinator_address else '--distributed'

  def give_up():
    if not joined.wait(timeout):
      this = f' (this is process {process_id})' if process_id is not None else ''
      start = ('each with the same --coordinator_address and --num_processes, process 0 on the '
               'host of that address' if coordinator_address else 'every process of the job')
      print(f'error: {where}: not every process joined within {timeout} s{this}; start {start} '
            f'(--initialization_timeout: how long to wait)', file=sys.stderr, flush=True)
      os._exit(1)  # pylint: disable=protected-access  # the main thread is inside JAX's wait

  threading.Thread(target=give_up, daemon=True, name='forgery_jax join timeout').start()
  try:
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               initialization_timeout=timeout + 60)
  except Exception as e:  # pylint: disable=broad-except  # JAX's ValueError, RuntimeError or its own
    why = _first_line(e)
    if not coordinator_address:
      progress.exit_with_error(
          f'--distributed: JAX found no cluster it knows in the environment (SLURM, Open MPI, '
          f'Kubernetes, Cloud TPU) to take the processes from ({why}); give --coordinator_address, '
          f'--num_processes and --process_id')
    progress.exit_with_error(f'{where}: the processes could not meet ({why})')
  finally:
    joined.set()


class _Stopping:
  """Whether this process is already ending early (so that it answers no other's stop)."""

  def __init__(self):
    self.lock = threading.Lock()
    self.stopping = False

  def claim(self) -> bool:
    with self.lock:
      claimed, self.stopping = not self.stopping, True
      return claimed


@contextlib.contextmanager
def stop_together(stops_every_process: tuple[type[BaseException], ...] = ()):
  """Runs the block. With several processes, a process whose block ends in an exception tells the
  others why, and a process told so ends at once (exit 1) with one line naming that process and
  its reason. `stops_every_process`: exceptions that every process raises at the same point by
  itself (a preemption), passed on as they are. One process: the block, as it is."""
  client = distributed.global_state.client
  if jax.process_count() == 1 or client is None:
    yield
    return
  state = _Stopping()
  done = threading.Event()
  watcher = threading.Thread(target=_watch, args=(client, state, done), daemon=True,
                             name='forgery_jax stop watcher')
  watcher.start()
  try:
    yield
  except stops_every_process:
    raise
  except BaseException as e:
    if not state.claim():  # another process stopped first: the watcher is ending this one
      threading.Event().wait()
    done.set()
    watcher.join()
    lost = _peer_lost(e)
    if lost:
      _stop_without_the_lost_process(client, lost)
    _tell_the_others(client, _reason(e))
    raise
  finally:
    done.set()
    watcher.join()


def _reason(e: BaseException) -> str:
  """One line on why this process stops."""
  if isinstance(e, KeyboardInterrupt):
    return 'Ctrl-C'
  if isinstance(e, SystemExit):  # an `error: ...` line (progress.exit_with_error)
    return str(e.code).removeprefix('error: ') if e.code not in (None, 0) else 'it exited'
  return _first_line(e)


def _first_line(e: BaseException) -> str:
  return next((l.strip() for l in str(e).splitlines() if l.strip()), type(e).__name__)


# What a collective raises when another process's end closed its connection (gloo on CPUs), or
# the coordination service when it found a process gone: a process killed outright (SIGKILL, the
# out-of-memory killer) says nothing of its own.
_PEER_LOST = re.compile(r'(Connection (closed|reset) by peer|Broken pipe|Socket closed|'
                        r'stopped sending heartbeats|heartbeat timeout)', re.IGNORECASE)


def _peer_lost(e: BaseException) -> str:
  """For an error that says another process is gone, a short form of it; else ''."""
  if not isinstance(e, jax.errors.JaxRuntimeError) or not _PEER_LOST.search(str(e)):
    return ''
  first = _first_line(e)
  first = re.sub(r'\[[^\]]*\.(cc|h):\d+\] ', '', first)  # gloo's source position
  return re.sub(r'^[A-Z_]+: ', '', first)  # the status code ('UNKNOWN: ')


def _stop_without_the_lost_process(client, lost: str) -> NoReturn:
  """Ends this process at once with one line: a process that is gone never comes to the shutdown
  barrier, so waiting there only ran out its timeout and ended in JAX's abort at exit."""
  me = jax.process_index()
  progress.close_bars()
  print(f'error: another process of this run is gone ({lost}): killed, or its host lost; process '
        f'{me} stops too. {_RESUME}', file=sys.stderr, flush=True)
  try:  # any others still here stop at once too, with this line's reason
    client.key_value_set(f'{_KEYS}{me}', f'another process is gone: {lost}'[:500])
  except Exception:  # pylint: disable=broad-except  # the service went with it
    pass
  os._exit(1)  # pylint: disable=protected-access  # JAX's exit handler would wait for the lost one


def _tell_the_others(client, why: str) -> None:
  """Tells the other processes why this one stops and leaves the coordination service with
  them (its shutdown barrier), so that none of them is left waiting for it."""
  try:
    client.key_value_set(f'{_KEYS}{jax.process_index()}', why[:500])
  except Exception as e:  # pylint: disable=broad-except  # the service is gone: nobody to tell
    logging.warning('could not tell the other processes that this one stops: %s', e)
    return
  _leave(timeout=_SHUTDOWN_WAIT_SECONDS)


def _watch(client, state: _Stopping, done: threading.Event) -> None:
  """Polls the coordination service for another process's stop; ends this process on one."""
  me = jax.process_index()
  while not done.wait(max(0.5, jax.process_count() / _POLLS_PER_SECOND)):
    try:
      stopped = [(int(k.rsplit('/', 1)[-1]), why) for k, why in client.key_value_dir_get(_KEYS)]
    except Exception:  # pylint: disable=broad-except  # the service is gone: the run is ending
      return
    others = sorted((i, why) for i, why in stopped if i != me)
    if others and state.claim():
      index, why = others[0]
      progress.close_bars()
      print(f'error: process {index} of this run stopped ({why}); process {me} stops too. '
            f'{_RESUME}', file=sys.stderr, flush=True)
      _leave(timeout=_SHUTDOWN_WAIT_SECONDS)
      os._exit(1)  # pylint: disable=protected-access  # the main thread may be in a collective


def _leave(timeout: float) -> None:
  """JAX's shutdown barrier with every process, in a thread so that a process that never comes
  costs at most `timeout` seconds (the barrier's own timeout, 300 s, ends in an abort)."""
  leaving = threading.Thread(target=_shutdown_quietly, daemon=True, name='forgery_jax shutdown')
  leaving.start()
  leaving.join(timeout)


def _shutdown_quietly() -> None:
  try:
    jax.distributed.shutdown()
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('leaving the other processes: %s', e)

"""Locks between processes sharing a file system: one run writing into a workdir, one process
building a dataset. OS locks (`flock`), so a process killed in any way frees what it held."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time

from absl import logging

from forgery_jax import progress


class Busy(ValueError):
  """Another process holds the lock; the message names it."""


@contextlib.contextmanager
def held(path: str, busy: str | None = None, waiting: str = '{holder} holds {path}; waiting'):
  """Holds the lock of the file `path` for the block: the file is made (with its folder), says
  who holds it, and is removed when the block ends (a process killed leaves it behind unlocked,
  and the next holder takes it over).

  `busy`: what a process that finds the lock held is told (`{holder}` filled in) by a `Busy`
  error; None: it waits for the lock instead, saying so once (`waiting`). Where the file cannot
  be made or locked (a read-only folder, a file system without locks) the block runs unguarded,
  with a warning.
  """
  f = _open_locked(path, busy, waiting)
  if f is None:
    yield
    return
  try:
    f.seek(0)
    f.truncate()
    f.write(f'pid {os.getpid()} on {socket.gethostname()}, since '
            f'{time.strftime("%Y-%m-%d %H:%M:%S")}\n')
    f.flush()
    yield
  finally:
    try:
      os.remove(path)  # while still locked: a process waiting on this file then finds it gone
    except OSError:
      pass
    f.close()  # unlocks


def _open_locked(path: str, busy: str | None, waiting: str):
  """The file `path`, open and locked by this process; None where it cannot be (warned)."""
  while True:
    try:
      os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
      f = open(path, 'a+')  # pylint: disable=consider-using-with
    except OSError as e:
      logging.warning('%s cannot be made (%s): nothing keeps a second process out', path, e)
      return None
    try:
      if not _lock(f, path, busy, waiting):
        f.close()
        return None
    except BaseException:
      f.close()
      raise
    try:
      if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
        return f
    except FileNotFoundError:
      pass
    f.close()  # the holder before removed this file on leaving: lock the path's file anew


def _lock(f, path: str, busy: str | None, waiting: str) -> bool:
  """Locks the open file `f`: True once held, False where the file system has no locks."""
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    f.seek(0)
    holder = f.read().strip() or 'another process'
    if busy is not None:
      raise Busy(busy.format(holder=holder)) from None
    progress.write(waiting.format(holder=holder, path=path))
    fcntl.flock(f, fcntl.LOCK_EX)
    return True
  except OSError as e:
    logging.warning('%s cannot be locked (%s): nothing keeps a second process out', path, e)
    return False

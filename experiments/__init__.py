"""Experiment scripts that regenerate the tables of the README and docs/ from the library (not part
of it)."""

from __future__ import annotations

import argparse
import functools
import json
import sys

from forgery_jax import atomic


def one_error_line(main):
  """`main`, ending the command with one `error:` line instead of a traceback when it raises a
  ValueError or OSError (a missing run or cache, an unreadable file), a dataset error or a
  checkpoint error (unreadable, or a save that failed), and with `preempted: ...` and status
  128 + the signal when a run it trains is stopped by SIGTERM or Ctrl-C after saving a checkpoint
  (as `forgery_jax.main` does: the same command resumes)."""
  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      return main(*args, **kwargs)
    except Exception as e:  # pylint: disable=broad-except
      trainer = sys.modules.get('forgery_jax.training.trainer')
      if trainer is not None and isinstance(e, trainer.Preempted):
        print(f'preempted: {e}', file=sys.stderr)
        sys.exit(128 + e.signum)
      # Only raised where they were imported.
      datasets = sys.modules.get('forgery_jax.data.datasets')
      checkpointing = sys.modules.get('forgery_jax.training.checkpointing')
      known = ((ValueError, OSError) + ((datasets.DatasetError,) if datasets else ())
               + ((checkpointing.CheckpointError,) if checkpointing else ()))
      if not isinstance(e, known):
        raise
      from forgery_jax import progress  # pylint: disable=g-import-not-at-top
      progress.exit_with_error(e)
  return wrapped


def write_json(path: str, results) -> None:
  """An experiment's figures as JSON at `path` (its --output or --json; nothing when empty),
  replaced only when complete (`atomic.replaced_when_complete`): a failure never leaves half a file
  where the last complete one was."""
  if path:
    with atomic.replaced_when_complete(path) as f:
      json.dump(results, f, indent=2, default=float)


def whole_number(minimum: int, meaning: str = '', maximum: int | None = None):
  """An argparse type: a whole number from `minimum` (to `maximum`; `meaning` says what it counts),
  so that `--limit=-3` is refused at once rather than read as "all but the last three files"."""
  def parse(text: str) -> int:
    try:
      n = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
    if n < minimum or (maximum is not None and n > maximum):
      bounds = f'at least {minimum}' if maximum is None else f'from {minimum} to {maximum}'
      raise argparse.ArgumentTypeError(f'{n}: {bounds}' + (f' ({meaning})' if meaning else ''))
    return n
  parse.minimum = minimum
  return parse

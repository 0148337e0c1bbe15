"""Progress bars with ETA for every command (builds, training, predict, evaluate, benchmarks).

Bars go to stderr; outside a terminal (CI, a redirected log) they redraw at most every 30 s so that
logs stay readable. `FORGERY_JAX_PROGRESS=0` turns them off.
"""

from __future__ import annotations

import os
import re
import sys
from typing import NoReturn

from tqdm import auto as tqdm_auto

PROGRESS_ENV = 'FORGERY_JAX_PROGRESS'


def bar(iterable=None, *, total: int | None = None, desc: str = '', unit: str = 'it',
        leave: bool = True):
  """A tqdm bar over `iterable` (or updated by hand with `.update(n)`)."""
  interactive = sys.stderr.isatty()
  return tqdm_auto.tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave,
                        mininterval=0.5 if interactive else 30.0, dynamic_ncols=interactive,
                        disable=os.environ.get(PROGRESS_ENV) == '0', file=sys.stderr)


def write(line: str) -> None:
  """One line on stderr that a running bar does not break up."""
  tqdm_auto.tqdm.write(line, file=sys.stderr)


def close_bars() -> None:
  """Closes the bars still open, so that a last line printed after them stands alone (an open bar
  is drawn again at exit, below it)."""
  for open_bar in list(tqdm_auto.tqdm._instances):  # pylint: disable=protected-access
    open_bar.close()


def exit_with_error(message) -> NoReturn:
  """Ends the command with one `error: ...` line on stderr, its last line: the bars an exception
  left open are closed first (else each is drawn again at exit, below the error). `message`: text
  or an exception (an OSError as `FILE: what went wrong`)."""
  close_bars()
  if isinstance(message, OSError) and message.filename and message.strerror:
    message = f'{message.filename}: {message.strerror}'  # not "[Errno 28] No space left ...: '...'"
  raise SystemExit(f'error: {message}') from None


def exit_interrupted(what: str) -> NoReturn:
  """Ends a command stopped by Ctrl-C with one `interrupted: ...` line saying what was not written
  (its outputs are renamed into place only when complete), exit status 130 as a shell gives."""
  close_bars()
  print(f'interrupted: {what}', file=sys.stderr)
  raise SystemExit(130)


def one_line(error: BaseException, limit: int = 300) -> str:
  """'<type>: <what it says>' on one line: a library's message may run to pages (TensorStore
  prints its whole spec, XGBoost its C++ stack), what comes before that is kept."""
  text = re.split(r'See full TensorStore details|\n\s*Stack trace:', str(error))[0]
  text = re.sub(r'^\[\d\d:\d\d:\d\d\] \S+:\d+: ', '', text.strip())  # XGBoost's time and source line
  text = ' '.join(text.split()) or type(error).__name__
  return f'{type(error).__name__}: {text[:limit]}{"..." if len(text) > limit else ""}'

"""Files replaced whole: written beside their path under a name of the writer's own and renamed
onto it when complete, so that an interrupted command never leaves half a file where the last
whole one was, and two commands writing one file at once (an `evaluate` beside another) each
replace it whole, the last one staying."""

from __future__ import annotations

import contextlib
import os
import uuid


@contextlib.contextmanager
def replaced_when_complete(path: str, mode: str = 'w'):
  """An open file (`mode` 'w' for text, 'wb' for bytes) that replaces `path` when the block ends
  without an error; after an error it is removed and `path` stays as it was (an OSError, a full
  disk, names `path`)."""
  tmp = f'{path}.{uuid.uuid4().hex[:12]}.tmp'
  try:
    with open(tmp, mode, **({} if 'b' in mode else {'newline': ''})) as f:
      yield f
  except BaseException as e:
    if os.path.exists(tmp):
      os.remove(tmp)
    if isinstance(e, OSError) and not e.filename:  # a failed write names no file: name `path`
      raise OSError(e.errno, e.strerror, path) from e
    raise
  os.replace(tmp, path)


def write_bytes(path: str, data: bytes) -> None:
  """`data` as the file `path`, replaced whole."""
  with replaced_when_complete(path, 'wb') as f:
    f.write(data)

"""One build of a dataset version in a data_dir at a time, however it was started: by a run
(`datasets.ensure_built`), by `python -m forgery_jax.data.datasets build`, or by TFDS's own
`tfds build` on a folder of tfds_builders/. Every builder's `download_and_prepare` holds the lock
(`LockedBuild`), so a second build waits for the first and then finds the dataset ready, instead of
building it again and failing at TFDS's last rename, or removing the folder the first writes into."""

from __future__ import annotations

import contextlib
import os
import re
import shutil

from forgery_jax import locks
from forgery_jax import progress

# Lock files a caller of `download_and_prepare` holds already (`held_by_caller`): the build run
# in a child of the process holding the lock.
_HELD_BY_CALLER: set[str] = set()


def lock_file(builder) -> str:
  """The lock of a dataset version's build: beside the datasets of its data_dir (not among
  TFDS's folders)."""
  return os.path.join(builder.data_dir_root, '.locks',
                      f'{builder.name}.{builder.builder_config.name}.{builder.version}.lock')


def held(builder):
  """Holds the lock of `builder`'s build for a block, waiting for a build under way."""
  return locks.held(lock_file(builder),
                    waiting=f'{builder.info.full_name} is being built by {{holder}}; waiting for it')


@contextlib.contextmanager
def held_by_caller(builder):
  """For a block, `builder`'s build is guarded by a lock another process (the parent that
  started this one) holds: its `download_and_prepare` does not wait for it."""
  path = lock_file(builder)
  _HELD_BY_CALLER.add(path)
  try:
    yield
  finally:
    _HELD_BY_CALLER.discard(path)


def remove_unfinished(builder) -> None:
  """Removes the folders that builds of this dataset version left unfinished. TFDS removes its
  `incomplete.*` folder when a build fails or is stopped, but a build killed outright (the
  out-of-memory killer, SIGKILL) leaves it, often the size of the dataset. Called under the build
  lock, so no build is writing into them."""
  parent = os.path.dirname(builder.data_dir)
  unfinished = re.compile(rf'incomplete\.[A-Z0-9]{{6}}_{re.escape(os.path.basename(builder.data_dir))}')
  for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else ():
    path = os.path.join(parent, entry)
    if unfinished.fullmatch(entry) and os.path.isdir(path):
      shutil.rmtree(path, ignore_errors=True)
      progress.write(f'removed {path}: left by a build of {builder.info.full_name} that was killed')


class LockedBuild:
  """A TFDS builder's `download_and_prepare` under its build lock (put before the TFDS base
  class): it waits for a build under way, removes what killed builds left, then builds, or finds
  the dataset ready and reuses it as TFDS does."""

  def download_and_prepare(self, *args, **kwargs):
    guarded = lock_file(self) in _HELD_BY_CALLER
    with contextlib.nullcontext() if guarded else held(self):
      remove_unfinished(self)
      return super().download_and_prepare(*args, **kwargs)

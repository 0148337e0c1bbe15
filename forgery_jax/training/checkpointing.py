"""Orbax checkpoints of a training run: one manager keeps the latest N and the best.

Each checkpoint holds the train state (parameters, optimiser state), the data iterator's position
and a small JSON record (step, epoch, early-stopping bookkeeping). The best checkpoint (by the
validation rule of the trainer) is kept by the manager's preservation policy beside the latest N,
never as a second copy; which step is best is read from that record, so a resumed run keeps it
too. Orbax writes into a temporary folder and renames it when the save is complete, so a crash
mid-save never replaces a good checkpoint. An unreadable checkpoint is moved to
`checkpoints_unreadable/`, never deleted.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil

from absl import logging
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from forgery_jax import progress

CHECKPOINT_DIR = 'checkpoints'
UNREADABLE_DIR = 'checkpoints_unreadable'  # bad checkpoints are moved here, never deleted
_NOT_BEST = -1


class CheckpointError(RuntimeError):
  """A checkpoint in the workdir is unreadable or does not fit the config."""


class _KeepBest:
  """An Orbax preservation policy: keeps the checkpoint of the step the run's record names best.

  Not Orbax's `BestN`: it ranks checkpoints by the metrics given to `save`, which Orbax writes to
  disk only with a `best_fn`, so a resumed run knew no checkpoint's metrics and deleted the best
  one at its first save beyond the latest N."""

  def __init__(self):
    self.step = _NOT_BEST

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    del context
    return [checkpoint.step == self.step for checkpoint in checkpoints]


class RunCheckpoints:
  """The checkpoints of one workdir: save, resume from the newest readable, restore the best."""

  def __init__(self, workdir: str, keep: int):
    self.path = os.path.join(workdir, CHECKPOINT_DIR)
    self._best = _KeepBest()
    policy = policies.AnyPreservationPolicy([policies.LatestN(n=keep), self._best])
    self.manager = ocp.CheckpointManager(
        self.path, options=ocp.CheckpointManagerOptions(preservation_policy=policy, create=True),
        item_names=('state', 'data_iter', 'meta'))
    self._saving = None  # the step of the save in flight (Orbax saves in the background)

  def save(self, step: int, state, data_iter: dict, meta: dict) -> None:
    """Saves `step`; `meta['best_step']` is the run's best so far, kept beside the latest N.
    CheckpointError if this save, or the one before it still in flight, fails (a full disk)."""
    self.wait()  # the save before it, whose failure is its own
    self._saving = step
    self._best.step = meta.get('best_step', _NOT_BEST)
    with self._save_errors():
      self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                      data_iter=ocp.args.JsonSave(data_iter),
                                                      meta=ocp.args.JsonSave(meta)),
                        force=True)

  @contextlib.contextmanager
  def _save_errors(self):
    """A failed save as one CheckpointError naming the step, the cause and the newest complete
    checkpoint, from which the same command resumes (Orbax's message names its database files)."""
    try:
      yield
    except Exception as e:  # pylint: disable=broad-except
      complete = sorted(int(n) for n in os.listdir(self.path) if n.isdigit()) if os.path.isdir(
          self.path) else []
      newest = (f'the newest complete checkpoint is step {complete[-1]}' if complete
                else 'no checkpoint is complete yet, so it starts again')
      raise CheckpointError(
          f'{self.path}: saving the checkpoint of step {self._saving} failed ({_cause(e)}); '
          f'{newest}: make room or fix the folder, then run the same command to resume') from e

  def restore(self, step: int, abstract_state):
    """(step, state, data_iter, meta) of one checkpoint; CheckpointError if it cannot be read.

    The stored arrays' shapes and dtypes are compared with the state's first, from the
    checkpoint's metadata: a checkpoint of another config is refused before any array is read
    (a restore that fails part-way leaves reads in flight, which print tracebacks at exit)."""
    where = os.path.join(self.path, str(step))
    if not os.path.isdir(where):
      raise CheckpointError(f'{where} is missing: the checkpoint of step {step}, which this run '
                            'names, was removed. Nothing was changed')
    try:
      mismatch = _mismatch(os.path.join(where, 'state'), abstract_state)
      if mismatch:
        raise ValueError(mismatch)
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data_iter=ocp.args.JsonRestore(),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
          f'cannot restore the checkpoint at {where}: '
          f'{progress.one_line(e)}\nIt was written by a different config (model shape, dataset) '
          'or is damaged. Nothing was changed: use another --workdir, or move that checkpoint '
          'aside to resume from an earlier one.') from e
    return step, restored.state, restored.data_iter, restored.meta

  def restore_latest(self, abstract_state):
    """(step, state, data_iter, meta) of the newest readable checkpoint, or None if there is none.

    An unreadable one is skipped with a warning naming it; once an older one restores, the
    unreadable ones newer than it are moved to `checkpoints_unreadable/` (their step numbers will
    be written again), never deleted. If none restores (say, the workdir belongs to another
    config), the newest one's error is raised and nothing is moved.
    """
    failures = []
    steps = sorted(self.manager.all_steps(), reverse=True)
    for k, step in enumerate(steps):
      try:
        restored = self.restore(step, abstract_state)
      except CheckpointError as e:
        if k + 1 < len(steps):
          logging.warning('%s; trying an older checkpoint', str(e).split('\n')[0])
        failures.append((e, step))
        continue
      for _, bad_step in failures:
        self._move_aside(bad_step)
      self._best.step = restored[3].get('best_step', _NOT_BEST)  # kept until the run names another
      return restored
    if failures:
      raise failures[0][0]
    return None

  def _move_aside(self, step: int) -> None:
    source = os.path.join(self.path, str(step))
    target = os.path.join(os.path.dirname(self.path), UNREADABLE_DIR, f'{CHECKPOINT_DIR}_{step}')
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(source, target)
    self.manager.reload()
    logging.warning('moved the unreadable checkpoint %s to %s', source, target)

  def has(self, step: int) -> bool:
    return step in self.manager.all_steps()

  def steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def reached_preemption(self, step: int) -> bool:
    """Several processes: whether the preemption sync point (a SIGTERM on any of them) is here."""
    return self.manager.reached_preemption(step)

  def check(self) -> None:
    """CheckpointError if a save in the background has failed, without waiting for one in
    flight: a run stops within a log interval of a full disk, not a checkpoint interval later.
    One process only (several would not ask at the same step, and a wait may sync them)."""
    if (jax.process_count() == 1 and self._saving is not None
        and not self.manager.is_saving_in_progress()):
      self.wait()  # returns at once: nothing in flight, or the failure of what was

  def wait(self) -> None:
    """Until the save in flight is written; CheckpointError if it failed."""
    with self._save_errors():
      self.manager.wait_until_finished()

  def remove_all(self) -> None:
    """Closes the manager and deletes every checkpoint (a finished run keeps its inference
    export instead)."""
    self.wait()
    self.manager.close()
    if jax.process_index() == 0 and os.path.isdir(self.path):
      shutil.rmtree(self.path)

  def close(self) -> None:
    self.manager.close()


_OS_ERRORS = ('No space left on device', 'Disk quota exceeded', 'File too large',
              'Read-only file system', 'Permission denied', 'Input/output error')


def _cause(e: Exception) -> str:
  """What went wrong in a failed save, in a few words: the OS error when it names one."""
  if isinstance(e, OSError) and e.strerror:
    return e.strerror
  found = re.search('|'.join(map(re.escape, _OS_ERRORS)), str(e))
  return found.group(0) if found else f'{type(e).__name__}: {str(e)[:300]}'


def _leaf_name(path) -> str:
  """A pytree path as Orbax names a stored array: its keys joined by dots."""
  return '.'.join(str(getattr(k, 'key', getattr(k, 'idx', getattr(k, 'name', k)))) for k in path)


def _mismatch(state_dir: str, abstract_state) -> str:
  """The first array whose stored shape or dtype differs from the state's, or that one side
  lacks, as a sentence; '' when they agree or the metadata cannot be read (the restore then says
  what is wrong)."""
  handler = ocp.StandardCheckpointHandler()
  try:
    metadata = handler.metadata(pathlib.Path(state_dir))
  except Exception:  # pylint: disable=broad-except
    return ''
  finally:
    handler.close()
  stored = {_leaf_name(p): (tuple(m.shape), str(m.dtype))
            for p, m in jax.tree_util.tree_leaves_with_path(metadata) if hasattr(m, 'shape')}
  wanted = {_leaf_name(p): (tuple(a.shape), str(a.dtype))
            for p, a in jax.tree_util.tree_leaves_with_path(abstract_state)}
  if not stored:
    return ''
  for name in sorted(stored.keys() | wanted.keys()):
    if name not in stored:
      return f'the checkpoint holds no array {name}'
    if name not in wanted:
      return f'the checkpoint holds an array {name} the config has no place for'
    if stored[name] != wanted[name]:
      (shape, dtype), (want_shape, want_dtype) = stored[name], wanted[name]
      return (f'{name} is stored as {dtype} {shape}, the config makes it {want_dtype} '
              f'{want_shape}')
  return ''


def abstract_like(state):
  """ShapeDtypeStructs (with shardings) to restore `state` into."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)

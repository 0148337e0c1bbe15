"""Orbax checkpoints of a run: the latest N, plus the best by validation accuracy.

Each checkpoint holds the train state (parameters, optimiser state), the data
iterator's position and a small JSON record (step, epoch, early-stopping
bookkeeping). Orbax writes into a temporary folder and renames it when the
save is complete, so a crash mid-save never replaces a good checkpoint.
"""

from __future__ import annotations

import os

from absl import logging
import jax
import orbax.checkpoint as ocp

LATEST_DIR = 'checkpoints'
BEST_DIR = 'checkpoints_best'
UNREADABLE_DIR = 'checkpoints_unreadable'  # bad checkpoints are moved here, never deleted


class CheckpointError(RuntimeError):
  """A checkpoint in the workdir is unreadable or does not fit the config."""


def _manager(path: str, max_to_keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      path, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
      item_names=('state', 'data_iter', 'meta'))


class RunCheckpoints:
  """The two checkpoint managers of one workdir."""

  def __init__(self, workdir: str, keep: int):
    self.latest_path = os.path.join(workdir, LATEST_DIR)
    self.best_path = os.path.join(workdir, BEST_DIR)
    self.latest = _manager(self.latest_path, keep)
    self.best = _manager(self.best_path, 1)

  @staticmethod
  def _args(state, data_iter: dict, meta: dict):
    return ocp.args.Composite(state=ocp.args.StandardSave(state),
                              data_iter=ocp.args.JsonSave(data_iter),
                              meta=ocp.args.JsonSave(meta))

  def save_latest(self, step: int, state, data_iter: dict, meta: dict) -> None:
    self.latest.save(step, args=self._args(state, data_iter, meta), force=True)

  def save_best(self, step: int, state, data_iter: dict, meta: dict) -> None:
    self.best.save(step, args=self._args(state, data_iter, meta), force=True)

  def _restore(self, manager: ocp.CheckpointManager, path: str, abstract_state, step: int):
    where = os.path.join(path, str(step))
    try:
      restored = manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state),
          data_iter=ocp.args.JsonRestore(),
          meta=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
          f'cannot restore the checkpoint at {where}: {type(e).__name__}: {e}\n'
          'It was written by a different config (model shape, dataset) or is damaged. Nothing '
          'was changed: use another --workdir, or move that checkpoint aside to resume from an '
          'earlier one.') from e
    return step, restored.state, restored.data_iter, restored.meta

  def restore_latest(self, abstract_state):
    """(step, state, data_iter, meta) of the newest readable checkpoint, or None if there is none.

    Latest and best checkpoints are both candidates, newest first. An unreadable one is skipped
    with a warning naming it; once an older one restores, the unreadable ones newer than it are
    moved to `checkpoints_unreadable/` (their step numbers will be written again), never deleted.
    If none restores (say, the workdir belongs to another config), the newest one's error is raised
    and nothing is moved.
    """
    candidates = sorted([(s, 1, self.latest, self.latest_path) for s in self.latest.all_steps()]
                        + [(s, 0, self.best, self.best_path) for s in self.best.all_steps()],
                        key=lambda c: c[:2], reverse=True)
    failures = []
    for step, _, manager, path in candidates:
      try:
        restored = self._restore(manager, path, abstract_state, step)
      except CheckpointError as e:
        logging.warning('%s; trying an older checkpoint', str(e).split('\n')[0])
        failures.append((e, manager, path, step))
        continue
      for _, bad_manager, bad_path, bad_step in failures:
        self._move_aside(bad_manager, bad_path, bad_step)
      return restored
    if failures:
      raise failures[0][0]
    return None

  def _move_aside(self, manager: ocp.CheckpointManager, path: str, step: int) -> None:
    target = os.path.join(os.path.dirname(path), UNREADABLE_DIR, f'{os.path.basename(path)}_{step}')
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.replace(os.path.join(path, str(step)), target)
    manager.reload()
    logging.warning('moved the unreadable checkpoint %s to %s', os.path.join(path, str(step)), target)

  def restore_best(self, abstract_state):
    step = self.best.latest_step()
    return None if step is None else self._restore(self.best, self.best_path, abstract_state, step)

  def has_latest(self, step: int) -> bool:
    return step in self.latest.all_steps()

  def wait(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def abstract_like(state):
  """ShapeDtypeStructs (with shardings) to restore `state` into."""
  return jax.tree.map(ocp.utils.to_shape_dtype_struct, state)

"""Metrics of a run: JSON lines (`metrics.jsonl`) and TensorBoard events, in the workdir.

TensorBoard events are written with tensorboardX, so nothing on the training
path imports TensorFlow.
"""

from __future__ import annotations

import json
import math
import os

from tensorboardX import SummaryWriter

from forgery_jax import atomic

METRICS_FILE = 'metrics.jsonl'
CONFIG_FILE = 'config.json'


def truncate_metrics(workdir: str, length: int) -> None:
  """Cuts metrics.jsonl back to `length` bytes (lines written after a saved point)."""
  path = os.path.join(workdir, METRICS_FILE)
  if os.path.exists(path) and os.path.getsize(path) > length:
    os.truncate(path, length)


class MetricWriter:
  """Appends one JSON line per (split, step) and logs the scalars to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool = True, truncate_to: int | None = None):
    """`truncate_to`: the file's length when the resumed checkpoint was saved (0 for a run that
    starts at step 0); lines written after it (by a run killed before its next checkpoint) are
    cut, so no step appears twice."""
    self._enabled = enabled
    self._workdir = workdir
    if enabled:
      if truncate_to is not None:
        truncate_metrics(workdir, truncate_to)
      self._jsonl = open(os.path.join(workdir, METRICS_FILE), 'a')
      self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write_config(self, config) -> None:
    """The run's config.json, replaced whole (a resume compares itself with it)."""
    if self._enabled:
      with atomic.replaced_when_complete(os.path.join(self._workdir, CONFIG_FILE)) as f:
        f.write(config.to_json(indent=2, sort_keys=True))

  def write(self, split: str, step: int, values: dict) -> None:
    if not self._enabled:
      return
    self._jsonl.write(json.dumps({'split': split, 'step': int(step), **values}, sort_keys=True) + '\n')
    self._jsonl.flush()
    for k, v in values.items():
      if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        self._tb.add_scalar(f'{split}/{k}', v, step)
    self._tb.flush()

  def offset(self) -> int:
    """Bytes of metrics.jsonl written so far (saved with every checkpoint)."""
    return self._jsonl.tell() if self._enabled else 0

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tb.close()

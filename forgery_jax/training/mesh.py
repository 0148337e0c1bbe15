"""The device mesh: every device of every process on one `data` axis; batches sharded on it.

Kept apart from the trainer so that scoring (predict, the Python API) needs nothing of the input
pipeline.
"""

from __future__ import annotations

from typing import Callable

from flax import nnx
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named `data` over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ('data',))


def make_outputs(graphdef, mesh: Mesh, outputs_fn: Callable,
                 pick: Callable = lambda parts: parts[0]) -> Callable:
  """A jitted (state, batch) -> outputs_fn(model, batch), for the state of a model, or of a tuple
  whose model `pick` chooses (a training state: the model, its optimiser, ...); the batch sharded
  on `data`, the state replicated."""

  def outputs(state, batch):
    merged = nnx.merge(graphdef, state)
    model = pick(merged) if isinstance(merged, tuple) else merged
    return outputs_fn(model, batch)

  return jax.jit(outputs, in_shardings=(NamedSharding(mesh, P()), NamedSharding(mesh, P('data'))),
                 out_shardings=NamedSharding(mesh, P('data')))


def to_global(batch: dict, sharding: NamedSharding) -> dict:
  """This process's rows of a batch -> global arrays sharded on `data`."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def gather(x: jax.Array) -> np.ndarray:
  """A global array as one host array on every process."""
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))

"""What a JAX detector tells the trainer (`Task`), and the augmentations tasks share.

Kept apart from the trainer so that defining a detector (and scoring with it) imports nothing of
the input pipeline.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax


@dataclasses.dataclass(frozen=True)
class Task:
  """What a JAX detector tells the trainer.

  create_model(config, rngs) -> nnx.Module
  loss(model, batch, dropout_key) -> (scalar loss, dict of scalar metrics)   (training mode)
  outputs(model, batch) -> dict of per-example arrays, with 'probabilities' (N, K) (eval mode)
  augment(batch, key) -> batch, on the device inside the jitted step (or None)
  keys: the batch fields the model reads (besides `label`)
  eval_augment(batch) -> batch: applied to validation batches only, deterministically (e.g.
    forgeries synthesised from validation images when training sees no real forgery), or None
  """
  create_model: Callable
  loss: Callable
  outputs: Callable
  keys: tuple[str, ...]
  augment: Callable | None = None
  eval_augment: Callable | None = None


def compose(*augments: Callable | None) -> Callable | None:
  """One augment(batch, key) applying each given one in turn, each with its own key."""
  augments = [a for a in augments if a is not None]
  if not augments:
    return None

  def apply(batch, key):
    for a, k in zip(augments, jax.random.split(key, len(augments))):
      batch = a(batch, k)
    return batch

  return apply if len(augments) > 1 else augments[0]


def random_flips(batch: dict, key: jax.Array, keys: tuple[str, ...] = ('ela', 'image')) -> dict:
  """Each example's planes flipped left-right and/or up-down at random (the same for all its
  planes): flips keep every pixel and its compression grid phase, unlike resizes."""
  n = batch[keys[0]].shape[0]
  lr, ud = jax.random.bernoulli(key, 0.5, (2, n, 1, 1, 1))
  out = dict(batch)
  for k in keys:
    x = batch[k]
    x = jax.numpy.where(lr, x[:, :, ::-1], x)
    out[k] = jax.numpy.where(ud, x[:, ::-1], x)
  return out

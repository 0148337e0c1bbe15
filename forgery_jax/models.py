"""The dual-branch ELA + SRM network (Flax NNX).

Default is the published network exactly: per branch 2 x Conv(32, 3x3, ReLU,
same) -> MaxPool 2; concatenate the branches; Dropout 0.25; Flatten; Dense 256
ReLU; Dropout 0.5; Dense num_classes. The SRM branch's input is computed inside
the model from the RGB plane by a fixed (optionally trainable) convolution, so
it runs jitted on the accelerator.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from forgery_jax import srm

BRANCHES = ('ela', 'srm')


class SRMKernels(nnx.Variable):
  """Fixed SRM kernels: a variable type the optimiser does not update."""


class Branch(nnx.Module):
  """2 x Conv(features, 3x3, ReLU, same) -> MaxPool 2."""

  def __init__(self, in_features: int, features: int, *, dtype, rngs: nnx.Rngs):
    self.conv1 = nnx.Conv(in_features, features, (3, 3), padding='SAME', dtype=dtype, rngs=rngs)
    self.conv2 = nnx.Conv(features, features, (3, 3), padding='SAME', dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = nnx.relu(self.conv1(x))
    x = nnx.relu(self.conv2(x))
    return nnx.max_pool(x, (2, 2), strides=(2, 2))


class DualBranchCNN(nnx.Module):
  """ELA and/or SRM branches, concatenated, then the paper's dense head."""

  def __init__(self, *, num_classes: int, resolution: int,
               branches: Sequence[str] = BRANCHES, features: int = 32, hidden: int = 256,
               srm_trainable: bool = False, srm_clip: float = 3.0,
               dtype=jnp.float32, rngs: nnx.Rngs):
    branches = tuple(branches)
    unknown = set(branches) - set(BRANCHES)
    if not branches or unknown:
      raise ValueError(f'model.branches must be a non-empty subset of {BRANCHES}, got {branches}')
    self.branch_names = branches
    self.srm_clip = srm_clip
    self.dtype = dtype
    if 'srm' in branches:
      kernels = jnp.asarray(srm.srm_kernels())
      self.srm_kernels = nnx.Param(kernels) if srm_trainable else SRMKernels(kernels)
    self.ela_branch = Branch(3, features, dtype=dtype, rngs=rngs) if 'ela' in branches else None
    self.srm_branch = Branch(3, features, dtype=dtype, rngs=rngs) if 'srm' in branches else None
    flat = (resolution // 2) ** 2 * features * len(branches)
    self.dropout1 = nnx.Dropout(0.25)
    self.hidden = nnx.Linear(flat, hidden, dtype=dtype, rngs=rngs)
    self.dropout2 = nnx.Dropout(0.5)
    self.head = nnx.Linear(hidden, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, ela: jax.Array, image: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Class logits (float32) from uint8 ELA and RGB planes, both (N, H, W, 3)."""
    features = []
    if self.ela_branch is not None:
      features.append(self.ela_branch(ela.astype(self.dtype) / 255.0))
    if self.srm_branch is not None:
      # Residuals in grey levels, computed in float32 before any cast.
      residual = srm.srm_residual(image.astype(jnp.float32), self.srm_kernels.value, self.srm_clip)
      features.append(self.srm_branch(residual.astype(self.dtype)))
    x = jnp.concatenate(features, axis=-1)
    x = self.dropout1(x, deterministic=not train, rngs=rngs)
    x = x.reshape(x.shape[0], -1)
    x = nnx.relu(self.hidden(x))
    x = self.dropout2(x, deterministic=not train, rngs=rngs)
    return self.head(x).astype(jnp.float32)


def create_model(config, rngs: nnx.Rngs) -> DualBranchCNN:
  """Builds the model named by `config.model` for `config.dataset`."""
  dtype = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[config.model.dtype]
  return DualBranchCNN(
      num_classes=config.dataset.num_classes,
      resolution=config.dataset.resolution,
      branches=tuple(config.model.branches),
      features=config.model.features,
      hidden=config.model.hidden,
      srm_trainable=config.model.srm_trainable,
      srm_clip=config.model.srm_clip,
      dtype=dtype,
      rngs=rngs)

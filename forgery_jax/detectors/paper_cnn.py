"""The dual-branch ELA + SRM network (Flax NNX), and the detector that trains and runs it.

Default is the published network exactly: per branch 2 x Conv(32, 3x3, ReLU,
same) -> MaxPool 2; concatenate the branches; Dropout 0.25; Flatten; Dense 256
ReLU; Dropout 0.5; Dense num_classes. The SRM branch's input is computed inside
the model from the RGB plane by a fixed (optionally trainable) convolution, so
it runs jitted on the accelerator.

Options beyond the paper (configs/casia1_best.py):
* `srm_residuals='per_kernel'`: the 30 residuals of the grey image kept as 30 channels (a
  `lax.conv`), not averaged into one filter per colour;
* `head='pool'`: global mean and max pooling instead of the 67 M-parameter flatten-dense, so the
  decision rests on what is anywhere in the image, not on where;
* `copy_move=True`: the keypoint evidence of `forgery_jax.keypoints` joins the pooled features;
* `ela_source='device'`: ELA at quality 90 computed from the image inside the jitted model
  (`forensics.ela.ela_batch`) instead of read from the stored planes, so that forgeries
  synthesised on the device (`forgery_jax.synthesis`) have an ELA plane that follows them.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

import numpy as np
import optax

from forgery_jax import synthesis
from forgery_jax.detectors import base
from forgery_jax.detectors import nnx_detector
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.forensics import keypoints
from forgery_jax.forensics import srm
from forgery_jax.training import task as task_lib

BRANCHES = ('ela', 'srm')
ELA_SOURCES = ('stored', 'device')
HEADS = ('flatten', 'pool')
SRM_RESIDUALS = ('mean', 'per_kernel')


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
               srm_trainable: bool = False, srm_clip: float = 3.0, srm_residuals: str = 'mean',
               head: str = 'flatten', copy_move: bool = False, ela_source: str = 'stored',
               dtype=jnp.float32, rngs: nnx.Rngs):
    branches = tuple(branches)
    unknown = set(branches) - set(BRANCHES)
    if not branches or unknown:
      raise ValueError(f'model.branches must be a non-empty subset of {BRANCHES}, got {branches}')
    if head not in HEADS:
      raise ValueError(f'model.head must be one of {HEADS}, got {head!r}')
    if srm_residuals not in SRM_RESIDUALS:
      raise ValueError(f'model.srm_residuals must be one of {SRM_RESIDUALS}, got {srm_residuals!r}')
    if ela_source not in ELA_SOURCES:
      raise ValueError(f'model.ela_source must be one of {ELA_SOURCES}, got {ela_source!r}')
    if not srm_clip > 0:
      raise ValueError(f'model.srm_clip {srm_clip}: above 0 (residuals are clipped to +-srm_clip)')
    self.ela_source = ela_source
    self.branch_names = branches
    self.srm_clip = srm_clip
    self.srm_residuals = srm_residuals
    self.head_kind = head
    self.use_copy_move = copy_move
    self.dtype = dtype
    if 'srm' in branches:
      kernels = jnp.asarray(srm.srm_kernels())
      self.srm_kernels = nnx.Param(kernels) if srm_trainable else SRMKernels(kernels)
    srm_channels = srm.NUM_KERNELS if srm_residuals == 'per_kernel' else 3
    self.ela_branch = Branch(3, features, dtype=dtype, rngs=rngs) if 'ela' in branches else None
    self.srm_branch = Branch(srm_channels, features, dtype=dtype, rngs=rngs) if 'srm' in branches else None
    if head == 'flatten':
      flat = (resolution // 2) ** 2 * features * len(branches)
    else:  # mean and max of every channel
      flat = 2 * features * len(branches)
    flat += keypoints.NUM_FEATURES if copy_move else 0
    self.dropout1 = nnx.Dropout(0.25)
    self.hidden = nnx.Linear(flat, hidden, dtype=dtype, rngs=rngs)
    self.dropout2 = nnx.Dropout(0.5)
    self.head = nnx.Linear(hidden, num_classes, dtype=dtype, rngs=rngs)

  def __call__(self, ela: jax.Array, image: jax.Array, copy_move: jax.Array | None = None, *,
               train: bool = False, rngs: nnx.Rngs | None = None) -> jax.Array:
    """Class logits (float32) from uint8 ELA and RGB planes, both (N, H, W, 3), and with
    `copy_move=True` the (N, keypoints.NUM_FEATURES) keypoint evidence."""
    features = []
    if self.ela_branch is not None:
      if self.ela_source == 'device':
        ela = ela_lib.ela_batch(image.astype(jnp.uint8))
      features.append(self.ela_branch(ela.astype(self.dtype) / 255.0))
    if self.srm_branch is not None:
      # Residuals in grey levels, computed in float32 before any cast.
      image = image.astype(jnp.float32)
      if self.srm_residuals == 'per_kernel':
        residual = srm.srm_residuals_per_kernel(image, self.srm_kernels.value, self.srm_clip)
      else:
        residual = srm.srm_residual(image, self.srm_kernels.value, self.srm_clip)
      features.append(self.srm_branch(residual.astype(self.dtype)))
    x = jnp.concatenate(features, axis=-1)
    x = self.dropout1(x, deterministic=not train, rngs=rngs)
    if self.head_kind == 'flatten':
      x = x.reshape(x.shape[0], -1)
    else:
      x = jnp.concatenate([x.mean(axis=(1, 2)), x.max(axis=(1, 2))], axis=-1)
    if self.use_copy_move:
      if copy_move is None:
        raise ValueError('this model reads copy-move keypoint evidence: the batch has no `copy_move`')
      x = jnp.concatenate([x, copy_move.astype(x.dtype)], axis=-1)
    x = nnx.relu(self.hidden(x))
    x = self.dropout2(x, deterministic=not train, rngs=rngs)
    return self.head(x).astype(jnp.float32)


def create_model(config, rngs: nnx.Rngs) -> DualBranchCNN:
  """Builds the model named by `config.model` for `config.dataset`."""
  dtype = nnx_detector.model_dtype(config.model.dtype)
  return DualBranchCNN(
      num_classes=config.dataset.num_classes,
      resolution=config.dataset.resolution,
      branches=tuple(config.model.branches),
      features=config.model.features,
      hidden=config.model.hidden,
      srm_trainable=config.model.srm_trainable,
      srm_clip=config.model.srm_clip,
      srm_residuals=config.model.srm_residuals,
      head=config.model.head,
      copy_move=config.model.copy_move,
      ela_source=config.model.ela_source,
      dtype=dtype,
      rngs=rngs)


def _logits(model: DualBranchCNN, batch: dict, **kwargs) -> jax.Array:
  return model(batch.get('ela'), batch['image'], batch.get('copy_move'), **kwargs)


class PaperCnn(nnx_detector.NnxDetector):
  """The dual-branch CNN: class-weighted cross-entropy, Adam, early stopping (the paper)."""

  model_keys = ('branches', 'features', 'hidden', 'srm_trainable', 'srm_clip', 'srm_residuals',
                'head', 'copy_move', 'dtype', 'ela_source')

  @classmethod
  def task(cls, config, weights: np.ndarray | None):
    m = config.model
    keys = (('ela',) if m.ela_source == 'stored' else ()) + ('image',)
    synthesising = config.synthesis.fraction or config.synthesis.last_save
    keys += (('mask',) if synthesising else ()) + (('copy_move',) if m.copy_move else ())
    class_weights = None if weights is None else jnp.asarray(weights)

    def loss(model, batch, dropout_key):
      logits = _logits(model, batch, train=True, rngs=nnx.Rngs(dropout=dropout_key))
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
      accuracy = (logits.argmax(-1) == batch['label']).mean()
      return (class_weights[batch['label']] * ce).mean(), {'accuracy': accuracy}

    def outputs(model, batch):
      return {'probabilities': jax.nn.softmax(_logits(model, batch, train=False))}

    synthesise, eval_synthesise = synthesis.augments(config)
    planes = tuple(k for k in keys if k in ('ela', 'image', 'mask'))
    flips = ((lambda batch, key: task_lib.random_flips(batch, key, planes))
             if config.augment_flips else None)
    return task_lib.Task(create_model, loss, outputs, keys, task_lib.compose(synthesise, flips),
                         eval_synthesise)

  @classmethod
  def check_config(cls, config) -> None:
    if (config.synthesis.fraction or config.synthesis.last_save) and config.model.ela_source != 'device':
      raise ValueError('config.synthesis changes the pixels on the device, which the stored ELA '
                       "planes do not follow: set config.model.ela_source='device'")
    super().check_config(config)  # last: it builds the model from these settings

  def describe(self) -> str:
    return '+'.join(self.config.model.branches).upper()

  def saliency(self, examples: list[dict]) -> base.Scores:
    """Scores with gradient saliency maps: |d p_tampered / d input| summed over the ELA and RGB
    planes. It shows which pixels the decision rests on; it is not a segmentation."""
    if not hasattr(self, '_saliency_fn'):
      graphdef = self.graphdef

      def probs_and_saliency(state, batch):
        model = nnx.merge(graphdef, state)

        def p_tampered(ela, image):
          p = jax.nn.softmax(model(ela, image, batch.get('copy_move'), train=False))
          return 1.0 - p[:, 0].sum(), p

        ela = batch['ela'] if 'ela' in batch else ela_lib.ela_batch(batch['image'])
        (_, p), grads = jax.value_and_grad(p_tampered, argnums=(0, 1), has_aux=True)(
            ela.astype(jnp.float32), batch['image'].astype(jnp.float32))
        return p, jnp.abs(grads[0]).sum(-1) + jnp.abs(grads[1]).sum(-1)

      self._saliency_fn = jax.jit(probs_and_saliency)
    parts = []
    for lo in range(0, len(examples), self.batch_size):
      batch, n = self._stack(examples[lo:lo + self.batch_size])
      p, s = jax.device_get(self._saliency_fn(self.state, batch))
      parts.append(base.Scores(np.asarray(p[:n]), list(np.asarray(s[:n])), 'saliency'))
    return base.Scores.concatenate(parts, len(self.class_names))

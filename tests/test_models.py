"""The paper CNN: model shapes for every branch set, parameter count of the paper's net, fixed SRM kernels."""

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default
from forgery_jax.detectors import paper_cnn


@pytest.mark.parametrize('branches', [('ela', 'srm'), ('ela',), ('srm',)])
@pytest.mark.parametrize('num_classes', [2, 3])
def test_output_shapes(branches, num_classes):
  model = paper_cnn.DualBranchCNN(num_classes=num_classes, resolution=32, branches=branches,
                               rngs=nnx.Rngs(0))
  x = jnp.zeros((4, 32, 32, 3), jnp.uint8)
  assert model(x, x).shape == (4, num_classes)
  assert model(x, x, train=True, rngs=nnx.Rngs(dropout=1)).shape == (4, num_classes)


def test_paper_network_size_at_128():
  config = default.get_config()
  model = paper_cnn.create_model(config, nnx.Rngs(0))
  n = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  # 2 branches x (3*9*32+32 + 32*9*32+32) + 64*64*64*256+256 + 256*2+2
  assert n == 2 * (896 + 9248) + 67109120 + 514


def test_unknown_branch_is_rejected():
  with pytest.raises(ValueError, match='branches'):
    paper_cnn.DualBranchCNN(num_classes=2, resolution=32, branches=('ela', 'noise'), rngs=nnx.Rngs(0))


@pytest.mark.parametrize('trainable', [False, True])
def test_srm_kernels_fixed_unless_trainable(trainable):
  model = paper_cnn.DualBranchCNN(num_classes=2, resolution=16, srm_trainable=trainable, rngs=nnx.Rngs(0))
  before = np.asarray(model.srm_kernels.value)
  optimizer = nnx.Optimizer(model, optax.sgd(1.0), wrt=nnx.Param)
  rng = np.random.default_rng(0)
  img = jnp.asarray(rng.integers(0, 256, (4, 16, 16, 3)), jnp.uint8)

  def loss(m):
    return m(img, img).sum()

  grads = nnx.grad(loss)(model)
  optimizer.update(model, grads)
  changed = not np.allclose(before, np.asarray(model.srm_kernels.value))
  assert changed == trainable


def test_pooled_head_with_per_kernel_srm_and_copy_move_evidence():
  model = paper_cnn.DualBranchCNN(num_classes=3, resolution=32, features=8, hidden=16, head='pool',
                               srm_residuals='per_kernel', copy_move=True, rngs=nnx.Rngs(0))
  x = jnp.zeros((4, 32, 32, 3), jnp.uint8)
  evidence = jnp.zeros((4, 2), jnp.float32)
  assert model(x, x, evidence).shape == (4, 3)
  # Pooling: the same parameters read any resolution.
  y = jnp.zeros((2, 48, 40, 3), jnp.uint8)
  assert model(y, y, evidence[:2]).shape == (2, 3)
  n = sum(p.size for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
  assert n == (3 * 9 * 8 + 8 + 8 * 9 * 8 + 8) + (30 * 9 * 8 + 8 + 8 * 9 * 8 + 8) + (32 + 2) * 16 + 16 + 16 * 3 + 3
  # The evidence reaches the output; a model that reads it refuses a batch without it.
  assert not np.allclose(model(x, x, evidence), model(x, x, evidence + 3.0))
  with pytest.raises(ValueError, match='copy_move'):
    model(x, x)


def test_unknown_head_and_srm_mode_are_rejected():
  with pytest.raises(ValueError, match='model.head'):
    paper_cnn.DualBranchCNN(num_classes=2, resolution=32, head='attention', rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match='model.srm_residuals'):
    paper_cnn.DualBranchCNN(num_classes=2, resolution=32, srm_residuals='max', rngs=nnx.Rngs(0))

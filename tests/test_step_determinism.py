"""experiments/step_determinism.py: the table of whether training steps repeat, and where."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments import step_determinism


def test_the_digest_sees_one_bit_of_any_leaf():
  state = {'a': jnp.zeros(3, jnp.float32), 'b': {'c': jnp.ones((2, 2), jnp.bfloat16)}}
  flipped = np.zeros(3, np.float32)
  flipped.view(np.uint32)[1] = 1  # the smallest subnormal
  assert step_determinism._digest(state) == step_determinism._digest(jax.tree.map(jnp.copy, state))
  assert step_determinism._digest(state) != step_determinism._digest(dict(state, a=jnp.asarray(flipped)))


def test_processes_and_runs_of_a_cpu_step_agree(tmp_path):
  """On the CPU every step repeats: in one process, in fresh processes, and as run here."""
  args = ['--model=paper', '--crop=32', '--batch=2', '--steps=2', '--processes=2',
          '--flags=--xla_gpu_deterministic_ops=false', f'--json={tmp_path / "rows.json"}']
  (row,) = step_determinism.main(args)
  assert row['runs_equal'] and row['processes_equal'] and row['images_per_second'] > 0
  here = step_determinism.child('paper', 32, 2, 2, 'float32')
  assert row['digests'][0] == here['digests']
  assert (tmp_path / 'rows.json').exists()

"""One train step on an 8-device mesh equals the 1-device step, and an export written there is read
on one device (8 forced CPU devices in a subprocess)."""

import os
import pathlib
import subprocess
import sys
import textwrap

from flax import nnx
import jax
import numpy as np

from configs import tiny
from forgery_jax.detectors import export, paper_cnn

REPO = pathlib.Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import jax, numpy as np
    from configs import tiny
    from forgery_jax.detectors import paper_cnn
    from forgery_jax.training import mesh as mesh_lib
    from forgery_jax.training import trainer
    assert jax.device_count() == 8, jax.devices()
    config = tiny.get_config()
    config.dataset.resolution = 16
    rng = np.random.default_rng(0)
    batch = {'ela': rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
             'image': rng.integers(0, 256, (16, 16, 16, 3), dtype=np.uint8),
             'label': rng.integers(0, 2, 16).astype(np.int32)}
    weights = np.array([0.8, 1.3], np.float32)
    out = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = mesh_lib.make_mesh(devices)
      task = paper_cnn.PaperCnn.task(config, weights)
      graphdef, state = trainer.create_state(config, mesh, task)
      initial = jax.device_get(state)
      steps = trainer.make_steps(graphdef, mesh, task)
      for step in range(2):
        state, metrics = steps.train(state, mesh_lib.to_global(batch, steps.batch_sharding),
                                     jax.random.fold_in(jax.random.key(0), step))
      probs = steps.outputs(state, mesh_lib.to_global(batch, steps.batch_sharding))['probabilities']
      assert len(probs.sharding.device_set) == len(devices)
      final = jax.device_get(state)
      moved = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
                  for a, b in zip(jax.tree.leaves(initial), jax.tree.leaves(final)))
      assert moved > 1e-3, moved  # the steps really changed the parameters
      out.append((final, float(metrics['loss']), np.asarray(probs)))
    (s1, l1, p1), (s8, l8, p8) = out
    np.testing.assert_allclose(l1, l8, rtol=1e-5)
    np.testing.assert_allclose(p1, p8, atol=1e-5)
    leaves1, leaves8 = jax.tree.leaves(s1), jax.tree.leaves(s8)
    assert len(leaves1) == len(leaves8) > 0
    # Adam divides by sqrt(v): float reordering in near-zero gradients moves a parameter by a
    # few 1e-6, against steps of about 1e-3 (the learning rate).
    for a, b in zip(leaves1, leaves8):
      np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=1e-4, atol=2e-5)
    print('OK', len(leaves1), 'leaves equal; loss', l1, l8)
''')


def test_eight_device_step_equals_one_device_step():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'OK' in result.stdout


EXPORT_SCRIPT = textwrap.dedent('''
    import sys
    import jax
    from flax import nnx
    from configs import tiny
    from forgery_jax.data.preparation import Preparation
    from forgery_jax.detectors import export, paper_cnn
    from forgery_jax.training import mesh as mesh_lib
    assert jax.device_count() == 8, jax.devices()
    config = tiny.get_config()
    graphdef, state = nnx.split(paper_cnn.PaperCnn.task(config, None).create_model(
        config, nnx.Rngs(params=0)))
    replicated = jax.sharding.NamedSharding(mesh_lib.make_mesh(), jax.sharding.PartitionSpec())
    state = jax.device_put(state, replicated)  # as training leaves it: on every device of the mesh
    export.write(paper_cnn.PaperCnn(config, graphdef, state), sys.argv[1],
                 Preparation('resize', config.dataset.resolution))
''')


def test_an_export_written_on_eight_devices_is_read_on_one(tmp_path):
  """A run's export copied to a machine with fewer devices (a laptop) is a run there too. It was
  not: Orbax placed the arrays as the export recorded them, on the 8 devices that wrote it."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8', JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', EXPORT_SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert jax.device_count() < 8
  restored = export.load(str(tmp_path / export.EXPORT_DIR))
  config = tiny.get_config()
  _, expected = nnx.split(paper_cnn.PaperCnn.task(config, None).create_model(
      config, nnx.Rngs(params=0)))
  leaves = jax.tree.leaves(restored.state)
  assert len(leaves) == len(jax.tree.leaves(expected)) > 0
  for a, b in zip(leaves, jax.tree.leaves(expected)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

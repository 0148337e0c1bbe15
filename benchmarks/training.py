"""Training steps: the paper CNN against Keras, where its step time goes, synthesis, GPUs."""

from __future__ import annotations

import os
import subprocess
import sys

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import reference
from benchmarks.common import GPU_TARGET_IMAGES_PER_SECOND, REPO, Row, median_seconds, model_config
from configs import localiser_casia1
from forgery_jax import progress
from forgery_jax.data import datasets
from forgery_jax.detectors import localiser
from forgery_jax.detectors import paper_cnn
from forgery_jax.training import mesh as mesh_lib
from forgery_jax.training import trainer


def training_flops_per_image(config) -> float:
  """3 x the forward FLOPs of the paper's model (backward ~ 2 x forward), counted layer by layer:
  XLA's cost analysis does not see inside cuDNN convolutions."""
  r, f, h = config.dataset.resolution, config.model.features, config.model.hidden
  branches = len(config.model.branches)
  macs = 25 * 3 * r * r if 'srm' in config.model.branches else 0       # SRM stencil
  macs += branches * r * r * 9 * (3 * f + f * f)                        # 2 convs per branch
  macs += (r // 2) ** 2 * f * branches * h + h * config.dataset.num_classes  # dense head
  return 3 * 2 * macs


def cnn_steps(config, mesh):
  """The paper CNN's state and jitted steps, as the trainer makes them (class weights 1)."""
  task = paper_cnn.PaperCnn.task(config, np.ones(config.dataset.num_classes, np.float32))
  graphdef, state = trainer.create_state(config, mesh, task)
  return graphdef, state, trainer.make_steps(graphdef, mesh, task)


def random_batch(batch: int, resolution: int) -> dict:
  rng = np.random.default_rng(0)
  return {'ela': rng.integers(0, 256, (batch, resolution, resolution, 3), dtype=np.uint8),
          'image': rng.integers(0, 256, (batch, resolution, resolution, 3), dtype=np.uint8),
          'label': rng.integers(0, 2, batch).astype(np.int32)}


def our_step_rate(resolution: int, batch: int, steps: int, dtype: str = 'float32') -> float:
  """Training examples/s of the jitted step on device-resident inputs."""
  config = model_config(resolution, dtype)
  mesh = mesh_lib.make_mesh()
  _, state, step_fns = cnn_steps(config, mesh)
  inputs = mesh_lib.to_global(random_batch(batch, resolution), step_fns.batch_sharding)
  key = jax.random.key(0)
  box = {'state': state}

  def run():
    for _ in range(steps):
      box['state'], metrics = step_fns.train(box['state'], inputs, key)
    jax.block_until_ready(metrics)

  seconds = median_seconds(run, 3 if steps > 1 else 2, warmup=1)
  return batch * steps / seconds


def keras_step_rate(resolution: int, batch: int, steps: int) -> float:
  model = reference.keras_model(resolution)
  rng = np.random.default_rng(0)
  ela = rng.integers(0, 256, (batch, resolution, resolution, 3)).astype(np.float32) / 255
  residual = rng.uniform(-1, 1, (batch, resolution, resolution, 3)).astype(np.float32)
  labels = rng.integers(0, 2, batch)

  def run():
    for _ in range(steps):
      model.train_on_batch([ela, residual], labels)

  return batch * steps / median_seconds(run, 3 if steps > 1 else 2, warmup=1)


def training_rows(resolution: int, batches: tuple[int, ...], steps: int) -> list[Row]:
  rows = []
  for batch in batches:
    ours = our_step_rate(resolution, batch, steps)
    keras = keras_step_rate(resolution, batch, steps)
    rows.append(Row(f'train step {resolution}x{resolution}, batch {batch}', ours, keras, ours / keras,
                    'examples/s', 1.0, 'forgery_jax jit (SRM inside) vs Keras 3 / TF (SRM as input); '
                    'the goal is 2'))
  return rows


# XLA CPU options that could speed the paper CNN's step: oneDNN- and XNNPACK-backed kernels, fast
# math, Eigen's own threads off. Each is timed in a fresh process against the same step without it.
XLA_CPU_FLAGS = ('--xla_cpu_use_onednn=true', '--xla_cpu_experimental_onednn_custom_call=true',
                 '--xla_cpu_use_xnnpack=true',
                 '--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY',
                 '--xla_cpu_enable_fast_math=true', '--xla_cpu_multi_thread_eigen=false')


def _step_rate_in_process(xla_flags: str, resolution: int, batch: int, steps: int) -> float:
  code = ('from benchmarks import training; '
          f'print(training.our_step_rate({resolution}, {batch}, {steps}))')
  env = dict(os.environ, XLA_FLAGS=xla_flags)
  out = subprocess.run([sys.executable, '-c', code], cwd=REPO, env=env, capture_output=True,
                       text=True, check=True)
  return float(out.stdout.strip().splitlines()[-1])


def xla_flag_rows(resolution: int, batch: int, steps: int, flags=XLA_CPU_FLAGS) -> list[Row]:
  """The paper CNN's training step with each XLA CPU option against the step without any; a
  ratio above 1 would be worth keeping as a default."""
  plain = _step_rate_in_process('', resolution, batch, steps)
  rows = []
  for flag in flags:
    rate = _step_rate_in_process(flag, resolution, batch, steps)
    rows.append(Row(f'train step {resolution}x{resolution}, batch {batch}, XLA_FLAGS={flag}', rate,
                    plain, rate / plain, 'examples/s', None,
                    'fresh process each, against the same step with no XLA_FLAGS'))
  return rows


def profile_rows(resolution: int, batch: int, repeats: int) -> list[Row]:
  """Where a paper-CNN training step's time goes: each part timed alone (ms per step), as a
  share of the whole step. The parts overlap a little inside the fused step, so the shares need
  not add up to 1."""
  config = model_config(resolution)
  mesh = mesh_lib.make_mesh()
  graphdef, state, step_fns = cnn_steps(config, mesh)
  host = random_batch(batch, resolution)
  inputs = mesh_lib.to_global(host, step_fns.batch_sharding)
  key = jax.random.key(0)
  box = {'state': state}

  def step():
    box['state'], metrics = step_fns.train(box['state'], inputs, key)
    jax.block_until_ready(metrics)

  whole = median_seconds(step, repeats, warmup=1)
  model = paper_cnn.create_model(config, nnx.Rngs(params=0))

  def branches(m, ela, image):  # the convolution branches, SRM included, up to the concatenation
    image = image.astype(jnp.float32)
    residual = paper_cnn.srm.srm_residual(image, m.srm_kernels.value, m.srm_clip)
    return m.ela_branch(ela.astype(jnp.float32) / 255.0).sum() + m.srm_branch(residual).sum()

  conv_grad = jax.jit(nnx.grad(branches))
  ela, image = jnp.asarray(host['ela']), jnp.asarray(host['image'])
  conv = median_seconds(lambda: jax.block_until_ready(conv_grad(model, ela, image)), repeats)
  flat = (resolution // 2) ** 2 * config.model.features * 2
  features = jnp.ones((batch, flat), jnp.float32)
  dense_grad = jax.jit(nnx.grad(lambda m, x: m.head(nnx.relu(m.hidden(x))).sum()))
  dense = median_seconds(lambda: jax.block_until_ready(dense_grad(model, features)), repeats)
  optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)
  grads = jax.tree.map(jnp.ones_like, nnx.state(model, nnx.Param))

  @nnx.jit
  def update(opt, m, g):
    opt.update(m, g)

  adam = median_seconds(lambda: (update(optimizer, model, grads),
                                 jax.block_until_ready(nnx.state(model, nnx.Param))), repeats)
  put = median_seconds(lambda: jax.block_until_ready(mesh_lib.to_global(host, step_fns.batch_sharding)),
                       repeats)
  ms = 1e3
  label = f'{resolution}x{resolution}, batch {batch}'
  return [Row(f'train step profile {label}: {part}', seconds * ms, whole * ms, seconds / whole, 'ms/step',
              None, f'share of the whole step ({whole * ms:.0f} ms); {what}')
          for part, seconds, what in (
              ('convolutions', conv, 'SRM + both conv branches, forward and backward'),
              ('dense head', dense, f'{flat} x {config.model.hidden} dense + output, forward and backward'),
              ('optimiser', adam, 'Adam update of all 67 M parameters'),
              ('host', put, 'batch from host memory to the device'))]


def localiser_steps(batch: int, fraction: float, dtype: str = 'float32'):
  """The localiser of configs/localiser_casia1.py with `fraction` of each batch's rows forged on
  the device: its state and jitted steps, as the trainer makes them (class weights 1)."""
  config = localiser_casia1.get_config()
  config.synthesis.fraction = fraction
  config.model.dtype = dtype
  config.batch_size = batch
  task = localiser.Localiser.task(config, np.ones(2, np.float32))
  mesh = mesh_lib.make_mesh()
  graphdef, state = trainer.create_state(config, mesh, task)
  return graphdef, state, trainer.make_steps(graphdef, mesh, task)


def synthesis_rows(crop: int, batch: int, repeats: int) -> list[Row]:
  """The localiser's step with forgery synthesis against the same step on stored batches."""
  rates = {}
  for fraction in (0.0, 0.5):
    _, state, steps = localiser_steps(batch, fraction)
    rng = np.random.default_rng(0)
    host = {'image': rng.integers(0, 256, (batch, crop, crop, 3), dtype=np.uint8),
            'mask': np.zeros((batch, crop, crop, 1), np.uint8), 'has_mask': np.zeros(batch, bool),
            'label': np.zeros(batch, np.int32)}
    inputs = mesh_lib.to_global(host, steps.batch_sharding)
    box = {'state': state, 'i': 0}

    def step():
      box['i'] += 1
      box['state'], metrics = steps.train(box['state'], inputs, jax.random.key(box['i']))
      jax.block_until_ready(metrics)

    rates[fraction] = batch / median_seconds(step, repeats, warmup=1)
  ratio = rates[0.5] / rates[0.0]
  device = jax.devices()[0].platform
  return [Row(f'localiser step {crop}x{crop}, batch {batch}, with synthesis vs stored batches '
              f'({device})', rates[0.5], rates[0.0], ratio, 'images/s',
              0.9 if device == 'gpu' else None,
              f'synthesis costs {100 * (1 - ratio):.0f} % of the step (half the rows forged; a donor '
              'and a last JPEG save for every row); target on a GPU: at most 10 %')]


def step_rate_or_none(measure) -> float | None:
  """`measure()`, or None where the device ran out of memory (a batch too large for it: the rows
  of the batches that fit are kept, instead of the whole group failing)."""
  try:
    return measure()
  except jax.errors.JaxRuntimeError as e:
    if 'RESOURCE_EXHAUSTED' not in str(e):
      raise
    return None


def gpu_rows(data_dir: str | None, batches: tuple[int, ...]) -> list[Row]:
  """Training images/s on one GPU, float32 and bfloat16, the batch that saturates it, FLOP/s."""
  rows, best = [], (0.0, None, None)
  flops = training_flops_per_image(model_config(128))
  for dtype in ('float32', 'bfloat16'):
    rates, tried = {}, []
    for b in batches:
      rate = step_rate_or_none(lambda b=b: our_step_rate(128, b, 20, dtype))
      if rate is None:
        tried.append(f'{b}: out of device memory')
        progress.write(f'GPU train {dtype}, batch {b}: out of device memory; the batches after it skipped')
        break
      rates[b] = rate
      tried.append(f'{b}: {rate:.0f}')
      progress.write(f'GPU train {dtype}, batch {b}: {rate:.0f} images/s')
    if not rates:
      continue
    batch = max(rates, key=rates.get)
    rate = rates[batch]
    rows.append(Row(f'GPU train {dtype}, batch {batch}', rate, GPU_TARGET_IMAGES_PER_SECOND,
                    rate / GPU_TARGET_IMAGES_PER_SECOND, 'images/s', 1.0,
                    f'{jax.devices()[0].device_kind}; batches tried: ' + ', '.join(tried)
                    + f'; {rate * flops / 1e12:.1f} TFLOP/s at {flops / 1e9:.2f} GFLOP per image'))
    if rate > best[0]:
      best = (rate, dtype, batch)
  rate, dtype, batch = best
  if data_dir and batch:
    fed = fed_step_rate(data_dir, dtype, batch)
    rows.append(Row(f'GPU train {dtype}, batch {batch}, fed by the input pipeline', fed, rate, fed / rate,
                    'images/s', 1.0, f'device waits for input {100 * (1 - fed / rate):.0f} % of the '
                    f'time; {max(1, (os.cpu_count() or 2) - 2)} worker processes'))
  return rows


def fed_step_rate(data_dir: str, dtype: str, batch: int) -> float:
  """Training images/s with batches read from a prepared dataset (any release built at paper128)."""
  from benchmarks import data  # pylint: disable=g-import-not-at-top
  config = model_config(128, dtype)
  name = data.prepared_release(data_dir)
  config.dataset.update(name=name, builder_config='paper128', data_dir=data_dir)
  config.batch_size = batch
  config.num_epochs = 10_000
  config.input.worker_processes = max(1, (os.cpu_count() or 2) - 2)
  config.input.prefetch = 8
  mesh = mesh_lib.make_mesh()
  _, state, step_fns = cnn_steps(config, mesh)
  it = data.training_iterator_over_everything(datasets.get_builder(config.dataset), config)
  key = jax.random.key(0)
  for _ in range(5):
    state, metrics = step_fns.train(state, mesh_lib.to_global(next(it), step_fns.batch_sharding), key)
  jax.block_until_ready(metrics)
  import time  # pylint: disable=g-import-not-at-top
  steps = 30
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fns.train(state, mesh_lib.to_global(next(it), step_fns.batch_sharding), key)
  jax.block_until_ready(metrics)
  rate = steps * batch / (time.perf_counter() - start)
  it.close()
  return rate

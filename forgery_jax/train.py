"""Training and evaluation of the dual-branch detector, data-parallel over a device mesh.

`train_and_evaluate(config, workdir)` is the whole job: it builds the dataset
if needed, trains with `jax.jit` over a `Mesh` of every device (the batch
sharded on the `data` axis, the state replicated), evaluates on the validation
split every epoch with early stopping, keeps Orbax checkpoints (latest N and
best), resumes from the workdir, and writes the test metrics of the best
checkpoint to `workdir/results.json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import time

from absl import logging
from flax import nnx
import jax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
import optax

from forgery_jax import baselines
from forgery_jax import checkpointing
from forgery_jax import datasets
from forgery_jax import input_pipeline
from forgery_jax import metrics as metrics_lib
from forgery_jax import models
from forgery_jax import runs
from forgery_jax import splits
from forgery_jax import writers

RESULTS_FILE = runs.RESULTS_FILE
TEST_KEYS = ('accuracy', 'precision', 'recall', 'f1', 'auc')


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named `data` over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ('data',))


def learning_rate_schedule(config) -> optax.Schedule:
  """Adam's rate with Keras-style inverse-time decay: lr / (1 + decay * step)."""
  return lambda step: config.learning_rate / (1.0 + config.lr_decay * step)


def class_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
  """'Balanced' weights n / (k * n_c) from the training labels (1 for an absent class)."""
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  w = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 1.0)
  return w.astype(np.float32)


@dataclasses.dataclass
class Steps:
  """Jitted steps for one mesh, and how they shard a batch."""
  batch_sharding: NamedSharding
  train: callable
  evaluate: callable


def create_state(config, mesh: Mesh):
  """The model and optimiser, split into a graphdef and a replicated state."""
  model = models.create_model(config, nnx.Rngs(params=config.seed))
  optimizer = nnx.Optimizer(model, optax.adam(learning_rate_schedule(config)), wrt=nnx.Param)
  graphdef, state = nnx.split((model, optimizer))
  replicated = NamedSharding(mesh, P())
  return graphdef, jax.device_put(state, replicated)


def random_flips(batch: dict, key: jax.Array) -> dict:
  """Each example's planes flipped left-right and/or up-down at random (the same for all its
  planes): flips keep every pixel and its compression grid phase, unlike resizes."""
  n = batch['ela'].shape[0]
  lr, ud = jax.random.bernoulli(key, 0.5, (2, n, 1, 1, 1))
  out = dict(batch)
  for k in ('ela', 'image'):
    x = batch[k]
    x = jax.numpy.where(lr, x[:, :, ::-1], x)
    out[k] = jax.numpy.where(ud, x[:, ::-1], x)
  return out


def make_steps(graphdef, mesh: Mesh, weights: np.ndarray, augment_flips: bool = False) -> Steps:
  """jit-compiled train and eval steps; the batch is sharded on `data`, the state replicated."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  weights = jax.numpy.asarray(weights)

  def train_step(state, batch, key):
    model, optimizer = nnx.merge(graphdef, state)
    dropout_key, flip_key = jax.random.split(key)
    if augment_flips:
      batch = random_flips(batch, flip_key)

    def loss_fn(model):
      logits = model(batch['ela'], batch['image'], batch.get('copy_move'), train=True,
                     rngs=nnx.Rngs(dropout=dropout_key))
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label'])
      return (weights[batch['label']] * ce).mean(), logits

    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    accuracy = (logits.argmax(-1) == batch['label']).mean()
    return nnx.state((model, optimizer)), {'loss': loss, 'accuracy': accuracy}

  def eval_step(state, batch):
    model, _ = nnx.merge(graphdef, state)
    return jax.nn.softmax(model(batch['ela'], batch['image'], batch.get('copy_move'), train=False))

  train = jax.jit(train_step, in_shardings=(replicated, batch_sharding, replicated),
                  out_shardings=(replicated, replicated), donate_argnums=(0,))
  evaluate = jax.jit(eval_step, in_shardings=(replicated, batch_sharding),
                     out_shardings=batch_sharding)
  return Steps(batch_sharding, train, evaluate)


def to_global(batch: dict, sharding: NamedSharding) -> dict:
  """This process's rows of a batch -> global arrays sharded on `data`."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in batch.items()}


def _gather(x: jax.Array) -> np.ndarray:
  if jax.process_count() == 1:
    return np.asarray(x)
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def predict(steps: Steps, state, dataset, split: str, config) -> tuple[np.ndarray, np.ndarray]:
  """(probabilities, labels) of `state` on one split, every example once, in split order."""
  probs, labels, mask = [], [], []
  for batch in input_pipeline.eval_batches(dataset, split, config, process_index=jax.process_index(),
                                           process_count=jax.process_count()):
    inputs = to_global(batch, steps.batch_sharding)
    probs.append(_gather(steps.evaluate(state, inputs)))
    labels.append(_gather(inputs['label']))
    mask.append(_gather(inputs['mask']))
  probs, labels, mask = np.concatenate(probs), np.concatenate(labels), np.concatenate(mask)
  return probs[mask], labels[mask]


def evaluate(steps: Steps, state, dataset, split: str, config) -> dict:
  """Metrics of `state` on one split."""
  return metrics_lib.classification_metrics(*predict(steps, state, dataset, split, config))


def _validate(config) -> None:
  n = jax.device_count()
  for name in ('batch_size', 'eval_batch_size'):
    if config[name] % n:
      raise ValueError(f'config.{name}={config[name]} must be divisible by the {n} devices of the mesh')
  if config.dataset.split in splits.KFOLD_PROTOCOLS and not config.dataset.num_folds >= 2:
    raise ValueError('config.dataset.num_folds must be at least 2 for the kfold split')


class Preempted(RuntimeError):
  """Training stopped on SIGTERM after saving a checkpoint; the same command resumes it."""


@contextlib.contextmanager
def _sigterm_flag():
  """Yields a function telling whether SIGTERM arrived; the loop saves and stops at the next step."""
  received = []
  if threading.current_thread() is not threading.main_thread():
    yield lambda: False  # signal handlers can only be set from the main thread
    return
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
  try:
    yield lambda: bool(received)
  finally:
    signal.signal(signal.SIGTERM, previous)


def _cross_dataset(steps: Steps, state, config) -> dict:
  """Metrics on every example of `config.cross_dataset` (train on one dataset, test on another)."""
  cross = ml_collections.ConfigDict(config.to_dict())
  cross.dataset.update(name=config.cross_dataset.name,
                       builder_config=config.cross_dataset.builder_config,
                       manual_dir=config.cross_dataset.manual_dir)
  builder = datasets.ensure_built(cross.dataset)
  dataset = input_pipeline.load_dataset(builder, cross, all_for_test=True)
  probs, labels = predict(steps, state, dataset, 'test', cross)
  prefix = f'cross/{builder.info.full_name}'
  out = {f'{prefix}/{k}': v for k, v in metrics_lib.classification_metrics(probs, labels, dataset.class_names).items()}
  logging.info('cross-dataset %s: accuracy %.4f  auc %.4f', builder.info.full_name,
               out[f'{prefix}/accuracy'], out[f'{prefix}/auc'])
  return out


def improves(val: dict, meta: dict, ties: str = 'first') -> bool:
  """Early stopping's test: higher validation accuracy; with `ties='loss'`, also the same
  accuracy with a lower loss.

  The paper (Keras) keeps the first epoch of the best accuracy. On a small validation split
  accuracy soon stops moving (19 images take 20 values): breaking its ties by the loss keeps
  the checkpoint from being simply the first to reach a plateau.
  """
  if val['accuracy'] != meta['best_accuracy'] or ties == 'first':
    return val['accuracy'] > meta['best_accuracy']
  if ties != 'loss':
    raise ValueError(f"config.early_stopping_ties must be 'first' or 'loss', got {ties!r}")
  return val['loss'] < meta.get('best_loss', float('inf'))


def _test_examples(dataset) -> tuple[list, list, list]:
  """What identifies a dataset's test examples: file names (where kept), groups and labels."""
  idx = dataset.split.test
  names = [dataset.filenames[i] for i in idx] if dataset.filenames is not None else []
  return names, [dataset.groups[i] for i in idx], dataset.labels[idx].tolist()


def _also_test(steps: Steps, state, config, dataset) -> dict:
  """Metrics on the same test files as prepared by other builder configs (`dataset.also_test`),
  each beside its own shortcut baselines: e.g. the test images re-encoded at random qualities."""
  out = {}
  for name in config.dataset.also_test:
    other_config = ml_collections.ConfigDict(config.to_dict())
    other_config.dataset.builder_config = name
    other = input_pipeline.load_dataset(datasets.ensure_built(other_config.dataset), other_config)
    if _test_examples(dataset) != _test_examples(other):
      raise ValueError(f'dataset.also_test={name!r}: its test split holds other files than '
                       f'{config.dataset.builder_config!r} (a different release or version?)')
    probs, labels = predict(steps, state, other, 'test', other_config)
    m = metrics_lib.classification_metrics(probs, labels, other.class_names)
    out.update({f'test_{name}/{k}': v for k, v in m.items()})
    out.update({f'test_{name}/{k}': v for k, v in baselines.shortcut_baselines(other).items()})
    logging.info('test on %s: accuracy %.4f  auc %.4f', name, m['accuracy'], m['auc'])
  return out


def _train_one(config, workdir: str) -> dict:
  """One train/validation/test run in `workdir`; returns the results dict."""
  os.makedirs(workdir, exist_ok=True)
  if jax.process_index() == 0:
    datasets.ensure_built(config.dataset)  # one process builds; the others wait, then open it
  multihost_utils.sync_global_devices('dataset prepared')
  builder = datasets.ensure_built(config.dataset)
  dataset = input_pipeline.load_dataset(builder, config)
  logging.info('%s, split %r: %s', builder.info.full_name, config.dataset.split, dataset.split.sizes())
  train_labels = dataset.labels[dataset.split.train]
  weights = (class_weights(train_labels, config.dataset.num_classes) if config.class_weights
             else np.ones(config.dataset.num_classes, np.float32))
  logging.info('train class counts %s, class weights %s',
               np.bincount(train_labels, minlength=config.dataset.num_classes).tolist(), weights.tolist())

  mesh = make_mesh()
  graphdef, state = create_state(config, mesh)
  steps = make_steps(graphdef, mesh, weights, config.get('augment_flips', False))
  ckpts = checkpointing.RunCheckpoints(workdir, config.checkpoint.keep)
  abstract = checkpointing.abstract_like(state)
  train_iter = input_pipeline.train_iterator(dataset, config, process_index=jax.process_index(),
                                             process_count=jax.process_count())
  steps_per_epoch = len(dataset.split.train) // config.batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'the train split has {len(dataset.split.train)} examples, fewer than '
                     f'one batch of {config.batch_size}')
  total_steps = steps_per_epoch * config.num_epochs
  meta = {'step': 0, 'epoch': 0, 'best_accuracy': -1.0, 'best_loss': float('inf'), 'best_step': -1,
          'epochs_without_improvement': 0, 'stopped_early': False}
  restored = ckpts.restore_latest(abstract)
  resumed_from = 0
  if restored is not None:
    resumed_from, state, iter_state, meta = restored
    train_iter.set_state(iter_state)
    logging.info('Resumed from step %d (epoch %d) in %s', resumed_from, meta['epoch'], ckpts.latest_path)
  writer = writers.MetricWriter(workdir, enabled=jax.process_index() == 0,
                                truncate_to=meta.get('metrics_bytes') if restored else None)
  writer.write_config(config)

  base_key = jax.random.key(config.seed)
  step = int(meta['step'])
  t0, seen = time.perf_counter(), 0

  def save(manager_save):
    manager_save(step, state, train_iter.get_state(),
                 dict(meta, step=step, metrics_bytes=writer.offset()))

  with _sigterm_flag() as terminated:
    while step < total_steps and not meta['stopped_early']:
      if terminated():
        if not ckpts.has_latest(step):
          save(ckpts.save_latest)
        ckpts.wait()
        writer.close()
        raise Preempted(f'stopped by SIGTERM at step {step}; the checkpoint is in '
                        f'{ckpts.latest_path}: run the same command to resume')
      batch = to_global(next(train_iter), steps.batch_sharding)
      state, train_metrics = steps.train(state, batch, jax.random.fold_in(base_key, step))
      step += 1
      seen += config.batch_size
      if step % config.log_every_steps == 0 or step == total_steps:
        scalars = {k: float(v) for k, v in jax.device_get(train_metrics).items()}
        rate = seen / (time.perf_counter() - t0)
        scalars['examples_per_second'] = rate
        writer.write('train', step, scalars)
        logging.info('step %d/%d  epoch %.2f  loss %.4f  acc %.3f  %.1f examples/s', step, total_steps,
                     step / steps_per_epoch, scalars['loss'], scalars['accuracy'], rate)
        t0, seen = time.perf_counter(), 0
      if step % steps_per_epoch == 0:
        meta['epoch'] = step // steps_per_epoch
        val = evaluate(steps, state, dataset, 'validation', config)
        writer.write('validation', step, val)
        logging.info('epoch %d  validation accuracy %.4f  auc %.4f', meta['epoch'], val['accuracy'], val['auc'])
        if improves(val, meta, config.get('early_stopping_ties', 'first')):
          meta.update(best_accuracy=val['accuracy'], best_loss=val['loss'], best_step=step,
                      epochs_without_improvement=0)
          save(ckpts.save_best)
        else:
          meta['epochs_without_improvement'] += 1
          if meta['epochs_without_improvement'] >= config.early_stopping_patience:
            meta['stopped_early'] = True
            logging.info('Early stop: no validation improvement for %d epochs', config.early_stopping_patience)
        save(ckpts.save_latest)
        t0, seen = time.perf_counter(), 0
      elif config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0:
        save(ckpts.save_latest)
  ckpts.wait()
  if hasattr(train_iter, 'close'):
    train_iter.close()  # stops worker processes when config.input.worker_processes > 0

  best = ckpts.restore_best(abstract)
  if best is not None:
    best_step, state, _, _ = best
  else:
    best_step = step  # no epoch finished: use the last state
  test_probs, test_labels = predict(steps, state, dataset, 'test', config)
  test = metrics_lib.classification_metrics(test_probs, test_labels, dataset.class_names)
  writer.write('test', best_step, test)
  results = {f'test/{k}': v for k, v in test.items()}
  results.update(baselines.shortcut_baselines(dataset))
  results.update(baselines.accuracy_by_property(dataset, 'test', test_probs.argmax(1)))
  results.update(_also_test(steps, state, config, dataset))
  if config.cross_dataset.name:
    results.update(_cross_dataset(steps, state, config))
  results.update({
      'best_step': int(best_step), 'final_step': int(step), 'resumed_from_step': int(resumed_from),
      'best_validation_accuracy': float(meta['best_accuracy']), 'stopped_early': bool(meta['stopped_early']),
      'split_sizes': dataset.split.sizes(), 'class_names': list(dataset.class_names),
      'dataset': builder.info.full_name, 'num_devices': jax.device_count(),
      'config': config.to_dict()})
  if jax.process_index() == 0:
    runs.write_json_atomic(os.path.join(workdir, RESULTS_FILE), results)
  logging.info('test: %s', {k: round(results[f'test/{k}'], 4) for k in TEST_KEYS})
  writer.close()
  ckpts.close()
  return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Runs the job described by `config` in `workdir`; returns what results.json holds.

  With a k-fold split (`kfold`, `random_kfold`) and `config.dataset.fold < 0`, every fold
  runs in `workdir/fold_<k>` and results.json holds the mean over folds under the
  same `test/*` keys, with the per-fold values beside them.
  """
  _validate(config)
  return runs.run_folds(config, os.path.abspath(workdir), _train_one)

"""Training of the JAX detectors: data-parallel over a device mesh, early stopping, resumable.

`fit(config, dataset, run, task)` trains the Flax NNX model a detector describes with a `Task`
(its model, loss, evaluation outputs and on-device augmentation) with `jax.jit` over a `Mesh` of
every device (the batch sharded on the `data` axis, the state replicated), evaluates on the
validation split every epoch (or every k-th, `config.validate_every_epochs`) with early stopping
(with `config.ema_decay`, the parameters' moving average is what is validated and kept), keeps
Orbax checkpoints (the latest N and the best, one manager), resumes from the workdir (parameters, optimiser state, step, data-iterator position;
random keys are the seed folded with the step), and returns the best model.

Interruptions: SIGKILL at any moment leaves a run that the same command resumes bit-identically;
SIGTERM saves a checkpoint at the current step and raises `Preempted` (with several processes,
Orbax's preemption sync point makes every process save the same step); so does a first Ctrl-C
(SIGINT) of a run in one process, a second one stopping it at once.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import signal
import threading
import time
from typing import Callable

from absl import logging
from flax import nnx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np
import optax

from forgery_jax import progress
from forgery_jax import runs
from forgery_jax import writers
from forgery_jax.data import input_pipeline
from forgery_jax.evaluation import metrics as metrics_lib
from forgery_jax.evaluation import pixel_metrics
from forgery_jax.training import checkpointing
from forgery_jax.training import mesh as mesh_lib
from forgery_jax.training import task as task_lib


class Preempted(RuntimeError):
  """Training stopped on SIGTERM (or Ctrl-C) after saving a checkpoint; the same command resumes
  it. `signum`: the signal."""

  def __init__(self, message: str, signum: int = signal.SIGTERM):
    super().__init__(message)
    self.signum = signum


LR_SCHEDULES = ('inverse_time', 'cosine')
# The config keys (dotted; a trailing '.' names a whole section) that only this training step
# reads: a method that fits without it trains the same whatever they hold.
STEP_SETTINGS = ('learning_rate', 'lr_decay', 'lr_schedule', 'warmup_steps', 'ema_decay',
                 'batch_size', 'num_epochs', 'early_stopping_patience', 'validate_every_epochs',
                 'early_stopping_ties', 'early_stopping_metric', 'class_weights', 'augment_flips',
                 'log_every_steps', 'input.', 'checkpoint.')


def check_lr_schedule(config) -> str:
  """`config.lr_schedule` ('inverse_time' when absent), checked before any training."""
  name = config.get('lr_schedule', 'inverse_time')
  if name not in LR_SCHEDULES:
    raise ValueError(f'config.lr_schedule={name!r}: one of {LR_SCHEDULES}')
  return name


def learning_rate_schedule(config, total_steps: int | None = None) -> optax.Schedule:
  """Adam's rate: `inverse_time`, the paper's Keras-style decay lr / (1 + decay * step); or
  `cosine`, a linear warm-up over `warmup_steps` then a cosine to 0 at `total_steps` (the
  run's last step, so a short run still ends at a small rate)."""
  if check_lr_schedule(config) == 'inverse_time':
    return lambda step: config.learning_rate / (1.0 + config.lr_decay * step)
  warmup = int(config.get('warmup_steps', 0))
  if total_steps is None or total_steps <= warmup:
    raise ValueError(f"config.lr_schedule='cosine' needs more training steps ({total_steps}) "
                     f'than config.warmup_steps ({warmup})')
  return optax.warmup_cosine_decay_schedule(0.0, config.learning_rate, warmup, total_steps, 0.0)


def class_weights(counts: np.ndarray) -> np.ndarray:
  """'Balanced' weights n / (k * n_c) from per-class counts (1 for an absent class)."""
  counts = np.asarray(counts, np.float64)
  w = np.where(counts > 0, counts.sum() / (len(counts) * np.maximum(counts, 1e-9)), 1.0)
  return w.astype(np.float32)


def training_weights(config, dataset) -> np.ndarray:
  """Class weights of the config: balanced from the training labels, or all 1. With forgery
  synthesis, from the labels the batches hold after it (a share of the authentic rows become
  tampered ones)."""
  train_labels = dataset.labels[dataset.split.train]
  k = config.dataset.num_classes
  real = np.bincount(train_labels, minlength=k).astype(np.float64)
  forged = real[0] * config.synthesis.fraction if k == 2 else 0.0
  counts = real + np.array([-forged, forged]) if forged else real
  weights = class_weights(counts) if config.class_weights else np.ones(k, np.float32)
  synthesised = f' ({counts.round(1).tolist()} after synthesis)' if forged else ''
  logging.info('train class counts %s%s, class weights %s', real.astype(int).tolist(), synthesised,
               weights.tolist())
  return weights


def create_state(config, mesh: Mesh, task: task_lib.Task, total_steps: int | None = None):
  """The model and optimiser (and, with `config.ema_decay`, the parameters' moving average: a
  third copy of the model), split into a graphdef and a replicated state; `total_steps`: the
  run's length, for a schedule that ends with it."""
  model = initial_model(task.create_model, config)
  optimizer = nnx.Optimizer(model, optax.adam(learning_rate_schedule(config, total_steps)),
                            wrt=nnx.Param)
  average = ()
  if check_ema_decay(config):
    average = (nnx.clone(model),)  # its own buffers: the training step donates the state
    nnx.update(average[0], jax.tree.map(jnp.copy, nnx.state(average[0])))
  graphdef, state = nnx.split((model, optimizer, *average))
  return graphdef, jax.device_put(state, NamedSharding(mesh, P()))


_INITIALISERS: dict = {}  # (create_model, the config as JSON, but its fold) -> compiled initialiser


def initial_model(create_model: Callable, config) -> nnx.Module:
  """`create_model(config, nnx.Rngs(params=config.seed))`, initialised in one compiled program:
  run op by op, every initialiser of every shape compiles on its own (on a CPU, 12 s of a
  localiser run's start against 9 s). The program is kept for the runs of one config in this
  process (the folds of a k-fold run), which then compile nothing. The same bits either way
  (measured on an x86-64 CPU, for the paper CNN and the localiser)."""
  fields = config.to_dict()
  fields.get('dataset', {}).pop('fold', None)  # the folds of a k-fold run: one model, one program
  key = (create_model, json.dumps(fields, sort_keys=True, default=repr))
  if key not in _INITIALISERS:
    if len(_INITIALISERS) >= 4:
      _INITIALISERS.clear()
    frozen = copy.deepcopy(config)  # traced once: later changes to `config` cannot leak in
    _INITIALISERS[key] = nnx.jit(lambda: create_model(frozen, nnx.Rngs(params=frozen.seed)))
  return _INITIALISERS[key]()


def check_ema_decay(config) -> float:
  """`config.ema_decay` (0 when absent: no average), checked before any training."""
  decay = float(config.get('ema_decay', 0.0))
  if not 0.0 <= decay < 1.0:
    raise ValueError(f'config.ema_decay must be in [0, 1) (0: no moving average), got {decay}')
  return decay


def evaluated_model(merged):
  """The model of a merged training state that is validated, kept and exported: the moving
  average of the parameters when the run keeps one, else the trained model itself."""
  return merged[2] if len(merged) == 3 else merged[0]


def update_average(average: nnx.Module, model: nnx.Module, decay: float, step) -> None:
  """One step of the parameters' exponential moving average, after the optimiser's `step`-th
  update: average <- d * average + (1 - d) * parameters, d = min(decay, (1 + step) / (10 + step))
  (the warm-up lets a short run's average forget the initial weights); the model's other
  variables (fixed kernels) are copied."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step)).astype(jnp.float32)
  mean = jax.tree.map(lambda a, p: (d * a + (1.0 - d) * p).astype(p.dtype),
                      nnx.state(average, nnx.Param), nnx.state(model, nnx.Param))
  nnx.update(average, mean, nnx.state(model, nnx.Not(nnx.Param)))


@dataclasses.dataclass
class Steps:
  """Jitted steps for one mesh, and how they shard a batch."""
  batch_sharding: NamedSharding
  train: Callable
  outputs: Callable   # (state, batch) -> eval outputs
  validate: Callable  # the same on validation batches (after the task's eval_augment)


def make_steps(graphdef, mesh: Mesh, task: task_lib.Task, ema_decay: float = 0.0) -> Steps:
  """jit-compiled train and eval steps; the batch is sharded on `data`, the state replicated.
  The eval steps read `evaluated_model`; with a state that keeps a moving average, `ema_decay`
  is its decay."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))

  def train_step(state, batch, key):
    parts = nnx.merge(graphdef, state)
    if (len(parts) == 3) != bool(ema_decay):
      raise ValueError(f'make_steps(ema_decay={ema_decay}) for a state made '
                       f"{'with' if len(parts) == 3 else 'without'} a moving average")
    model, optimizer = parts[:2]
    dropout_key, augment_key = jax.random.split(key)
    if task.augment is not None:
      batch = task.augment(batch, augment_key)
    (loss, aux), grads = nnx.value_and_grad(
        lambda m: task.loss(m, batch, dropout_key), has_aux=True)(model)
    optimizer.update(model, grads)
    if len(parts) == 3:
      update_average(parts[2], model, ema_decay, optimizer.step.value)
    return nnx.state(parts), {'loss': loss, **aux}

  train = jax.jit(train_step, in_shardings=(replicated, batch_sharding, replicated),
                  out_shardings=(replicated, replicated), donate_argnums=(0,))
  outputs = mesh_lib.make_outputs(graphdef, mesh, task.outputs, evaluated_model)

  def validation_outputs(model, batch):
    if task.eval_augment is not None:
      batch = task.eval_augment(batch)
    out = dict(task.outputs(model, batch), label=batch['label'])
    if 'map' in out and 'mask' in batch:  # a map's F1 curve against the mask, not the map itself
      out['pixel_f1_curve'], out['pixel_scored'] = pixel_metrics.device_f1_curves(
          out.pop('map'), batch['mask'], (batch['label'] != 0) & batch.get('has_mask', True))
    return out

  validate = mesh_lib.make_outputs(graphdef, mesh, validation_outputs, evaluated_model)
  return Steps(batch_sharding, train, outputs, validate)


def predict(outputs_fn: Callable, batch_sharding: NamedSharding, state, dataset, indices,
            config, keys: tuple[str, ...], desc: str = '') -> tuple[dict, np.ndarray]:
  """(eval outputs, labels) of `state` on `dataset.source[indices]`, every example once, in
  order; the batches are sharded over every device of every process."""
  outs, labels, valid = [], [], []
  batches = input_pipeline.eval_batches(dataset, indices, config, keys,
                                        process_index=jax.process_index(),
                                        process_count=jax.process_count())
  total = -(-len(indices) // config.eval_batch_size)
  for batch in progress.bar(batches, total=total, desc=desc or f'scoring {dataset.name}',
                            unit='batch', leave=False):
    inputs = mesh_lib.to_global(batch, batch_sharding)
    outs.append({k: mesh_lib.gather(v) for k, v in outputs_fn(state, inputs).items()})
    labels.append(mesh_lib.gather(inputs['label']))
    valid.append(mesh_lib.gather(inputs['valid']))
  valid = np.concatenate(valid) if valid else np.zeros(0, bool)
  merged = {k: np.concatenate([o[k] for o in outs])[valid] for k in (outs[0] if outs else {})}
  labels = np.concatenate(labels)[valid] if labels else np.zeros(0, np.int32)
  return merged, merged.pop('label', labels)  # the outputs' labels, where an augment made them


SELECTION_METRICS = ('accuracy', 'pixel_f1', 'pixel_f1_best')


def improves(val: dict, meta: dict, ties: str = 'first', metric: str = 'accuracy') -> bool:
  """Early stopping's test: a higher validation `metric`; with `ties='loss'`, also the same
  score with a lower loss.

  The paper (Keras) keeps the first epoch of the best accuracy. On a small validation split
  accuracy soon stops moving (19 images take 20 values): breaking its ties by the loss keeps
  the checkpoint from being simply the first to reach a plateau. A detector that draws maps can
  be selected by a pixel score of its validation maps instead (`config.early_stopping_metric`).
  """
  best = meta.get('best_score', meta.get('best_accuracy'))  # checkpoints before best_score: accuracy
  score = val[metric]
  if score != best or ties == 'first':
    return score > best
  if ties != 'loss':
    raise ValueError(f"config.early_stopping_ties must be 'first' or 'loss', got {ties!r}")
  return val['loss'] < meta.get('best_loss', float('inf'))


def check_selection_metric(config) -> str:
  """`config.early_stopping_metric` (accuracy when absent), checked before any training."""
  metric = config.get('early_stopping_metric', 'accuracy')
  if metric not in SELECTION_METRICS:
    raise ValueError(f'config.early_stopping_metric must be one of {list(SELECTION_METRICS)}, '
                     f'got {metric!r}')
  return metric


@contextlib.contextmanager
def _stop_signal(checkpoints: checkpointing.RunCheckpoints):
  """Yields `received(step)`: the signal to save and stop at this step for, or None.

  One process: SIGTERM and a first Ctrl-C (SIGINT) set it (the work since the last checkpoint
  is kept, not lost to a KeyboardInterrupt); a second Ctrl-C interrupts at once, as the first
  would have (and an ignored SIGINT stays ignored). Several processes: JAX's preemption service
  catches SIGTERM on any of them and Orbax's sync point names the same step on all of them; a
  first Ctrl-C on any of them is passed to it as SIGTERM (as a KeyboardInterrupt it aborted that
  process and left the others waiting in their collectives).
  """
  several = jax.process_count() > 1
  received = []

  def stop_at(step):
    if several:
      return ((received[0] if received else signal.SIGTERM)
              if checkpoints.reached_preemption(step) else None)
    return received[0] if received else None

  if threading.current_thread() is not threading.main_thread():
    # Signal handlers can only be set from the main thread; JAX's service still hears SIGTERM.
    yield stop_at
    return

  def on_interrupt(signum, frame):
    del frame
    received.append(signum)
    signal.signal(signal.SIGINT, previous_int)  # a second Ctrl-C: at once
    progress.write('interrupted: a checkpoint is saved after this step, then training stops '
                   '(Ctrl-C again to stop at once, losing the steps since the last checkpoint)')
    if several:
      os.kill(os.getpid(), signal.SIGTERM)  # to JAX's preemption service: every process stops

  previous_term = (None if several else
                   signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum)))
  previous_int = signal.getsignal(signal.SIGINT)
  if previous_int is not signal.SIG_IGN:  # a run started with Ctrl-C ignored (nohup ... &) keeps it so
    signal.signal(signal.SIGINT, on_interrupt)
  try:
    yield stop_at
  finally:
    if not several:
      signal.signal(signal.SIGTERM, previous_term)
    signal.signal(signal.SIGINT, previous_int)


@dataclasses.dataclass
class Trained:
  """The best model of a fit: its graph, its state (no optimiser) and the run's record."""
  graphdef: object
  state: object
  info: dict
  mesh: Mesh
  checkpoints: checkpointing.RunCheckpoints | None = None  # still open, until `release`
  keep_final: bool = True

  def release(self) -> None:
    """Once the inference export is written: closes the checkpoints, and deletes them unless
    `config.checkpoint.keep_final` (a finished run then keeps only its export)."""
    if self.checkpoints is None:
      return
    if self.keep_final:
      self.checkpoints.close()
    else:
      self.checkpoints.remove_all()
    self.checkpoints = None


def check_resumable(config, workdir: str) -> None:
  """Refuses to resume a run under another training config than the one it started with (its
  config.json): the run would go on as another one (its split, rate or seed changed half-way),
  named by the new config alone."""
  path = os.path.join(workdir, writers.CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    before = json.load(f)
  changed = runs.changed_training_fields(before, config, runs.RESUME_FIELDS)
  if changed:
    raise ValueError(f'{workdir} holds an unfinished run of another training config (fields '
                     f'{changed}): resume it with the config it started with, or use another '
                     '--workdir')


def fit(config, dataset, workdir: str, task: task_lib.Task, weights: np.ndarray) -> Trained:
  """Trains `task`'s model on `dataset`; see the module docstring."""
  metric = check_selection_metric(config)
  ema_decay = check_ema_decay(config)
  steps_per_epoch = len(dataset.split.train) // config.batch_size
  if steps_per_epoch == 0:
    raise ValueError(f'the train split has {len(dataset.split.train)} examples, fewer than '
                     f'one batch of {config.batch_size}')
  total_steps = steps_per_epoch * config.num_epochs
  mesh = mesh_lib.make_mesh()
  graphdef, state = create_state(config, mesh, task, total_steps)
  steps = make_steps(graphdef, mesh, task, ema_decay)
  ckpts = checkpointing.RunCheckpoints(workdir, config.checkpoint.keep)
  abstract = checkpointing.abstract_like(state)
  keys = task.keys
  train_iter = input_pipeline.train_iterator(dataset, config, keys, process_index=jax.process_index(),
                                             process_count=jax.process_count())
  meta = {'step': 0, 'epoch': 0, 'best_accuracy': -1.0, 'best_score': -1.0,
          'best_loss': float('inf'), 'best_step': -1,
          'epochs_without_improvement': 0, 'stopped_early': False}
  if ckpts.steps():
    check_resumable(config, workdir)
  restored = ckpts.restore_latest(abstract)
  resumed_from = 0
  if restored is not None:
    resumed_from, state, iter_state, meta = restored
    meta.setdefault('best_score', meta['best_accuracy'])  # saved when accuracy was the only metric
    train_iter.set_state(iter_state)
    logging.info('Resumed from step %d (epoch %d) in %s', resumed_from, meta['epoch'], ckpts.path)
  # Lines past the restored checkpoint, or from an attempt that saved none, are cut: training
  # writes them again, and no step appears twice.
  writer = writers.MetricWriter(workdir, enabled=jax.process_index() == 0,
                                truncate_to=meta.get('metrics_bytes') if restored else 0)
  writer.write_config(config)

  base_key = jax.random.key(config.seed)
  step = int(meta['step'])
  t0, seen = time.perf_counter(), 0

  def save():
    ckpts.save(step, state, train_iter.get_state(),
               dict(meta, step=step, metrics_bytes=writer.offset()))

  def validate() -> dict:
    outputs, labels = predict(steps.validate, steps.batch_sharding, state, dataset,
                              dataset.split.validation, config, keys, desc='validation')
    scores = metrics_lib.classification_metrics(outputs['probabilities'], labels)
    if 'pixel_f1_curve' in outputs:
      scores.update(pixel_metrics.curve_scores(outputs['pixel_f1_curve'], outputs['pixel_scored']))
    if metric not in scores or not np.isfinite(scores[metric]):
      raise ValueError(f'config.early_stopping_metric={metric!r}: the validation split gives no '
                       f'such score (pixel scores need maps and tampered validation crops with '
                       f'a mask)')
    return scores

  every = config.get('validate_every_epochs', 1)
  if every < 1:
    raise ValueError(f'config.validate_every_epochs must be 1 or more, got {every}')
  validates = lambda epoch: epoch % every == 0 or epoch == config.num_epochs

  bar = progress.bar(total=total_steps, desc='training', unit='step')
  bar.update(step)
  with bar, _stop_signal(ckpts) as received:
    while step < total_steps and not meta['stopped_early']:
      signum = received(step)
      if signum is not None:
        if not ckpts.has(step):
          save()
        ckpts.wait()
        writer.close()
        raise Preempted(f'stopped by {signal.Signals(signum).name} at step {step}; the checkpoint '
                        f'is in {ckpts.path}: run the same command to resume', signum)
      batch = mesh_lib.to_global(next(train_iter), steps.batch_sharding)
      state, train_metrics = steps.train(state, batch, jax.random.fold_in(base_key, step))
      step += 1
      seen += config.batch_size
      bar.update(1)
      if step % config.log_every_steps == 0 or step == total_steps:
        ckpts.check()
        scalars = {k: float(v) for k, v in jax.device_get(train_metrics).items()}
        scalars['examples_per_second'] = seen / (time.perf_counter() - t0)
        writer.write('train', step, scalars)
        bar.set_postfix(loss=f"{scalars['loss']:.4f}", acc=f"{scalars['accuracy']:.3f}",
                        rate=f"{scalars['examples_per_second']:.1f}/s", refresh=False)
        t0, seen = time.perf_counter(), 0
      if step % steps_per_epoch == 0:
        meta['epoch'] = step // steps_per_epoch
        if validates(meta['epoch']):
          val = validate()
          writer.write('validation', step, val)
          logging.info('epoch %d  validation accuracy %.4f  auc %.4f%s', meta['epoch'],
                       val['accuracy'], val['auc'],
                       f"  pixel F1 {val['pixel_f1']:.4f} (best {val['pixel_f1_best']:.4f})"
                       if 'pixel_f1' in val else '')
          if improves(val, meta, config.early_stopping_ties, metric):
            meta.update(best_accuracy=val['accuracy'], best_score=val[metric],
                        best_loss=val['loss'], best_step=step, epochs_without_improvement=0)
          else:  # counts validations (epochs when every epoch validates)
            meta['epochs_without_improvement'] += 1
            if meta['epochs_without_improvement'] >= config.early_stopping_patience:
              meta['stopped_early'] = True
              logging.info('Early stop: no validation improvement for %d validations',
                           config.early_stopping_patience)
        save()
        t0, seen = time.perf_counter(), 0
      elif config.checkpoint.every_steps and step % config.checkpoint.every_steps == 0:
        save()
  ckpts.wait()
  if hasattr(train_iter, 'close'):
    train_iter.close()  # stops worker processes when config.input.worker_processes > 0
  metrics_bytes = writer.offset()
  writer.close()

  best_step = int(meta['best_step'])
  if best_step >= 0 and best_step != step:
    _, state, _, _ = ckpts.restore(best_step, abstract)
  elif best_step < 0:
    best_step = step  # no epoch finished: the last state
  model_graphdef, model_state = nnx.split(evaluated_model(nnx.merge(graphdef, state)))
  info = {'step': best_step, 'best_step': best_step, 'final_step': int(step),
          'resumed_from_step': int(resumed_from),
          'best_validation_accuracy': float(meta['best_accuracy']),
          'selected_by': metric, 'best_validation_score': float(meta['best_score']),
          'stopped_early': bool(meta['stopped_early']), 'num_epochs': int(config.num_epochs),
          'metrics_bytes': int(metrics_bytes)}
  return Trained(model_graphdef, model_state, info, mesh, ckpts, config.checkpoint.keep_final)

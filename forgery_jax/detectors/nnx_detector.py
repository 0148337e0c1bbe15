"""What the Flax NNX detectors share: training through `forgery_jax.training.trainer`, an export of
the model's variables (no optimiser state), and scoring jitted on the device.

A subclass gives `task(config, weights)`: its model, loss, eval outputs and augmentation.
"""

from __future__ import annotations

import os

from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from forgery_jax import progress
from forgery_jax import runs
from forgery_jax.detectors import base
from forgery_jax.training import mesh as mesh_lib

PARAMS_DIR = 'variables'
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}  # config.model.dtype


def model_dtype(name: str):
  """The compute dtype `config.model.dtype` names."""
  if name not in DTYPES:
    raise ValueError(f'config.model.dtype {name!r}: one of {tuple(DTYPES)}')
  return DTYPES[name]


_RESTORER = []


def _checkpointer() -> ocp.Checkpointer:
  """Writes the export's arrays uncompressed: trained weights hardly compress (the paper model's
  257 MB on disk to 238 MB), and reading them back without zstd takes half the time or less,
  which `predict` waits for before its first answer."""
  return ocp.Checkpointer(ocp.PyTreeCheckpointHandler(use_compression=False))


def _restorer() -> ocp.StandardCheckpointer:
  """One checkpointer for every restore of the process: its asynchronous reads finish inside
  its own event loop, which then stays open."""
  if not _RESTORER:
    _RESTORER.append(ocp.StandardCheckpointer())
  return _RESTORER[0]


class NnxDetector(base.Detector):
  """A detector whose model is a Flax NNX module (see the module docstring)."""

  batch_size = 16  # images per call of `score`: one compiled shape
  trains_in_step = True

  def __init__(self, config, graphdef, state, mesh=None, trained=None):
    super().__init__(config)
    self.graphdef, self.state = graphdef, state
    self._trained = trained
    self._mesh = mesh if mesh is not None else mesh_lib.make_mesh(jax.local_devices()[:1])
    self._task = self.task(config, None)
    self._outputs = mesh_lib.make_outputs(graphdef, self._mesh, self._task.outputs)

  @classmethod
  def task(cls, config, weights: np.ndarray | None):
    """The trainer's `Task` for this detector (`weights`: class weights; None when not training)."""
    raise NotImplementedError

  @classmethod
  def inputs(cls, config) -> tuple[str, ...]:
    return cls.task(config, None).keys

  @classmethod
  def check_config(cls, config) -> None:
    from forgery_jax.training import trainer  # pylint: disable=g-import-not-at-top
    metric = trainer.check_selection_metric(config)
    if metric != 'accuracy' and not cls.localises:
      raise ValueError(f'config.early_stopping_metric={metric!r} scores validation maps, which '
                       f'method {config.method!r} does not draw')
    trainer.check_ema_decay(config)
    trainer.check_lr_schedule(config)
    # The model is built in shapes only (no memory, no data), so that its constructor's own checks
    # (branch names, head, ...) fail now, not once the dataset is read; subclasses check their
    # settings first and call this last.
    nnx.eval_shape(lambda: cls.task(config, None).create_model(config, nnx.Rngs(0)))
    n = jax.device_count()
    for name in ('batch_size', 'eval_batch_size'):
      if config[name] % n:
        raise ValueError(f'config.{name}={config[name]} must be divisible by the {n} devices of '
                         'the mesh')

  @classmethod
  def finished(cls, config, workdir: str) -> NnxDetector | None:
    """A finished run whose checkpoints were released (`checkpoint.keep_final=False`) is
    evaluated again from its export; one of another training config is an error."""
    from forgery_jax.detectors import export  # pylint: disable=g-import-not-at-top
    from forgery_jax import writers  # pylint: disable=g-import-not-at-top
    from forgery_jax.training import checkpointing  # pylint: disable=g-import-not-at-top
    export_dir = os.path.join(workdir, export.EXPORT_DIR)
    if (not os.path.exists(os.path.join(export_dir, export.MANIFEST))
        or os.path.isdir(os.path.join(workdir, checkpointing.CHECKPOINT_DIR))):
      return None
    before = export.read_manifest(export_dir)['config']
    changed = runs.changed_training_fields(before, config)
    if changed:
      raise ValueError(
          f'{workdir} holds a finished run of another training config (fields {changed}); its '
          'training state was not kept (config.checkpoint.keep_final=False), so it cannot be '
          'continued: use another --workdir')
    detector = export.load(export_dir)
    if jax.process_index() == 0:  # the test row is written again
      writers.truncate_metrics(workdir, detector.info['metrics_bytes'])
    return detector

  @classmethod
  def fit(cls, config, dataset, run: base.Run) -> NnxDetector:
    from forgery_jax.training import trainer  # pylint: disable=g-import-not-at-top
    weights = trainer.training_weights(config, dataset)
    trained = trainer.fit(config, dataset, run.workdir, cls.task(config, weights), weights)
    detector = cls(config, trained.graphdef, trained.state, trained.mesh, trained)
    detector.info = trained.info
    return detector

  def after_export(self) -> None:
    if self._trained is not None:
      self._trained.release()

  def save(self, export_dir: str) -> None:
    checkpointer = _checkpointer()
    checkpointer.save(os.path.abspath(os.path.join(export_dir, PARAMS_DIR)),
                      args=ocp.args.PyTreeSave(self.state))
    checkpointer.close()

  @classmethod
  def restore(cls, config, export_dir: str) -> NnxDetector:
    task = cls.task(config, None)
    abstract = nnx.eval_shape(lambda: task.create_model(config, nnx.Rngs(params=0)))
    graphdef, abstract_state = nnx.split(abstract)
    # Replicated on the devices that score it: without a target, Orbax placed the arrays as the
    # export records they lay when saved, over the devices of every process that wrote it, which a
    # single process could not restore (a run trained as two processes failed in predict).
    devices = jax.devices() if jax.process_count() > 1 else jax.local_devices()[:1]
    replicated = jax.sharding.NamedSharding(mesh_lib.make_mesh(devices), jax.sharding.PartitionSpec())
    abstract_state = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated), abstract_state)
    try:
      state = _restorer().restore(os.path.abspath(os.path.join(export_dir, PARAMS_DIR)),
                                  abstract_state)
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(f'{export_dir}: cannot restore the model variables: '
                       f'{progress.one_line(e)}') from e
    return cls(config, graphdef, state)

  def _stack(self, examples: list[dict]) -> tuple[dict, int]:
    """One batch of `batch_size` rows (the last example repeated): one compiled shape."""
    n = len(examples)
    padded = examples + [examples[-1]] * (-n % self.batch_size)
    batch = {k: jnp.asarray(np.stack([np.asarray(e[k]) for e in padded]))
             for k in self._task.keys}
    return batch, n

  def score(self, examples: list[dict]) -> base.Scores:
    parts = []
    for lo in range(0, len(examples), self.batch_size):
      batch, n = self._stack(examples[lo:lo + self.batch_size])
      out = jax.device_get(self._outputs(self.state, batch))
      parts.append(self._scores(out, n))
    return base.Scores.concatenate(parts, len(self.class_names))

  def _scores(self, outputs: dict, n: int) -> base.Scores:
    maps = list(outputs['map'][:n]) if 'map' in outputs else None
    return base.Scores(np.asarray(outputs['probabilities'][:n]), maps)

  def score_split(self, dataset, indices: np.ndarray, batch_size: int = 0, desc: str = '',
                  keep_maps: bool = True) -> base.Scores:
    """Every device of every process shares the batches (config.eval_batch_size)."""
    del batch_size
    from forgery_jax.training import trainer  # pylint: disable=g-import-not-at-top
    sharding = jax.sharding.NamedSharding(self._mesh, jax.sharding.PartitionSpec('data'))
    outputs, _ = trainer.predict(self._outputs, sharding, self.state, dataset, indices, self.config,
                                 self._task.keys, desc=desc)
    if not keep_maps:
      outputs.pop('map', None)
    return self._scores(outputs, len(indices))

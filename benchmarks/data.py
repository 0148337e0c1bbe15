"""Data: dataset builds on 1 and all workers, and the input pipeline's rate per worker."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
import types

import jax
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

from benchmarks.common import GPU_TARGET_IMAGES_PER_SECOND, REPO, SHARED, Row, model_config
from forgery_jax.data import datasets
from forgery_jax.data import input_pipeline
from forgery_jax.data import release_builder
from forgery_jax.data import splits
from forgery_jax.detectors import paper_cnn
from forgery_jax.training import mesh as mesh_lib


def training_iterator_over_everything(builder, config):
  """A training iterator over every example of a prepared dataset (no split: throughput only)."""
  pooled = input_pipeline.load_dataset(builder, config, all_for_test=True)
  everything = np.arange(len(pooled.source))
  ds = dataclasses.replace(pooled, split=splits.Split(everything, everything[:0], everything[:0]))
  return input_pipeline.train_iterator(ds, config, paper_cnn.PaperCnn.inputs(config),
                                      process_index=0, process_count=1)


def prepared_release(data_dir: str) -> str:
  """The release built at paper128 in `data_dir` that the pipeline and GPU rows read (casia1, else
  micc_f220); ValueError saying how to build one when neither is there, before any row is timed
  (else the rows would build one into a mistyped folder, or fail after the GPU rows)."""
  if not os.path.isdir(data_dir):
    raise ValueError(f'--data_dir={data_dir}: no such folder')
  for name in ('casia1', 'micc_f220'):
    dataset = types.SimpleNamespace(name=name, builder_config='paper128', resolution=128,
                                    data_dir=data_dir)
    if datasets.get_builder(dataset).is_prepared():
      return name
  raise ValueError(f'--data_dir={data_dir}: neither casia1 nor micc_f220 is built there at paper128 '
                   '(python -m forgery_jax.data.datasets build --name=casia1 --builder_config=paper128 '
                   f'--data_dir={data_dir} --manual_dir=RELEASE)')


def _manual_dir(quick: bool) -> str:
  real = os.path.join(SHARED, 'datasets', 'casia1')
  return real if os.path.isdir(real) and not quick else os.path.join(REPO, 'tfds_builders', 'casia1', 'dummy_data')


def _build_rate(manual_dir: str, workers: int) -> tuple[float, int]:
  with tempfile.TemporaryDirectory() as data_dir:
    old = os.environ.get(release_builder.WORKERS_ENV)
    os.environ[release_builder.WORKERS_ENV] = str(workers)
    try:
      start = time.perf_counter()
      datasets.build('casia1', 'paper128', data_dir, manual_dir)
      seconds = time.perf_counter() - start
    finally:
      if old is None:
        os.environ.pop(release_builder.WORKERS_ENV, None)
      else:
        os.environ[release_builder.WORKERS_ENV] = old
    builder = datasets.builder_class('casia1')(config='paper128', data_dir=data_dir)
    n = builder.info.splits['train'].num_examples
  return n / seconds, n


def build_row(quick: bool) -> Row:
  manual = _manual_dir(quick)
  cores = os.cpu_count() or 1
  single, n = _build_rate(manual, 1)
  parallel, _ = _build_rate(manual, cores)
  return Row(f'dataset build casia1/paper128 with keypoint evidence, {cores} workers vs 1', parallel,
             single, parallel / single, 'images/s', 0.9 * cores,
             f'{n} images from {os.path.relpath(manual, os.path.dirname(REPO))}, whole build incl. '
             'TFDS writing; decoding, ELA and SIFT in worker processes')


def _pipeline_rate(config, batches: int) -> float:
  it = training_iterator_over_everything(datasets.ensure_built(config.dataset), config)
  sharding = NamedSharding(mesh_lib.make_mesh(), P('data'))
  for _ in range(3):
    jax.block_until_ready(mesh_lib.to_global(next(it), sharding))
  start = time.perf_counter()
  for _ in range(batches):
    jax.block_until_ready(mesh_lib.to_global(next(it), sharding))
  rate = batches * config.batch_size / (time.perf_counter() - start)
  if hasattr(it, 'close'):
    it.close()
  return rate


def pipeline_rows(data_dir: str | None, quick: bool, step_rate: float, batch: int) -> list[Row]:
  """Examples/s from a built dataset through grain to device arrays: with the default threads
  against the training step, and per worker process (what decides how many a fed GPU needs).
  `data_dir`: where one is built (`prepared_release`); None: casia1 is built into a temporary one."""
  with tempfile.TemporaryDirectory() as tmp:
    config = model_config(128)
    name = prepared_release(data_dir) if data_dir else 'casia1'
    config.dataset.update(name=name, builder_config='paper128', data_dir=data_dir or tmp,
                          manual_dir=_manual_dir(quick))
    config.num_epochs = 1000
    config.batch_size = batch
    batches = 20 if quick else 200
    threads = _pipeline_rate(config, batches)
    rows = [Row(f'input pipeline vs train step, batch {batch}', threads, step_rate, threads / step_rate,
                'examples/s', 1.0, f'{name}/paper128 via grain, {config.input.num_threads} threads, '
                'raw planes + device put')]
    config.batch_size = 256 if not quick else 16
    per_worker = {}
    for workers in (1, 2):
      config.input.worker_processes = workers
      per_worker[workers] = _pipeline_rate(config, 10 if quick else 60) / workers
    needed = math.ceil(GPU_TARGET_IMAGES_PER_SECOND / per_worker[1])
    rows.append(Row(f'input pipeline per worker process, batch {config.batch_size} (1 worker; 2 '
                    f'workers: {per_worker[2]:.0f} each)', per_worker[1], None, None, 'images/s', None,
                    f'{needed} such workers would feed {GPU_TARGET_IMAGES_PER_SECOND} images/s '
                    f'(this host has {os.cpu_count()} cores)'))
  return rows

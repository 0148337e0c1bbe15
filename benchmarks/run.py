"""Every hot path of forgery_jax against what a user would run instead, side by side in one process.

    python -m benchmarks.run [--quick] [--json OUT] [--data_dir DIR]

Prints one row per measurement: ours, the reference, their ratio (how many times better ours is)
and the target ratio the project holds itself to. Times are medians over repeats; the inputs are
named in each row and the machine (cores, CPU, JAX devices) in the header. `--quick` shrinks every
input so that the whole table prints in about a minute (the test suite runs it); its figures are
not measurements. Real photos come from ../shared/datasets/casia1 (or $FORGERY_JAX_SHARED) when
present, else from the photographs bundled with scikit-image.
GPU rows are measured only when JAX's default backend is a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import glob
import json
import os
import platform
import statistics
import tempfile
import time

from absl import flags
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
import ml_collections
import numpy as np
from PIL import Image

from benchmarks import reference
from configs import default as default_config
from forgery_jax import image_io
from forgery_jax.data import datasets
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.data import input_pipeline
from forgery_jax.data import release_builder
from forgery_jax.data import splits
from forgery_jax.forensics import srm
from forgery_jax.data import synthetic
from forgery_jax.detectors import paper_cnn
from forgery_jax.training import mesh as mesh_lib
from forgery_jax.training import trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get('FORGERY_JAX_SHARED', os.path.join(os.path.dirname(REPO), 'shared'))
GPU_TARGET_IMAGES_PER_SECOND = 20_000


@dataclasses.dataclass
class Row:
  name: str
  ours: float
  reference: float | None
  ratio: float | None   # how many times better ours is
  unit: str
  target: float | None  # the ratio asked for, or None
  inputs: str = ''

  def line(self) -> str:
    fmt = lambda v: '-' if v is None else f'{v:.4g}'
    met = '' if self.target is None or self.ratio is None else ('  ok' if self.ratio >= self.target else '  MISSED')
    return (f'| {self.name} | {fmt(self.ours)} | {fmt(self.reference)} | {fmt(self.ratio)} | '
            f'{self.unit} | {fmt(self.target)}{met} | {self.inputs} |')


def median_seconds(fn, repeats: int, warmup: int = 1) -> float:
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  with contextlib.suppress(OSError):
    with open('/proc/cpuinfo') as f:
      cpu = next((l.split(':', 1)[1].strip() for l in f if l.startswith('model name')), cpu)
  return f'{os.cpu_count()} cores ({cpu}); JAX {jax.__version__} devices: {jax.devices()}'


def photos(count: int) -> tuple[list[np.ndarray], str]:
  """Real photos: CASIA v1 authentic images if present, else the bundled ones."""
  files = sorted(glob.glob(os.path.join(SHARED, 'datasets', 'casia1', 'Au', '*.jpg')))[:count]
  if files:
    return [np.asarray(Image.open(f).convert('RGB')) for f in files], f'{len(files)} casia1 Au photos'
  bundled = [synthetic.load_photo(p, f) for p, f in synthetic.PHOTOS][:count]
  return bundled, f'{len(bundled)} bundled photos'


def large_photo(source: np.ndarray) -> np.ndarray:
  """A 2048x1536 photo: a real one upscaled, saved as JPEG (quality 92) and decoded."""
  big = Image.fromarray(source).resize((2048, 1536), Image.BICUBIC)
  return image_io.jpeg_roundtrip(np.asarray(big), 92)


def training_iterator_over_everything(builder, config):
  """A training iterator over every example of a prepared dataset (no split: throughput only)."""
  pooled = input_pipeline.load_dataset(builder, config, all_for_test=True)
  everything = np.arange(len(pooled.source))
  ds = dataclasses.replace(pooled, split=splits.Split(everything, everything[:0], everything[:0]))
  return input_pipeline.train_iterator(ds, config, paper_cnn.PaperCnn.inputs(config),
                                      process_index=0, process_count=1)


def ela_rows(images: list[np.ndarray], label: str, repeats: int) -> list[Row]:
  pil_images = [Image.fromarray(im) for im in images]
  # As the dataset builders run it: one image per thread, OpenCV's own parallel loops off
  # (for every contender alike; the JPEG codecs are single-threaded anyway).
  with image_io.opencv_threads(1):
    ours = median_seconds(lambda: [ela_lib.ela(im) for im in images], repeats) / len(images)
    paper = median_seconds(lambda: [reference.paper_ela(im) for im in pil_images], repeats) / len(images)
    floors = {name: median_seconds(lambda c=codec: [c(im) for im in images], repeats) / len(images)
              for name, codec in reference.jpeg_codecs().items()}
  fastest = min(floors, key=floors.get)
  ms = 1e3
  return [
      Row(f'ela vs paper recipe ({label})', ours * ms, paper * ms, paper / ours, 'ms/image', 5.0,
          'PIL temp file + ImageChops + ImageEnhance'),
      Row(f'ela vs codec floor ({label})', ours * ms, floors[fastest] * ms, floors[fastest] / ours,
          'ms/image', 1 / 1.3, f'one encode+decode, fastest installed codec: {fastest}; '
          'OpenCV on 1 thread per image, as in the builders'),
  ]


def srm_rows(images: list[np.ndarray], batch: int, repeats: int) -> list[Row]:
  h, w = images[0].shape[:2]
  stack = np.stack([im[:h, :w] for im in images if im.shape[:2] == (h, w)][:batch])
  stack = np.concatenate([stack] * (batch // len(stack) + 1))[:batch]
  kernels = jnp.asarray(srm.srm_kernels())
  fn = jax.jit(srm.srm_residual)
  x = jnp.asarray(stack, jnp.float32)
  ours = median_seconds(lambda: fn(x, kernels).block_until_ready(), repeats, warmup=2) / batch
  paper = median_seconds(lambda: [reference.paper_srm(im) for im in stack], repeats) / batch
  return [Row(f'srm residual {h}x{w}, batch {batch}', ours * 1e3, paper * 1e3, paper / ours,
              'ms/image', 20.0, f'jitted stencil on {jax.devices()[0].platform} vs 30 kernels x 3 channels of cv2.filter2D')]


def _model_config(resolution: int, dtype: str = 'float32') -> ml_collections.ConfigDict:
  config = default_config.get_config()
  config.dataset.resolution = resolution
  config.model.dtype = dtype
  return config


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


def our_step_rate(resolution: int, batch: int, steps: int, dtype: str = 'float32') -> float:
  """Training examples/s of the jitted step on device-resident inputs."""
  config = _model_config(resolution, dtype)
  mesh = mesh_lib.make_mesh()
  graphdef, state, step_fns = cnn_steps(config, mesh)
  rng = np.random.default_rng(0)
  batch_np = {'ela': rng.integers(0, 256, (batch, resolution, resolution, 3), dtype=np.uint8),
              'image': rng.integers(0, 256, (batch, resolution, resolution, 3), dtype=np.uint8),
              'label': rng.integers(0, 2, batch).astype(np.int32)}
  inputs = mesh_lib.to_global(batch_np, step_fns.batch_sharding)
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
                    'examples/s', 2.0, 'forgery_jax jit (SRM inside) vs Keras 3 / TF (SRM as input)'))
  return rows


def _build_rate(manual_dir: str, workers: int | None) -> tuple[float, int]:
  with tempfile.TemporaryDirectory() as data_dir:
    old = os.environ.get(release_builder.WORKERS_ENV)
    os.environ[release_builder.WORKERS_ENV] = str(workers or '')
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
  real = os.path.join(SHARED, 'datasets', 'casia1')
  manual = real if os.path.isdir(real) and not quick else os.path.join(REPO, 'tfds_builders', 'casia1', 'dummy_data')
  cores = os.cpu_count() or 1
  single, n = _build_rate(manual, 1)
  parallel, _ = _build_rate(manual, cores)
  return Row(f'dataset build casia1/paper128, {cores} workers vs 1', parallel, single, parallel / single,
             'images/s', 0.8 * cores, f'{n} images from {os.path.relpath(manual, os.path.dirname(REPO))}, '
             'whole build incl. TFDS writing')


def pipeline_row(data_dir: str | None, quick: bool, step_rate: float, batch: int) -> Row:
  """Examples/s from a built dataset through grain to device arrays vs the training step's rate."""
  manual = os.path.join(SHARED, 'datasets', 'casia1')
  if quick or not os.path.isdir(manual):
    manual = os.path.join(REPO, 'tfds_builders', 'casia1', 'dummy_data')
  with tempfile.TemporaryDirectory() as tmp:
    config = _model_config(128)
    config.dataset.update(name='casia1', builder_config='paper128', data_dir=data_dir or tmp,
                          manual_dir=manual)
    config.batch_size = batch
    config.num_epochs = 1000
    it = training_iterator_over_everything(datasets.ensure_built(config.dataset), config)
    sharding = NamedSharding(mesh_lib.make_mesh(), P('data'))
    batches = 20 if quick else 200
    for _ in range(3):
      jax.block_until_ready(mesh_lib.to_global(next(it), sharding))
    start = time.perf_counter()
    for _ in range(batches):
      jax.block_until_ready(mesh_lib.to_global(next(it), sharding))
    rate = batches * batch / (time.perf_counter() - start)
  return Row(f'input pipeline vs train step, batch {batch}', rate, step_rate, rate / step_rate,
             'examples/s', 1.0, f'casia1/paper128 via grain, {config.input.num_threads} threads, '
             'raw planes + device put')


def gpu_rows(data_dir: str | None, batches: tuple[int, ...]) -> list[Row]:
  """Training images/s on one GPU, float32 and bfloat16, the batch that saturates it, FLOP/s."""
  rows, best = [], (0.0, None, None)
  flops = training_flops_per_image(_model_config(128))
  for dtype in ('float32', 'bfloat16'):
    rates = {b: our_step_rate(128, b, 20, dtype) for b in batches}
    batch = max(rates, key=rates.get)
    rate = rates[batch]
    rows.append(Row(f'GPU train {dtype}, batch {batch}', rate, GPU_TARGET_IMAGES_PER_SECOND,
                    rate / GPU_TARGET_IMAGES_PER_SECOND, 'images/s', 1.0,
                    f'{jax.devices()[0].device_kind}; batches tried: '
                    + ', '.join(f'{b}: {rates[b]:.0f}' for b in batches)
                    + f'; {rate * flops / 1e12:.1f} TFLOP/s at {flops / 1e9:.2f} GFLOP per image'))
    if rate > best[0]:
      best = (rate, dtype, batch)
  rate, dtype, batch = best
  if data_dir:
    fed = fed_step_rate(data_dir, dtype, batch)
    rows.append(Row(f'GPU train {dtype}, batch {batch}, fed by the input pipeline', fed, rate, fed / rate,
                    'images/s', 1.0, f'device waits for input {100 * (1 - fed / rate):.0f} % of the time'))
  return rows


def fed_step_rate(data_dir: str, dtype: str, batch: int) -> float:
  """Training images/s with batches read from a prepared dataset (any release built at paper128)."""
  config = _model_config(128, dtype)
  name = next(n for n in ('casia1', 'micc_f220') if os.path.isdir(os.path.join(data_dir, n)))
  config.dataset.update(name=name, builder_config='paper128', data_dir=data_dir)
  config.batch_size = batch
  config.num_epochs = 10_000
  config.input.worker_processes = max(1, (os.cpu_count() or 2) - 2)
  config.input.prefetch = 8
  mesh = mesh_lib.make_mesh()
  graphdef, state, step_fns = cnn_steps(config, mesh)
  it = training_iterator_over_everything(datasets.get_builder(config.dataset), config)
  key = jax.random.key(0)
  for _ in range(5):
    state, metrics = step_fns.train(state, mesh_lib.to_global(next(it), step_fns.batch_sharding), key)
  jax.block_until_ready(metrics)
  steps = 30
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step_fns.train(state, mesh_lib.to_global(next(it), step_fns.batch_sharding), key)
  jax.block_until_ready(metrics)
  rate = steps * batch / (time.perf_counter() - start)
  it.close()
  return rate


def main(argv=None) -> list[Row]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='tiny inputs: checks that every row runs')
  parser.add_argument('--json', help='write the rows as a JSON list to this file')
  parser.add_argument('--data_dir', help='TFDS data_dir with prepared datasets (pipeline and GPU rows)')
  parser.add_argument('--only', default='', help='comma-separated row groups: ela,srm,train,pipeline,build,gpu')
  parser.add_argument('--gpu_batches', default='256,512,1024,2048', help='batch sizes tried on a GPU')
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags; this program has none of its own
  quick = args.quick
  only = set(filter(None, args.only.split(',')))
  want = lambda group: not only or group in only
  print(f'machine: {machine()}')
  rows: list[Row] = []
  on_gpu = jax.default_backend() == 'gpu'
  images, label = photos(4 if quick else 64)
  repeats = 1 if quick else 5
  if want('ela'):
    rows += ela_rows(images, label, repeats)
    rows += ela_rows([large_photo(images[0])], '2048x1536', 1 if quick else 3)
  if want('srm'):
    rows += srm_rows(images, 4 if quick else 16, repeats)
  step_rate = None
  if want('train') and not on_gpu:
    training = training_rows(32 if quick else 128, (16,) if quick else (16, 128), 1 if quick else 5)
    rows += training
    step_rate = training[0].ours  # batch 16, the paper's
  if want('pipeline'):
    if step_rate is None:
      step_rate = our_step_rate(32 if quick else 128, 16, 1 if quick else 5)
    rows.append(pipeline_row(args.data_dir, quick, step_rate, 16))
  if want('build'):
    rows.append(build_row(quick))
  if want('gpu') and on_gpu:
    rows += gpu_rows(args.data_dir, (64,) if quick else tuple(map(int, args.gpu_batches.split(','))))
  print('| benchmark | ours | reference | ratio | unit | target | inputs |')
  print('|---|---|---|---|---|---|---|')
  for row in rows:
    print(row.line())
  if args.json:
    with open(args.json, 'w') as f:
      json.dump([{k: v for k, v in dataclasses.asdict(r).items()} for r in rows], f, indent=2)
  return rows


if __name__ == '__main__':
  main()

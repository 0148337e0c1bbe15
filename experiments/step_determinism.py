"""Do training steps repeat exactly on this device, under which XLA_FLAGS, and at what speed?

    python -m experiments.step_determinism --model=localiser --crop=256 --batch=64 --steps=10 \
        --flags= --flags=--xla_gpu_deterministic_ops=true \
        --flags=--xla_gpu_exclude_nondeterministic_ops=true [--compilation_cache]

A resumed run repeats an uninterrupted one only if every step does: the same state, batch and
key must give the same parameters in a second run of the compiled step and in another process,
which compiles (and on a GPU autotunes) the step again. For each `--flags` (the whole XLA_FLAGS
of its processes), `--processes` fresh processes each train `--steps` steps twice from the
initial state on fixed random batches; the table says whether the two runs in a process agree
(the same executable), whether the processes agree (one compilation against another), and the
step's images/s. With `--compilation_cache` the processes share a persistent compilation cache,
so that all but the first load the first one's executable: whether exactness across processes
then comes from running the same kernels. The models are the localiser with synthesis (half the
rows forged, as `benchmarks.run --only synthesis` times it) and the paper CNN in float32 or
bfloat16 (`--model=paper`, `--dtype`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import experiments
from forgery_jax import runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ('localiser', 'paper')


def _steps_and_batches(model: str, crop: int, batch: int, steps: int, dtype: str):
  """(initial state, train step, batches on the device): the step as the trainer makes it, as
  `benchmarks.run` times it."""
  from benchmarks import training  # pylint: disable=g-import-not-at-top
  from benchmarks.common import model_config  # pylint: disable=g-import-not-at-top
  from forgery_jax.training import mesh as mesh_lib  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  if model == 'localiser':
    _, state, step_fns = training.localiser_steps(batch, 0.5, dtype)
    host = [{'image': rng.integers(0, 256, (batch, crop, crop, 3), dtype=np.uint8),
             'mask': (rng.random((batch, crop, crop, 1)) < 0.1).astype(np.uint8),
             'has_mask': np.ones(batch, bool), 'label': rng.integers(0, 2, batch).astype(np.int32)}
            for _ in range(steps)]
  else:
    _, state, step_fns = training.cnn_steps(model_config(crop, dtype), mesh_lib.make_mesh())
    host = [training.random_batch(batch, crop) for _ in range(steps)]
  batches = [mesh_lib.to_global(b, step_fns.batch_sharding) for b in host]
  return state, step_fns.train, batches


def _digest(state) -> str:
  import jax  # pylint: disable=g-import-not-at-top
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(state)):
    h.update(np.ascontiguousarray(leaf).tobytes())
  return h.hexdigest()


def child(model: str, crop: int, batch: int, steps: int, dtype: str) -> dict:
  """Two runs of `steps` steps from the initial state: their digests and the second's rate."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  initial, train, batches = _steps_and_batches(model, crop, batch, steps, dtype)
  digests, seconds = [], 0.0
  for _ in range(2):
    state = jax.tree.map(jnp.copy, initial)  # the step donates the state it is given
    t0 = time.perf_counter()
    for i, b in enumerate(batches):
      state, metrics = train(state, b, jax.random.key(i))
    jax.block_until_ready((state, metrics))
    seconds = time.perf_counter() - t0
    digests.append(_digest(state))
  return {'digests': digests, 'images_per_second': batch * steps / seconds,
          'device': jax.devices()[0].device_kind}


def _run_processes(args, flags: str, cache_dir: str | None) -> list[dict]:
  env = {k: v for k, v in os.environ.items() if k not in ('XLA_FLAGS', 'JAX_COMPILATION_CACHE_DIR')}
  env.update(XLA_FLAGS=flags, PYTHONPATH=os.pathsep.join(filter(None, [REPO, env.get('PYTHONPATH')])))
  if cache_dir:
    env.update(JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
               JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  command = [sys.executable, '-m', 'experiments.step_determinism', '--child', f'--model={args.model}',
             f'--crop={args.crop}', f'--batch={args.batch}', f'--steps={args.steps}',
             f'--dtype={args.dtype}']
  results = []
  for _ in range(args.processes):
    out = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
      raise SystemExit(f'error: XLA_FLAGS={flags!r}: the step failed: {out.stderr.strip()[-2000:]}')
    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
  return results


def main(argv=None) -> list[dict]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', choices=MODELS, default='localiser')
  parser.add_argument('--crop', type=experiments.whole_number(8, 'one JPEG block'), default=256, help='training window (localiser) or resolution')
  parser.add_argument('--batch', type=experiments.whole_number(1), default=64)
  parser.add_argument('--steps', type=experiments.whole_number(1), default=10)
  parser.add_argument('--dtype', choices=('float32', 'bfloat16'), default='float32')
  parser.add_argument('--processes', type=experiments.whole_number(1), default=2)
  parser.add_argument('--flags', action='append', default=None,
                      help='one XLA_FLAGS per option given (repeat it; empty: XLA\'s own choices)')
  parser.add_argument('--compilation_cache', action='store_true',
                      help='the processes of each --flags share a persistent compilation cache')
  parser.add_argument('--json', type=runtime.home, help='write the rows to this file')
  parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(json.dumps(child(args.model, args.crop, args.batch, args.steps, args.dtype)))
    return []
  rows = []
  print('| XLA_FLAGS | runs in a process equal | processes equal | images/s (median) | digest |')
  print('|---|---|---|---|---|')
  for flags in args.flags or ['']:
    with tempfile.TemporaryDirectory(prefix='step_determinism_cache_') as cache:
      results = _run_processes(args, flags, cache if args.compilation_cache else None)
    within = all(r['digests'][0] == r['digests'][1] for r in results)
    across = len({r['digests'][0] for r in results}) == 1
    rate = statistics.median(r['images_per_second'] for r in results)
    row = {'xla_flags': flags, 'runs_equal': within, 'processes_equal': across,
           'images_per_second': rate, 'digests': [r['digests'] for r in results],
           'device': results[0]['device'], 'model': args.model, 'dtype': args.dtype,
           'crop': args.crop, 'batch': args.batch, 'steps': args.steps,
           'compilation_cache': args.compilation_cache}
    rows.append(row)
    print(f"| {flags or '(none)'} | {'yes' if within else 'NO'} | {'yes' if across else 'NO'} | "
          f"{rate:,.1f} | {results[0]['digests'][0][:12]} |", flush=True)
  experiments.write_json(args.json, rows)
  return rows


if __name__ == '__main__':
  experiments.one_error_line(main)()

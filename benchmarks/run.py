"""Every hot path of forgery_jax against what a user would run instead, side by side in one process.

    python -m benchmarks.run [--quick] [--json OUT] [--data_dir DIR] [--only GROUPS]

Prints one row per measurement: ours, the reference, their ratio (how many times better ours is)
and the target ratio the project holds itself to. Times are medians over repeats; the inputs are
named in each row and the machine (cores, CPU, JAX devices) in the header. `--quick` shrinks every
input so that the whole table prints in a few minutes (the test suite runs it); its figures are
not measurements. Real photos come from ../shared/datasets/casia1 (or $FORGERY_JAX_SHARED) when
present, else from the photographs bundled with scikit-image.

Groups (`--only`): ela, srm, jpeg, train, xla_flags, profile, synthesis, pipeline, build, predict, gpu (the
last only where JAX's default backend is a GPU; train, xla_flags and profile only where it is
not).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os

from absl import flags
import jax

from benchmarks import common
from benchmarks import data
from benchmarks import image_ops
from benchmarks import predict
from benchmarks import training
from forgery_jax import atomic
from forgery_jax import progress
from forgery_jax import runtime

GROUPS = ('ela', 'srm', 'jpeg', 'train', 'xla_flags', 'profile', 'synthesis', 'pipeline', 'build', 'predict', 'gpu')


def main(argv=None) -> list[common.Row]:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--quick', action='store_true', help='tiny inputs: checks that every row runs')
  parser.add_argument('--json', type=runtime.home, help='write the rows as a JSON list to this file')
  parser.add_argument('--data_dir', type=runtime.home,
                      help='TFDS data_dir with prepared datasets (pipeline and GPU rows)')
  parser.add_argument('--only', default='', help=f'comma-separated row groups: {",".join(GROUPS)}')
  parser.add_argument('--gpu_batches', default='256,512,1024,2048', help='batch sizes tried on a GPU')
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()  # grain reads absl flags; this program has none of its own
  runtime.deterministic_gpu_ops()
  runtime.quiet_libraries()
  quick = args.quick
  only = set(filter(None, args.only.split(',')))
  unknown = only - set(GROUPS)
  if unknown:
    raise SystemExit(f'error: unknown groups {sorted(unknown)}; choose from {GROUPS}')
  if args.json:  # said before the rows are timed, not after
    folder = os.path.dirname(os.path.abspath(args.json))
    if os.path.isdir(args.json) or not os.path.isdir(folder):
      raise SystemExit(f'error: --json={args.json}: ' + ('a folder, not a file' if os.path.isdir(
          args.json) else f'{folder} is not a folder'))
  try:
    gpu_batches = tuple(int(b) for b in args.gpu_batches.split(','))
    if min(gpu_batches) < 1:
      raise ValueError
  except ValueError:
    raise SystemExit(f'error: --gpu_batches={args.gpu_batches}: give batch sizes >= 1, '
                     'comma-separated') from None
  on_gpu = jax.default_backend() == 'gpu'
  runs_here = lambda g: not (g == 'gpu' and not on_gpu) and not (
      g in ('train', 'xla_flags', 'profile') and on_gpu)
  if elsewhere := sorted(g for g in only if not runs_here(g)):
    raise SystemExit(f'error: --only names {elsewhere}, which run only where JAX\'s default backend '
                     f'is {"not " if on_gpu else ""}a GPU; here it is {jax.default_backend()}')
  wanted = [g for g in GROUPS if (not only or g in only) and runs_here(g)]
  if args.data_dir and {'pipeline', 'gpu'} & set(wanted):
    try:
      data.prepared_release(args.data_dir)
    except ValueError as e:
      raise SystemExit(f'error: {e}') from None
  print(f'machine: {common.machine()}', flush=True)
  images, label = common.photos(4 if quick else 64)
  repeats = 1 if quick else 5
  rows: list[common.Row] = []
  step_rate = None
  for group in progress.bar(wanted, desc='benchmarks', unit='group'):
    done = len(rows)
    if group == 'ela':
      rows += image_ops.ela_rows(images, label, repeats)
      rows += image_ops.ela_rows([common.large_photo(images[0])], '2048x1536', 1 if quick else 3)
    elif group == 'srm':
      rows += image_ops.srm_rows(images, 4 if quick else 16, repeats)
    elif group == 'jpeg':
      rows += image_ops.jpeg_rows(images, (4,) if quick else ((256, 1024, 4096) if on_gpu else (32,)), repeats,
                                  on_gpu)
    elif group == 'train':
      batches = (16,) if quick else (16, 128)
      trained = training.training_rows(32 if quick else 128, batches, 1 if quick else 5)
      rows += trained
      step_rate = trained[0].ours  # batch 16, the paper's
    elif group == 'xla_flags':
      rows += training.xla_flag_rows(32 if quick else 128, 16, 1 if quick else 5,
                                     training.XLA_CPU_FLAGS[:1] if quick else training.XLA_CPU_FLAGS)
    elif group == 'profile':
      rows += training.profile_rows(32 if quick else 128, 16, repeats)
    elif group == 'synthesis':
      rows += training.synthesis_rows(64 if quick else (256 if on_gpu else 192),
                                      4 if quick else (64 if on_gpu else 8), 2 if quick else 5)
    elif group == 'pipeline':
      if step_rate is None:
        step_rate = training.our_step_rate(32 if quick else 128, 16, 1 if quick else 5)
      rows += data.pipeline_rows(args.data_dir, quick, step_rate, 16)
    elif group == 'build':
      rows.append(data.build_row(quick))
    elif group == 'predict':
      rows += predict.predict_rows(8 if quick else 200, 1 if quick else 3)
    elif group == 'gpu':
      rows += training.gpu_rows(args.data_dir, (64,) if quick else gpu_batches)
    for row in rows[done:]:  # each group's rows as it ends, so that a run cut short keeps them
      progress.write(row.line())
  print('| benchmark | ours | reference | ratio | unit | target | inputs |')
  print('|---|---|---|---|---|---|---|')
  for row in rows:
    print(row.line())
  if args.json:  # replaced whole: a failure keeps the last complete table
    with atomic.replaced_when_complete(args.json) as f:
      json.dump([dataclasses.asdict(r) for r in rows], f, indent=2)
  return rows


if __name__ == '__main__':
  main()

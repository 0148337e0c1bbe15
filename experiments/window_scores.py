"""A localiser's test figures with its images scored whole and in windows of its training size.

    python -m experiments.window_scores --workdir=<localiser run> [--tile=N] [--output=F.json]

A localiser trains on `input.crop` windows and scores whole images (in tiles only when larger than
`model.score_tile`, 1,024 pixels), so at test time its image head, and with Z-scores every
feature's statistics, see more of the photo than in training. This scores the run's test split
and each of its `dataset.also_test` configs both ways, with the run's own `test`, `also_test` and
`pixel` evaluators: whole, and in overlapping windows of `--tile` pixels (default the training
crop; `model.score_tile`: windows overlapping by 128 pixels or more, the maps averaged where they
overlap, the image tampered if any window is). Nothing in the run is changed.
"""

from __future__ import annotations

import argparse

from absl import flags

import experiments
from experiments import fusion_rules
from forgery_jax import runtime
from forgery_jax.detectors import localiser
from forgery_jax.evaluation import evaluators

EVALS = ('test', 'also_test', 'pixel')
FIGURES = ('accuracy', 'auc', 'pixel_f1', 'pixel_auc')


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--workdir', type=runtime.home, required=True, help='a finished localiser run')
  parser.add_argument('--tile', type=experiments.whole_number(0, "0: the run's input.crop"), default=0,
                      help="the windows' side in pixels (0: the run's input.crop)")
  parser.add_argument('--output', type=runtime.home, default='', help='write the figures as JSON here')
  args = parser.parse_args(argv)
  flags.FLAGS.mark_as_parsed()
  runtime.quiet_libraries()
  run = fusion_rules.load_localiser_run(args.workdir)
  detector, dataset = run.detectors[0], run.datasets[0]
  config = detector.config
  tile = args.tile or config.input.crop
  if not tile:
    raise SystemExit(f'error: {args.workdir}: trained on whole planes (input.crop 0); give --tile')
  results = {}
  for name, side in (('whole', config.model.get('score_tile', localiser.MAX_TILE)),
                     (f'windows of {tile}', tile)):
    with config.unlocked():
      config.model.score_tile = side
    localiser.Localiser.check_config(config)
    context = evaluators.Context(config, dataset, args.workdir, write_metrics=False,
                                 batch_size=config.eval_batch_size)
    figures = evaluators.run_all(detector, context, EVALS)
    results[name] = {k: v for k, v in figures.items() if k.split('/')[-1] in FIGURES}
  splits = ['test'] + [f'test_{c}' for c in config.dataset.also_test]
  columns = [f'{s}: {f}' for s in splits for f in FIGURES]
  fusion_rules.print_table(columns, {name: [f"{figures.get(c.replace(': ', '/'), float('nan')):.3f}"
                                            for c in columns]
                                     for name, figures in results.items()})
  experiments.write_json(args.output, results)
  return results


if __name__ == '__main__':
  experiments.one_error_line(main)()

"""How do the figures grow with training files? One run per share of the training split.

    python -m experiments.learning_curve --config=configs/localiser_casia1.py --workdir=/tmp/lc \
      --fractions=0.25,0.5,1 --config.dataset.data_dir=... --config.dataset.manual_dir=...

Each share f trains on `dataset.train_fraction=f` of the training split (whole groups, the smaller
shares' files among the larger ones') for the same number of steps as the whole split: the
config's epochs over f, validated every 1/f epochs (`validate_every_epochs`), so that validation,
early stopping and its patience fall after the same steps at every point. Validation and test are
the same files at every point, so the points differ in the training files alone. A share whose
`results.json` exists in `<workdir>/f<f>` is read, not run again (an interrupted curve resumes).

Prints, per figure, its value at each share (beside the pixel baselines of the same split) and a
least-squares line against log10(training files): the gain per doubling of the files and, for the
goals of `--targets`, how many files the line reaches them at. That is an extrapolation of a few
points: if the gain per doubling shrinks, as curves of bounded figures do, more files than that
would be needed. Written to `<workdir>/learning_curve.json`.

`--seeds=0,1` trains every share at each of these seeds (the config's own seed in `f<f>`, others
in `f<f>_seed<s>`): each share is shown as the seeds' mean with their values beside it, and the
line is fitted through every run, so that a gain per doubling can be told from the seed spread.
`--notrain` tabulates the runs finished so far and trains none (runs of one curve may be spread
over machines).

`--against=<another curve's workdir>` reads each share on that curve (its `learning_curve.json`),
e.g. a recipe with synthesised forgeries against the real-only one: the difference from its mean
at the same share, and how many training files its line needs to score as this share's mean does
(what this recipe is worth in the other recipe's files).
"""

from __future__ import annotations

import json
import math
import os

from absl import app
from absl import flags
from absl import logging
import numpy as np

import experiments
from forgery_jax import experiment
from forgery_jax import runs
from forgery_jax import runtime
from forgery_jax.evaluation import report

# The localisation issue's goals, on the JPEG-randomised test split (`test`) and as released, over
# every tampered file and by forgery type.
GOALS = ('test/pixel_f1=0.74', 'test_native/pixel_f1=0.74', 'test/pixel_auc=0.90',
         'test_native/pixel_auc=0.90', 'test/accuracy=0.85', 'test/splicing/pixel_f1=0.74',
         'test/splicing/pixel_auc=0.90', 'test/copy_move/pixel_f1=0.74',
         'test/copy_move/pixel_auc=0.90', 'test_native/splicing/pixel_f1=0.74',
         'test_native/copy_move/pixel_f1=0.74')
FIGURES = ('test/pixel_f1', 'test/pixel_baseline/centre_prior/pixel_f1',
           'pixel_threshold/test/pixel_f1', 'test/pixel_auc',
           'test/pixel_baseline/centre_prior/pixel_auc',
           'test/pixel_baseline/mean_training_mask/pixel_auc', 'test_native/pixel_f1',
           'pixel_threshold/test_native/pixel_f1', 'test_native/pixel_auc', 'test/accuracy',
           'threshold/test/accuracy', 'test/auc', 'test_native/accuracy', 'test_native/auc',
           'test/splicing/pixel_f1', 'test/splicing/pixel_auc', 'test/copy_move/pixel_f1',
           'test/copy_move/pixel_auc', 'test_native/splicing/pixel_f1',
           'test_native/copy_move/pixel_f1')
BASELINE = '/pixel_baseline/'  # shown beside the figures, no line fitted


def share_config(config, fraction: float, seed: int | None = None):
  """`config` on `fraction` of the training split, with the whole split's steps and validations
  (for shares of 1/n; others to the nearest such share's), at `seed` (the config's by default)."""
  config = config.copy_and_resolve_references()
  config.dataset.train_fraction = fraction
  if seed is not None:
    config.seed = seed
  every = max(1, round(1 / fraction))
  config.num_epochs = config.num_epochs * every
  config.validate_every_epochs = config.validate_every_epochs * every
  return config


def fit(files: list[int], values: list[float], target: float | None) -> dict:
  """y = a + b log10(files) by least squares; the gain per doubling and where y reaches `target`."""
  x = np.log10(np.asarray(files, np.float64))
  b, a = np.polyfit(x, np.asarray(values, np.float64), 1)
  out = {'per_doubling': float(b * math.log10(2)), 'intercept': float(a), 'slope': float(b)}
  if target is not None:
    out['target'] = target
    out['files_for_target'] = files_on_line(out, target)
  return out


def files_on_line(line: dict, value: float) -> float | None:
  """The training files at which a fitted line reaches `value`; None (never, and `null` in the
  JSON, which stays strict) where it does not grow or not within 10^300 files."""
  decades = (value - line['intercept']) / line['slope'] if line['slope'] > 0 else math.inf
  return float(10 ** decades) if decades < 300 else None


def values_of(points: list[dict], key: str, field: str = 'results') -> list[float] | None:
  """`key`'s figure at every point (in its `field`), or None where a point lacks it."""
  values = [p[field].get(key) for p in points]
  return values if all(isinstance(v, (int, float)) for v in values) else None


def share_dir(workdir: str, fraction: float, seed: int, own_seed: int) -> str:
  """`f<f>` at the config's own seed (the folder of a one-seed curve), `f<f>_seed<s>` at others."""
  return os.path.join(workdir, f'f{fraction:g}' + ('' if seed == own_seed else f'_seed{seed}'))


def by_share(points: list[dict]) -> list[list[dict]]:
  """The runs grouped by share, smallest share first (a group holds one run per seed)."""
  shares = {}
  for p in points:
    shares.setdefault(p['fraction'], []).append(p)
  return [shares[f] for f in sorted(shares)]


def share_mean(runs: list[dict], key: str, field: str = 'results') -> float | None:
  """The mean of `key` over a share's runs, or None where a run lacks it."""
  values = values_of(runs, key, field)
  return float(np.mean(values)) if values is not None else None


def curve(points: list[dict], figures, targets: dict[str, float]) -> dict:
  """The fits, through every run, of every figure that each run has (baselines aside); none
  where the runs are all of one share."""
  files = [p['train_files'] for p in points]
  fits = {}
  for key in figures:
    values = values_of(points, key)
    if BASELINE not in key and len(set(files)) >= 2 and values is not None:
      fits[key] = fit(files, values, targets.get(key))
  return fits


def against(points: list[dict], figures, reference: dict) -> dict:
  """Each share's mean read on the `reference` curve (a `learning_curve.json`): the difference
  from its mean at the same share (None where it has none) and the files its line needs to score
  as much, for every figure the reference fitted a line to (the files read off a shallow line
  swing widely: its gain per doubling is kept beside them)."""
  theirs = {runs[0]['fraction']: runs for runs in by_share(reference['points'])}
  out = {}
  for key in figures:
    line = reference['fits'].get(key)
    if values_of(points, key) is None or line is None:
      continue
    rows = []
    for runs in by_share(points):
      v, fraction = share_mean(runs, key), runs[0]['fraction']
      r = share_mean(theirs[fraction], key, 'figures') if fraction in theirs else None
      rows.append({'difference': v - r if r is not None else None,
                   'reference_files': files_on_line(line, v)})
    out[key] = {'points': rows, 'reference_per_doubling': line['per_doubling']}
  return out


def against_table(points: list[dict], comparison: dict) -> str:
  """Cells `value: difference, = N reference files (×N / files)`, or `never` where the reference's
  line does not reach the value."""
  head = ['figure, against the reference'] + share_heads(points) + ["reference's gain per doubling"]
  rows = []
  for key, read in comparison.items():
    cells = [key]
    for runs, row in zip(by_share(points), read['points']):
      value = share_mean(runs, key)
      diff = '' if row['difference'] is None else f"{row['difference']:+.3f}, "
      n = row['reference_files']
      worth = 'never' if n is None else f"= {files_text(n)} files (×{n / runs[0]['train_files']:.1f})"
      cells.append(f'{value:.3f}: {diff}{worth}')
    cells.append(f"{read['reference_per_doubling']:+.3f}")
    rows.append(cells)
  return report.md_table(head, rows)


def files_text(n: float) -> str:
  """12,900; past ten million as a power of ten (10^170 files is a line that barely rises)."""
  return f'{n:,.0f}' if n < 1e7 else f'10^{math.log10(n):.0f}'


def read_curve(workdir: str) -> dict:
  path = os.path.join(workdir, 'learning_curve.json')
  try:
    with open(path) as fh:
      return json.load(fh)
  except (OSError, ValueError) as e:
    raise SystemExit(f'{path}: cannot read the curve to compare with ({e})') from None


def share_heads(points: list[dict]) -> list[str]:
  return [f"f = {runs[0]['fraction']:g} ({runs[0]['train_files']} files"
          + (f', {len(runs)} seeds)' if len(runs) > 1 else ')') for runs in by_share(points)]


def share_cell(runs: list[dict], key: str) -> str:
  """`0.300`, or with several seeds their mean and each seed's value: `0.250 (0.300, 0.200)`."""
  mean = f'{share_mean(runs, key):.3f}'
  if len(runs) == 1:
    return mean
  return mean + ' (' + ', '.join(f"{p['results'][key]:.3f}" for p in runs) + ')'


def table(points: list[dict], figures, fits: dict) -> str:
  head = ['figure'] + share_heads(points) + ['per doubling', 'files for the goal (line)']
  rows = []
  for key in figures:
    if values_of(points, key) is None:
      continue
    cells = [key] + [share_cell(runs, key) for runs in by_share(points)]
    f = fits.get(key, {})
    cells.append(f"{f['per_doubling']:+.3f}" if f else '')
    if 'target' in f:
      n = f['files_for_target']
      cells.append(f"{f['target']:g}: " + ('never' if n is None else files_text(n)))
    else:
      cells.append('')
    rows.append(cells)
  rows.append(['steps run (kept)'] + [
      ', '.join(f"{p['results'].get('final_step')} ({p['results'].get('best_step')})" for p in runs)
      for runs in by_share(points)] + ['', ''])
  return report.md_table(head, rows)


def collect(config, workdir: str, fractions, seeds, train: bool = True) -> list[dict]:
  """One point per share and seed: its `results.json` where it has been run, else trained now
  (or, with `train` off, left out)."""
  points = []
  for fraction in sorted(fractions):
    for seed in seeds:
      folder = share_dir(workdir, fraction, seed, config.seed)
      path = os.path.join(folder, experiment.RESULTS_FILE)
      if os.path.exists(path):
        logging.info('share %g, seed %d: done before, reading %s', fraction, seed, path)
        with open(path) as fh:
          results = json.load(fh)
      elif not train:
        logging.info('share %g, seed %d: not run (%s), left out', fraction, seed, path)
        continue
      else:
        results = experiment.run(share_config(config, fraction, seed), folder)
      points.append({'fraction': fraction, 'seed': seed, 'workdir': folder,
                     'train_files': int(results['split_sizes']['train']), 'results': results})
  if not points:
    raise SystemExit(f'{workdir}: no share has been run (train them without --notrain)')
  return points


def _number(pair: tuple[str, str], flag: str, what: str, kind=float) -> tuple[str, float]:
  """(key, the number its text gives), or ValueError naming the flag and what it takes."""
  key, text = pair
  try:
    return key, kind(text)
  except ValueError:
    raise ValueError(f'{flag}: {text!r} is not {what}') from None


def main(argv):
  del argv
  runtime.deterministic_gpu_ops()
  runtime.quiet_libraries()
  runtime.home_in_flags()
  f = flags.FLAGS
  # Every argument is read before hours of training, not when its turn comes.
  targets = dict(_number(goal.partition('=')[::2], '--targets', 'a number (KEY=VALUE)')
                 for goal in f.targets)
  fractions = [_number(('', x), '--fractions', 'a share above 0 and at most 1')[1]
               for x in f.fractions]
  if not all(0 < x <= 1 for x in fractions) or len(set(fractions)) < len(fractions):
    raise ValueError(f'--fractions={",".join(f.fractions)}: distinct shares above 0 and at most 1')
  seeds = [_number(('', s), '--seeds', 'a whole number', int)[1] for s in f.seeds]
  if len(set(seeds)) < len(seeds):
    raise ValueError(f'--seeds={",".join(f.seeds)}: distinct seeds')
  for seed in seeds or [None]:
    for fraction in fractions:
      experiment.check(share_config(f.config, fraction, seed))
  reference = read_curve(f.against) if f.against else None
  points = collect(f.config, f.workdir, fractions, seeds or [f.config.seed], f.train)
  figures = list(f.figures)
  fits = curve(points, figures, targets)
  text = table(points, figures, fits)
  written = {
      'points': [{k: v for k, v in p.items() if k != 'results'} |
                 {'figures': {k: p['results'].get(k) for k in figures}} for p in points],
      'fits': fits}
  if reference is not None:
    comparison = against(points, figures, reference)
    written['against'] = {'workdir': f.against, 'figures': comparison}
    text += f'\nAgainst the curve in {f.against}:\n\n' + against_table(points, comparison)
  runs.write_json_atomic(os.path.join(f.workdir, 'learning_curve.json'), written)
  print(text)


if __name__ == '__main__':
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'The config of the whole-split run.')
  flags.DEFINE_string('workdir', None, 'One folder per share (f<share>) and the curve.', required=True)
  flags.DEFINE_list('fractions', ['0.25', '0.5', '1'], 'Shares of the training split.')
  flags.DEFINE_list('seeds', [], 'Seeds to train each share at (default: the config\'s seed).')
  flags.DEFINE_bool('train', True, 'Train the shares not run yet; --notrain tabulates the rest.')
  flags.DEFINE_list('figures', list(FIGURES), 'results.json keys to show.')
  flags.DEFINE_list('targets', list(GOALS), 'KEY=VALUE goals to extrapolate to.')
  flags.DEFINE_string('against', None, 'Another curve\'s workdir to read each point against.')
  flags.mark_flags_as_required(['config'])
  app.run(experiments.one_error_line(main))

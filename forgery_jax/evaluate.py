"""Reports on finished runs: the run's evaluators again, and more.

    python -m forgery_jax.evaluate --workdir=RUN [--runs=RUN2,RUN3] [--output=DIR]
        [--evals=test,baselines,...] [--cross] [--robustness] [--max_examples=N] [--keypoint_map [--keypoint_fusion=max|keypoints_alone|upper_copies|upper_copies_ranked] [--keypoint_decision=clusters]]
        [--cross_dataset=NAME[:CONFIG] [--cross_also_test=CONFIG,...] [--cross_manual_dir=DIR]]
        [--average_with=RUN2,RUN3] [--score_flips] [--data_dir=DIR] [--manual_dir=DIR]

Each run is read from its inference export (any detector; every fold of a k-fold run on its own
test split, averaged as the run itself averages). The evaluators `config.evals` names (or
`--evals`) run exactly as after training. `--keypoint_map` scores localiser runs with the copy-move
keypoint map fused into their maps (`config.model.keypoint_map`: inference only, no retraining;
`--keypoint_fusion` says how, `localiser.fuse_maps`; `--keypoint_decision` how the map decides,
`forensics.keypoints`). `--cross_dataset` scores the runs on a
dataset they were not trained on, in place of their `config.cross_dataset` (the `cross_dataset`
evaluator: every example; `pixel`: every file with a mask, at its own size). `--average_with` scores
RUN as the average of its own and those runs' probabilities and maps (runs of one split, other
seeds: `detectors.averaged`; the keypoint map, if fused, fused once into the average).
`--score_flips` scores each image of a localiser run as the mean over its four flips, each map
flipped back (`localiser.flip_average`; four network passes per image; the keypoint map, if
fused, fused once into the mean). Writes
OUTPUT (default RUN/report), and nothing else:
* report.md and report.json: every run's evaluator results and test metrics, and the software and
  machine that scored them (`runtime.environment`); with several runs an
  ablation table in the style of the dual-branch paper's Table 1; with `--cross`, the train x test
  matrix (every run on the test split of its own dataset and on all examples of the other runs'
  datasets); with `--robustness`, RUN's test split after JPEG recompression (quality 50-100),
  resizing (0.5-1.5), Gaussian blur and Gaussian noise, one metrics row per (attack, strength);
* confusion.png, roc.png, curves.png (training and validation curves from metrics.jsonl), with
  `--robustness` robustness.png, and for a run whose evaluators include `pixel`, maps.png: the
  best and the worst tamper maps of the test split beside their images and masks.
"""

from __future__ import annotations

import dataclasses
import os

from absl import app
from absl import flags
import numpy as np

from forgery_jax import api
from forgery_jax import atomic
from forgery_jax import progress
from forgery_jax import runs as runs_lib
from forgery_jax import runtime
from forgery_jax.data import datasets
from forgery_jax.detectors import localiser
from forgery_jax.data import input_pipeline
from forgery_jax.evaluation import evaluators
from forgery_jax.evaluation import intervals
from forgery_jax.evaluation import pixel_eval
from forgery_jax.evaluation import report as report_lib
from forgery_jax.evaluation import robustness as robustness_lib
from forgery_jax.forensics import keypoints


@dataclasses.dataclass
class LoadedRun:
  """A finished run: its folds' detectors, each with the dataset its config names."""
  workdir: str
  detectors: list
  datasets: list

  @property
  def config(self):
    return self.detectors[0].config

  @property
  def name(self) -> str:
    c = self.config
    return f'{os.path.basename(os.path.normpath(self.workdir))} ({c.dataset.name}, {self.detectors[0].describe()})'


@dataclasses.dataclass(frozen=True)
class CrossDataset:
  """Another dataset to score runs on: the fields of `config.cross_dataset`."""
  name: str
  builder_config: str = ''
  also_test: tuple = ()
  manual_dir: str = ''

  @classmethod
  def parse(cls, spec: str, also_test=(), manual_dir: str = '',
            flag: str = '--cross_dataset') -> 'CrossDataset':
    """From `NAME[:CONFIG]` (a folder of tfds_builders/ and one of its builder configs), checked
    before any run is loaded; `flag` names the option in the errors."""
    name, _, builder_config = spec.partition(':')
    if not name:
      raise datasets.DatasetError(f'{flag}={spec}: no dataset name before the colon')
    datasets.builder_class(name, flag)
    for c in (builder_config, *also_test):
      if c:
        datasets.check_builder_config(name, c, flag)
    return cls(name, builder_config, tuple(also_test), manual_dir)


def load_run(workdir: str, keypoint_map: bool = False, keypoint_fusion: str | None = None,
             cross: CrossDataset | None = None, keypoint_mirrored: bool = False,
             average_with=(), keypoint_decision: str | None = None, *,
             score_flips: bool = False, data_dir: str = '', manual_dir: str = '') -> LoadedRun:
  """The run's detectors (every fold's) and the datasets they trained on, read from `data_dir`
  when given instead of the data_dir their config recorded (a run moved to another machine) and
  built, if missing there, from `manual_dir` when given (a release moved); a dataset there that is
  split otherwise than when the run trained is refused."""
  detectors = api.load_detectors(workdir, keypoint_map, keypoint_fusion, keypoint_mirrored, average_with,
                                 keypoint_decision, score_flips=score_flips, data_dir=data_dir,
                                 manual_dir=manual_dir)
  if cross is not None:
    for d in detectors:
      d.config.cross_dataset.update(dataclasses.asdict(cross))
  return LoadedRun(workdir, detectors, [input_pipeline.load_trained_on(d, workdir) for d in detectors])


def _evaluate_run(run: LoadedRun, names) -> tuple[dict, tuple[np.ndarray, np.ndarray], list]:
  """The evaluators on every fold (nothing written into the run), averaged as the run averages
  them (`runs.mean_over_folds`);
  (probabilities, labels) of every fold on its own test split, concatenated; and the contexts."""
  per_fold, probs, labels, contexts = [], [], [], []
  for detector, dataset in zip(run.detectors, run.datasets):
    context = evaluators.Context(detector.config, dataset, run.workdir, write_metrics=False,
                                 batch_size=detector.config.eval_batch_size)
    per_fold.append(evaluators.run_all(detector, context, names))
    contexts.append(context)
    idx = dataset.split.test
    probs.append(context.scores(detector, dataset, idx, 'test', f'test {dataset.name}').probabilities)
    labels.append(dataset.labels[idx])
  own = np.concatenate(probs), np.concatenate(labels)
  if len(per_fold) == 1:
    return per_fold[0], own, contexts
  return runs_lib.mean_over_folds(per_fold), own, contexts


def _paired(loaded: list[LoadedRun], own: dict, contexts: dict) -> list[dict]:
  """Each further run of one split minus the first (WORKDIR), file by file, where both test
  splits hold the same files: accuracy and AUC, and the pixel scores where both draw tamper maps
  (gradient saliency is not compared)."""
  base = loaded[0]
  if len(base.datasets) != 1:
    return []  # k-fold: each fold's split differs; the folds' spread stands instead
  dataset = base.datasets[0]
  maps = lambda run: (contexts[run.workdir][0].cache.get('pixel_rows/test')
                      if run.detectors[0].localises else None)
  base_rows = maps(base)
  out = []
  for run in loaded[1:]:
    if len(run.datasets) != 1 or not evaluators.same_test_files(dataset, run.datasets[0]):
      continue
    probabilities, labels = own[run.workdir]
    row = {'run': run.name, **intervals.paired_classification(
        probabilities, own[base.workdir][0], labels, intervals.scenes_of(dataset, dataset.split.test))}
    rows = maps(run)
    images = [r['index'] for r in rows or ()]
    if base_rows and images and images == [r['index'] for r in base_rows]:
      row.update(intervals.paired_pixel(rows, base_rows, intervals.scenes_of(dataset, images)))
    out.append(row)
  return out


def _cross_row(run: LoadedRun, others: list[LoadedRun], names: list[str], own: dict) -> list:
  """`own`: the run's row of the test metrics (a k-fold run's: the folds' means)."""
  row = [run.name]
  for name in names:
    if name == run.config.dataset.name:
      folds = len(run.detectors)
      row.append(f"{own['accuracy']:.3f} / {own['auc']:.3f} (n={own['num_examples']}"
                 f"{f', the mean of {folds} folds' if folds > 1 else ''})")
    else:
      other = next(o for o in others if o.config.dataset.name == name)
      dataset = input_pipeline.load(other.config, all_for_test=True,
                                    num_classes=run.config.dataset.num_classes)
      idx = dataset.split.test
      probs = np.mean([d.score_split(dataset, idx, desc=f'{name} with {run.name}').probabilities
                       for d in run.detectors], 0)
      labels = dataset.labels[idx]
      r = robustness_lib.row(probs, labels, run.detectors[0].class_names)
      row.append(f"{r['accuracy']:.3f} / {r['auc']:.3f} (n={r['num_examples']})")
  return row


def evaluate(workdir: str, runs: list[str], cross: bool = False, with_robustness: bool = False,
             max_examples: int = 0, output: str | None = None, evals: list[str] | None = None,
             keypoint_map: bool = False, keypoint_fusion: str | None = None,
             cross_dataset: CrossDataset | None = None, keypoint_mirrored: bool = False,
             average_with=(), keypoint_decision: str | None = None, *,
             score_flips: bool = False, data_dir: str = '', manual_dir: str = '') -> dict:
  """Writes the report of `workdir` (and `runs`) to `output`; returns its tables as a dict;
  `workdir` scored as the average of it and the runs of `average_with`; with `score_flips`,
  localiser runs score each image as the mean over its four flips; `data_dir`: where every
  dataset is read (`load_run`); `manual_dir`: the release folder of `workdir`'s dataset (the
  `runs` keep theirs)."""
  if cross_dataset is not None and evals and not {'cross_dataset', 'pixel'} & set(evals):
    raise ValueError('--cross_dataset: no evaluator scores it; add cross_dataset or pixel to --evals')
  paths = runs_lib.distinct_folders([workdir, *runs])  # each run once: WORKDIR first
  loaded = [load_run(w, keypoint_map, keypoint_fusion, cross_dataset, keypoint_mirrored,
                     average_with if w == workdir else (), keypoint_decision,
                     score_flips=score_flips, data_dir=data_dir,
                     manual_dir=manual_dir if w == workdir else '')
            for w in progress.bar(paths, desc='loading runs', unit='run')]
  out = runtime.output_folder(output or os.path.join(workdir, 'report'), '--output')
  options = runs_lib.as_flags(
      runs=runs, cross=cross, robustness=with_robustness, max_examples=max_examples, evals=evals,
      keypoint_map=keypoint_map, keypoint_fusion=keypoint_fusion, keypoint_mirrored=keypoint_mirrored,
      keypoint_decision=keypoint_decision, average_with=average_with, score_flips=score_flips,
      data_dir=data_dir, manual_dir=manual_dir,
      cross_dataset=cross_dataset and ':'.join(filter(None, (cross_dataset.name,
                                                             cross_dataset.builder_config))),
      cross_also_test=cross_dataset and cross_dataset.also_test,
      cross_manual_dir=cross_dataset and cross_dataset.manual_dir)
  report = {'environment': runtime.environment(), 'options': options, 'runs': []}
  own, contexts = {}, {}
  for run in loaded:
    names = evals if evals else list(run.config.evals)
    results, own[run.workdir], contexts[run.workdir] = _evaluate_run(run, names)
    row = robustness_lib.row(*own[run.workdir], run.detectors[0].class_names)
    if len(run.detectors) > 1:
      # A k-fold run: each metric the mean over the folds, each on its own test split, with its
      # spread, as training wrote results.json (the pooled predictions' values would differ).
      row.update({k: results[f'test/{k}'] for k in robustness_lib.ROW_KEYS if f'test/{k}' in results})
      row.update({f'{k}_std': results[f'test/{k}_std'] for k in robustness_lib.ROW_KEYS
                  if f'test/{k}_std' in results})
    report['runs'].append({'run': run.name, 'split': run.config.dataset.split, **row,
                           'dataset_fingerprint': run.datasets[0].fingerprint, 'results': results})
  keys = robustness_lib.ROW_KEYS

  def cell(r, k):
    return f'{r[k]:.3f} ± {r[k + "_std"]:.3f}' if k + '_std' in r else r[k]

  folded = any(len(run.detectors) > 1 for run in loaded)
  md = [f'# Evaluation of {workdir}\n', f'Scored by {runtime.describe(report["environment"])}.\n',
        *([f'Options: `{" ".join(options.values())}`.\n'] if options else []),
        '## Test metrics\n',
        *(['A k-fold run: each metric the mean ± std over its folds, each fold on its own test '
           'split; its test examples, all folds\'.\n'] if folded else []),
        report_lib.md_table(['run', 'split', *keys, 'test examples'],
                            [[r['run'], r['split'], *[cell(r, k) for k in keys], r['num_examples']]
                             for r in report['runs']])]
  for run, r in zip(loaded, report['runs']):
    results = r['results']
    test_intervals = [f'{k} {results[f"test/{k}"]:.3f} {intervals.as_text(bounds)}'
                      for k in ('accuracy', 'auc', 'pixel_f1', 'pixel_auc')
                      if (bounds := results.get(f'test/{k}{intervals.SUFFIX}'))]
    if test_intervals:
      md += [f'\n{r["run"]}, test split, 95 % intervals ({intervals.DESCRIPTION}): '
             f'{"; ".join(test_intervals)}\n']
    folds = len(run.detectors) > 1  # each fold keeps its own intervals; their spread here
    pixels, shown = report_lib.pixel_table(results, '_std' if folds else intervals.SUFFIX)
    if pixels:
      md += [f'\n### {r["run"]}: pixel scores (maps against the masks at each file\'s own size; '
             f'baselines on the same files; {"± std over folds" if folds else "95 % intervals"})\n',
             pixels]
    scalars = {k: v for k, v in sorted(results.items()) if isinstance(v, (int, float))
               and not k.startswith('test/') and not k.endswith('_std') and k not in shown}
    if scalars:
      md += [f'\n### {r["run"]}: evaluators beyond the test split\n',
             report_lib.md_table(['key', 'value', 'std over folds' if folds else '95 % interval'],
                                 [[k, v, results.get(f'{k}_std', '') if folds else
                                   intervals.as_text(results.get(k + intervals.SUFFIX))]
                                  for k, v in scalars.items()])]
  if len(loaded) > 1:
    md += ['\n## Ablation (Table 1 style)\n',
           report_lib.md_table(['dataset', 'split', 'detector', 'accuracy', 'precision', 'recall', 'F1', 'AUC'],
                               [[run.config.dataset.name, run.config.dataset.split,
                                 run.detectors[0].describe(),
                                 *[cell(r, k) for k in ('accuracy', 'precision', 'recall', 'f1', 'auc')]]
                                for run, r in zip(loaded, report['runs'])])]
  paired = _paired(loaded, own, contexts)
  if paired:
    report['paired'] = paired
    differences = ('accuracy', 'auc', 'pixel_f1', 'pixel_auc')
    md += [f'\n## Paired against {loaded[0].name} (each run minus it on the same test files; '
           f'95 % intervals from the same resamples of the scenes for both)\n',
           report_lib.md_table(['run', *differences], [
               [row['run'], *[f'{row[k]:+.3f} {intervals.as_text(row.get(k + intervals.SUFFIX))}'
                              if k in row else '' for k in differences]] for row in paired])]
  if cross:
    names = list(dict.fromkeys(run.config.dataset.name for run in loaded))
    matrix = [_cross_row(run, loaded, names, r) for run, r in zip(loaded, report['runs'])]
    report['cross'] = {'datasets': names, 'rows': matrix}
    md += ['\n## Cross-dataset: accuracy / AUC (rows: trained on; columns: tested on; own dataset: '
           'its test split, others: every example)\n', report_lib.md_table(['run', *names], matrix)]
  robustness_rows = None
  main_run = loaded[0]
  if with_robustness:
    # Every fold's detector on its own test split (a k-fold run), then the mean over folds, as
    # the run's own results.json holds it.
    folds = len(main_run.detectors)
    robustness_rows = robustness_lib.mean_over_folds([
        robustness_lib.robustness(d, d.config, dataset, max_examples=max_examples,
                                  seed=main_run.config.seed)
        for d, dataset in zip(main_run.detectors, main_run.datasets)])
    report['robustness'] = robustness_rows
    pixel_keys = [k for k in ('pixel_f1', 'pixel_auc') if any(k in r for r in robustness_rows)]
    md += [f'\n## Robustness of {main_run.name} ('
           f'{f"the mean over {folds} folds, each on its " if folds > 1 else ""}test split'
           f'{f", first {max_examples}" if max_examples else ""}'
           f'{" of each" if folds > 1 and max_examples else ""})\n',
           report_lib.md_table(['attack', 'strength', *keys, *pixel_keys],
                               [[r['attack'], r['strength'], *[r[k] for k in keys],
                                 *[r.get(k, '') for k in pixel_keys]] for r in robustness_rows])]
  map_items = pixel_eval.best_and_worst_of(contexts[workdir])  # every fold's test split
  figures = report_lib.figures(out, workdir, *own[workdir], main_run.detectors[0].class_names,
                               robustness_rows, map_items)
  md += ['\n## Figures\n'] + [f'![{f}]({f})\n' for f in figures]
  with atomic.replaced_when_complete(os.path.join(out, 'report.md')) as f:
    f.write('\n'.join(md))
  runs_lib.write_json_atomic(os.path.join(out, 'report.json'), report)
  return report


def main(argv):
  runtime.deterministic_gpu_ops()
  runtime.quiet_libraries()
  runtime.home_in_flags()
  runtime.compilation_cache()
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  output = f.output or os.path.join(f.workdir, 'report')
  try:
    for name in ('cross_also_test', 'cross_manual_dir'):
      if f[name].value and not f.cross_dataset:
        raise ValueError(f'--{name} needs --cross_dataset')
    if f.max_examples and not f.robustness:
      raise ValueError('--max_examples needs --robustness (it limits the attacked test examples)')
    cross = (CrossDataset.parse(f.cross_dataset, f.cross_also_test, f.cross_manual_dir)
             if f.cross_dataset else None)
    evaluate(f.workdir, f.runs, f.cross, f.robustness, f.max_examples, output, f.evals or None,
             f.keypoint_map, f.keypoint_fusion, cross, f.keypoint_mirrored, f.average_with,
             f.keypoint_decision, score_flips=f.score_flips, data_dir=f.data_dir,
             manual_dir=f.manual_dir)
  except (ValueError, OSError, datasets.DatasetError) as e:
    progress.exit_with_error(e)
  except KeyboardInterrupt:
    progress.exit_interrupted(f'{output}: report.md and report.json not written (any from '
                              'before are kept whole)')
  print(os.path.join(output, 'report.md'))


if __name__ == '__main__':
  # Defined here, not at import, so that importing this module claims no flag names.
  flags.DEFINE_string('workdir', None, 'The run to report on.')
  flags.DEFINE_string('output', None, 'Where the report goes (default: WORKDIR/report).')
  flags.DEFINE_string('data_dir', '', "Where the runs' datasets are read (and built, if missing), "
                      'instead of the data_dir their configs recorded: for runs moved to another '
                      'machine. A dataset there split otherwise than when a run trained is refused.')
  flags.DEFINE_string('manual_dir', '', "The release folder WORKDIR's dataset is built from, if it "
                      'is missing, instead of the folder its config recorded (a release moved; '
                      'the --runs keep theirs).')
  flags.DEFINE_list('runs', [], 'More runs: for the ablation table and the cross-dataset matrix.')
  flags.DEFINE_list('evals', [], 'Evaluators to run (default: each run\'s config.evals).')
  flags.DEFINE_bool('cross', False, "Evaluate every run on every run's dataset.")
  flags.DEFINE_bool('robustness', False, 'Attack the test split of WORKDIR.')
  flags.DEFINE_integer('max_examples', 0, 'Robustness on the first N test examples only (0 = all).',
                       lower_bound=0)
  flags.DEFINE_bool('keypoint_map', False, 'Fuse the copy-move keypoint map into localiser runs\' '
                    'maps when scoring (inference only).')
  flags.DEFINE_enum('keypoint_fusion', None, list(localiser.KEYPOINT_FUSIONS), 'With --keypoint_map: '
                    'how the maps are joined (forgery_jax.detectors.localiser.fuse_maps; default: the '
                    "run's model.keypoint_fusion, else replace).")
  flags.DEFINE_bool('keypoint_mirrored', False, 'With --keypoint_map: the map also matches regions '
                    'copied mirror-wise (model.keypoint_mirrored).')
  flags.DEFINE_enum('keypoint_decision', None, list(keypoints.DECISIONS), 'With --keypoint_map: the '
                    "map's image decision (model.keypoint_decision; default: the run's own).")
  flags.DEFINE_bool('score_flips', False, "Localiser runs: each image's answer is the mean over its "
                    'four flips, each map flipped back (model.score_flips; four network passes '
                    'per image).')
  flags.DEFINE_string('cross_dataset', None, 'NAME[:CONFIG]: score the runs on every example of '
                      "this dataset instead of their config.cross_dataset (the cross_dataset and "
                      'pixel evaluators).')
  flags.DEFINE_list('cross_also_test', [], "With --cross_dataset: more of its builder configs.")
  flags.DEFINE_list('average_with', [], 'More runs of the same split (other seeds): WORKDIR is '
                    'scored as the average of their probabilities and maps and its own.')
  flags.DEFINE_string('cross_manual_dir', '', 'With --cross_dataset: its release folder.')
  flags.mark_flags_as_required(['workdir'])
  app.run(main)

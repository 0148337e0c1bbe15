"""Evaluators: small classes, each one evaluation of a fitted detector, named in `config.evals`.

After every fit the experiment runner calls the evaluators the config lists, and
`python -m forgery_jax.evaluate` calls the same ones on finished runs. Each returns a flat dict
of results.json keys:

* `test`: metrics on the test split (`test/*`, and `test/accuracy_by_<property>`);
* `baselines`: the shortcut baselines on the same split (`baseline/*`);
* `also_test`: the same test files prepared by other builder configs (`config.dataset.also_test`),
  each beside its own baselines (`test_<config>/*`);
* `cross_dataset`: every example of `config.cross_dataset` (`cross/<dataset>/*`); with `pixel`
  in the same evals, a localiser scores each of its files once for both;
* `robustness`: the test split after JPEG, resize, blur and noise attacks on the source files
  (`robustness/<attack>/<strength>/*`, with the pixel scores of a localising detector);
* `pixel`: where the forgery is: `pixel_f1`, `pixel_f1_best`, `pixel_auc`, `pixel_iou` of the
  detector's maps against the masks at the files' original resolution, per forgery type too, on
  the test split and every `also_test` config (`test/pixel_*`, `test_<config>/pixel_*`), each
  beside its shortcut baselines (`.../pixel_baseline/<all_tampered|centre_prior|
  mean_training_mask>/*`); a detector without maps but with gradient saliency (the paper CNN) is
  scored under `.../saliency/pixel_*`, labelled as such;
* `control`: the history-matched control (`config.dataset.control`): the false-alarm rate on the
  authentic test files given a tampered file's JPEG history, beside the rate on the same files
  without it (`control/<config>/*`);
* `pixel_threshold`: the pixel-level decision at the map threshold with the best pixel F1 on the
  validation split's tampered files, instead of 0.5 (maps whose values are under- or
  over-confident): the threshold, and `pixel_f1` and `pixel_iou` at it wherever the `pixel`
  evaluator scored maps, per forgery type too (`pixel_threshold/*`); run it after `pixel`;
* `validation_threshold`: the image-level decision at the p(tampered) threshold that is most
  accurate on the validation split, instead of 0.5 (a binary detector whose probabilities are
  badly calibrated): the threshold, and accuracy and false-alarm rates at it on the test split, every
  `also_test` config and the control (`threshold/*`); run it after those evaluators, whose scores it
  reuses.

Accuracy and AUC of every scored split, the pixel scores, the decisions at the validation's
threshold and the control's false alarms carry their 95 % intervals beside them (`<score>_ci95`:
`intervals`, a bootstrap over the split's scenes).

A new evaluator is a class with a `name` and `__call__(detector, context)`, added to `EVALUATORS`;
its `reads` names the datasets besides the run's own that it reads ('also_test', 'control',
'control_reference', 'cross'), which `load_datasets` loads before a fit so that one that cannot
be read fails then.
"""

from __future__ import annotations

import dataclasses

from absl import logging
import jax
import ml_collections
import numpy as np

from forgery_jax import writers
from forgery_jax.data import input_pipeline
from forgery_jax.detectors import base
from forgery_jax.evaluation import baselines
from forgery_jax.evaluation import intervals
from forgery_jax.evaluation import metrics as metrics_lib
from forgery_jax.evaluation import pixel_eval
from forgery_jax.evaluation import pixel_metrics
from forgery_jax.evaluation import robustness as robustness_lib


@dataclasses.dataclass
class Context:
  """What evaluators read: the run's config and dataset, and where the run lives."""
  config: ml_collections.ConfigDict
  dataset: input_pipeline.Dataset
  workdir: str
  write_metrics: bool = True   # add the test row to metrics.jsonl (a training run, not `evaluate`)
  batch_size: int = 32
  cache: dict = dataclasses.field(default_factory=dict)     # scores shared between evaluators
  datasets: dict = dataclasses.field(default_factory=dict)  # 'test_<config>': the also_test datasets
  evals: tuple = ()  # the evaluators run_all runs: one keeps what a later one needs

  def scores(self, detector, dataset, indices, key: str, desc: str, keep_maps: bool = True):
    """The detector's scores of `dataset.source[indices]`, computed once per key (again only
    when a localiser's maps are asked for and the first scoring did not keep them)."""
    cached = self.cache.get(key)
    if cached is None or (keep_maps and detector.localises and cached.maps is None):
      self.cache[key] = detector.score_split(dataset, indices, self.batch_size, desc=desc,
                                             keep_maps=keep_maps)
    return self.cache[key]


def _test_metrics(detector, ctx: Context, dataset, prefix: str, key: str,
                  keep_maps: bool = True) -> dict:
  scores = ctx.scores(detector, dataset, dataset.split.test, key, desc=f'{prefix} {dataset.name}',
                      keep_maps=keep_maps)
  return _metrics_of(scores, dataset, prefix)


def _metrics_of(scores, dataset, prefix: str) -> dict:
  test = dataset.split.test
  m = metrics_lib.classification_metrics(scores.probabilities, dataset.labels[test],
                                         dataset.class_names)
  m.update(intervals.classification(scores.probabilities, dataset.labels[test],
                                     intervals.scenes_of(dataset, test)))
  logging.info('%s %s: accuracy %.4f  auc %.4f', prefix, dataset.name, m['accuracy'], m['auc'])
  return m


class TestSplit:
  """Metrics on the test split, and the accuracy per value of every file property."""
  name = 'test'

  def __call__(self, detector, ctx: Context) -> dict:
    m = _test_metrics(detector, ctx, ctx.dataset, 'test', 'test')
    if ctx.write_metrics:
      writer = writers.MetricWriter(ctx.workdir, enabled=jax.process_index() == 0)
      writer.write('test', detector.info.get('step', 0), m)
      writer.close()
    out = {f'test/{k}': v for k, v in m.items()}
    predictions = ctx.cache['test'].probabilities.argmax(1)
    out.update(baselines.accuracy_by_property(ctx.dataset, 'test', predictions))
    return out


class Baselines:
  """The shortcut baselines on the same split: what a score must beat to mean detection."""
  name = 'baselines'

  def __call__(self, detector, ctx: Context) -> dict:
    del detector
    return baselines.shortcut_baselines(ctx.dataset)


def _test_examples(dataset) -> tuple[list, list, list]:
  """What identifies a dataset's test examples: file names (where kept), groups and labels."""
  idx = dataset.split.test
  names = [dataset.filenames[i] for i in idx] if dataset.filenames is not None else []
  return names, [dataset.groups[i] for i in idx], dataset.labels[idx].tolist()


def same_test_files(dataset, other) -> bool:
  """Whether two datasets' test splits hold the same files in the same order."""
  return _test_examples(dataset) == _test_examples(other)


def _prepared_as(ctx: Context, builder_config: str, key: str, what: str):
  """The run's test files as builder config `builder_config` prepared them, loaded once per
  context under `key`; ValueError naming the config key `what` if its test split holds other
  files."""
  if key not in ctx.datasets:
    other = input_pipeline.load(ctx.config, builder_config=builder_config)
    if not same_test_files(ctx.dataset, other):
      raise ValueError(f'{what}={builder_config!r}: its test split holds other files than '
                       f'{ctx.config.dataset.builder_config!r} (a different release or version?)')
    ctx.datasets[key] = other
  return ctx.datasets[key]


def also_test_dataset(ctx: Context, name: str):
  """The run's test files as builder config `name` prepared them (`dataset.also_test`)."""
  return _prepared_as(ctx, name, f'test_{name}', 'dataset.also_test')


def control_dataset(ctx: Context, builder_config: str):
  """The run's test files as builder config `builder_config` prepared them, for the control and
  its reference (the run's own dataset for its own builder config)."""
  if builder_config == ctx.config.dataset.builder_config:
    return ctx.dataset
  return _prepared_as(ctx, builder_config, f'control/{builder_config}', 'dataset.control')


def control_reference(config) -> str:
  """The builder config the control's false alarms are read against (`dataset.control_reference`,
  else the run's own)."""
  return config.dataset.control_reference or config.dataset.builder_config


def load_datasets(ctx: Context, names) -> None:
  """Loads, building them where needed, the other datasets the evaluators `names` will read (each
  evaluator's `reads`: 'also_test', 'control', 'control_reference', 'cross'), and checks that
  they hold the run's test files: called before a fit, so that one that cannot be built or read
  fails then, not after training. Each is kept in the context for the evaluators."""
  reads = {r for n in names for r in getattr(get(n), 'reads', ())}
  d = ctx.config.dataset
  if 'also_test' in reads:
    for name in d.also_test:
      also_test_dataset(ctx, name)
  if d.control and 'control' in reads:
    control_dataset(ctx, d.control)
  if d.control and 'control_reference' in reads:
    control_dataset(ctx, control_reference(ctx.config))
  if 'cross' in reads:
    cross_datasets(ctx)


class AlsoTest:
  """The same test files as prepared by other builder configs (`config.dataset.also_test`),
  each beside its own shortcut baselines: e.g. the test images re-encoded at random qualities."""
  name = 'also_test'
  reads = ('also_test',)

  def __call__(self, detector, ctx: Context) -> dict:
    out = {}
    for name in ctx.config.dataset.also_test:
      other = also_test_dataset(ctx, name)
      m = _test_metrics(detector, ctx, other, f'test_{name}', f'test_{name}')
      out.update({f'test_{name}/{k}': v for k, v in m.items()})
      out.update({f'test_{name}/{k}': v for k, v in baselines.shortcut_baselines(other).items()})
    return out


def cross_datasets(ctx: Context) -> list:
  """Every example of `config.cross_dataset`, under its builder config and each of its
  `also_test` configs (loaded once per context). Its release folder defaults to the run's own
  when it names the run's dataset."""
  c = ctx.config.cross_dataset
  if not c.name:
    return []
  input_pipeline.check_not_extra_authentic(ctx.config, c.name)
  out = []
  for builder_config in (c.builder_config,) + tuple(c.also_test):
    key = f'cross:{builder_config}'
    if key not in ctx.datasets:
      manual_dir = c.manual_dir or (ctx.config.dataset.manual_dir if c.name == ctx.config.dataset.name else '')
      ctx.datasets[key] = input_pipeline.load(ctx.config, all_for_test=True, name=c.name,
                                              builder_config=builder_config,
                                              manual_dir=manual_dir, train_classes=())
    out.append(ctx.datasets[key])
  return out


def _has_masks(dataset) -> bool:
  """Whether a cross dataset stores any mask (the `pixel` evaluator scores only those)."""
  return dataset.has_mask is not None and bool(dataset.has_mask.any())


def cross_scores(detector, ctx: Context, dataset) -> base.Scores:
  """Every example of a cross dataset, scored once per context; with the `pixel` evaluator
  in `ctx.evals`, a localiser keeps the maps of the tampered files with masks (others' maps are
  None), so that the pixel scores need no second pass over them."""
  key = f'cross/{dataset.name}'
  if key in ctx.cache:
    return ctx.cache[key]
  every = dataset.split.test  # all of it: loaded with all_for_test
  desc = f'cross {dataset.name}'
  with_maps = np.zeros(len(every), bool)
  if detector.localises and 'pixel' in ctx.evals and _has_masks(dataset):
    with_maps = np.isin(every, pixel_eval.tampered_with_mask(dataset, every))
  if not with_maps.any():
    scores = detector.score_split(dataset, every, ctx.batch_size, desc=desc, keep_maps=False)
  else:  # a localiser's scores of a file do not depend on the files scored with it
    mapped = detector.score_split(dataset, every[with_maps], ctx.batch_size, desc=desc)
    rest = detector.score_split(dataset, every[~with_maps], ctx.batch_size, desc=desc,
                                keep_maps=False)
    probabilities = np.zeros((len(every), mapped.probabilities.shape[1]), np.float32)
    probabilities[with_maps], probabilities[~with_maps] = mapped.probabilities, rest.probabilities
    maps = [None] * len(every)
    for position, tamper_map in zip(np.flatnonzero(with_maps), mapped.maps):
      maps[position] = tamper_map
    scores = base.Scores(probabilities, maps, mapped.map_kind)
  ctx.cache[key] = scores
  return scores


class CrossDataset:
  """Metrics on every example of `config.cross_dataset` (train on one dataset, test on another;
  or, for a detector trained without the dataset's forgeries, on all of its files)."""
  name = 'cross_dataset'
  reads = ('cross',)

  def __call__(self, detector, ctx: Context) -> dict:
    out = {}
    for dataset in cross_datasets(ctx):
      m = _metrics_of(cross_scores(detector, ctx, dataset), dataset, 'cross')
      out.update({f'cross/{dataset.name}/{k}': v for k, v in m.items()})
    return out


class Robustness:
  """The test split after post-processing of the source files (`config.robustness`)."""
  name = 'robustness'

  def __call__(self, detector, ctx: Context) -> dict:
    rows = robustness_lib.robustness(detector, ctx.config, ctx.dataset,
                                     max_examples=ctx.config.robustness.max_examples,
                                     seed=ctx.config.seed)
    out = {}
    for r in rows:
      prefix = 'robustness/none' if r['attack'] == 'none' else f"robustness/{r['attack']}/{r['strength']}"
      out.update({f'{prefix}/{k}': v for k, v in r.items() if k not in ('attack', 'strength')})
    return out


class PixelScores:
  """Pixel-level scores of the maps on the test split and every `also_test` config."""
  name = 'pixel'
  reads = ('also_test', 'cross')

  def __call__(self, detector, ctx: Context) -> dict:
    saliency = not detector.localises
    if saliency and not hasattr(detector, 'saliency'):
      return {}  # no spatial output at all (WLD + XGBoost)
    out = {}
    masks = pixel_eval.MaskSource(ctx.config)
    training_mean = pixel_eval.training_mean_mask(ctx.dataset, masks)
    datasets = {'test': ctx.dataset}
    datasets.update({f'test_{n}': also_test_dataset(ctx, n) for n in ctx.config.dataset.also_test})
    datasets.update({f'cross/{d.name}': d for d in cross_datasets(ctx) if _has_masks(d)})
    for key, dataset in datasets.items():
      if key.startswith('cross/') and not saliency and 'cross_dataset' in ctx.evals:
        cross_scores(detector, ctx, dataset)  # every file once for both, its maps kept
      result, rows = pixel_eval.evaluate(detector, ctx, dataset, key, masks, training_mean, saliency)
      prefix = f'{key}/saliency' if saliency else key
      out.update({f'{prefix}/{k}': v for k, v in result.items()})
      ctx.cache[f'pixel_rows/{key}'] = rows
    return out


class HistoryControl:
  """False alarms on authentic files given a tampered file's JPEG history (the control)."""
  name = 'control'
  reads = ('control', 'control_reference')

  def __call__(self, detector, ctx: Context) -> dict:
    name = ctx.config.dataset.control
    if not name:
      return {}
    reference = control_reference(ctx.config)
    out = {}
    called = {}
    for role, builder_config in (('control', name), ('reference', reference)):
      other = control_dataset(ctx, builder_config)
      authentic = other.split.test[other.labels[other.split.test] == 0]
      key = 'test' if other is ctx.dataset else f'control/{builder_config}'
      scores = ctx.scores(detector, other, other.split.test, key, f'{role} {other.name}',
                          keep_maps=False)
      called[role] = scores.probabilities.argmax(1)[other.labels[other.split.test] == 0] != 0
    rates = {role: float(c.mean()) if len(c) else float('nan') for role, c in called.items()}
    prefix = f'control/{name}'
    out[f'{prefix}/false_alarm_rate'] = rates['control']
    out[f'{prefix}/reference'] = reference
    out[f'{prefix}/reference_false_alarm_rate'] = rates['reference']
    out[f'{prefix}/false_alarm_increase'] = rates['control'] - rates['reference']
    # The same authentic files in both (`_prepared_as` checks it): the increase is paired, file
    # by file, and its interval narrower than the two rates' own.
    resamples = intervals.Resamples(intervals.scenes_of(other, authentic))
    for k, values in (('false_alarm_rate', called['control']),
                      ('reference_false_alarm_rate', called['reference']),
                      ('false_alarm_increase', called['control'] * 1.0 - called['reference'])):
      if (bounds := intervals.of_mean(values, resamples)) is not None:
        out[f'{prefix}/{k}{intervals.SUFFIX}'] = bounds
    out[f'{prefix}/num_authentic'] = int((ctx.dataset.labels[ctx.dataset.split.test] == 0).sum())
    logging.info('history-matched control %s: false alarms %.3f (without the history: %.3f)',
                 name, rates['control'], rates['reference'])
    return out


def most_accurate_threshold(p_tampered: np.ndarray, tampered: np.ndarray) -> float:
  """The threshold t (tampered when p >= t) with the highest accuracy on these examples, among
  0, the midpoints between consecutive distinct scores and just above 1; of tied ones, the
  middle (the upper of two)."""
  values = np.unique(np.concatenate([[0.0, 1.0], p_tampered]))
  candidates = np.concatenate([[0.0], (values[:-1] + values[1:]) / 2, [1.0 + 1e-6]])
  accuracy = np.array([((p_tampered >= t) == tampered).mean() for t in candidates])
  best = np.flatnonzero(accuracy == accuracy.max())
  return float(candidates[best[len(best) // 2]])


def best_pixel_threshold(maps: list[np.ndarray], masks: list[np.ndarray]) -> tuple[int, list[dict]]:
  """The index into `pixel_metrics.THRESHOLDS` with the best mean pixel F1 of these tampered
  files' maps against their masks, and their per-image rows."""
  rows = [pixel_metrics.per_image(m, k) for m, k in zip(maps, masks)]
  return pixel_metrics.best_threshold(pixel_metrics.mean_f1_curve(rows)), rows


def single_class(tampered: np.ndarray) -> str | None:
  """'authentic', 'tampered' (or 'no', when empty) if these labels leave no threshold to choose
  between the classes, else None."""
  if tampered.any() and not tampered.all():
    return None
  return 'tampered' if tampered.any() else 'authentic' if len(tampered) else 'no'


def decision_at(p_tampered: np.ndarray, tampered: np.ndarray, threshold: float) -> dict:
  called = p_tampered >= threshold
  return {'accuracy': float((called == tampered).mean()),
          'false_alarm_rate': float(called[~tampered].mean()) if (~tampered).any() else float('nan'),
          'detection_rate': float(called[tampered].mean()) if tampered.any() else float('nan')}


class ValidationThreshold:
  """The image-level decision at the threshold chosen on the validation split (binary tasks)."""
  name = 'validation_threshold'
  reads = ('also_test', 'control')

  def __call__(self, detector, ctx: Context) -> dict:
    dataset = ctx.dataset
    validation = dataset.split.validation
    if len(detector.class_names) != 2 or not len(validation):
      return {}
    tampered = dataset.labels[validation] != 0
    if only := single_class(tampered):
      # e.g. trained on synthesised forgeries only: no threshold to choose, none is reported.
      logging.warning('validation_threshold: the validation split of %s holds %s files only; '
                      'no threshold chosen', dataset.name, only)
      return {}
    scores = ctx.scores(detector, dataset, validation, 'validation', f'validation {dataset.name}',
                        keep_maps=False)
    threshold = most_accurate_threshold(scores.p_tampered, tampered)
    out = {'threshold/value': threshold,
           'threshold/validation_accuracy': decision_at(scores.p_tampered, tampered, threshold)['accuracy']}
    targets = [('test', ctx.dataset, 'test')]
    targets += [(f'test_{n}', also_test_dataset(ctx, n), f'test_{n}') for n in ctx.config.dataset.also_test]
    if ctx.config.dataset.control:
      name = ctx.config.dataset.control
      targets.append((f'control/{name}', control_dataset(ctx, name), f'control/{name}'))
    for prefix, other, key in targets:
      scores = ctx.scores(detector, other, other.split.test, key, f'{prefix} {other.name}',
                          keep_maps=False)
      truth = other.labels[other.split.test] != 0
      decision = decision_at(scores.p_tampered, truth, threshold)
      decision.update(intervals.decision(scores.p_tampered >= threshold, truth,
                                         intervals.scenes_of(other, other.split.test)))
      out.update({f'threshold/{prefix}/{k}': v for k, v in decision.items()})
    logging.info('validation threshold %.3f: test accuracy %.4f', threshold, out['threshold/test/accuracy'])
    return out


class PixelThreshold:
  """Pixel F1 and IoU at the map threshold chosen on the validation split's tampered files."""
  name = 'pixel_threshold'

  def __call__(self, detector, ctx: Context) -> dict:
    dataset = ctx.dataset
    chosen = pixel_eval.tampered_with_mask(dataset, dataset.split.validation)
    if not detector.localises or not len(chosen):
      return {}
    scored = [k[len('pixel_rows/'):] for k in ctx.cache if k.startswith('pixel_rows/')]
    if not scored:
      raise ValueError("evaluator 'pixel_threshold' needs the 'pixel' evaluator before it in evals")
    scores = ctx.scores(detector, dataset, dataset.split.validation, 'validation',
                        f'validation {dataset.name}')
    position = {int(i): k for k, i in enumerate(dataset.split.validation)}
    masks = pixel_eval.MaskSource(ctx.config)
    best, validation = best_pixel_threshold([scores.maps[position[int(i)]] for i in chosen],
                                            [masks.mask(dataset, i) for i in chosen])
    out = {'pixel_threshold/value': float(pixel_metrics.THRESHOLDS[best]),
           'pixel_threshold/validation_pixel_f1': pixel_metrics.at_threshold(validation, best)['pixel_f1']}
    for key in scored:
      for group, rows in pixel_eval.by_forgery_type(ctx.cache[f'pixel_rows/{key}']).items():
        out.update({f'pixel_threshold/{key}/{group}{k}': v
                    for k, v in pixel_metrics.at_threshold(rows, best).items()})
    logging.info('validation pixel threshold %.2f: test pixel F1 %.4f', out['pixel_threshold/value'],
                 out.get('pixel_threshold/test/pixel_f1', float('nan')))
    return out


EVALUATORS = {e.name: e for e in (TestSplit, Baselines, AlsoTest, CrossDataset, Robustness,
                                  PixelScores, HistoryControl, PixelThreshold, ValidationThreshold)}


def get(name: str):
  if name not in EVALUATORS:
    raise ValueError(f'config.evals names {name!r}; evaluators: {sorted(EVALUATORS)}')
  return EVALUATORS[name]()


def run_all(detector, ctx: Context, names) -> dict:
  """Every evaluator of `names`, in order; their results merged."""
  evaluators = [get(n) for n in names]  # an unknown name fails before any work
  ctx.evals = tuple(names)
  results = {}
  for evaluator in evaluators:
    results.update(evaluator(detector, ctx))
  return results

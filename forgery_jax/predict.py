"""Is this file tampered, and where? `python -m forgery_jax.predict --workdir=RUN [--output=DIR] PATH...`

`--keypoint_map [--keypoint_fusion=replace|max|keypoints_alone|upper_copies|upper_copies_ranked]`: a localiser run's maps with the
copy-move keypoint map fused in, as `evaluate --keypoint_map` scores them (inference only).
`--threshold=T`: call a file tampered when p(tampered) >= T (default: the most probable class);
`--threshold=validation`: at the threshold most accurate on the run's validation split, for the
detector as loaded (the keypoint map fused or not), as the `validation_threshold` evaluator
chooses it (the run's dataset is read for it: from `--data_dir=DIR` when given, instead of the
data_dir its config recorded, for a run moved to another machine, and built, if missing there,
from the release folder `--manual_dir=DIR` or the recorded one).
`--average_with=RUN2,RUN3`: RUN's answer averaged with those runs' (runs of one split, other seeds).
`--score_flips` (a localiser): the answer is the mean over the image's four flips.
`--pixel_threshold=T|validation` (a localiser): also write the region, the pixels whose tamper
probability reaches T, or the threshold with the best pixel F1 on the validation split's masks
(as the `pixel_threshold` evaluator chooses it). The region is drawn whatever the image's label.

PATH is a file, a folder (its images, sorted; with `--recursive` those of its subfolders too) or
a glob. RUN is a finished run of
`forgery_jax.main` (any detector; its inference export, every fold of a k-fold run averaged), or
a run's `export/` folder copied on its own (to another machine, renamed or not). Every
image is prepared exactly as the run's training images were (see `forgery_jax.api`), so any image
a camera or editor writes is read: JPEG, PNG, TIFF, BMP, WebP, GIF, grey, RGBA, palette, CMYK,
16-bit.

Writes to OUTPUT (default RUN/predictions):
* predictions.jsonl: one line per image, {path, prediction, p_tampered, probabilities, panel, mask}
  (and threshold, with --threshold; region and pixel_threshold, with --pixel_threshold;
  beyond_training_size, for a run that scores whole files at their own size and recorded its
  training files' sizes: whether the image holds more pixels than the largest of them, counted
  on stderr), or {path, error} for a file that could not be used;
* predictions.csv: the same, one row per image;
* predicted_with.json: how: the run (its absolute path), its detector as loaded (`describe`: the
  keypoint map and its rule, four flips, an average of runs) and its number of folds (their
  answers averaged), the options as the flags that repeat them, the thresholds used, and the
  software and machine (`runtime.environment`);
* masks/<n>_<stem>.png: for a detector that localises, the tamper probability (0-255) at the
  input's own size (n: the image's place in the listing, five digits, so that files of one name in
  two folders stay apart); regions/<n>_<stem>.png with --pixel_threshold: 255 where it reaches the
  threshold, else 0;
* with `--ground_truth=MASKS_FOLDER|PAIRS.csv`: each line also holds the image's `ground_truth`
  label and its `pixel_f1`, `pixel_auc` and `pixel_iou` (or `ground_truth_error`), and
  ground_truth_scores.json the scores over all of them beside their baselines, also printed
  (`forgery_jax.evaluation.ground_truth`; `--unmasked_authentic`, `--ground_truth_inverted`);
* panels/*.png (unless --nopanels): the image, its ELA plane, its SRM residual, and the map over
  the image: the tamper probability of a localising detector, or the paper CNN's gradient saliency
  (|d p_tampered / d input|: where the decision rests, not a segmentation). WLD + XGBoost has no
  spatial output.

Images are decoded and prepared in worker threads while the model runs, panels are drawn off the
critical path, and JAX's compilation cache (~/.cache/forgery_jax/jax, or
$FORGERY_JAX_COMPILATION_CACHE) spares a second invocation its compilation. The exit status is 1
if any file failed.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import glob
import json
import os
import sys
import time

from absl import app
from absl import flags
import numpy as np

from forgery_jax import api
from forgery_jax import atomic
from forgery_jax import image_io
from forgery_jax import panels as panels_lib
from forgery_jax import progress
from forgery_jax import runs
from forgery_jax import runtime
from forgery_jax.evaluation import ground_truth as ground_truth_lib


PREDICTED_WITH = 'predicted_with.json'


def folder_images(folder: str, recursive: bool = False) -> list[str]:
  """`image_io.image_files`; without `recursive`, a line on stderr says how many subfolders were
  left unread, so that a dataset tree is not half-read unnoticed."""
  if not recursive:
    unread = sum(os.path.isdir(os.path.join(folder, n)) and not n.startswith('.')
                 for n in os.listdir(folder))
    if unread:
      print(f'{folder}: {unread} subfolder(s) not read (--recursive reads them)', file=sys.stderr)
  return image_io.image_files(folder, recursive)


def expand_paths(paths: list[str], recursive: bool = False) -> list[str]:
  """Files named, the images of folders named (sorted; `recursive`: of their subfolders too), and
  glob matches, in order, once each."""
  out: list[str] = []
  for p in paths:
    if os.path.isdir(p):
      out += folder_images(p, recursive)
    elif any(c in p for c in '*?[') and not os.path.exists(p):
      out += sorted(glob.glob(p))
    else:
      out.append(p)  # a missing file gets its error line later
  return list(dict.fromkeys(out))


def _prepare(predictor: api.Predictor, path: str):
  try:
    return predictor.prepare(path)
  except (ValueError, OSError) as e:
    return str(e) if path in str(e) else f'{path}: {e}'


@contextlib.contextmanager
def _dropped_when_stopped(*pools: concurrent.futures.ThreadPoolExecutor):
  """On Ctrl-C (or an error) the pools' queued work is dropped, not run to the end before the
  command stops; what runs now is finished whole. Entered after the pools: it exits first."""
  try:
    yield
  except BaseException:
    for pool in pools:
      pool.shutdown(wait=False, cancel_futures=True)
    raise


def _stem(index: int, path: str) -> str:
  return f'{index:05d}_{os.path.splitext(os.path.basename(path))[0][:60]}'


def predict_paths(workdir: str, paths: list[str], output: str, batch_size: int = 16,
                  panels: bool = True, keypoint_map: bool = False,
                  keypoint_fusion: str | None = None,
                  threshold: float | str | None = None,
                  pixel_threshold: float | str | None = None,
                  keypoint_mirrored: bool = False, average_with=(),
                  keypoint_decision: str | None = None, *,
                  score_flips: bool = False,
                  recursive: bool = False,
                  data_dir: str = '', manual_dir: str = '',
                  ground_truth: ground_truth_lib.Scores | None = None) -> tuple[list[dict], float]:
  """Predictions for every path (errors included, in order) and the images/s of the good ones;
  `keypoint_map`, `keypoint_fusion`, `threshold`, `pixel_threshold`, `keypoint_mirrored`,
  `average_with`, `keypoint_decision`, `score_flips`: see `api.load`; `recursive`: folders are
  read with their subfolders; `ground_truth`: each answer is scored against it too; `data_dir`,
  `manual_dir`: where a threshold chosen on validation reads (or builds) its split (`api.load`).
  Naming no image at all (an empty folder, a glob that matches nothing) is an error, raised before the run
  is loaded or anything is written."""
  files = expand_paths(paths, recursive)
  # The maps and panels of an earlier call into the same --output, inside a folder read again.
  own = tuple(os.path.join(os.path.realpath(output), sub, '')
              for sub in ('masks', 'panels', 'regions'))
  earlier = [f for f in files if os.path.realpath(f).startswith(own)]
  if earlier:
    files = [f for f in files if f not in earlier]
    print(f'{len(earlier)} files of this --output ({output}) left out: its own maps and panels',
          file=sys.stderr)
  if ground_truth is not None:
    masks = ground_truth.truth.masks_among(files)
    if masks:
      files = [f for f in files if os.path.realpath(f) not in masks]
      print(f'{len(masks)} files left out: the masks of other images in --ground_truth',
            file=sys.stderr)
  if not files:
    raise ValueError(f'no image file in {", ".join(paths)}' +
                     ('' if recursive else ' (--recursive reads subfolders too)'))
  predictor = api.load(workdir, keypoint_map, keypoint_fusion, threshold, pixel_threshold,
                       keypoint_mirrored=keypoint_mirrored, average_with=average_with,
                       keypoint_decision=keypoint_decision, score_flips=score_flips,
                       data_dir=data_dir, manual_dir=manual_dir)
  regions = predictor.pixel_threshold is not None
  runtime.output_folder(output, '--output')
  for sub in ('panels',) * panels + ('masks',) * predictor.localises + ('regions',) * regions:
    runtime.output_folder(os.path.join(output, sub), '--output')
  rows: list[dict] = [{'path': p} for p in files]
  workers = os.cpu_count() or 1
  start, done = time.perf_counter(), 0
  with concurrent.futures.ThreadPoolExecutor(workers) as prepare_pool, \
       concurrent.futures.ThreadPoolExecutor(1) as writer_pool, \
       _dropped_when_stopped(prepare_pool, writer_pool), \
       image_io.opencv_threads(1), \
       progress.bar(total=len(files), desc='predict', unit='image') as bar:
    # Prepared in worker threads, in order, a bounded window ahead of the model.
    pending = [prepare_pool.submit(_prepare, predictor, p) for p in files[:2 * batch_size]]
    writes = []
    for lo in range(0, len(files), batch_size):
      batch = []
      for i in range(lo, min(lo + batch_size, len(files))):
        prepared = pending[i].result()
        nxt = i + 2 * batch_size
        if nxt < len(files):
          pending.append(prepare_pool.submit(_prepare, predictor, files[nxt]))
        if isinstance(prepared, str):
          rows[i]['error'] = prepared
          progress.write(f'error: {prepared}')
        else:
          batch.append((i, prepared))
      if batch:
        wants_map = panels or ground_truth is not None
        predictions = predictor.predict_prepared([p for _, p in batch],
                                                 saliency=wants_map and not predictor.localises)
        done += len(batch)
        for (i, prepared), pred in zip(batch, predictions):
          row = rows[i]
          row.update(prediction=pred.label, p_tampered=pred.p_tampered,
                     probabilities=pred.probabilities)
          if predictor.threshold is not None:
            row['threshold'] = predictor.threshold
          if pred.beyond_training_size is not None:
            row['beyond_training_size'] = pred.beyond_training_size
          if predictor.localises:
            row['mask'] = os.path.join(output, 'masks', f'{_stem(i, prepared.name)}.png')
          if regions:
            row['region'] = os.path.join(output, 'regions', f'{_stem(i, prepared.name)}.png')
            row['pixel_threshold'] = predictor.pixel_threshold
          if panels:
            row['panel'] = os.path.join(output, 'panels', f'{_stem(i, prepared.name)}.png')
          writes.append(writer_pool.submit(_write_outputs, row, prepared, pred,
                                            predictor.detectors[0], files[i], ground_truth))
      bar.update(min(lo + batch_size, len(files)) - lo)
    for w in writes:
      w.result()
  rate = done / max(time.perf_counter() - start, 1e-9)
  beyond = sum(bool(r.get('beyond_training_size')) for r in rows)
  if beyond:
    height, width = predictor.largest_training_file
    print(f'{beyond} of {len(rows)} images hold more pixels than the largest file the run '
          f'trained on ({height} x {width}): its answers were measured on files up to that size '
          'and may differ on larger ones (README: "Photos unlike the training files")',
          file=sys.stderr)
  runs.write_json_atomic(os.path.join(output, PREDICTED_WITH), {
      'run': os.path.abspath(workdir), 'detector': predictor.detectors[0].describe(),
      'folds': len(predictor.detectors),  # a k-fold run's answers: the mean of its folds'
      'options': runs.as_flags(
          nopanels=not panels,
          keypoint_map=keypoint_map, keypoint_fusion=keypoint_fusion,
          keypoint_mirrored=keypoint_mirrored, keypoint_decision=keypoint_decision,
          threshold=threshold, pixel_threshold=pixel_threshold, average_with=average_with,
          score_flips=score_flips, recursive=recursive, data_dir=data_dir, manual_dir=manual_dir,
          ground_truth=ground_truth and ground_truth.truth.source,
          unmasked_authentic=bool(ground_truth and ground_truth.truth.unmasked_authentic),
          ground_truth_inverted=bool(ground_truth and ground_truth.inverted)),
      'threshold': predictor.threshold, 'pixel_threshold': predictor.pixel_threshold,
      'images': len(rows), 'failed': sum('error' in r for r in rows),
      'environment': runtime.environment()})
  with atomic.replaced_when_complete(os.path.join(output, 'predictions.jsonl')) as f:
    for row in rows:
      f.write(json.dumps(row, sort_keys=True) + '\n')
  with atomic.replaced_when_complete(os.path.join(output, 'predictions.csv')) as f:
    w = csv.writer(f)
    scored = ('ground_truth', 'pixel_f1', 'pixel_auc') if ground_truth is not None else ()
    w.writerow(['path', 'prediction', 'p_tampered', 'panel', 'mask', 'error', 'region', *scored])
    for row in rows:
      w.writerow([row['path'], row.get('prediction', ''),
                  f"{row['p_tampered']:.4f}" if 'p_tampered' in row else '', row.get('panel', ''),
                  row.get('mask', ''), row.get('error', '') or row.get('ground_truth_error', ''),
                  row.get('region', '')] +
                 [f'{row[k]:.4f}' if isinstance(row.get(k), float) else row.get(k, '') for k in scored])
  return rows, rate


def _write_outputs(row: dict, prepared: api.Prepared, pred: api.Prediction, detector,
                   path: str, ground_truth: ground_truth_lib.Scores | None) -> None:
  """One image's scores against the ground truth (if any), its mask PNG and its panel, with the
  keypoint pairs the detector's answer rests on, if any: in the writer thread, off the model's
  path (the one thread keeps the scores in order)."""
  if ground_truth is not None:
    ground_truth.add(row, path, prepared.shown_size, pred.map, pred.map_kind)
    if 'ground_truth_error' in row:
      progress.write(f"ground truth: {row['ground_truth_error']}")
  if 'mask' in row:
    image_io.write_png(row['mask'], np.round(np.clip(pred.map, 0, 1) * 255).astype(np.uint8))
  if 'region' in row:
    image_io.write_png(row['region'], pred.region.astype(np.uint8) * 255)
  if 'panel' in row:
    pairs = detector.keypoint_pairs(prepared.rgb)  # matched in the stored pixels, as scored
    pairs = None if pairs is None else tuple(prepared.shown_points(p) for p in pairs)
    panels_lib.write_panel(row['panel'], prepared, pred, pairs)


def parse_threshold(text: str | None, flag: str = 'threshold') -> float | str | None:
  """--threshold (or --`flag`): None, 'validation', or a number in [0, 1]."""
  if text is None or text == 'validation':
    return text
  try:
    value = float(text)
  except ValueError:
    value = -1.0
  if not 0.0 <= value <= 1.0:
    raise ValueError(f"--{flag}={text}: a number in [0, 1] or 'validation'")
  return value


def main(argv):
  runtime.deterministic_gpu_ops()
  runtime.quiet_libraries()
  runtime.home_in_flags()
  runtime.compilation_cache()
  paths = [runtime.home(p) for p in argv[1:]]
  if not paths:
    raise app.UsageError('name at least one image file, folder or glob')
  f = flags.FLAGS
  output = f.output or os.path.join(f.workdir, 'predictions')
  try:
    threshold = parse_threshold(f.threshold)
    pixel_threshold = parse_threshold(f.pixel_threshold, 'pixel_threshold')
    for name in ('data_dir', 'manual_dir'):
      if f[name].value and 'validation' not in (threshold, pixel_threshold):
        raise ValueError(f'--{name} needs --threshold=validation or --pixel_threshold=validation '
                         "(only they read the run's dataset)")
    truth = None
    for name in ('unmasked_authentic', 'ground_truth_inverted'):
      if f[name].value and not f.ground_truth:
        raise ValueError(f'--{name} needs --ground_truth')
    if f.ground_truth:
      truth = ground_truth_lib.Scores(
          ground_truth_lib.GroundTruth(f.ground_truth, f.unmasked_authentic), f.ground_truth_inverted)
    rows, rate = predict_paths(f.workdir, paths, output, f.batch_size, f.panels,
                               f.keypoint_map, f.keypoint_fusion, threshold, pixel_threshold,
                               f.keypoint_mirrored, f.average_with, f.keypoint_decision,
                               score_flips=f.score_flips, recursive=f.recursive, ground_truth=truth,
                               data_dir=f.data_dir, manual_dir=f.manual_dir)
  except (ValueError, OSError) as e:  # OSError: an output that cannot be written (a full disk)
    progress.exit_with_error(e)
  except KeyboardInterrupt:
    progress.exit_interrupted(f'{os.path.join(output, "predictions.jsonl")} not written (one '
                              'written before is kept whole)')
  failed = sum('error' in r for r in rows)
  decided = next((f'; tampered when p >= {r["threshold"]:.4f}' for r in rows if 'threshold' in r), '')
  decided += next((f'; regions where the map >= {r["pixel_threshold"]:.2f}' for r in rows
                   if 'pixel_threshold' in r), '')
  speed = f'{rate:.1f} images/s' if rate >= 1 or not rate else f'{1 / rate:.1f} s/image'
  print(f'{len(rows) - failed} predicted, {failed} failed, {speed}{decided}; '
        f'{os.path.join(output, "predictions.jsonl")}')
  if truth is not None:
    summary = truth.summary()
    path = os.path.join(output, 'ground_truth_scores.json')
    runs.write_json_atomic(path, summary)
    print('\n'.join(ground_truth_lib.report(summary) + [path]))
  sys.exit(1 if failed else 0)


if __name__ == '__main__':
  # Defined here, not at import: evaluate and benchmarks import this module.
  flags.DEFINE_string('workdir', None, 'A finished run of forgery_jax.main.')
  flags.DEFINE_string('output', None, 'Where predictions go (default: WORKDIR/predictions).')
  flags.DEFINE_integer('batch_size', 16, 'Images per accelerator call.', lower_bound=1)
  flags.DEFINE_bool('recursive', False, 'A folder named is read with every folder below it.')
  flags.DEFINE_string('ground_truth', None, 'A folder of masks (matched by file name) or a CSV '
                      '(image, mask and/or label columns): every answer is scored against it, '
                      'written to ground_truth_scores.json (see forgery_jax.evaluation.ground_truth).')
  flags.DEFINE_bool('unmasked_authentic', False, 'With --ground_truth a folder: an image without '
                    'a mask there is authentic (else it is not scored).')
  flags.DEFINE_bool('ground_truth_inverted', False, 'With --ground_truth: masks are black where '
                    'the image was tampered.')
  flags.DEFINE_bool('panels', True, 'Draw a PNG panel per image (--nopanels: predictions only).')
  flags.DEFINE_bool('keypoint_map', False, 'A localiser run: fuse the copy-move keypoint map into '
                    'its maps and p(tampered), as evaluate --keypoint_map does.')
  flags.DEFINE_string('keypoint_fusion', None, "With --keypoint_map: how the maps are joined, "
                      'replace, max, keypoints_alone, upper_copies or upper_copies_ranked '
                      "(default: the run's model.keypoint_fusion, else replace).")
  flags.DEFINE_bool('keypoint_mirrored', False, 'With --keypoint_map: the map also matches regions '
                    'copied mirror-wise (model.keypoint_mirrored).')
  flags.DEFINE_string('keypoint_decision', None, "With --keypoint_map: the map's image decision, "
                      "inliers or clusters (default: the run's model.keypoint_decision, else inliers).")
  flags.DEFINE_list('average_with', [], 'More runs of the same split (other seeds): their '
                    'probabilities and maps averaged with those of WORKDIR.')
  flags.DEFINE_bool('score_flips', False, "A localiser run: each image's answer is the mean over "
                    'its four flips, each map flipped back (model.score_flips; four network '
                    'passes per image).')
  flags.DEFINE_string('threshold', None, 'Tampered when p(tampered) >= this number, or '
                      "'validation': the threshold most accurate on the run's validation split "
                      '(default: the most probable class).')
  flags.DEFINE_string('data_dir', '', 'With --threshold=validation or --pixel_threshold=validation: '
                      "where the run's validation split is read (built, if missing) instead of the "
                      'data_dir its config recorded (a run moved to another machine).')
  flags.DEFINE_string('manual_dir', '', 'With --threshold=validation or --pixel_threshold=validation: '
                      "the release folder the run's dataset is built from, if it is missing, "
                      'instead of the folder its config recorded (a release moved).')
  flags.DEFINE_string('pixel_threshold', None, 'A localiser: also write regions/<n>_<stem>.png, the '
                      "pixels whose tamper probability reaches this number, or 'validation': the "
                      "threshold with the best pixel F1 on the run's validation masks.")
  flags.mark_flags_as_required(['workdir'])
  app.run(main)

"""The copy-move keypoint map's settings, scored on copy-moves the pipeline synthesises.

    python -m experiments.keypoint_settings --config=configs/localiser_synthetic.py \
        --config.dataset.data_dir=/tmp/tfds --config.dataset.manual_dir=../shared/datasets/casia1 \
        [--images=256] [--seed=0] [--variants=default,mirrored=True] [--output=FILE]

The map's settings (`forensics.keypoints.MAP_*`) were chosen on the copy-move files of CASIA v1's
training split, so a synthetic-only localiser scored with the map fused still owes a few numbers to
CASIA v1 forgeries. This scores them without any: authentic files of the config's training split
(`dataset.train_classes`; the synthetic configs read authentic files only) become copy-move
forgeries by `synthesis.synthesise` with the config's own settings (every row forged, every region
copied within its image, then the random last save), and the same files given only that last save
are the authentic controls. Each setting is varied in turn around the defaults; for each: the mean
pixel F1 at 0.5 over the forgeries (the map is binary) and its change from the default's on the
same forgeries (with that change's standard error: what tells a setting from noise), their mean
pixel AUC, the share of them where the map marks a region, and the share of the controls where it
marks one (false alarms).
"""

from __future__ import annotations

import dataclasses

from absl import app
from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

import experiments
from forgery_jax import progress
from forgery_jax import runtime
from forgery_jax import synthesis
from forgery_jax.data import input_pipeline
from forgery_jax.evaluation import pixel_metrics
from forgery_jax.forensics import keypoints

_IMAGES = flags.DEFINE_integer('images', 256, 'authentic training files to forge (0 = all)')
_BATCH = flags.DEFINE_integer('batch', 8, 'rows synthesised together')
_SEED = flags.DEFINE_integer('seed', 0, 'which files, and the synthesis key')
_OUTPUT = flags.DEFINE_string('output', '', 'write the figures as JSON here')
_VARIANTS = flags.DEFINE_list('variants', [], 'only these variants (names as printed, e.g. '
                              'default,mirrored=True; empty = all)')
config_flags.DEFINE_config_file('config', 'configs/localiser_synthetic.py',
                                'The config whose dataset and synthesis settings are used.')

DEFAULT = keypoints.MapSettings()
# One setting changed at a time: (field, the values tried besides the default).
CHANGES = (('contrast', (0.01, 0.04)), ('sift_side', (0,)), ('min_distance', (10, 40)),
           ('models', (1, 3)), ('min_inliers', (3, 6, 8)), ('window', (5, 9)),
           ('correlation', (0.5, 0.7)), ('min_variance', (1.0, 16.0)), ('mirrored', (True,)))


def variants(changes=CHANGES) -> dict[str, keypoints.MapSettings]:
  """'default' and one variant per changed value, named `field=value`."""
  out = {'default': DEFAULT}
  for field, values in changes:
    for value in values:
      out[f'{field}={value}'] = dataclasses.replace(DEFAULT, **{field: value})
  return out


def _sift_key(s: keypoints.MapSettings) -> tuple:
  """The settings `keypoints.map_pairs` reads: variants that share them share its (slow) pairs."""
  return (s.analysis_side, s.sift_side, s.contrast, s.min_distance, s.mirrored)


def score_variants(forged: list[np.ndarray], masks: list[np.ndarray], controls: list[np.ndarray],
                   settings: dict[str, keypoints.MapSettings]) -> dict[str, dict]:
  """Each variant's figures (see the module docstring) on forgeries with their masks, and on
  authentic controls."""
  rows = {name: {'f1': [], 'auc': [], 'found': [], 'false_alarm': []} for name in settings}
  for image, mask in progress.bar(list(zip(forged + controls, masks + [None] * len(controls))),
                                  desc='keypoint maps', unit='image'):
    pairs = {}
    for name, s in settings.items():
      key = _sift_key(s)
      if key not in pairs:
        pairs[key] = keypoints.map_pairs(image, s)
      found = keypoints.map_from_pairs(image.shape[:2], pairs[key], s).map
      if mask is None:
        rows[name]['false_alarm'].append(found.any())
      else:
        scores = pixel_metrics.per_image(found, mask)
        rows[name]['f1'].append(scores['pixel_f1'])
        rows[name]['auc'].append(scores['pixel_auc'])
        rows[name]['found'].append(found.any())
  mean = lambda v: float(np.mean(v)) if v else float('nan')
  out = {}
  for name, r in rows.items():
    # Paired against the default on the same forgeries: the change, and its standard error.
    change = np.subtract(r['f1'], rows['default']['f1']) if 'default' in rows else np.zeros(0)
    se = float(change.std(ddof=1) / np.sqrt(len(change))) if len(change) > 1 else float('nan')
    out[name] = {'pixel_f1': mean(r['f1']),
                 'pixel_f1_change': mean(change.tolist()), 'pixel_f1_change_se': se,
                 'pixel_auc': float(np.nanmean(r['auc'])) if r['auc'] else float('nan'),
                 'found_share': mean(r['found']), 'false_alarm_rate': mean(r['false_alarm']),
                 'forgeries': len(r['f1']), 'controls': len(r['false_alarm'])}
  return out


def training_images(config, count: int, seed: int) -> list[np.ndarray]:
  """`count` authentic files of the config's training split (chosen by `seed`), landscape, centre
  cropped to the smallest height and width among them (so that they batch)."""
  dataset = input_pipeline.load(config)
  train = dataset.split.train
  authentic = train[dataset.labels[train] == 0]
  chosen = np.random.default_rng(seed).permutation(authentic)
  chosen = chosen[:count] if count else chosen
  images = [np.asarray(dataset.source[int(i)]['image']) for i in chosen]
  images = [im.transpose(1, 0, 2) if im.shape[0] > im.shape[1] else im for im in images]
  h = min(im.shape[0] for im in images)
  w = min(im.shape[1] for im in images)
  crop = lambda im: im[(im.shape[0] - h) // 2:][:h, (im.shape[1] - w) // 2:][:, :w]
  return [np.ascontiguousarray(crop(im)) for im in images]


def synthesised_copy_moves(images: list[np.ndarray], cfg, seed: int, batch: int):
  """(forged images, their masks, controls): every image made a copy-move by `synthesise` with
  `cfg` (its area, shapes, rotation, scaling, flips, feathering and last save), and the same image
  given only the last save (a different draw of it)."""
  forge_cfg = ml_collections.ConfigDict(cfg.to_dict())
  forge_cfg.update(fraction=1.0, copy_move_share=1.0)
  control_cfg = ml_collections.ConfigDict(cfg.to_dict())
  control_cfg.update(fraction=0.0)
  forge = jax.jit(lambda b, k: synthesis.synthesise(b, k, forge_cfg))
  control = jax.jit(lambda b, k: synthesis.synthesise(b, k, control_cfg))
  key = jax.random.key(seed)
  forged, masks, controls = [], [], []
  for start in range(0, len(images), batch):
    rows = np.stack(images[start:start + batch])
    n = len(rows)
    b = {'image': rows, 'mask': np.zeros(rows.shape[:3] + (1,), np.uint8),
         'has_mask': np.zeros(n, bool), 'label': np.zeros(n, np.int32)}
    k = jax.random.fold_in(key, start)
    out = jax.device_get(forge(b, jax.random.fold_in(k, 0)))
    forged += list(out['image'])
    masks += list(out['mask'][..., 0])
    controls += list(jax.device_get(control(b, jax.random.fold_in(k, 1)))['image'])
  return forged, masks, controls


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  runtime.quiet_libraries()
  runtime.home_in_flags()
  config = flags.FLAGS.config
  settings = variants()
  unknown = sorted(set(_VARIANTS.value) - set(settings))
  if unknown:
    raise app.UsageError(f'--variants: unknown {unknown}; known: {list(settings)}')
  if _VARIANTS.value:
    settings = {name: s for name, s in settings.items() if name == 'default' or name in _VARIANTS.value}
  images = training_images(config, _IMAGES.value, _SEED.value)
  forged, masks, controls = synthesised_copy_moves(images, config.synthesis, _SEED.value, _BATCH.value)
  results = score_variants(forged, masks, controls, settings)
  chosen = max(results, key=lambda name: results[name]['pixel_f1'])
  print(f'{len(forged)} synthesised copy-moves ({images[0].shape[1]} x {images[0].shape[0]}) and '
        f'{len(controls)} controls from {config.dataset.name} training files; best pixel F1: {chosen}')
  print('| setting | pixel F1 | change (standard error) | pixel AUC | forgeries marked | controls marked |')
  print('|---|---|---|---|---|---|')
  for name, r in results.items():
    print(f"| {name} | {r['pixel_f1']:.3f} | {r['pixel_f1_change']:+.3f} ({r['pixel_f1_change_se']:.3f}) | "
          f"{r['pixel_auc']:.3f} | {r['found_share']:.3f} | {r['false_alarm_rate']:.3f} |")
  experiments.write_json(_OUTPUT.value, {'chosen': chosen, 'variants': results})


if __name__ == '__main__':
  app.run(experiments.one_error_line(main))

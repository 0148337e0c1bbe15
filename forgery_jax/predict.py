"""Is this file tampered, and where? `python -m forgery_jax.predict --workdir=RUN [--output=DIR] PATH...`

PATH is a file, a folder (its images, sorted) or a glob. RUN is a workdir of
`forgery_jax.main`: the CNN (its best checkpoint) or WLD + XGBoost (`booster.json`); a k-fold
workdir averages the probabilities of its folds. Every image is prepared exactly as the run's
dataset prepared its training images (ELA at full resolution, then the builder config's resize or
native crop), with the EXIF orientation applied, so any image a camera or editor writes is read:
JPEG, PNG, TIFF, BMP, WebP, GIF, grey, RGBA, palette, CMYK, 16-bit.

Writes to OUTPUT (default RUN/predictions):
* predictions.jsonl: one line per image, {path, prediction, p_tampered, probabilities, panel}, or
  {path, error} for a file that could not be used;
* predictions.csv: the same, one row per image;
* panels/*.png: the image, its ELA plane, its SRM residual and a heatmap of where the decision
  comes from.

The heatmap of the CNN is gradient saliency: |d p_tampered / d input| summed over the ELA and RGB
planes, smoothed. It is one backward pass per batch, works for models trained on resized and on
cropped planes alike (a sliding window would show a resize-trained model inputs it never saw), and
shows which pixels the decision rests on, not a segmentation. WLD + XGBoost has no spatial output:
its panel shows the ELA and SRM planes without a heatmap. The exit status is 1 if any file failed.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import cv2
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image, ImageDraw

from forgery_jax import checkpointing
from forgery_jax import codecs
from forgery_jax import release_builder
from forgery_jax import srm
from forgery_jax import train
from forgery_jax import wld
from forgery_jax import writers

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.tif', '.tiff', '.bmp', '.webp', '.gif', '.jfif')
PANEL_TILE = 256


def expand_paths(paths: list[str]) -> list[str]:
  """Files named, the images of folders named (sorted), and glob matches, in order, once each."""
  out: list[str] = []
  for p in paths:
    if os.path.isdir(p):
      out += sorted(os.path.join(p, f) for f in os.listdir(p)
                    if f.lower().endswith(IMAGE_SUFFIXES) and not os.path.isdir(os.path.join(p, f)))
    elif any(c in p for c in '*?[') and not os.path.exists(p):
      out += sorted(glob.glob(p))
    else:
      out.append(p)  # a missing file gets its error line later
  return list(dict.fromkeys(out))


def _load_config(workdir: str) -> ml_collections.ConfigDict:
  """The run's config.json (a k-fold run keeps one per fold folder)."""
  candidates = [os.path.join(workdir, writers.CONFIG_FILE)] + sorted(
      glob.glob(os.path.join(workdir, 'fold_*', writers.CONFIG_FILE)))
  path = next((c for c in candidates if os.path.exists(c)), None)
  if path is None:
    raise ValueError(f'{workdir} is not a forgery_jax run: it has no {writers.CONFIG_FILE}')
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def _model_dirs(workdir: str, marker: str) -> list[str]:
  """The run itself, or its fold_<k> folders (a k-fold run), that hold `marker`."""
  if os.path.exists(os.path.join(workdir, marker)):
    return [workdir]
  folds = sorted(glob.glob(os.path.join(workdir, 'fold_*')), key=lambda d: int(d.rsplit('_', 1)[1]))
  found = [d for d in folds if os.path.exists(os.path.join(d, marker))]
  if not found:
    raise ValueError(f'{workdir} holds no trained model ({marker} not found in it or its folds)')
  return found


@dataclasses.dataclass(frozen=True)
class Preparation:
  """How a run's images were prepared, so a new image is prepared the same way."""
  resolution: int
  crop: bool
  recoding: release_builder.Recoding
  copy_move: bool  # the model reads the keypoint evidence (else it is not computed)


def preprocessing(config) -> Preparation:
  """The preparation of the run's dataset, for a new image.

  A jpeg_randomised dataset re-encoded its files at random qualities to hide their compression
  history while training; an image to check is taken as it is.
  """
  copy_move = config.model.get('copy_move', False)
  for c in release_builder.CONFIGS:
    if config.dataset.builder_config == c.name:
      return Preparation(c.resolution, c.crop, release_builder.Recoding(c.normalise_quality), copy_move)
  # The synthetic set's examples are native-resolution crops of photos.
  return Preparation(config.dataset.resolution, True, release_builder.Recoding(), copy_move)


class CnnDetector:
  """The dual-branch CNN from its best checkpoints (averaged over folds)."""

  def __init__(self, workdir: str, config):
    self.config = config
    self.class_names = _class_names(config)
    mesh = train.make_mesh(jax.local_devices()[:1])
    self.states = []
    for d in _model_dirs(workdir, checkpointing.BEST_DIR):
      graphdef, state = train.create_state(config, mesh)
      ckpts = checkpointing.RunCheckpoints(d, keep=1)
      restored = ckpts.restore_best(checkpointing.abstract_like(state))
      ckpts.close()
      if restored is None:
        raise ValueError(f'{d} has no best checkpoint')
      self.states.append(restored[1])
    from flax import nnx  # pylint: disable=g-import-not-at-top

    def probs_and_saliency(state, ela, image, copy_move):
      model, _ = nnx.merge(graphdef, state)

      def p_tampered(ela, image):
        p = jax.nn.softmax(model(ela, image, copy_move, train=False))
        return 1.0 - p[:, 0].sum(), p

      (_, p), grads = jax.value_and_grad(p_tampered, argnums=(0, 1), has_aux=True)(ela, image)
      saliency = jnp.abs(grads[0]).sum(-1) + jnp.abs(grads[1]).sum(-1)
      return p, saliency

    def probs_only(state, ela, image, copy_move):
      model, _ = nnx.merge(graphdef, state)
      return jax.nn.softmax(model(ela, image, copy_move, train=False))

    self._fn = jax.jit(probs_and_saliency)
    self._probs = jax.jit(probs_only)
    self.with_saliency = True  # False: probabilities only (no backward pass)

  def __call__(self, planes: list[dict], batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
    n = len(planes)
    planes = planes + [planes[-1]] * (batch_size - n)  # one shape: one compilation
    ela = jnp.asarray(np.stack([p['ela'] for p in planes]), jnp.float32)
    image = jnp.asarray(np.stack([p['image'] for p in planes]), jnp.float32)
    copy_move = (jnp.asarray(np.stack([p['copy_move'] for p in planes]), jnp.float32)
                 if self.config.model.get('copy_move', False) else None)
    if not self.with_saliency:
      return np.mean([np.asarray(self._probs(s, ela, image, copy_move)) for s in self.states], 0)[:n], None
    outs = [self._fn(state, ela, image, copy_move) for state in self.states]
    probs = np.mean([np.asarray(o[0]) for o in outs], 0)[:n]
    saliency = np.mean([np.asarray(o[1]) for o in outs], 0)[:n]
    return probs, saliency


class WldDetector:
  """WLD + XGBoost from booster.json (averaged over folds)."""

  def __init__(self, workdir: str, config):
    import xgboost  # pylint: disable=g-import-not-at-top
    from forgery_jax import wld_xgboost  # pylint: disable=g-import-not-at-top
    self.config = config
    self.class_names = _class_names(config)
    self.params = wld.from_config(config.wld)
    self.boosters = []
    for d in _model_dirs(workdir, wld_xgboost.BOOSTER_FILE):
      booster = xgboost.Booster()
      booster.load_model(os.path.join(d, wld_xgboost.BOOSTER_FILE))
      self.boosters.append(booster)
    self._dmatrix = xgboost.DMatrix

  def __call__(self, planes: list[dict], batch_size: int) -> tuple[np.ndarray, None]:
    features = wld.extract(np.stack([p['image'] for p in planes]), self.params, batch_size=batch_size)
    probs = np.mean([b.predict(self._dmatrix(features)) for b in self.boosters], 0)
    return probs.reshape(len(planes), -1), None


def _class_names(config) -> tuple[str, ...]:
  from forgery_jax import labels  # pylint: disable=g-import-not-at-top
  return labels.FORGERY_TYPES if config.dataset.num_classes == 3 else labels.BINARY_LABELS


def load_detector(workdir: str):
  config = _load_config(workdir)
  if config.get('method', 'cnn') == 'wld_xgboost':
    return WldDetector(workdir, config)
  return CnnDetector(workdir, config)


@dataclasses.dataclass
class Prepared:
  path: str
  rgb: np.ndarray      # full resolution, EXIF orientation applied
  full: dict           # full-resolution image and ELA
  planes: dict         # the model's input planes


def prepare(path: str, preparation: Preparation) -> Prepared:
  """Reads and prepares one image; raises ValueError with a message naming the file."""
  if not os.path.exists(path):
    raise ValueError(f'{path}: no such file')
  if os.path.isdir(path):
    raise ValueError(f'{path}: is a folder')
  rgb, fmt = codecs.decode_file(path, exif_transpose=True)
  full = release_builder.full_resolution_planes(
      rgb, preparation.recoding.quality(path, fmt), with_copy_move=preparation.copy_move)
  return Prepared(path, rgb, full,
                  release_builder.fit_planes(full, preparation.resolution, preparation.crop))


def _tile(rgb: np.ndarray, title: str) -> Image.Image:
  im = Image.fromarray(rgb)
  scale = PANEL_TILE / max(im.size)
  size = (max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale)))
  # Shrink smoothly; enlarge small planes (the model's view, tiny files) pixel by pixel.
  im = im.resize(size, Image.BILINEAR if scale < 1 else Image.NEAREST)
  tile = Image.new('RGB', (PANEL_TILE, PANEL_TILE + 16), (255, 255, 255))
  tile.paste(im, ((PANEL_TILE - im.size[0]) // 2, 16 + (PANEL_TILE - im.size[1]) // 2))
  ImageDraw.Draw(tile).text((4, 2), title, fill=(0, 0, 0))
  return tile


def srm_display(rgb: np.ndarray, clip: float = 3.0) -> np.ndarray:
  """|SRM residual| of the full-resolution image as a grey picture: the model's residual (the mean
  of the 30 kernels' responses, clipped), computed with OpenCV so that no image size compiles."""
  mean_kernel = srm.srm_kernels().mean(-1)[:, :, 0]
  residual = cv2.filter2D(rgb.astype(np.float32), -1, mean_kernel, borderType=cv2.BORDER_CONSTANT)
  grey = (np.abs(np.clip(residual, -clip, clip)).mean(-1) / clip * 255).astype(np.uint8)
  return np.repeat(grey[..., None], 3, -1)


def heatmap_overlay(prepared: Prepared, saliency: np.ndarray) -> np.ndarray:
  """The saliency map over the model's view of the image, in red."""
  view = prepared.planes['image'].astype(np.float32)
  s = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 2)
  s = s / (s.max() or 1.0)
  red = np.zeros_like(view)
  red[..., 0] = 255
  return (view * (1 - 0.6 * s[..., None]) + red * 0.6 * s[..., None]).astype(np.uint8)


def write_panel(path: str, prepared: Prepared, prediction: str, p_tampered: float,
                saliency: np.ndarray | None, crop: bool) -> None:
  tiles = [_tile(prepared.rgb, 'image'), _tile(prepared.full['ela'], 'ELA (q90)'),
           _tile(srm_display(prepared.rgb), 'SRM residual')]
  if saliency is not None:
    tiles.append(_tile(heatmap_overlay(prepared, saliency),
                       'saliency (model view)' if crop else 'saliency (resized view)'))
  panel = Image.new('RGB', (PANEL_TILE * len(tiles), PANEL_TILE + 36), (255, 255, 255))
  for i, t in enumerate(tiles):
    panel.paste(t, (i * PANEL_TILE, 20))
  ImageDraw.Draw(panel).text(
      (4, 4), f'{os.path.basename(prepared.path)}: {prediction}, p(tampered) = {p_tampered:.3f}',
      fill=(0, 0, 0))
  panel.save(path)


def predict_paths(workdir: str, paths: list[str], output: str, batch_size: int = 16) -> tuple[list[dict], float]:
  """Predictions for every path (errors included, in order) and the images/s of the good ones."""
  detector = load_detector(workdir)
  preparation = preprocessing(detector.config)
  os.makedirs(os.path.join(output, 'panels'), exist_ok=True)
  files = expand_paths(paths)
  rows: list[dict] = []
  start, done = time.perf_counter(), 0
  for lo in range(0, len(files), batch_size):
    batch: list[tuple[int, dict, Prepared]] = []
    for path in files[lo:lo + batch_size]:
      row = {'path': path}
      rows.append(row)
      try:
        batch.append((len(rows) - 1, row, prepare(path, preparation)))
      except (ValueError, OSError) as e:
        row['error'] = str(e) if path in str(e) else f'{path}: {e}'
        print(f"error: {row['error']}", file=sys.stderr)
    if not batch:
      continue
    probs, saliency = detector([prepared.planes for _, _, prepared in batch], batch_size)
    done += len(batch)
    for k, (index, row, prepared) in enumerate(batch):
      p = probs[k]
      name = detector.class_names[int(p.argmax())]
      p_tampered = float(1.0 - p[0])
      stem = os.path.splitext(os.path.basename(prepared.path))[0][:60]
      panel = os.path.join(output, 'panels', f'{index:05d}_{stem}.png')
      write_panel(panel, prepared, name, p_tampered, None if saliency is None else saliency[k],
                  preparation.crop)
      row.update(prediction=name, p_tampered=p_tampered,
                 probabilities={c: float(v) for c, v in zip(detector.class_names, p)}, panel=panel)
  rate = done / max(time.perf_counter() - start, 1e-9)
  with open(os.path.join(output, 'predictions.jsonl'), 'w') as f:
    for row in rows:
      f.write(json.dumps(row, sort_keys=True) + '\n')
  with open(os.path.join(output, 'predictions.csv'), 'w', newline='') as f:
    w = csv.writer(f)
    w.writerow(['path', 'prediction', 'p_tampered', 'panel', 'error'])
    for row in rows:
      w.writerow([row['path'], row.get('prediction', ''),
                  f"{row['p_tampered']:.4f}" if 'p_tampered' in row else '', row.get('panel', ''),
                  row.get('error', '')])
  return rows, rate


def main(argv):
  logging.set_verbosity(logging.WARNING)
  paths = argv[1:]
  if not paths:
    raise app.UsageError('name at least one image file, folder or glob')
  f = flags.FLAGS
  output = f.output or os.path.join(f.workdir, 'predictions')
  try:
    rows, rate = predict_paths(f.workdir, paths, output, f.batch_size)
  except (ValueError, checkpointing.CheckpointError) as e:
    sys.exit(f'error: {e}')
  failed = sum('error' in r for r in rows)
  print(f'{len(rows) - failed} predicted, {failed} failed, {rate:.1f} images/s; '
        f'{os.path.join(output, "predictions.jsonl")}')
  sys.exit(1 if failed else 0)


if __name__ == '__main__':
  # Defined here, not at import: evaluate imports this module and has flags of its own.
  flags.DEFINE_string('workdir', None, 'A run of forgery_jax.main (CNN or WLD + XGBoost).')
  flags.DEFINE_string('output', None, 'Where predictions go (default: WORKDIR/predictions).')
  flags.DEFINE_integer('batch_size', 16, 'Images per accelerator call.')
  flags.mark_flags_as_required(['workdir'])
  app.run(main)

"""`predict --ground_truth`: a run's answers scored against anyone's own images and masks.

A detector trained on one release has to be checked on forgeries from elsewhere, which come as a
folder of images and a folder of masks, not as a TFDS dataset. This pairs each predicted image with
its ground truth and scores the answers with the same pixel metrics as `evaluate`
(`pixel_metrics`: per tampered image at its own size, averaged), each beside the shortcut baselines
that could explain it, and the image decision where both classes are present.

Ground truth is either
* a folder of masks (searched with its subfolders): an image `<stem>.<ext>` takes the mask whose
  stem is `<stem>` or `<stem>` followed by one of MASK_SUFFIXES (`_gt`, `_mask`, ...), any image
  suffix, case ignored; two candidates for one image are an error for that image. A mask with a
  pixel set makes its image tampered, an empty mask authentic; an image without a mask is not
  scored, or with `unmasked_authentic` is authentic (a folder of authentic photos beside a folder
  of masked forgeries); or
* a CSV file with an `image` column and a `mask` and/or a `label` column (`authentic` or
  `tampered`, or 0 / 1); relative paths are read from the CSV's folder. A row's label wins over its
  mask's content; a tampered row without a mask is scored at the image level only.

A mask is white (or 1) where the image was tampered, at the image's size as it is shown (its EXIF
orientation applied); `inverted` reads black as tampered (as NIST's masks are drawn). A mask of
another size is an error for its image, not resized: a mask that does not fit its image says that
the pairing or the mask is wrong.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np

from forgery_jax import image_io
from forgery_jax.evaluation import intervals
from forgery_jax.evaluation import pixel_metrics

MASK_SUFFIXES = ('', '_gt', '-gt', '_mask', '-mask', '_groundtruth')
LABELS = {'authentic': 'authentic', '0': 'authentic', 'tampered': 'tampered', '1': 'tampered'}
BASELINES = ('all_tampered', 'centre_prior', 'mean_other_masks')
UNMATCHED = {'unmatched_masks': 'masks', 'unmatched_csv_rows': 'CSV rows'}  # key -> as printed


@dataclasses.dataclass
class Entry:
  """One image's ground truth: its label (None: decided by the mask) and mask path, if any."""
  label: str | None
  mask: str | None


def read_mask(path: str, shape: tuple[int, int], inverted: bool = False) -> np.ndarray:
  """A mask file as (H, W) bool, tampered True; 0/255, 0/1, 16-bit, float, coloured and
  transparent-background masks are read alike (any colour channel at least half of white). A
  clear error names the file."""
  try:
    with image_io.open_image(path) as im:
      im.load()
      if im.mode in ('1', 'L', 'I', 'F') or im.mode.startswith('I;16'):
        a = np.asarray(im)
      else:  # colour, palette, CMYK; alpha dropped (not composited: a clear background is not white)
        a = np.asarray(im.convert('RGB')).max(-1)
  except (OSError, ValueError, SyntaxError) as e:
    raise ValueError(f'cannot read mask {path}: {e}') from e
  a = np.asarray(a, np.float64)
  if not np.isfinite(a).all():
    raise ValueError(f'mask {path} holds NaN or Inf values')
  if a.max(initial=0) <= 1:
    white = 1.0
  else:
    white = 65535.0 if a.max() > 255 else 255.0
  truth = a >= white / 2
  truth = ~truth if inverted else truth
  if truth.shape != tuple(shape):
    hint = (' (width and height swapped: a turned mask, or an image that its EXIF orientation '
            'turns)') if truth.shape == tuple(shape)[::-1] else ''
    raise ValueError(f'mask {path} is {truth.shape[1]}x{truth.shape[0]} but its image is '
                     f'{shape[1]}x{shape[0]}{hint}')
  return truth


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0].lower()


class GroundTruth:
  """Where each image's ground truth is: `lookup(image_path)`."""

  def __init__(self, source: str, unmasked_authentic: bool = False):
    self.source = source
    self.unmasked_authentic = unmasked_authentic
    if os.path.isdir(source):
      self._masks: dict[str, list[str]] = {}
      for path in image_io.image_files(source, recursive=True):
        self._masks.setdefault(_stem(path), []).append(path)
      self._rows = None
    elif os.path.isfile(source):
      if image_io.is_image_name(*os.path.split(source)):
        raise ValueError(f'ground truth {source} is an image: name the folder of masks it is in, '
                         'or pair images and masks in a CSV file')
      self._rows = self._read_csv(source)
    else:
      raise ValueError(f'ground truth {source}: no such folder or CSV file')

  @staticmethod
  def _read_csv(path: str) -> dict[str, Entry]:
    base = os.path.dirname(os.path.abspath(path))
    where = lambda p: os.path.realpath(p if os.path.isabs(p) else os.path.join(base, p))
    rows = {}
    try:
      # utf-8-sig: a spreadsheet's "CSV UTF-8" begins with a byte-order mark, which would
      # otherwise stick to the first column's name; names are read without spaces or case.
      with open(path, newline='', encoding='utf-8-sig') as f:
        reader = csv.DictReader(f)
        reader.fieldnames = [(name or '').strip().lower() for name in reader.fieldnames or ()]
        columns = set(reader.fieldnames)
        if 'image' not in columns or not columns & {'mask', 'label'}:
          raise ValueError(f'{path}: a CSV with an image column and a mask and/or a label column '
                           f'is needed (columns: {", ".join(sorted(columns)) or "none"})')
        for line, row in enumerate(reader, start=2):
          image, mask = (row.get('image') or '').strip(), (row.get('mask') or '').strip()
          label = (row.get('label') or '').strip().lower()
          if not image:
            raise ValueError(f'{path}, line {line}: no image')
          if label and label not in LABELS:
            raise ValueError(f'{path}, line {line}: label {label!r} is not authentic, tampered, 0 or 1')
          if not label and not mask:
            raise ValueError(f'{path}, line {line}: neither a mask nor a label')
          rows[where(image)] = Entry(LABELS.get(label), where(mask) if mask else None)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
      raise ValueError(f'cannot read ground truth {path}: {e}') from e
    return rows

  def lookup(self, image_path: str) -> Entry | None:
    """The image's ground truth, or None where it has none; ValueError where it is ambiguous."""
    if self._rows is not None:
      return self._rows.get(os.path.realpath(image_path))
    own = os.path.realpath(image_path)
    found = [p for suffix in MASK_SUFFIXES for p in self._masks.get(_stem(image_path) + suffix, ())
             if os.path.realpath(p) != own]
    if len(found) > 1:
      raise ValueError(f'{image_path}: {len(found)} masks could be its own in {self.source} '
                       f'({", ".join(os.path.basename(p) for p in found[:3])}): name one in a CSV')
    if found:
      return Entry(None, found[0])
    return Entry('authentic', None) if self.unmasked_authentic else None

  def unmatched(self, seen: set[str]) -> list[str]:
    """What this ground truth names that none of `seen` (the real paths of the images scored and
    of the masks they took) is: a folder's masks, or a CSV's images; real paths, sorted. Names
    that differ from their image's leave masks here (CASIA v1's corrected file names)."""
    if self._rows is not None:
      return sorted(set(self._rows) - seen)
    return sorted({os.path.realpath(p) for paths in self._masks.values() for p in paths} - seen)

  @property
  def unmatched_key(self) -> str:
    """The summary's key of what `unmatched` counts (a key of UNMATCHED)."""
    return 'unmatched_masks' if self._rows is None else 'unmatched_csv_rows'

  def masks_among(self, files: list[str]) -> set[str]:
    """The real paths of the `files` that are another one's mask and have none of their own: the
    masks of a folder that holds images and masks together (`a.png` beside `a_gt.png`), which are
    not images to answer for (with `unmasked_authentic` each counted as an authentic photo). A
    file and its mask named alike are both kept: names alone cannot tell which is the mask."""
    def mask_of(path):
      try:
        entry = self.lookup(path)
      except ValueError:  # ambiguous: the image's own error line says so
        return None
      return entry.mask if entry is not None else None
    own = {os.path.realpath(f): mask_of(f) for f in files}  # each file looked up once
    masks = {os.path.realpath(m) for m in own.values() if m}
    return {f for f, mask in own.items() if f in masks and not mask}


class Scores:
  """The answers of one `predict` call against the ground truth, image by image, then summed up."""

  def __init__(self, truth: GroundTruth, inverted: bool = False):
    self.truth = truth
    self.inverted = inverted
    self.pixel_rows: list[dict] = []
    self.masked: list[tuple[str, tuple[int, int]]] = []   # (mask path, shape) of each scored map
    self.map_kind: str | None = None
    self.labels: list[int] = []
    self.p_tampered: list[float] = []
    self.decisions: list[int] = []
    self.without = 0
    self.errors = 0
    self.seen: set[str] = set()  # real paths of the images scored and of the masks they took

  def add(self, row: dict, image_path: str, shape: tuple[int, int], tamper_map, map_kind) -> None:
    """Scores one predicted image, writing its ground truth and pixel scores (or the error) into
    `row`, its line of predictions.jsonl."""
    self.seen.add(os.path.realpath(image_path))
    try:
      entry = self.truth.lookup(image_path)
      if entry is None:
        self.without += 1
        return
      if entry.mask:
        self.seen.add(os.path.realpath(entry.mask))
      mask = read_mask(entry.mask, shape, self.inverted) if entry.mask else None
    except ValueError as e:
      self.errors += 1
      row['ground_truth_error'] = str(e)
      return
    label = entry.label or ('tampered' if mask.any() else 'authentic')
    row['ground_truth'] = label
    if entry.mask:
      row['ground_truth_mask'] = entry.mask
    self.labels.append(int(label == 'tampered'))
    self.p_tampered.append(float(row['p_tampered']))
    self.decisions.append(int(row['prediction'] != 'authentic'))
    if label == 'tampered' and mask is not None and mask.any() and tamper_map is not None:
      scores = pixel_metrics.per_image(tamper_map, mask)
      row.update({k: scores[k] for k in ('pixel_f1', 'pixel_auc', 'pixel_iou')})
      self.pixel_rows.append(scores)
      self.masked.append((entry.mask, shape))
      self.map_kind = map_kind

  def _baselines(self) -> dict:
    """The shortcut baselines' pixel scores on the same images: the all-tampered map, the centre
    prior and, for each image, the mean of the other images' masks (the dataset's own prior, as
    the mean training mask is for `evaluate`)."""
    size = (pixel_metrics.MEAN_MASK_SIZE,) * 2
    read = lambda p, shape: read_mask(p, shape, self.inverted)
    small = lambda mask: pixel_metrics.resize_to(mask.astype(np.float32), size)
    # Two passes over the files, so that no more than one full-size mask is held at a time.
    total = sum(small(read(p, shape)) for p, shape in self.masked)
    rows = {name: [] for name in BASELINES}
    for p, shape in self.masked:
      mask = read(p, shape)
      others = (total - small(mask)) / max(len(self.masked) - 1, 1)
      maps = pixel_metrics.baseline_maps(mask.shape, others)
      maps['mean_other_masks'] = maps.pop('mean_training_mask')
      for name in BASELINES:
        rows[name].append(pixel_metrics.per_image(maps[name], mask))
    return {name: {k: v for k, v in pixel_metrics.summarise(r).items() if k != 'pixel_images'}
            for name, r in rows.items()}

  def summary(self) -> dict:
    labels = np.asarray(self.labels)
    out = {'ground_truth': self.truth.source, 'images': len(labels),
           'tampered': int(labels.sum()), 'authentic': int(len(labels) - labels.sum()),
           'without_ground_truth': self.without, 'errors': self.errors}
    unmatched = self.truth.unmatched(self.seen)
    out[self.truth.unmatched_key] = len(unmatched)
    if unmatched:
      out['unmatched_first'] = [os.path.basename(p) for p in unmatched[:3]]
    # 95 % intervals with each file its own unit: nothing says which files share a scene.
    if self.pixel_rows:
      out['pixel'] = dict(pixel_metrics.summarise(self.pixel_rows), map_kind=self.map_kind,
                          **intervals.pixel(self.pixel_rows, np.arange(len(self.pixel_rows))))
      out['pixel_baselines'] = self._baselines()
    if len(labels):
      decisions, p = np.asarray(self.decisions), np.asarray(self.p_tampered)
      image = {'accuracy': float((decisions == labels).mean()),
               'majority_accuracy': float(max(labels.mean(), 1 - labels.mean()))}
      if labels.any():
        image['tampered_detected'] = float(decisions[labels == 1].mean())
      if not labels.all():
        image['authentic_false_alarms'] = float(decisions[labels == 0].mean())
      if 0 < labels.sum() < len(labels):
        from sklearn import metrics as skm  # pylint: disable=g-import-not-at-top  # 1 s: not at predict's start
        image['auc'] = float(skm.roc_auc_score(labels, p))
      files = np.arange(len(labels))
      bounds = intervals.decision(decisions != 0, labels != 0, files)
      for key, name in (('accuracy', 'accuracy'), ('tampered_detected', 'detection_rate'),
                        ('authentic_false_alarms', 'false_alarm_rate')):
        if key in image and f'{name}{intervals.SUFFIX}' in bounds:
          image[f'{key}{intervals.SUFFIX}'] = bounds[f'{name}{intervals.SUFFIX}']
      if (auc := intervals.auc(p, labels != 0, intervals.Resamples(files))) is not None:
        image[f'auc{intervals.SUFFIX}'] = auc
      out['image'] = image
    return out


def report(summary: dict) -> list[str]:
  """The summary as a few printed lines, each score beside its baselines."""
  lines = [f"ground truth ({summary['ground_truth']}): {summary['images']} images scored "
           f"({summary['tampered']} tampered, {summary['authentic']} authentic), "
           f"{summary['without_ground_truth']} without ground truth, "
           f"{summary['errors']} error{'' if summary['errors'] == 1 else 's'}"]
  for key, names in UNMATCHED.items():
    if count := summary.get(key):
      lines[0] += (f"; {count} {names} matched no predicted image "
                   f"({', '.join(summary['unmatched_first'])}{', ...' if count > 3 else ''})")
  if 'pixel' in summary:
    px, base = summary['pixel'], summary['pixel_baselines']
    kind = 'tamper map' if px['map_kind'] == 'tamper_probability' else 'gradient saliency, not a segmentation'
    beside = lambda k: ', '.join(f"{name.replace('_', ' ')} {base[name][k]:.3f}" for name in BASELINES)
    lines.append(f"pixel, {px['pixel_images']} tampered images with a mask ({kind}; baselines: {beside('pixel_f1')} "
                 f"pixel_f1, {beside('pixel_auc')} pixel_auc):")
    lines.append(f"  pixel_f1 {px['pixel_f1']:.3f}{_interval(px, 'pixel_f1')}, pixel_f1_best "
                 f"{px['pixel_f1_best']:.3f} at {px['pixel_f1_best_threshold']:.2f} (optimistic: "
                 f"chosen on these images), pixel_auc {px['pixel_auc']:.3f}{_interval(px, 'pixel_auc')}, "
                 f"pixel_iou {px['pixel_iou']:.3f}{_interval(px, 'pixel_iou')}")
  elif summary['tampered']:
    lines.append('pixel: no map scored (no tampered image with a usable mask, or a detector '
                 'without a spatial output)')
  if 'image' in summary:
    im = summary['image']
    parts = [f"accuracy {im['accuracy']:.3f}{_interval(im, 'accuracy')} (majority class "
             f"{im['majority_accuracy']:.3f})"]
    parts += [f"AUC {im['auc']:.3f}{_interval(im, 'auc')}"] if 'auc' in im else []
    parts += [f"tampered detected {im['tampered_detected']:.3f}{_interval(im, 'tampered_detected')}"
              ] if 'tampered_detected' in im else []
    parts += [f"authentic false alarms {im['authentic_false_alarms']:.3f}"
              f"{_interval(im, 'authentic_false_alarms')}"] if 'authentic_false_alarms' in im else []
    lines.append('image: ' + ', '.join(parts))
  if any(k.endswith(intervals.SUFFIX) for part in (summary.get('pixel', {}), summary.get('image', {}))
         for k in part):
    lines.append(f'[low, high]: 95 % intervals, {intervals.RESAMPLES} bootstrap resamples of the '
                 'scored files')
  return lines


def _interval(scores: dict, key: str) -> str:
  """' [low, high]' after a printed score that has an interval, else ''."""
  text = intervals.as_text(scores.get(f'{key}{intervals.SUFFIX}'))
  return f' {text}' if text else ''

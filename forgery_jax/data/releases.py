"""File naming of the public forgery releases: class, source scene and variant from a filename.

One place for every quirk of the real releases, shared by the TFDS builders:

* CASIA v1 / v2 tampered: `Sp_<S|D>_<3 letters>_<A|..>_<src>_<tgt>_<id>` (v1, 4-digit ids) and
  `Tp_<D|S>_<3 letters>_<S|M|L|N>_<letter>_<src>_<tgt>_<id>` (v2, 5-digit ids). The S/D letter is
  wrong for some files; source == target (copy-move) is the better rule, but on CASIA v1 it still
  contradicts the mask folder for 4 files, so a matched mask's folder decides
  (`match_casia_masks`). Some names use '.' before the id, lowercase letters (`CnN`) or placeholder
  ids (`xxx000NN`), which name no scene and so join no group.
* CASIA authentic: `Au_<cat>_<digits>`; its scene id is `<cat><digits>`, the form tampered names use.
* MICC-F220 / F2000: `<scene>tamp<N>.jpg` (copy-move) and `<scene>_scale.jpg` (authentic), with the
  release's misnamed `nikon7_scale.jpg` meaning scene `nikon_7`; labels in `groundtruthDB_<n>.txt`.
* CoMoFoD: `NNN_<F|O|M|B>[_<variant>].<ext>`.

The `list_*` functions turn a release's folder into `SourceFile`s for the TFDS builders; a file
they cannot use is appended to `skipped` with the reason, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import os
import re

from forgery_jax.data.labels import AUTHENTIC, COPY_MOVE, SPLICING
from forgery_jax.data.splits import GROUP_SEPARATOR

_CASIA_TAMPERED = re.compile(
    r'^(?P<prefix>Sp|Tp)_(?P<letter>[SD])_(?P<code>[A-Za-z]{3})_'
    r'(?:(?P<size>[A-Za-z])_)?(?P<kind>[A-Za-z])_'
    r'(?P<src>[A-Za-z]{3}\d{4,5})_(?P<tgt>[A-Za-z]{3}\d{4,5})[._](?P<id>\d{4,5})$')
_CASIA_AUTHENTIC = re.compile(r'^Au_(?P<cat>[A-Za-z]{3})_(?P<num>\d{4,5})$')
_PLACEHOLDER = re.compile(r'^xxx\d+$', re.IGNORECASE)


IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.tif', '.tiff', '.bmp', '.png', '.webp', '.gif')


class NamingError(ValueError):
  """A file name does not follow the release's convention; the message names it."""


class LayoutError(ValueError):
  """The manual folder is missing or does not hold the release's tree; the message shows it."""


@dataclasses.dataclass(frozen=True)
class SourceFile:
  """One image of a release, as a lister finds it."""
  path: str                 # absolute
  filename: str             # relative to the release root: the example's key
  forgery_type: str         # one of labels.FORGERY_TYPES
  group: str                # scene ids joined by '+' (see splits.connected_groups)
  mask_path: str | None = None
  variant: str = ''         # a post-processing variant (CoMoFoD), else ''
  release: str = ''         # set by the combined builder


@dataclasses.dataclass(frozen=True)
class CasiaName:
  forgery_type: str          # from source == target for tampered files
  letter: str | None         # the S/D letter as written (may be wrong)
  scene_ids: tuple[str, ...]  # scenes the image is made of (source, target), placeholders left out
  key: tuple[str, ...]       # (code, kind, source, target, id): what a mask is matched on

  @property
  def group(self) -> str:
    return GROUP_SEPARATOR.join(self.scene_ids)


def stem(filename: str) -> str:
  """The name without folder, extension and a mask's `_gt` / `_gt3` suffix."""
  return re.sub(r'_gt\d*$', '', os.path.splitext(os.path.basename(filename))[0])


def parse_casia(filename: str) -> CasiaName:
  """Class, scenes and mask key of a CASIA v1 or v2 image (or mask) file name."""
  name = stem(filename)
  m = _CASIA_AUTHENTIC.match(name)
  if m:
    scene = f"{m['cat'].lower()}{m['num']}"
    return CasiaName(AUTHENTIC, None, (scene,), (scene,))
  m = _CASIA_TAMPERED.match(name)
  if not m:
    raise NamingError(f'{filename}: not a CASIA name (Au_<cat>_<n>, Sp_<S|D>_..., Tp_<S|D>_...)')
  src, tgt = m['src'].lower(), m['tgt'].lower()
  forgery_type = COPY_MOVE if src == tgt else SPLICING
  scenes = tuple(dict.fromkeys(s for s in (src, tgt) if not _PLACEHOLDER.match(s)))
  if not scenes:  # placeholder ids only: the image is its own scene
    scenes = (name,)
  key = (m['code'].upper(), m['kind'].upper(), src, tgt, m['id'])
  return CasiaName(forgery_type, m['letter'], scenes, key)


_MICC_TAMPERED = re.compile(r'^(?P<scene>.+?)tamp(?P<n>\d+)$')
_MICC_AUTHENTIC = re.compile(r'^(?P<scene>.+)_scale$')
MICC_RENAMED_SCENES = {'nikon7': 'nikon_7'}  # `nikon7_scale.jpg` is scene nikon_7


@dataclasses.dataclass(frozen=True)
class MiccName:
  scene: str
  tampered: bool


def parse_micc(filename: str) -> MiccName:
  """Scene and class of a MICC-F220 / F2000 image file name."""
  name = stem(filename)
  m = _MICC_TAMPERED.match(name)
  if m:
    return MiccName(m['scene'], True)
  m = _MICC_AUTHENTIC.match(name)
  if m:
    return MiccName(MICC_RENAMED_SCENES.get(m['scene'], m['scene']), False)
  raise NamingError(f'{filename}: not a MICC name (<scene>tamp<N>.jpg or <scene>_scale.jpg)')


def read_micc_groundtruth(path: str) -> dict[str, int]:
  """`name label` lines (comma or white space, CRLF or LF) -> {file name: 1 tampered / 0}."""
  labels = {}
  with open(path, encoding='utf-8', errors='replace') as f:
    for n, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      parts = [p for p in re.split(r'[,\s]+', line) if p]
      if len(parts) != 2 or parts[1] not in ('0', '1'):
        raise NamingError(f'{path}:{n}: expected "<name>,<0|1>", got {line!r}')
      labels[parts[0]] = int(parts[1])
  return labels


_COMOFOD = re.compile(r'^(?P<scene>\d{3})_(?P<kind>[FOMB])(?:_(?P<variant>(?:JC[1-9]|IB[1-3]|NA[1-3]|BC[1-3]|CR[1-3]|CA[1-3])))?$')


@dataclasses.dataclass(frozen=True)
class ComofodName:
  scene: str
  kind: str            # F forged, O original, B binary mask, M colour mask
  variant: str | None  # post-processing (JC = JPEG, IB = blur, NA = noise, ...) or None


def parse_comofod(filename: str) -> ComofodName:
  m = _COMOFOD.match(stem(filename))
  if not m:
    raise NamingError(f'{filename}: not a CoMoFoD name (NNN_<F|O|M|B>[_<variant>].<png|jpg>)')
  return ComofodName(m['scene'], m['kind'], m['variant'])


def match_casia_masks(images: dict[str, CasiaName], masks: dict[str, str]) -> dict[str, tuple[str, str]]:
  """Pairs tampered images with their masks: {image file: (mask file, class of its folder)}.

  `masks` maps a mask file to its folder's class ('copy_move' for CM/, 'splicing' for Sp/). Mask
  names carry the release's corrections (class letter, swapped or fixed scene ids) and image ids
  repeat, so a mask goes to the image with its id that shares the most scene ids (at least one).
  """
  by_id: dict[str, list[str]] = {}
  for f, name in images.items():
    if name.forgery_type != AUTHENTIC:
      by_id.setdefault(name.key[-1], []).append(f)
  matched: dict[str, tuple[str, str]] = {}
  for mask_file, folder_class in sorted(masks.items()):
    mask = parse_casia(mask_file)
    # Score: shared scene ids first (at least one), then the same manipulation code and kind.
    scored = sorted(((len(set(mask.key[2:4]) & set(images[f].key[2:4])),
                      mask.key[:2] == images[f].key[:2]), f)
                    for f in by_id.get(mask.key[-1], []))
    scored = [(score, f) for score, f in scored if score[0] > 0]
    if scored and (len(scored) == 1 or scored[-1][0] > scored[-2][0]):
      matched.setdefault(scored[-1][1], (mask_file, folder_class))
  return matched


# ---------------------------------------------------------------------------------------------
# Listing a release's folder.

CASIA1_TREE = """  <manual_dir>/            (or one folder below it)
    Au/Au_<cat>_<nnnn>.jpg   800 authentic (some .JPG)
    Sp/Sp_<S|D>_....jpg      921 tampered
    groundtruth/CM/*_gt.png  optional copy-move masks
    groundtruth/Sp/*_gt.png  optional splicing masks"""

CASIA2_TREE = """  <manual_dir>/            (or one folder below it)
    Au/Au_<cat>_<nnnnn>.<jpg|bmp>     7491 authentic
    Tp/Tp_<D|S>_....<tif|jpg>         5123 tampered
    CASIA 2 Groundtruth/<stem>_gt.png optional masks (or groundtruth/)"""

COMOFOD_TREE = """  <manual_dir>/            (or one folder below it: one flat folder)
    NNN_F.png, NNN_O.png, NNN_B.png, NNN_M.png, NNN_<F|O>_<JC1-9|IB1-3|NA1-3|BC1-3|CR1-3|CA1-3>.<png|jpg>"""

MICC_TREE = """  <manual_dir>/            (or one folder below it: one flat folder)
    groundtruthDB_<n>.txt    lines '<name>,<0|1>' or '<name> <0|1>' (1 = tampered)
    <scene>tamp<N>.jpg, <scene>_scale.jpg"""


def find_root(manual_dir: str, looks_like, expected_tree: str, release: str) -> str:
  """`manual_dir` or the first folder up to two levels below it for which `looks_like(folder)`."""
  manual_dir = os.fspath(manual_dir)
  level = [manual_dir]
  for _ in range(3):
    for folder in level:
      if looks_like(folder):
        return os.path.abspath(folder)
    level = [os.path.join(f, d) for f in level for d in sorted(os.listdir(f))
             if os.path.isdir(os.path.join(f, d))]
  raise LayoutError(f'{release}: {manual_dir} does not hold the release; expected\n{expected_tree}')


def _has(*entries):
  return lambda folder: all(os.path.exists(os.path.join(folder, e)) for e in entries)


def list_images(folder: str, root: str, skipped: list[dict], known: tuple[str, ...] = ()) -> list[str]:
  """Image files directly in `folder`, sorted; other files, except `known` ones, go to `skipped`."""
  out = []
  for f in sorted(os.listdir(folder)):
    path = os.path.join(folder, f)
    if os.path.isdir(path) or f in known:
      continue
    if f.lower().endswith(IMAGE_EXTENSIONS):
      out.append(path)
    else:
      skipped.append({'file': os.path.relpath(path, root), 'reason': 'not an image file'})
  return out


def _parse_all(paths, parse, root, skipped) -> dict:
  out = {}
  for p in paths:
    try:
      out[p] = parse(p)
    except NamingError as e:
      skipped.append({'file': os.path.relpath(p, root), 'reason': str(e)})
  return out


def _casia_names(root: str, folders: tuple[str, ...], skipped: list[dict]) -> dict[str, CasiaName]:
  """CASIA names of the images in `root/<folder>` for each folder (unparseable ones skipped)."""
  names = {}
  for folder in folders:
    names.update(_parse_all(list_images(os.path.join(root, folder), root, skipped), parse_casia,
                            root, skipped))
  return names


def list_casia1(manual_dir: str, skipped: list[dict]) -> list[SourceFile]:
  """CASIA v1.0: the class of a tampered image is its mask's folder, else source == target."""
  root = find_root(manual_dir, _has('Au', 'Sp'), CASIA1_TREE, 'casia1')
  names = _casia_names(root, ('Au', 'Sp'), skipped)
  masks = {}
  for folder, folder_class in (('CM', COPY_MOVE), ('Sp', SPLICING)):
    if os.path.isdir(os.path.join(root, 'groundtruth', folder)):
      parsed = _casia_names(root, (os.path.join('groundtruth', folder),), skipped)
      masks.update({m: folder_class for m in parsed})
  matched = match_casia_masks(names, masks)
  for m in sorted(set(masks) - {mask for mask, _ in matched.values()}):
    skipped.append({'file': os.path.relpath(m, root), 'reason': 'mask matches no image'})
  files = []
  for path, name in names.items():
    mask, forgery_type = matched.get(path, (None, name.forgery_type))
    # A mask's name carries the release's corrected scene ids: the example joins those too.
    scenes = name.scene_ids + (parse_casia(mask).scene_ids if mask else ())
    group = GROUP_SEPARATOR.join(dict.fromkeys(scenes))
    files.append(SourceFile(path, os.path.relpath(path, root), forgery_type, group, mask))
  return files


def list_casia2(manual_dir: str, skipped: list[dict]) -> list[SourceFile]:
  """CASIA V2.0: class from source == target; masks `<image stem>_gt*.png` where present."""
  root = find_root(manual_dir, _has('Au', 'Tp'), CASIA2_TREE, 'casia2')
  names = _casia_names(root, ('Au', 'Tp'), skipped)
  masks = {}
  for folder in ('CASIA 2 Groundtruth', 'groundtruth'):
    path = os.path.join(root, folder)
    if os.path.isdir(path):
      masks.update({stem(m): m for m in list_images(path, root, skipped)})
  image_stems = {stem(p) for p, n in names.items() if n.forgery_type != AUTHENTIC}
  for s, m in sorted(masks.items()):
    if s not in image_stems:
      skipped.append({'file': os.path.relpath(m, root), 'reason': 'mask matches no tampered image'})
  return [SourceFile(path, os.path.relpath(path, root), name.forgery_type, name.group,
                     masks.get(stem(path)) if name.forgery_type != AUTHENTIC else None)
          for path, name in names.items()]


def list_comofod(manual_dir: str, skipped: list[dict]) -> list[SourceFile]:
  """CoMoFoD: F (forged) and O (original) files with their variants; B is the scene's mask."""
  def looks_like(folder):
    return any(_COMOFOD.match(stem(f)) for f in os.listdir(folder))
  root = find_root(manual_dir, looks_like, COMOFOD_TREE, 'comofod')
  names = _parse_all(list_images(root, root, skipped), parse_comofod, root, skipped)
  masks = {n.scene: p for p, n in names.items() if n.kind == 'B'}
  files = []
  for path, n in names.items():
    if n.kind not in 'FO':
      continue  # B and M are masks, not examples
    forged = n.kind == 'F'
    files.append(SourceFile(path, os.path.relpath(path, root), COPY_MOVE if forged else AUTHENTIC,
                            n.scene, masks.get(n.scene) if forged else None, n.variant or ''))
  return files


def list_micc(manual_dir: str, skipped: list[dict]) -> list[SourceFile]:
  """MICC-F220 / F2000: labels from `groundtruthDB_<n>.txt`, scene from the file name."""
  def truth_files(folder):
    return sorted(f for f in os.listdir(folder) if re.match(r'^groundtruthDB_\w+\.txt$', f))
  root = find_root(manual_dir, truth_files, MICC_TREE, 'micc')
  if len(truth_files(root)) != 1:
    raise LayoutError(f'micc: {root} holds {truth_files(root)}; expected one groundtruthDB_<n>.txt')
  truth_path = os.path.join(root, truth_files(root)[0])
  truth = read_micc_groundtruth(truth_path)
  images = list_images(root, root, skipped, known=(os.path.basename(truth_path),))
  for name in sorted(set(truth) - {os.path.basename(p) for p in images}):
    skipped.append({'file': name, 'reason': f'listed in {os.path.basename(truth_path)} but not found'})
  files = []
  for path, name in _parse_all(images, parse_micc, root, skipped).items():
    label = truth.get(os.path.basename(path))
    if label is None:
      skipped.append({'file': os.path.relpath(path, root),
                      'reason': f'not listed in {os.path.basename(truth_path)}'})
      continue
    files.append(SourceFile(path, os.path.relpath(path, root), COPY_MOVE if label else AUTHENTIC,
                            name.scene))
  return files


LISTERS = {'casia1': list_casia1, 'casia2': list_casia2, 'comofod_small': list_comofod,
           'micc_f220': list_micc, 'micc_f2000': list_micc}


def list_combined(manual_dir: str, skipped: list[dict]) -> list[SourceFile]:
  """Every release found in a sub-folder named after it; groups never join across releases."""
  present = [r for r in LISTERS if os.path.isdir(os.path.join(manual_dir, r))]
  if not present:
    raise LayoutError(f'combined: {manual_dir} holds none of the releases; expected one folder per '
                      f'release, named {sorted(LISTERS)}, each laid out as that release expects')
  files = []
  for release in present:
    own_skipped: list[dict] = []
    for f in LISTERS[release](os.path.join(manual_dir, release), own_skipped):
      files.append(dataclasses.replace(
          f, filename=f'{release}/{f.filename}', release=release,
          group=GROUP_SEPARATOR.join(f'{release}:{g}' for g in f.group.split(GROUP_SEPARATOR))))
    skipped.extend({**s, 'file': f"{release}/{s['file']}"} for s in own_skipped)
  return files

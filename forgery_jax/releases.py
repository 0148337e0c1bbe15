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
"""

from __future__ import annotations

import dataclasses
import os
import re

from forgery_jax.labels import AUTHENTIC, COPY_MOVE, SPLICING

_CASIA_TAMPERED = re.compile(
    r'^(?P<prefix>Sp|Tp)_(?P<letter>[SD])_(?P<code>[A-Za-z]{3})_'
    r'(?:(?P<size>[A-Za-z])_)?(?P<kind>[A-Za-z])_'
    r'(?P<src>[A-Za-z]{3}\d{4,5})_(?P<tgt>[A-Za-z]{3}\d{4,5})[._](?P<id>\d{4,5})$')
_CASIA_AUTHENTIC = re.compile(r'^Au_(?P<cat>[A-Za-z]{3})_(?P<num>\d{4,5})$')
_PLACEHOLDER = re.compile(r'^xxx\d+$', re.IGNORECASE)


class NamingError(ValueError):
  """A file name does not follow the release's convention; the message names it."""


@dataclasses.dataclass(frozen=True)
class CasiaName:
  forgery_type: str          # from source == target for tampered files
  letter: str | None         # the S/D letter as written (may be wrong)
  scene_ids: tuple[str, ...]  # scenes the image is made of (source, target), placeholders left out
  key: tuple[str, ...]       # (code, kind, source, target, id): what a mask is matched on

  @property
  def group(self) -> str:
    return '+'.join(self.scene_ids)


def _stem(filename: str) -> str:
  """The name without folder, extension and a mask's `_gt` / `_gt3` suffix."""
  return re.sub(r'_gt\d*$', '', os.path.splitext(os.path.basename(filename))[0])


def parse_casia(filename: str) -> CasiaName:
  """Class, scenes and mask key of a CASIA v1 or v2 image (or mask) file name."""
  stem = _stem(filename)
  m = _CASIA_AUTHENTIC.match(stem)
  if m:
    scene = f"{m['cat'].lower()}{m['num']}"
    return CasiaName(AUTHENTIC, None, (scene,), (scene,))
  m = _CASIA_TAMPERED.match(stem)
  if not m:
    raise NamingError(f'{filename}: not a CASIA name (Au_<cat>_<n>, Sp_<S|D>_..., Tp_<S|D>_...)')
  src, tgt = m['src'].lower(), m['tgt'].lower()
  forgery_type = COPY_MOVE if src == tgt else SPLICING
  scenes = tuple(dict.fromkeys(s for s in (src, tgt) if not _PLACEHOLDER.match(s)))
  if not scenes:  # placeholder ids only: the image is its own scene
    scenes = (stem,)
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
  stem = _stem(filename)
  m = _MICC_TAMPERED.match(stem)
  if m:
    return MiccName(m['scene'], True)
  m = _MICC_AUTHENTIC.match(stem)
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
  m = _COMOFOD.match(_stem(filename))
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

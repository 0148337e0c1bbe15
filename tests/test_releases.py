"""Release naming on the real CASIA v1 and MICC-F220 trees, and on CASIA v2 / CoMoFoD's odd names."""

import collections
import os

import pytest

from forgery_jax.data import releases
from forgery_jax.data import splits
from tests.conftest import shared_path


def test_casia1_real_names_classes_and_masks():
  root = shared_path('datasets', 'casia1')
  au = [releases.parse_casia(f) for f in os.listdir(root / 'Au')]
  sp = {f: releases.parse_casia(f) for f in os.listdir(root / 'Sp')}
  assert len(au) == 800 and all(n.forgery_type == 'authentic' for n in au)
  counts = collections.Counter(n.forgery_type for n in sp.values())
  assert sum(counts.values()) == 921
  # Masks carry the corrected names; each matches one image by id and shared scene ids.
  masks = {m: t for folder, t in (('CM', 'copy_move'), ('Sp', 'splicing'))
           for m in os.listdir(root / 'groundtruth' / folder)}
  matched = releases.match_casia_masks(sp, masks)
  assert len(matched) >= 915
  assert len({m for m, _ in matched.values()}) == len(matched)  # no mask used twice
  disagree = [f for f, (_, t) in matched.items() if sp[f].forgery_type != t]
  assert len(disagree) <= 10  # names whose source == target contradicts the mask folder
  # Letters that disagree with source == target exist in the release and are overridden.
  assert any(n.letter == 'D' and n.forgery_type == 'copy_move' for n in sp.values())


def test_casia1_groups_link_tampered_images_to_their_scenes():
  root = shared_path('datasets', 'casia1')
  names = [releases.parse_casia(f) for d in ('Au', 'Sp') for f in sorted(os.listdir(root / d))]
  comp = splits.connected_groups([n.group for n in names])
  spliced = next(n for n in names if n.forgery_type == 'splicing')
  a, b = spliced.scene_ids
  assert comp[[n.group for n in names].index(a)] == comp[[n.group for n in names].index(b)]


@pytest.mark.parametrize('name,kind,scenes', [
    ('Tp_D_CND_M_N_ani00018_sec00096_00138.tif', 'splicing', ('ani00018', 'sec00096')),
    ('Tp_S_NRN_S_N_arc00013_arc00013_01113.jpg', 'copy_move', ('arc00013',)),
    ('Tp_D_CnN_M_N_nat00013_nat00013_10643.jpg', 'copy_move', ('nat00013',)),  # lowercase, wrong D
    ('Tp_S_NNN_S_N_xxx00011_xxx00011_10970.jpg', 'copy_move', ('Tp_S_NNN_S_N_xxx00011_xxx00011_10970',)),
    ('Tp_D_NRN_S_N_cha10130_cha00086_10188_gt3.png', 'splicing', ('cha10130', 'cha00086')),
    ('Sp_S_NRD_A_ani0040_ani0054.0257.jpg', 'splicing', ('ani0040', 'ani0054')),
    ('Au_ani_00001.jpg', 'authentic', ('ani00001',)),
    ('Au_art_0044.JPG', 'authentic', ('art0044',)),
])
def test_casia_odd_names(name, kind, scenes):
  parsed = releases.parse_casia(name)
  assert parsed.forgery_type == kind and parsed.scene_ids == scenes


def test_casia_bad_name_is_named():
  with pytest.raises(releases.NamingError, match='holiday.jpg'):
    releases.parse_casia('holiday.jpg')


def test_micc_f220_real_names_and_groundtruth():
  root = shared_path('datasets', 'micc_f220')
  labels = releases.read_micc_groundtruth(str(root / 'groundtruthDB_220.txt'))
  files = sorted(f for f in os.listdir(root) if f.lower().endswith('.jpg'))
  assert len(files) == len(labels) == 220
  parsed = {f: releases.parse_micc(f) for f in files}
  assert all(parsed[f].tampered == bool(labels[f]) for f in files)
  tampered_scenes = collections.Counter(p.scene for p in parsed.values() if p.tampered)
  assert len(tampered_scenes) == 11 and set(tampered_scenes.values()) == {10}
  authentic_scenes = {p.scene for p in parsed.values() if not p.tampered}
  assert set(tampered_scenes) <= authentic_scenes  # each forged scene has its original


def test_micc_groundtruth_formats_and_renamed_scene(tmp_path):
  gt = tmp_path / 'groundtruthDB_4.txt'
  gt.write_bytes(b'a tamp1.jpg,1\r\nx_scale.jpg 0\n\nnikon7_scale.jpg\t0\n')
  with pytest.raises(releases.NamingError, match='groundtruthDB_4.txt:1'):
    releases.read_micc_groundtruth(str(gt))
  gt.write_bytes(b'atamp1.jpg,1\r\nx_scale.jpg 0\n\nnikon7_scale.jpg\t0\n')
  assert releases.read_micc_groundtruth(str(gt)) == {'atamp1.jpg': 1, 'x_scale.jpg': 0, 'nikon7_scale.jpg': 0}
  assert releases.parse_micc('nikon7_scale.jpg').scene == 'nikon_7'


@pytest.mark.parametrize('name,scene,kind,variant', [
    ('001_F.png', '001', 'F', None), ('001_O_JC9.jpg', '001', 'O', 'JC9'),
    ('200_F_CA3.png', '200', 'F', 'CA3'), ('013_B.png', '013', 'B', None), ('013_M.png', '013', 'M', None)])
def test_comofod_names(name, scene, kind, variant):
  assert releases.parse_comofod(name) == releases.ComofodName(scene, kind, variant)

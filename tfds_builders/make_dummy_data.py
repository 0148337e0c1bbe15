"""Writes the `dummy_data/` trees of the release builders: `python -m tfds_builders.make_dummy_data`.

Tiny images under the real releases' exact names, odd ones included (CASIA's mislabelled S/D
letters, '.' before the id, lowercase `CnN`, size letter `N`, `xxx` placeholder ids, a `_gt3`
mask, a transposed mask, `.JPG`; MICC's `nikon7_scale.jpg`; CoMoFoD's variants and colour masks),
plus the faults a build must report and survive: an undecodable image, a stray `Thumbs.db`, a mask
with no image, a ground-truth line with no file and a file with no ground-truth line.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = (48, 32)  # width, height: landscape like most of the releases
_rng = np.random.default_rng(0)


def _image(path: str, size=SIZE) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pixels = _rng.integers(0, 256, (size[1] // 4, size[0] // 4, 3), dtype=np.uint8)
  im = Image.fromarray(pixels).resize(size, Image.BILINEAR)  # smooth, so JPEG is not all noise
  ext = os.path.splitext(path)[1].lower()
  fmt = {'.jpg': 'JPEG', '.tif': 'TIFF', '.bmp': 'BMP', '.png': 'PNG'}[ext]
  im.save(path, fmt, **({'quality': 92} if fmt == 'JPEG' else {}))


def _mask(path: str, size=SIZE, rgb: bool = True) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  m = np.zeros((size[1], size[0]), np.uint8)
  m[size[1] // 4: size[1] // 2, size[0] // 4: size[0] // 2] = 255
  Image.fromarray(np.stack([m] * 3, -1) if rgb else m).save(path)


def _text(path: str, content: str | bytes) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(content.encode() if isinstance(content, str) else content)


def _fresh(name: str) -> str:
  root = os.path.join(HERE, name, 'dummy_data')
  shutil.rmtree(root, ignore_errors=True)
  os.makedirs(root)
  return root


def casia1() -> None:
  root = _fresh('casia1')
  for f in ('Au_ani_0001.jpg', 'Au_art_0044.JPG', 'Au_pla_0005.jpg', 'Au_sec_0049.jpg'):
    _image(f'{root}/Au/{f}')
  tampered = {  # image -> (mask folder, mask name as the release's ground truth writes it)
      'Sp_S_CND_A_pla0005_pla0005_0281.jpg': ('CM', 'Sp_S_CND_A_pla0005_pla0005_0281_gt.png'),
      'Sp_D_CNN_A_ani0049_ani0084_0266.jpg': ('Sp', 'Sp_D_CNN_A_ani0049_ani0084_0266_gt.png'),
      'Sp_D_NNN_A_ani0099_ani0100.0288.jpg': ('Sp', 'Sp_D_NNN_A_ani0099_ani0100_0288_gt.png'),
      # S letter, source != target: the mask folder (Sp) says splicing.
      'Sp_S_NRD_A_ani0040_ani0054.0257.jpg': ('Sp', 'Sp_D_NRD_A_ani0040_ani0054_0257_gt.png'),
      # D letter, source == target: the mask folder (CM) says copy-move.
      'Sp_D_NNN_R_arc0088_arc0088_0367.jpg': ('CM', 'Sp_S_NNN_R_arc0088_arc0088_0367_gt.png'),
      # source == target in the name, but the corrected mask name and its folder say splicing.
      'Sp_D_NNN_A_sec0049_sec0049_0117.jpg': ('Sp', 'Sp_D_NNN_A_sec0049_sec0050_0117_gt.png'),
      'Sp_D_CRN_C_art0009_art0098_0403.jpg': None,  # no mask: source != target -> splicing
  }
  for image, mask in tampered.items():
    _image(f'{root}/Sp/{image}')
    if mask:
      _mask(f'{root}/groundtruth/{mask[0]}/{mask[1]}')
  _mask(f'{root}/groundtruth/CM/Sp_S_CNN_A_nat0078_nat0078_0004_gt.png')  # no such image
  _text(f'{root}/groundtruth/CopyMove_groundtruth_list.txt', 'Sp_S_CND_A_pla0005_pla0005_0281\n')
  _text(f'{root}/Sp/Thumbs.db', b'\x00' * 16)


def casia2() -> None:
  root = _fresh('casia2')
  for f in ('Au_ani_00001.jpg', 'Au_arc_30001.jpg', 'Au_nat_00055.bmp', 'Au_pla_00036.jpg'):
    _image(f'{root}/Au/{f}')
  masks = 'CASIA 2 Groundtruth'
  tampered = {  # image -> mask suffix ('' none, 'T' transposed)
      'Tp_S_NRN_S_N_arc20079_arc20079_01713.tif': '_gt.png',
      'Tp_D_CND_M_N_ani00018_sec00096_00138.tif': '_gt.png',
      'Tp_D_NNN_M_N_art00013_art00013_10850.jpg': '_gt.png',   # D letter, source == target
      'Tp_S_NNN_S_N_cha00015_nat00061_00111.jpg': '_gt3.png',  # S letter, source != target
      'Tp_D_CnN_M_N_ani00052_ani00054_11130.jpg': 'T',        # lowercase code, transposed mask
      'Tp_D_NRN_N_N_nat10141_ani00081_10225.tif': '_gt.png',   # size letter N
      'Tp_D_NNN_L_N_xxx00078_pla00036_12345.tif': '',          # placeholder source id
      'Tp_D_CNN_M_N_xxx00045_xxx00046_11204.jpg': '',          # placeholders only
  }
  for image, mask in tampered.items():
    _image(f'{root}/Tp/{image}')
    stem = os.path.splitext(image)[0]
    if mask == 'T':
      _mask(f'{root}/{masks}/{stem}_gt.png', size=SIZE[::-1], rgb=False)
    elif mask:
      _mask(f'{root}/{masks}/{stem}{mask}', rgb=False)
  _text(f'{root}/Tp/Tp_S_NNN_S_N_arc00099_arc00099_00999.jpg', b'\xff\xd8\xff\xe0 truncated')
  _mask(f'{root}/{masks}/Tp_S_NNN_S_N_sec00001_sec00001_00001_gt.png', rgb=False)  # no such image
  _text(f'{root}/Au/Thumbs.db', b'\x00' * 16)


def comofod_small() -> None:
  root = _fresh('comofod_small')
  for scene in ('001', '002'):
    for f in ('F.png', 'O.png', 'F_JC1.jpg', 'O_JC1.jpg', 'F_BC3.png', 'O_CA1.png', 'F_NA2.png',
              'O_IB1.png'):
      _image(f'{root}/{scene}_{f}')
    _mask(f'{root}/{scene}_B.png', rgb=False)
    _image(f'{root}/{scene}_M.png')


def _micc(name: str, truth_file: str, lines: list[str], newline: str, files: list[str]) -> None:
  root = _fresh(name)
  for f in files:
    _image(f'{root}/{f}')
  _text(f'{root}/{truth_file}', newline.join(lines) + newline)


def micc_f220() -> None:
  names = ['CRW_4853tamp1.jpg', 'CRW_4853tamp131.jpg', 'CRW_4853_scale.jpg',
           'DSCN45tamp1.jpg', 'DSCN45_scale.jpg', 'nikon7_scale.jpg', 'nikon_7tamp1.jpg']
  lines = [f"{n},{int('tamp' in n)}" for n in names] + ['sony_72_scale.jpg,0']  # no such file
  _micc('micc_f220', 'groundtruthDB_220.txt', lines, '\r\n', names + ['DSC_0535tamp1.jpg'])


def micc_f2000() -> None:
  names = ['DSC_1568tamp1.jpg', 'DSC_1568tamp2.jpg', 'DSC_1568_scale.jpg', 'IMG_7402_scale.jpg',
           'sony_61tamp3.jpg', 'sony_61_scale.jpg']
  _micc('micc_f2000', 'groundtruthDB_2000.txt', [f"{n}\t{int('tamp' in n)}" for n in names], '\n', names)


def combined() -> None:
  root = _fresh('combined')
  for release in ('casia1', 'micc_f220'):
    os.symlink(os.path.join('..', '..', release, 'dummy_data'), os.path.join(root, release))


def main() -> None:
  for make in (casia1, casia2, comofod_small, micc_f220, micc_f2000, combined):
    make()


if __name__ == '__main__':
  main()

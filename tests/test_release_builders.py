"""Release builders: planes, features and the build report, on the dummy trees and the real sets."""

import collections
import io
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from forgery_jax.data import datasets
from forgery_jax.forensics import ela as ela_lib
from forgery_jax.data import release_builder
from forgery_jax.data import releases
from forgery_jax.data.preparation import Preparation, Recoding
from tests.conftest import shared_path

REPO = pathlib.Path(__file__).resolve().parents[1]
DUMMY = REPO / 'tfds_builders'


def _decode(png: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(png)))


def _source(release: str, relpath: str, forgery_type='splicing', mask=None) -> releases.SourceFile:
  root = DUMMY / release / 'dummy_data'
  return releases.SourceFile(str(root / relpath), relpath, forgery_type, 'g',
                             str(root / mask) if mask else None)


def _build(name: str, data_dir, manual_dir, config='paper128'):
  datasets.build(name, config, str(data_dir), str(manual_dir))
  builder = datasets.builder_class(name)(config=config, data_dir=str(data_dir))
  source = builder.as_data_source('train')
  return builder, [source[i] for i in range(len(source))]


def test_casia2_dummy_build_features_and_report(tmp_path):
  builder, examples = _build('casia2', tmp_path, DUMMY / 'casia2' / 'dummy_data')
  by_name = {ex['filename'].decode(): ex for ex in examples}
  assert len(by_name) == 12
  report = builder.info.metadata
  assert builder.info.description.startswith('casia2: CASIA Image Tampering')
  assert 'This config (paper128): The paper' in builder.info.description
  skipped = {s['file']: s['reason'] for s in report['skipped']}
  assert 'cannot read image' in skipped['Tp/Tp_S_NNN_S_N_arc00099_arc00099_00999.jpg']
  assert skipped['Au/Thumbs.db'] == 'not an image file'
  assert 'matches no tampered image' in skipped['CASIA 2 Groundtruth/Tp_S_NNN_S_N_sec00001_sec00001_00001_gt.png']
  assert report['counts'] == {'authentic': 4, 'copy_move': 2, 'splicing': 6}
  formats = builder.info.features['source_format'].names
  tif = by_name['Tp/Tp_S_NRN_S_N_arc20079_arc20079_01713.tif']
  assert formats[tif['source_format']] == 'tiff' and tif['jpeg_quality'] == 0
  assert formats[by_name['Au/Au_nat_00055.bmp']['source_format']] == 'bmp'
  jpg = by_name['Au/Au_ani_00001.jpg']
  assert formats[jpg['source_format']] == 'jpeg' and jpg['jpeg_quality'] == 92
  assert (jpg['height'], jpg['width']) == (32, 48)
  assert jpg['image'].shape == jpg['ela'].shape == (128, 128, 3)
  # The transposed mask is turned back, the _gt3 mask is found; masks stay binary.
  for f in ('Tp/Tp_D_CnN_M_N_ani00052_ani00054_11130.jpg', 'Tp/Tp_S_NNN_S_N_cha00015_nat00061_00111.jpg'):
    assert by_name[f]['has_mask'] and set(np.unique(by_name[f]['mask'])) == {0, 255}
  assert not by_name['Au/Au_ani_00001.jpg']['has_mask'] and by_name['Au/Au_ani_00001.jpg']['mask'].max() == 0
  # Class from source == target, not the letter; placeholders join no scene.
  types = builder.info.features['forgery_type'].names
  assert types[by_name['Tp/Tp_D_NNN_M_N_art00013_art00013_10850.jpg']['forgery_type']] == 'copy_move'
  assert types[by_name['Tp/Tp_S_NNN_S_N_cha00015_nat00061_00111.jpg']['forgery_type']] == 'splicing'
  assert by_name['Tp/Tp_D_NNN_L_N_xxx00078_pla00036_12345.tif']['group'] == b'pla00036'


def test_casia1_mask_folder_and_corrected_scenes_decide():
  skipped = []
  files = {f.filename: f for f in releases.list_casia1(DUMMY / 'casia1' / 'dummy_data', skipped)}
  assert files['Sp/Sp_S_NRD_A_ani0040_ani0054.0257.jpg'].forgery_type == 'splicing'
  assert files['Sp/Sp_D_NNN_R_arc0088_arc0088_0367.jpg'].forgery_type == 'copy_move'
  # source == target in the name, but its mask lies in Sp/ and names scene sec0050 too.
  odd = files['Sp/Sp_D_NNN_A_sec0049_sec0049_0117.jpg']
  assert odd.forgery_type == 'splicing' and odd.group == 'sec0049+sec0050'
  assert files['Au/Au_art_0044.JPG'].forgery_type == 'authentic'
  assert {s['file'] for s in skipped} == {'Sp/Thumbs.db', 'groundtruth/CM/Sp_S_CNN_A_nat0078_nat0078_0004_gt.png'}


def test_micc_truth_file_separators_and_missing_entries():
  skipped = []
  f220 = {f.filename: f for f in releases.list_micc(DUMMY / 'micc_f220' / 'dummy_data', skipped)}
  assert f220['nikon7_scale.jpg'].group == f220['nikon_7tamp1.jpg'].group == 'nikon_7'
  assert f220['CRW_4853tamp131.jpg'].forgery_type == 'copy_move'
  assert {s['file'] for s in skipped} == {'sony_72_scale.jpg', 'DSC_0535tamp1.jpg'}
  f2000 = releases.list_micc(DUMMY / 'micc_f2000' / 'dummy_data', [])
  assert collections.Counter(f.forgery_type for f in f2000) == {'copy_move': 3, 'authentic': 3}


def test_comofod_variants_masks_and_groups():
  files = releases.list_comofod(DUMMY / 'comofod_small' / 'dummy_data', [])
  assert len(files) == 16  # F and O with their variants; B and M are not examples
  forged = [f for f in files if f.forgery_type == 'copy_move']
  assert all(f.mask_path.endswith(f'{f.group}_B.png') for f in forged)
  assert {f.variant for f in files} == {'', 'JC1', 'BC3', 'CA1', 'NA2', 'IB1'}
  assert {f.group for f in files} == {'001', '002'}


def test_combined_prefixes_groups_and_files():
  skipped = []
  files = releases.list_combined(DUMMY / 'combined' / 'dummy_data', skipped)
  assert {f.release for f in files} == {'casia1', 'micc_f220'}
  assert all(f.filename.startswith(f.release + '/') for f in files)
  assert all(g.startswith(f.release + ':') for f in files for g in f.group.split('+'))
  assert any(s['file'] == 'micc_f220/sony_72_scale.jpg' for s in skipped)


def test_jpeg_normalised_reencodes_only_lossless_sources():
  tif = _source('casia2', 'Tp/Tp_S_NRN_S_N_arc20079_arc20079_01713.tif')
  jpg = _source('casia2', 'Au/Au_ani_00001.jpg', 'authentic')
  for source, changes in ((tif, True), (jpg, False)):
    plain, _ = release_builder.make_example(source, Preparation('resize', 32))
    normalised, _ = release_builder.make_example(source, Preparation('resize', 32, Recoding(normalise_quality=85)))
    assert (not np.array_equal(plain['ela'], normalised['ela'])) == changes
    assert (not np.array_equal(plain['image'], normalised['image'])) == changes


def test_resize_takes_ela_at_full_resolution_and_crop_keeps_native_pixels():
  source = _source('casia2', 'Tp/Tp_D_CND_M_N_ani00018_sec00096_00138.tif',
                   mask='CASIA 2 Groundtruth/Tp_D_CND_M_N_ani00018_sec00096_00138_gt.png')
  rgb = np.asarray(Image.open(source.path).convert('RGB'))
  full_ela = ela_lib.ela(rgb)
  resized, _ = release_builder.make_example(source, Preparation('resize', 16))
  expected = np.asarray(Image.fromarray(full_ela).resize((16, 16), Image.BICUBIC))
  np.testing.assert_array_equal(resized['ela'], expected)
  cropped, _ = release_builder.make_example(source, Preparation('crop', 16))
  image, mask = cropped['image'], _decode(cropped['mask'])
  # The window is native pixels of the source, placed on the tampered box (rows 8-15, cols 12-23).
  hits = [(t, l) for t in range(32 - 15) for l in range(48 - 15)
          if np.array_equal(rgb[t:t + 16, l:l + 16], image)]
  assert hits, 'the crop is not a window of the source image'
  top, left = hits[0]
  np.testing.assert_array_equal(cropped['ela'], full_ela[top:top + 16, left:left + 16])
  assert mask.any() and top <= 8 and left <= 12 and top + 16 >= 15 and left + 16 >= 23


def test_unusable_mask_keeps_the_image_and_is_reported(tmp_path):
  wrong_size = tmp_path / 'mask_gt.png'
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(wrong_size)
  source = _source('casia2', 'Tp/Tp_D_CND_M_N_ani00018_sec00096_00138.tif')
  source = releases.SourceFile(source.path, source.filename, 'splicing', 'g', str(wrong_size))
  example, note = release_builder.make_example(source, Preparation('resize', 16))
  assert 'is 10x10 but its image is 48x32' in note and 'kept without a mask' in note
  assert not example['has_mask'] and _decode(example['mask']).max() == 0


def test_missing_and_wrong_manual_dir_say_what_to_put_where(tmp_path):
  with pytest.raises(releases.LayoutError, match=r'Au/Au_<cat>_<nnnn>\.jpg'):
    datasets.build('casia1', 'paper128', str(tmp_path / 'tfds'), str(tmp_path / 'absent'))
  wrong = tmp_path / 'wrong'
  (wrong / 'images').mkdir(parents=True)
  (wrong / 'images' / 'a.jpg').write_bytes(b'')
  with pytest.raises(releases.LayoutError, match=rf'{wrong} does not hold the release; expected'):
    datasets.build('casia1', 'paper128', str(tmp_path / 'tfds'), str(wrong))
  assert not (tmp_path / 'tfds' / 'casia1').exists() or not any((tmp_path / 'tfds' / 'casia1').rglob('dataset_info.json'))


def test_build_command_reports_a_bad_manual_dir_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'forgery_jax.data.datasets', 'build', '--name=micc_f220',
       '--builder_config=paper128', f'--data_dir={tmp_path}', f'--manual_dir={tmp_path / "none"}'],
      cwd=REPO, capture_output=True, text=True, check=False)
  assert result.returncode != 0
  assert 'error: micc_f220:' in result.stderr and 'groundtruthDB_<n>.txt' in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.slow  # three minutes on two cores: every file of both releases
def test_real_casia1_and_micc_f220_build(tmp_path):
  casia1 = shared_path('datasets', 'casia1')
  micc = shared_path('datasets', 'micc_f220')
  builder, examples = _build('casia1', tmp_path, casia1)
  report = builder.info.metadata
  assert report['counts'] == {'authentic': 800, 'copy_move': 459, 'splicing': 462}
  assert report['skipped'] == [] and report['masks_ignored'] == []
  assert sum(ex['has_mask'] for ex in examples) == 920
  # The classes' JPEG quantisation tables barely overlap: the shortcut the baselines expose.
  quality = collections.defaultdict(set)
  for ex in examples:
    quality[int(ex['label'])].add(int(ex['jpeg_quality']))
  assert quality[1] == {75, 93, 99} and quality[0] & quality[1] == {75}
  # Copy-move keypoint evidence (matched pairs): copy-move files stand out, splicing ones do not
  # (measured: AUC 0.89 and 0.52).
  evidence = {t: [float(ex['copy_move'][0]) for ex in examples if ex['forgery_type'] == t] for t in range(3)}
  assert _auc(evidence[0], evidence[1]) > 0.85 and _auc(evidence[0], evidence[2]) < 0.6
  builder, examples = _build('micc_f220', tmp_path, micc)
  assert builder.info.metadata['counts'] == {'authentic': 110, 'copy_move': 110}
  groups = collections.Counter(ex['group'] for ex in examples if ex['label'] == 1)
  assert len(groups) == 11 and set(groups.values()) == {10}
  # MICC-F220 was made for SIFT matching: affine inliers rank its forgeries (measured AUC 0.993).
  inliers = {t: [float(ex['copy_move'][1]) for ex in examples if ex['forgery_type'] == t] for t in (0, 1)}
  assert _auc(inliers[0], inliers[1]) > 0.97


def _auc(negatives, positives) -> float:
  """P(a positive scores above a negative), ties counted half."""
  n, p = np.asarray(negatives)[:, None], np.asarray(positives)[None, :]
  return float(((p > n).sum() + 0.5 * (p == n).sum()) / (n.size * p.size))


def test_jpeg_randomised_reencodes_every_file_at_a_quality_drawn_from_its_name():
  recoding = Recoding(randomise_qualities=(70, 95))
  names = [f'Sp/Sp_D_CNN_A_ani{i:04d}_ani{i + 1:04d}_{i:04d}.jpg' for i in range(200)]
  qualities = [recoding.quality(n, 'jpeg') for n in names]
  assert qualities == [recoding.quality(n, 'tiff') for n in names]  # any format, same draw
  assert min(qualities) >= 70 and max(qualities) <= 95 and len(set(qualities)) >= 20
  tif = _source('casia2', 'Tp/Tp_S_NRN_S_N_arc20079_arc20079_01713.tif')
  jpg = _source('casia2', 'Au/Au_ani_00001.jpg', 'authentic')
  for source in (tif, jpg):
    plain, _ = release_builder.make_example(source, Preparation('resize', 32))
    randomised, _ = release_builder.make_example(source, Preparation('resize', 32, recoding))
    assert randomised['source_format'] == 'jpeg'
    assert randomised['jpeg_quality'] == recoding.quality(source.filename, 'jpeg')
    assert not np.array_equal(plain['ela'], randomised['ela'])
    assert randomised['copy_move'].shape == (2,)


@pytest.mark.slow
def test_real_casia2_subset_reads_every_file_and_matches_every_mask(tmp_path):
  """The real CASIA v2.0 files in the release's own layout: nothing skipped, every mask matched."""
  casia2 = shared_path('datasets', 'casia2_subset')
  builder, examples = _build('casia2', tmp_path, casia2)
  report = builder.info.metadata
  assert report['counts'] == {'authentic': 160, 'copy_move': 9, 'splicing': 150}
  assert report['skipped'] == [] and report['masks_ignored'] == []
  with_mask = [ex for ex in examples if ex['has_mask']]
  assert len(with_mask) == 17 and all(ex['mask'].max() == 255 for ex in with_mask)
  formats = builder.info.features['source_format'].names
  by_format = collections.Counter((int(ex['label']), formats[ex['source_format']]) for ex in examples)
  # The release's shortcuts, kept visible: every authentic file is a JPEG, 77 tampered are TIFF.
  assert by_format == {(0, 'jpeg'): 160, (1, 'tiff'): 77, (1, 'jpeg'): 82}
  assert builder.info.description.startswith('casia2: CASIA')


def test_making_a_builder_of_an_unbuilt_dataset_leaves_no_temporary_folder(tmp_path, monkeypatch):
  # The TFDS default looks an unbuilt dataset up on its bucket through a fresh temporary folder
  # that it never removes: one per builder made, thousands over a test run.
  import tempfile
  scratch = tmp_path / 'scratch'
  scratch.mkdir()
  monkeypatch.setattr(tempfile, 'tempdir', str(scratch))
  for name, config in (('casia1', 'native'), ('micc_f220', 'paper128'), ('synthetic_forgery', 'tiny')):
    builder = datasets.builder_class(name)(config=config, data_dir=str(tmp_path / 'data'))
    assert builder.info.name == name and not builder.is_prepared()
  assert list(scratch.iterdir()) == []

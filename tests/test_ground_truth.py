"""`predict --ground_truth`: pairing images with masks or a CSV, reading masks of every
convention, and the scores against hand-computed cases."""

import json
import os

import numpy as np
from PIL import Image
import pytest

from forgery_jax.evaluation import ground_truth as gt


def _write(path, array, mode=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array, mode).save(path)
  return str(path)


def _square_mask(shape=(8, 10), rows=slice(2, 6), cols=slice(3, 7)):
  truth = np.zeros(shape, bool)
  truth[rows, cols] = True
  return truth


@pytest.mark.parametrize('encode', ['0_255', '0_1', 'sixteen_bit', 'red_on_black', 'clear_background',
                                    'inverted'])
def test_masks_of_every_convention_read_alike(tmp_path, encode):
  truth = _square_mask()
  path = str(tmp_path / 'm.png')
  if encode == '0_255':
    _write(path, truth.astype(np.uint8) * 255)
  elif encode == '0_1':
    _write(path, truth.astype(np.uint8))
  elif encode == 'sixteen_bit':
    _write(path, truth.astype(np.uint16) * 65535)
  elif encode == 'red_on_black':
    rgb = np.zeros(truth.shape + (3,), np.uint8)
    rgb[truth, 0] = 200
    _write(path, rgb)
  elif encode == 'clear_background':
    rgba = np.zeros(truth.shape + (4,), np.uint8)
    rgba[truth] = 255
    _write(path, rgba)
  else:
    _write(path, (~truth).astype(np.uint8) * 255)
  got = gt.read_mask(path, truth.shape, inverted=encode == 'inverted')
  np.testing.assert_array_equal(got, truth)


def test_a_mask_that_does_not_fit_its_image_is_one_clear_error(tmp_path):
  path = _write(tmp_path / 'm.png', np.zeros((10, 8), np.uint8))
  with pytest.raises(ValueError, match=r'm.png is 8x10 but its image is 10x8 \(width and height swapped'):
    gt.read_mask(path, (8, 10))
  bad = tmp_path / 'bad.png'
  bad.write_bytes(b'not a png')
  with pytest.raises(ValueError, match='cannot read mask .*bad.png'):
    gt.read_mask(str(bad), (8, 10))


def test_a_folder_of_masks_is_matched_by_stem_and_suffix(tmp_path):
  masks = tmp_path / 'masks'
  _write(masks / 'a_gt.png', np.zeros((4, 4), np.uint8))
  _write(masks / 'sub' / 'B-MASK.PNG', np.zeros((4, 4), np.uint8))
  _write(masks / 'c.png', np.zeros((4, 4), np.uint8))
  _write(masks / 'c_mask.tif', np.zeros((4, 4), np.uint8))
  truth = gt.GroundTruth(str(masks))
  assert truth.lookup('/photos/a.jpg') == gt.Entry(None, str(masks / 'a_gt.png'))
  assert truth.lookup('/photos/b.JPG') == gt.Entry(None, str(masks / 'sub' / 'B-MASK.PNG'))
  assert truth.lookup('/photos/d.jpg') is None
  with pytest.raises(ValueError, match='2 masks could be its own'):
    truth.lookup('/photos/c.jpg')
  # An image among its own masks is not its own mask; without a mask it is authentic when asked.
  assert gt.GroundTruth(str(masks), unmasked_authentic=True).lookup(str(masks / 'a_gt.png')) == \
      gt.Entry('authentic', None)


def test_masks_among_the_images_are_not_images_to_answer_for(tmp_path):
  """A folder of images and masks together (`a.png` beside `a_gt.png`), named as both what to
  predict and its ground truth: the masks were predicted as images (and with `unmasked_authentic`
  scored as authentic photos). Images and masks in two folders, one named for both: the masks
  only. A file and a mask named alike (`x.png` in two folders) are both kept."""
  both = tmp_path / 'both'
  files = [_write(both / n, np.zeros((4, 4), np.uint8)) for n in ('a.png', 'a_gt.png', 'b.jpg',
                                                                  'B-mask.png', 'c.png')]
  truth = gt.GroundTruth(str(both), unmasked_authentic=True)
  assert truth.masks_among(files) == {os.path.realpath(both / 'a_gt.png'),
                                      os.path.realpath(both / 'B-mask.png')}
  split = [_write(tmp_path / 'split' / sub / n, np.zeros((4, 4), np.uint8))
           for sub, n in (('images', 'd.png'), ('masks', 'd_gt.png'), ('images', 'x.png'),
                          ('masks', 'x.png'))]
  assert gt.GroundTruth(str(tmp_path / 'split')).masks_among(split) == {
      os.path.realpath(tmp_path / 'split' / 'masks' / 'd_gt.png')}
  assert gt.GroundTruth(str(tmp_path / 'split' / 'masks')).masks_among(split) == {
      os.path.realpath(tmp_path / 'split' / 'masks' / 'd_gt.png'),
      os.path.realpath(tmp_path / 'split' / 'masks' / 'x.png')}
  (tmp_path / 'pairs.csv').write_text(f'image,mask\n{files[0]},{files[1]}\n')
  assert gt.GroundTruth(str(tmp_path / 'pairs.csv')).masks_among(files) == {
      os.path.realpath(files[1])}


def test_a_csv_names_masks_and_labels_relative_to_itself(tmp_path):
  (tmp_path / 'pairs.csv').write_text(
      'image,mask,label\nimgs/x.jpg,masks/x.png,\nimgs/y.jpg,,authentic\n/abs/z.png,,1\n')
  truth = gt.GroundTruth(str(tmp_path / 'pairs.csv'))
  assert truth.lookup(str(tmp_path / 'imgs' / 'x.jpg')) == gt.Entry(None, str(tmp_path / 'masks' / 'x.png'))
  assert truth.lookup(str(tmp_path / 'imgs' / 'y.jpg')) == gt.Entry('authentic', None)
  assert truth.lookup('/abs/z.png') == gt.Entry('tampered', None)
  assert truth.lookup(str(tmp_path / 'imgs' / 'other.jpg')) is None
  for text, message in [('img,mask\na,b\n', 'an image column and a mask and/or a label'),
                        ('image,label\na,forged\n', "line 2: label 'forged'"),
                        ('image,mask,label\na,,\n', 'line 2: neither a mask nor a label')]:
    (tmp_path / 'bad.csv').write_text(text)
    with pytest.raises(ValueError, match=message):
      gt.GroundTruth(str(tmp_path / 'bad.csv'))
  with pytest.raises(ValueError, match='no such folder or CSV file'):
    gt.GroundTruth(str(tmp_path / 'missing'))
  mask = _write(tmp_path / 'one_gt.png', np.zeros((4, 4), np.uint8))
  with pytest.raises(ValueError, match='one_gt.png is an image: name the folder of masks'):
    gt.GroundTruth(mask)
  # A spreadsheet's "CSV UTF-8": a byte-order mark, CRLF lines, names with capitals and spaces.
  (tmp_path / 'excel.csv').write_bytes(b'\xef\xbb\xbfImage , Label\r\nimgs/y.jpg,authentic\r\n')
  assert gt.GroundTruth(str(tmp_path / 'excel.csv')).lookup(str(tmp_path / 'imgs' / 'y.jpg')) == \
      gt.Entry('authentic', None)


def test_scores_against_hand_computed_cases(tmp_path):
  """Two tampered images, one drawn exactly and one drawn half (F1 2/3), an authentic image
  called tampered, and an authentic image called authentic."""
  shape = (8, 10)
  truth = _square_mask(shape)                                      # 16 pixels
  (tmp_path / 'pairs.csv').write_text(
      'image,mask,label\nexact.png,m1.png,\nhalf.png,m2.png,\nfalse_alarm.png,,authentic\n'
      'quiet.png,empty.png,\n')
  _write(tmp_path / 'm1.png', truth.astype(np.uint8) * 255)
  _write(tmp_path / 'm2.png', truth.astype(np.uint8) * 255)
  _write(tmp_path / 'empty.png', np.zeros(shape, np.uint8))
  scores = gt.Scores(gt.GroundTruth(str(tmp_path / 'pairs.csv')))
  half = truth.astype(np.float32) * 0.9
  half[2:6, 5:7] = 0.2                                             # 8 of 16 found, none outside
  rows = []
  for name, tamper_map, p in [('exact.png', truth.astype(np.float32), 0.9), ('half.png', half, 0.7),
                              ('false_alarm.png', np.zeros(shape, np.float32), 0.8),
                              ('quiet.png', np.zeros(shape, np.float32), 0.1),
                              ('unknown.png', None, 0.5)]:
    row = {'p_tampered': p, 'prediction': 'tampered' if p >= 0.5 else 'authentic'}
    scores.add(row, str(tmp_path / name), shape, tamper_map, 'tamper_probability')
    rows.append(row)
  assert [r.get('ground_truth') for r in rows] == ['tampered', 'tampered', 'authentic', 'authentic', None]
  assert rows[0]['pixel_f1'] == 1.0 and rows[0]['pixel_auc'] == 1.0
  assert rows[1]['pixel_f1'] == pytest.approx(2 / 3) and rows[1]['pixel_iou'] == pytest.approx(0.5)
  summary = json.loads(json.dumps(scores.summary()))
  assert summary['images'] == 4 and summary['tampered'] == 2 and summary['without_ground_truth'] == 1
  assert summary['pixel']['pixel_f1'] == pytest.approx((1 + 2 / 3) / 2)
  assert summary['pixel']['pixel_images'] == 2
  # The second map ranks its 8 missed pixels (0.2) above the 64 others (0.0): AUC 1 for both.
  assert summary['pixel']['pixel_auc'] == pytest.approx(1.0)
  assert summary['pixel_baselines']['all_tampered']['pixel_f1'] == pytest.approx(2 * 16 / (16 + 80))
  assert summary['pixel_baselines']['all_tampered']['pixel_auc'] == pytest.approx(0.5)
  # Each image's mean of the *other* masks is the same square: a perfect prior here.
  assert summary['pixel_baselines']['mean_other_masks']['pixel_f1'] == pytest.approx(1.0)
  image = summary['image']
  assert image['accuracy'] == pytest.approx(3 / 4) and image['majority_accuracy'] == pytest.approx(0.5)
  assert image['authentic_false_alarms'] == pytest.approx(0.5) and image['tampered_detected'] == 1.0
  assert image['auc'] == pytest.approx(0.75)   # 0.9 and 0.7 against 0.8 and 0.1: 3 of 4 pairs
  # 95 % intervals over the files: two F1s (1 and 2/3) give every mean between them; four
  # decisions with one wrong give 1/4 when three or four draws of four are the wrong one (5 %).
  assert summary['pixel']['pixel_f1_ci95'] == pytest.approx([2 / 3, 1.0])
  assert summary['pixel']['pixel_auc_ci95'] == pytest.approx([1.0, 1.0])
  assert image['accuracy_ci95'] == pytest.approx([0.25, 1.0])
  assert image['tampered_detected_ci95'] == pytest.approx([1.0, 1.0])
  lines = gt.report(summary)
  assert 'pixel_f1 0.833 [0.667, 1.000]' in lines[2] and 'optimistic' in lines[2]
  assert lines[3].startswith('image: accuracy 0.750 [0.250, 1.000] (majority class 0.500), AUC 0.750')
  assert lines[4].startswith('[low, high]: 95 % intervals')


def test_an_unreadable_or_misfit_mask_is_an_error_of_its_image_only(tmp_path):
  _write(tmp_path / 'masks' / 'a.png', np.zeros((5, 5), np.uint8))
  scores = gt.Scores(gt.GroundTruth(str(tmp_path / 'masks')))
  row = {'p_tampered': 0.5, 'prediction': 'tampered'}
  scores.add(row, '/photos/a.jpg', (8, 10), np.zeros((8, 10), np.float32), 'tamper_probability')
  assert 'is 5x5 but its image is 10x8' in row['ground_truth_error']
  assert scores.summary()['errors'] == 1 and scores.summary()['images'] == 0


def test_masks_and_rows_no_predicted_image_took_are_counted_and_named(tmp_path):
  """A mask whose name differs from its image's (CASIA v1's corrected names) is not silently
  left out: the summary counts and names what no predicted image took."""
  shape = (8, 10)
  for name in ('a_gt.png', 'b_gt.png', 'renamed_gt.png'):
    _write(tmp_path / 'masks' / name, _square_mask(shape).astype(np.uint8) * 255)
  scores = gt.Scores(gt.GroundTruth(str(tmp_path / 'masks')))
  for name in ('a.jpg', 'b.jpg', 'c.jpg'):
    scores.add({'p_tampered': 0.5, 'prediction': 'tampered'}, f'/photos/{name}', shape,
               np.zeros(shape, np.float32), 'tamper_probability')
  summary = scores.summary()
  assert summary['unmatched_masks'] == 1 and summary['unmatched_first'] == ['renamed_gt.png']
  assert summary['without_ground_truth'] == 1
  assert gt.report(summary)[0].endswith('; 1 masks matched no predicted image (renamed_gt.png)')
  # Images and masks in one folder: the images predicted are not masks left over.
  both = tmp_path / 'both'
  images = [_write(both / n, np.zeros(shape, np.uint8)) for n in ('x.png', 'y.png')]
  _write(both / 'x_gt.png', np.zeros(shape, np.uint8))
  scores = gt.Scores(gt.GroundTruth(str(both)))
  for path in images:
    scores.add({'p_tampered': 0.5, 'prediction': 'tampered'}, path, shape, None, None)
  assert scores.summary()['unmatched_masks'] == 0 and 'matched no' not in gt.report(scores.summary())[0]
  # A CSV: its rows whose image was not predicted.
  (tmp_path / 'pairs.csv').write_text('image,label\np.png,authentic\nq.png,tampered\n')
  scores = gt.Scores(gt.GroundTruth(str(tmp_path / 'pairs.csv')))
  scores.add({'p_tampered': 0.5, 'prediction': 'tampered'}, str(tmp_path / 'p.png'), shape, None, None)
  summary = scores.summary()
  assert summary['unmatched_csv_rows'] == 1 and summary['unmatched_first'] == ['q.png']
  assert '1 CSV rows matched no predicted image (q.png)' in gt.report(summary)[0]

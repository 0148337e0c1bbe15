"""predict on a corpus of unusual and broken files, from a CNN run and from a WLD + XGBoost run."""

import json
import os
import re
import shutil
import signal
import pathlib
import subprocess
import sys
import time

from PIL import Image, ImageOps
import pytest

import numpy as np

from configs import wld_xgboost as wld_config
import forgery_jax
from forgery_jax import api
from forgery_jax import experiment
from forgery_jax import image_io
from forgery_jax import panels
from forgery_jax import predict
from tests.conftest import with_file_size_limit
from tests.corpus import make_corpus

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  folder = tmp_path_factory.mktemp('corpus')
  return str(folder), make_corpus(str(folder))


@pytest.fixture(scope='module')
def cnn_run(tiny_config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('cnn'))
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1
  experiment.run(config, workdir)
  return workdir


@pytest.fixture(scope='module')
def wld_run(tiny_config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('wld'))
  config = wld_config.get_config()
  config.dataset.update(tiny_config.dataset.to_dict())
  config.dataset.update(num_classes=3, split='kfold', num_folds=2)
  config.xgboost.update(n_estimators=3, threads=1)
  experiment.run(config, workdir)
  return workdir


def _check(rows, expected, folder, tiles):
  by_name = {os.path.basename(r['path']): r for r in rows}
  assert set(by_name) == set(expected)
  for name, outcome in expected.items():
    row = by_name[name]
    if outcome == 'ok':
      assert 'error' not in row, row
      assert 0.0 <= row['p_tampered'] <= 1.0 and row['prediction'] in row['probabilities']
      with Image.open(row['panel']) as panel:
        assert panel.size[0] == tiles * panels.TILE
    else:
      assert outcome in row['error'] and name in row['error'], row


def test_cnn_predicts_every_readable_file_and_names_every_broken_one(cnn_run, corpus, tmp_path):
  folder, expected = corpus
  rows, rate = predict.predict_paths(cnn_run, [folder], str(tmp_path), batch_size=4)
  _check(rows, expected, folder, tiles=4)
  assert rate > 0
  lines = (tmp_path / 'predictions.jsonl').read_text().splitlines()
  assert [json.loads(l)['path'] for l in lines] == [r['path'] for r in rows]
  assert len((tmp_path / 'predictions.csv').read_text().splitlines()) == len(rows) + 1
  made_with = json.loads((tmp_path / predict.PREDICTED_WITH).read_text())
  assert made_with['run'] == os.path.abspath(cnn_run) and made_with['options'] == {}
  assert made_with['detector'] == 'ELA+SRM' and made_with['threshold'] is None
  assert made_with['folds'] == 1
  assert made_with['images'] == len(rows) and made_with['failed'] == sum('error' in r for r in rows)
  assert made_with['environment']['code']['version']


def test_wld_run_predicts_too(wld_run, corpus, tmp_path):
  folder, expected = corpus
  rows, _ = predict.predict_paths(wld_run, [os.path.join(folder, '*.jpg')], str(tmp_path))
  jpgs = {k: v for k, v in expected.items() if k.endswith('.jpg')}
  _check(rows, jpgs, folder, tiles=3)  # no heatmap: WLD has no spatial output
  ok = [r for r in rows if 'error' not in r]
  assert set(ok[0]['probabilities']) == {'authentic', 'copy_move', 'splicing'}


@pytest.mark.parametrize('orientation', range(1, 9))
def test_orient_turns_arrays_and_points_as_pil_turns_the_image(orientation):
  rgb = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  tagged = Image.fromarray(rgb)
  tagged.getexif()[image_io.EXIF_ORIENTATION] = orientation
  assert image_io.exif_orientation(tagged) == orientation
  shown = image_io.orient(rgb, orientation)
  np.testing.assert_array_equal(shown, np.asarray(ImageOps.exif_transpose(tagged)))
  np.testing.assert_array_equal(image_io.orient(rgb[..., 0], orientation), shown[..., 0])
  stored_xy = np.array([[0, 0], [6, 1], [2, 4]])
  for (x, y), (sx, sy) in zip(stored_xy, image_io.orient_points(stored_xy, (5, 7), orientation)):
    marked = np.zeros((5, 7), bool)
    marked[y, x] = True
    assert image_io.orient(marked, orientation)[int(sy), int(sx)]


def save_turned_pair(folder, orientation: int, shape=(45, 70)) -> tuple[str, str]:
  """The same JPEG twice, its pixels bit for bit alike: once with an EXIF `orientation`, once none."""
  rgb = np.random.default_rng(orientation).integers(0, 256, (*shape, 3), dtype=np.uint8)
  tagged, plain = os.path.join(folder, f'tagged_{orientation}.jpg'), os.path.join(folder, f'plain_{orientation}.jpg')
  exif = Image.Exif()
  exif[image_io.EXIF_ORIENTATION] = orientation
  Image.fromarray(rgb).save(tagged, quality=90, exif=exif.tobytes())
  Image.fromarray(rgb).save(plain, quality=90)
  return tagged, plain


def test_a_file_is_analysed_as_stored_and_shown_turned(cnn_run, tmp_path):
  """The planes come from the stored pixels, where the file's JPEG grid lies (turning a photo whose
  side is not a multiple of 8 moves its grid); only what is shown is turned."""
  predictor = forgery_jax.load(cnn_run)
  tagged, plain = save_turned_pair(str(tmp_path), 6)
  prepared, untagged = predictor.prepare(tagged), predictor.prepare(plain)
  with Image.open(tagged) as raw:
    shown = np.asarray(ImageOps.exif_transpose(raw).convert('RGB'))
  assert prepared.orientation == 6 and untagged.orientation == 1 and shown.shape[:2] == (70, 45)
  np.testing.assert_array_equal(prepared.rgb, untagged.rgb)
  np.testing.assert_array_equal(prepared.shown(prepared.rgb), shown)
  assert prepared.shown_size == (70, 45)
  for name, plane in prepared.planes.items():
    np.testing.assert_array_equal(plane, untagged.planes[name], err_msg=name)
  turned, straight = predictor.predict([tagged, plain], saliency=True)
  assert turned.p_tampered == straight.p_tampered
  np.testing.assert_array_equal(turned.map, image_io.orient(straight.map, 6))


def test_command_line_exit_status_and_error_lines(cnn_run, corpus, tmp_path):
  folder, expected = corpus
  good = os.path.join(folder, 'photo.jpg')
  result = subprocess.run(
      [sys.executable, '-m', 'forgery_jax.predict', f'--workdir={cnn_run}', f'--output={tmp_path}',
       good, os.path.join(folder, 'text.jpg'), os.path.join(folder, 'missing.jpg')],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  errors = [l for l in result.stderr.splitlines() if l.startswith('error: ')]
  assert len(errors) == 2 and 'text.jpg' in errors[0] and 'missing.jpg: no such file' in errors[1]
  assert 'Traceback' not in result.stderr
  assert '1 predicted, 2 failed' in result.stdout
  ok = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', f'--workdir={cnn_run}',
                       f'--output={tmp_path / "ok"}', good],
                      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert ok.returncode == 0, ok.stderr[-2000:]


def test_output_that_is_a_file_is_one_error_line(cnn_run, corpus, tmp_path):
  folder, _ = corpus
  a_file = tmp_path / 'predictions'
  a_file.write_text('kept')
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', f'--workdir={cnn_run}',
                           f'--output={a_file}', os.path.join(folder, 'photo.jpg')],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f'error: --output={a_file} is a file, not a folder'
  assert a_file.read_text() == 'kept'


def test_not_a_run_is_one_line(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', f'--workdir={tmp_path}', 'x.jpg'],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode != 0 and 'is not a forgery_jax run' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert 'Traceback' not in result.stderr


def test_predict_and_every_detector_start_without_the_training_libraries():
  """`predict`'s first answer in a fresh process waits for its imports. scikit-learn (splits,
  interval and ground-truth scoring) and scipy.cluster (the keypoint clusters), imported at the
  top of modules on its path, made it 5.0 s against 3.6 s (benchmarks.run: predict, first
  result); they are imported where they are used."""
  heavy = ('sklearn', 'scipy', 'tensorflow', 'tensorflow_datasets', 'grain', 'matplotlib', 'pandas')
  code = ('import sys, forgery_jax.predict\n'
          'from forgery_jax.detectors import averaged, copy_move_keypoints, localiser, paper_cnn, wld_xgboost\n'
          f'print(sorted(m for m in {heavy!r} if m in sys.modules))')
  result = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=True)
  assert result.stdout.strip() == '[]', result.stdout


@pytest.mark.parametrize('damage, message', [
    ('manifest_keys', 'not a readable forgery_jax export (detector.json lacks config, info)'),
    ('variables', 'cannot restore the model variables: '),
    ('booster', 'cannot read booster.json: XGBoostError: '),
])
def test_a_damaged_export_is_one_error_line(cnn_run, wld_run, corpus, tmp_path, damage, message):
  run = tmp_path / 'run'
  shutil.copytree(wld_run if damage == 'booster' else cnn_run, run)
  export_dir = run / 'fold_0' / 'export' if damage == 'booster' else run / 'export'
  if damage == 'manifest_keys':
    manifest = json.loads((export_dir / 'detector.json').read_text())
    del manifest['config'], manifest['info']
    (export_dir / 'detector.json').write_text(json.dumps(manifest))
  elif damage == 'variables':  # the stored arrays gone (a copy cut short): TensorStore's error
    for data in (export_dir / 'variables').glob('ocdbt.process_*'):  # was pages long
      shutil.rmtree(data)
  else:  # cut short: XGBoost's error carried its C++ stack
    booster = export_dir / 'booster.json'
    booster.write_bytes(booster.read_bytes()[:500])
  if damage != 'variables':  # one line of text, in the process
    with pytest.raises(ValueError) as error:
      forgery_jax.load(str(run))
    assert str(error.value).startswith(f'{export_dir}') and message in str(error.value)
    assert '\n' not in str(error.value) and len(str(error.value)) < 600
    return
  # The abandoned reads print when collected, at the latest as the command ends: a command.
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', f'--workdir={run}',
                           f'--output={tmp_path / "out"}', os.path.join(corpus[0], 'photo.jpg')],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  # Every line but absl's INFO and WARNING ones (abandoned reads printed pages of tracebacks).
  errors = [l for l in result.stderr.splitlines() if not re.match(r'[IW]\d{4} ', l)]
  assert result.returncode == 1 and errors == [errors[-1]], result.stderr[-3000:]
  assert errors[-1].startswith(f'error: {export_dir}') and message in errors[-1]
  assert len(errors[-1]) < 600


def test_an_export_copied_on_its_own_predicts_as_its_run(cnn_run, corpus, tmp_path):
  """What a user copies to another machine is the run's `export/`, perhaps renamed: it was
  'not a forgery_jax run'."""
  folder, _ = corpus
  model = tmp_path / 'my_model'
  shutil.copytree(os.path.join(cnn_run, 'export'), model)
  photo = os.path.join(folder, 'photo.jpg')
  copied, own = forgery_jax.load(str(model)).predict(photo), forgery_jax.load(cnn_run).predict(photo)
  assert (copied.label, copied.p_tampered) == (own.label, own.p_tampered)


def test_python_api_predicts_arrays_paths_and_pil_images(cnn_run, wld_run, corpus):
  folder, _ = corpus
  path = os.path.join(folder, 'photo.jpg')
  rgb = np.asarray(Image.open(path).convert('RGB'))
  for run in (cnn_run, wld_run):
    detector = forgery_jax.load(run)
    one = detector.predict(rgb)
    assert one.label in one.probabilities and 0.0 <= one.p_tampered <= 1.0
    assert abs(sum(one.probabilities.values()) - 1.0) < 1e-5 and one.map is None
    # A path and a PIL image of the same file give the same answer as its pixels.
    assert detector.predict(path).probabilities == one.probabilities
    assert detector.predict(Image.open(path)).probabilities == one.probabilities
    batch = detector.predict(np.stack([rgb, rgb[::-1]]))
    assert len(batch) == 2 and batch[0].probabilities == one.probabilities
    assert len(detector.predict([rgb[..., 0], path])) == 2  # grey arrays too
  saliency = forgery_jax.load(cnn_run).predict(rgb, saliency=True)
  assert saliency.map_kind == 'saliency' and saliency.map.shape == rgb.shape[:2]
  with pytest.raises(ValueError, match='uint8'):
    forgery_jax.load(cnn_run).predict(rgb.astype(np.float32))


def test_python_api_scores_a_long_list_a_few_images_at_a_time(cnn_run, corpus, monkeypatch):
  """A list of paths was prepared whole before scoring: every photo's planes in memory at once."""
  folder, _ = corpus
  path = os.path.join(folder, 'photo.jpg')
  detector = forgery_jax.load(cnn_run)
  alone = detector.predict(path)
  sizes = []
  scored = detector.predict_prepared
  monkeypatch.setattr(detector, 'predict_prepared',
                      lambda prepared, saliency=False: sizes.append(len(prepared)) or scored(prepared, saliency))
  results = detector.predict([path] * (api.CHUNK * 2 + 3))
  assert sizes == [api.CHUNK, api.CHUNK, 3]
  assert all(r.probabilities == alone.probabilities for r in results)


def test_python_api_reads_a_files_bytes_an_open_file_and_an_alpha_array(cnn_run, corpus):
  folder, _ = corpus
  path = os.path.join(folder, 'photo.jpg')
  detector = forgery_jax.load(cnn_run)
  from_path = detector.predict(path)
  with open(path, 'rb') as f:
    raw = f.read()
  assert detector.predict(raw).probabilities == from_path.probabilities
  with open(path, 'rb') as f:
    assert detector.predict(f).probabilities == from_path.probabilities
    assert not f.closed  # the caller's file stays the caller's
  # An alpha channel is composited on white, as for an RGBA file.
  rgba = np.asarray(Image.open(path).convert('RGBA')).copy()
  rgba[:8, :8, 3] = 0
  white = image_io.pil_to_rgb(Image.fromarray(rgba, 'RGBA'))
  assert (white[:8, :8] == 255).all()
  assert detector.predict(rgba).probabilities == detector.predict(white).probabilities
  with pytest.raises(ValueError, match=r'^image 1: not a readable image file'):
    detector.predict([raw, raw[:100]])
  with pytest.raises(ValueError, match=r"^image: expected a uint8 array .* or a file's bytes"):
    detector.predict(np.zeros((4, 4, 3), np.float32))


def test_a_broken_link_and_a_named_pipe_are_error_lines_not_a_stop(cnn_run, corpus, tmp_path):
  folder, _ = corpus
  images = tmp_path / 'images'
  images.mkdir()
  shutil.copy(os.path.join(folder, 'photo.jpg'), images / 'photo.jpg')
  os.symlink(tmp_path / 'gone.jpg', images / 'broken_link.jpg')
  os.mkfifo(images / 'pipe.jpg')  # opened to read, it would wait for a writer for ever
  rows, _ = predict.predict_paths(cnn_run, [str(images)], str(tmp_path / 'out'), panels=False)
  by_name = {os.path.basename(r['path']): r for r in rows}
  assert by_name['broken_link.jpg']['error'] == (
      f"{images / 'broken_link.jpg'}: a broken symbolic link (to {tmp_path / 'gone.jpg'})")
  assert by_name['pipe.jpg']['error'] == f"cannot read image {images / 'pipe.jpg'}: not a regular file"
  assert 'error' not in by_name['photo.jpg']


def test_ctrl_c_stops_predict_at_once_and_keeps_the_last_predictions(cnn_run, corpus, tmp_path):
  """Ctrl-C used to wait for every queued panel to be drawn, then end in a traceback."""
  folder, _ = corpus
  images = tmp_path / 'images'
  images.mkdir()
  for k in range(300):
    shutil.copy(os.path.join(folder, 'photo.jpg'), images / f'{k:03d}.jpg')
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'predictions.jsonl').write_text('{"path": "from before"}\n')
  # Ctrl-C as a terminal delivers it: a shell's background job would ignore SIGINT.
  command = ('import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); '
             f'sys.argv = ["predict", "--workdir={cnn_run}", "--output={out}", "{images}"]; '
             'runpy.run_module("forgery_jax.predict", run_name="__main__")')
  process = subprocess.Popen([sys.executable, '-c', command], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 240
  while not (out / 'panels').is_dir() or not any((out / 'panels').glob('*.png')):  # under way
    assert process.poll() is None and time.time() < deadline, process.communicate()
    time.sleep(0.05)
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=120)
  assert process.returncode == 130, stderr[-2000:]
  assert stderr.strip().splitlines()[-1] == (
      f'interrupted: {out / "predictions.jsonl"} not written (one written before is kept whole)')
  assert 'Traceback' not in stderr
  assert (out / 'predictions.jsonl').read_text() == '{"path": "from before"}\n'
  assert len(list((out / 'panels').glob('*.png'))) < 300  # the queued panels were dropped


def test_predict_without_panels_writes_no_panel(cnn_run, corpus, tmp_path):
  folder, _ = corpus
  rows, _ = predict.predict_paths(cnn_run, [os.path.join(folder, 'photo.jpg')], str(tmp_path),
                                  panels=False)
  assert 'panel' not in rows[0] and not (tmp_path / 'panels').exists()


def test_folders_are_read_with_their_subfolders_only_when_asked(tmp_path, capsys):
  for rel in ('b.jpg', 'a.PNG', 'notes.txt', '._a.jpg', 'Au/x.jpg', 'Tp/x.tif', 'Tp/deep/y.jpeg',
              '.hidden/z.jpg'):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'')
  top = predict.expand_paths([str(tmp_path)])
  assert top == [str(tmp_path / 'a.PNG'), str(tmp_path / 'b.jpg')]
  assert '2 subfolder(s) not read (--recursive reads them)' in capsys.readouterr().err
  every = predict.expand_paths([str(tmp_path), str(tmp_path / 'Au')], recursive=True)
  assert every == [str(tmp_path / p) for p in ('a.PNG', 'b.jpg', 'Au/x.jpg', 'Tp/x.tif', 'Tp/deep/y.jpeg')]
  assert capsys.readouterr().err == ''


def test_a_second_call_into_a_folder_it_reads_leaves_its_own_outputs_out(cnn_run, tmp_path, capsys):
  """--output inside a folder read with --recursive: a rerun read the first call's masks and
  panels as photos to check."""
  photos = tmp_path / 'photos'
  photos.mkdir()
  rng = np.random.default_rng(0)
  for name in ('a', 'b'):
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), np.uint8)).save(photos / f'{name}.png')
  out = str(photos / 'checked')
  first, _ = predict.predict_paths(cnn_run, [str(photos)], out, recursive=True)
  assert len(first) == 2 and os.listdir(os.path.join(out, 'panels'))
  again, _ = predict.predict_paths(cnn_run, [str(photos)], out, recursive=True)
  assert [r['path'] for r in again] == [r['path'] for r in first]
  assert f'2 files of this --output ({out}) left out' in capsys.readouterr().err


def test_naming_no_image_is_one_error_line_and_writes_nothing(tmp_path):
  (tmp_path / 'tree' / 'inner').mkdir(parents=True)
  (tmp_path / 'tree' / 'inner' / 'a.jpg').write_bytes(b'')
  out = tmp_path / 'out'
  result = subprocess.run(
      [sys.executable, '-m', 'forgery_jax.predict', f'--workdir={tmp_path / "no_run"}',
       f'--output={out}', str(tmp_path / 'tree'), str(tmp_path / '*.png')],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: no image file in {tmp_path / "tree"}, {tmp_path / "*.png"} '
      '(--recursive reads subfolders too)')
  assert not out.exists()


def test_ground_truth_scores_the_answers_beside_their_baselines(cnn_run, tmp_path):
  """predict --ground_truth on a folder of masks: the paper CNN's maps are gradient saliency,
  scored and labelled so; an image without a mask is authentic with --unmasked_authentic; a mask
  of the wrong size is an error line of that image only."""
  rng = np.random.default_rng(0)
  images, masks = tmp_path / 'images', tmp_path / 'masks'
  images.mkdir()
  masks.mkdir()
  for name in ('a', 'b', 'c', 'clean'):
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), np.uint8)).save(images / f'{name}.png')
  square = np.zeros((40, 56), np.uint8)
  square[10:30, 20:40] = 255
  Image.fromarray(square).save(masks / 'a_gt.png')
  Image.fromarray(square).save(masks / 'b_mask.png')
  Image.fromarray(square[:20]).save(masks / 'c.png')
  out = tmp_path / 'out'

  def predict_against(truth, folder, output):
    result = subprocess.run(
        [sys.executable, '-m', 'forgery_jax.predict', f'--workdir={cnn_run}', f'--output={output}',
         f'--ground_truth={truth}', '--unmasked_authentic', '--nopanels', str(folder)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result

  result = predict_against(masks, images, out)
  assert '3 images scored (2 tampered, 1 authentic), 0 without ground truth, 1 error' in result.stdout
  assert 'gradient saliency, not a segmentation' in result.stdout
  summary = json.loads((out / 'ground_truth_scores.json').read_text())
  assert summary['pixel']['map_kind'] == 'saliency' and summary['pixel']['pixel_images'] == 2
  assert set(summary['pixel_baselines']) == {'all_tampered', 'centre_prior', 'mean_other_masks'}
  rows = {os.path.basename(r['path']): r for r in map(json.loads, (out / 'predictions.jsonl').open())}
  assert rows['clean.png']['ground_truth'] == 'authentic' and 'pixel_f1' not in rows['clean.png']
  assert 0.0 <= rows['a.png']['pixel_f1'] <= 1.0 and rows['b.png']['ground_truth'] == 'tampered'
  assert 'is 56x20 but its image is 56x40' in rows['c.png']['ground_truth_error']
  assert 'ground_truth,pixel_f1,pixel_auc' in (out / 'predictions.csv').read_text().splitlines()[0]
  # Images and masks in one folder, named for both: the masks are not answered for (they were,
  # and with --unmasked_authentic counted as authentic photos).
  both = tmp_path / 'both'
  shutil.copytree(images, both)
  for mask in ('a_gt.png', 'b_mask.png'):  # (c.png, the mask named as its image, stays out)
    shutil.copy(masks / mask, both)
  result = predict_against(both, both, tmp_path / 'out2')
  assert '2 files left out: the masks of other images in --ground_truth' in result.stderr
  assert '4 images scored (2 tampered, 2 authentic), 0 without ground truth, 0 errors' in result.stdout


@pytest.mark.parametrize('flag', ['--unmasked_authentic', '--ground_truth_inverted'])
def test_ground_truth_options_without_ground_truth_are_refused(cnn_run, corpus, tmp_path, flag):
  """Options that only change how --ground_truth is read are refused without it, not ignored."""
  folder, _ = corpus
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', f'--workdir={cnn_run}',
                           f'--output={tmp_path / "out"}', flag, os.path.join(folder, 'photo.jpg')],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f'error: {flag} needs --ground_truth'
  assert not os.path.exists(tmp_path / 'out')


@pytest.mark.parametrize('flag', ['--data_dir', '--manual_dir'])
def test_dataset_folders_without_a_validation_threshold_are_refused(cnn_run, corpus, tmp_path, flag):
  """Only a threshold chosen on validation reads the run's dataset: its folders are refused
  without one, not ignored."""
  folder, _ = corpus
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', f'--workdir={cnn_run}',
                           f'--output={tmp_path / "out"}', f'{flag}={tmp_path}',
                           os.path.join(folder, 'photo.jpg')],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f"error: {flag} needs --threshold=validation or --pixel_threshold=validation (only they "
      "read the run's dataset)")
  assert not os.path.exists(tmp_path / 'out')


def test_an_output_that_cannot_be_written_is_one_error_line_naming_the_file(cnn_run, tmp_path):
  """A write that fails (a full disk; here the file-size limit, a real failed write()) was a
  traceback; it is one line naming the file, and no half file is left under that name."""
  rng = np.random.default_rng(0)
  photo = tmp_path / 'noise.png'
  Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(photo)  # ~360 kB
  out = tmp_path / 'out'
  result = subprocess.run(
      [*with_file_size_limit('forgery_jax.predict', 200_000), f'--workdir={cnn_run}',
       f'--output={out}', str(photo)],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
      env={**os.environ, 'FORGERY_JAX_COMPILATION_CACHE': 'off'})
  assert result.returncode == 1
  panel = out / 'panels' / '00000_noise.png'
  assert result.stderr.strip().splitlines()[-1] == f'error: {panel}: File too large'
  assert 'Traceback' not in result.stderr
  assert list((out / 'panels').iterdir()) == []


def test_a_leading_tilde_in_a_flag_is_the_home_folder(cnn_run, corpus, tmp_path):
  """The shell leaves `--output=~/checked` as it is: it made a folder named ~ in the current one."""
  folder, _ = corpus
  home, cwd = tmp_path / 'home', tmp_path / 'cwd'
  shutil.copytree(os.path.join(cnn_run, 'export'), home / 'model')
  cwd.mkdir()
  shutil.copy(os.path.join(folder, 'photo.jpg'), home / 'photo.jpg')
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', '--workdir=~/model',
                           '--output=~/checked', '--nopanels', '~/photo.jpg'],
                          cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, 'HOME': str(home), 'PYTHONPATH': os.pathsep.join(
                              [str(REPO), os.environ.get('PYTHONPATH', '')])})
  assert result.returncode == 0, result.stderr[-2000:]
  assert (home / 'checked' / 'predictions.jsonl').exists() and list(cwd.iterdir()) == []

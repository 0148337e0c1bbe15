"""predict on a corpus of unusual and broken files, from a CNN run and from a WLD + XGBoost run."""

import json
import os
import pathlib
import subprocess
import sys

from PIL import Image
import pytest

import numpy as np

from configs import wld_xgboost as wld_config
import forgery_jax
from forgery_jax import experiment
from forgery_jax import panels
from forgery_jax import predict
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


def test_wld_run_predicts_too(wld_run, corpus, tmp_path):
  folder, expected = corpus
  rows, _ = predict.predict_paths(wld_run, [os.path.join(folder, '*.jpg')], str(tmp_path))
  jpgs = {k: v for k, v in expected.items() if k.endswith('.jpg')}
  _check(rows, jpgs, folder, tiles=3)  # no heatmap: WLD has no spatial output
  ok = [r for r in rows if 'error' not in r]
  assert set(ok[0]['probabilities']) == {'authentic', 'copy_move', 'splicing'}


def test_exif_orientation_is_applied(cnn_run, corpus):
  folder, _ = corpus
  prepared = forgery_jax.load(cnn_run).prepare(os.path.join(folder, 'exif_rotated.jpg'))
  with Image.open(os.path.join(folder, 'exif_rotated.jpg')) as raw:
    assert prepared.rgb.shape[:2] == (raw.size[0], raw.size[1])  # (h, w) of the turned image
  assert prepared.planes['image'].shape == (32, 32, 3)


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


def test_not_a_run_is_one_line(tmp_path):
  result = subprocess.run([sys.executable, '-m', 'forgery_jax.predict', f'--workdir={tmp_path}', 'x.jpg'],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode != 0 and 'is not a forgery_jax run' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert 'Traceback' not in result.stderr


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


def test_predict_without_panels_writes_no_panel(cnn_run, corpus, tmp_path):
  folder, _ = corpus
  rows, _ = predict.predict_paths(cnn_run, [os.path.join(folder, 'photo.jpg')], str(tmp_path),
                                  panels=False)
  assert 'panel' not in rows[0] and not (tmp_path / 'panels').exists()

"""The detector interface: a detector of one's own runs through main, predict and evaluate, and
the registry names what it knows."""

import json
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import forgery_jax
from forgery_jax import detectors
from tests.conftest import assert_no_library_info

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(module, *args):
  result = subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert_no_library_info(result.stderr)
  return result


def test_unknown_method_lists_the_registered_ones():
  with pytest.raises(ValueError, match=r"one of \['cnn', 'copy_move_keypoints', 'localiser', 'wld_xgboost'\]"):
    detectors.get('svm')
  with pytest.raises(ValueError, match='cannot import'):
    detectors.get('no_such_module:Detector')
  with pytest.raises(ValueError, match='not a forgery_jax Detector'):
    detectors.get('os:path')


def test_a_detector_of_ones_own_runs_through_main_predict_and_evaluate(tiny_config, tmp_path):
  run = tmp_path / 'run'
  _run('forgery_jax.main', '--config=configs/tiny.py', f'--workdir={run}',
       f'--config.dataset.data_dir={tiny_config.dataset.data_dir}',
       '--config.method=tests.minimal_detector:MeanEla',
       '--config.cross_dataset.name=synthetic_forgery', '--config.cross_dataset.builder_config=tiny')
  results = json.loads((run / 'results.json').read_text())
  assert results['method'] == 'tests.minimal_detector:MeanEla' and results['threshold'] > 0
  assert results['test/num_examples'] == 32 and 'baseline/jpeg_quality_lookup_accuracy' in results
  assert results['cross/synthetic_forgery/tiny/2.0.0/num_examples'] == 128
  assert [json.loads(l)['split'] for l in (run / 'metrics.jsonl').read_text().splitlines()] == ['test']

  rng = np.random.default_rng(0)
  for name in ('a.png', 'b.jpg'):
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(tmp_path / name)
  _run('forgery_jax.predict', f'--workdir={run}', f'--output={tmp_path / "pred"}',
       str(tmp_path / 'a.png'), str(tmp_path / 'b.jpg'))
  rows = [json.loads(l) for l in (tmp_path / 'pred' / 'predictions.jsonl').read_text().splitlines()]
  assert [r['prediction'] in ('authentic', 'tampered') for r in rows] == [True, True]
  for r in rows:  # a localising detector's map, at the input's own size
    with Image.open(r['mask']) as mask:
      assert mask.size == (50, 40) and mask.mode == 'L'

  _run('forgery_jax.evaluate', f'--workdir={run}', f'--output={tmp_path / "report"}')
  report = json.loads((tmp_path / 'report' / 'report.json').read_text())
  assert report['runs'][0]['results']['test/accuracy'] == results['test/accuracy']

  detector = forgery_jax.load(str(run))
  out = detector.predict(rng.integers(0, 256, (30, 20, 3), dtype=np.uint8))
  assert out.map.shape == (30, 20) and out.map_kind == 'tamper_probability'

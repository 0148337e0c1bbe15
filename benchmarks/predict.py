"""`predict` end to end against the paper's Keras inference on the same files."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

from flax import nnx

from benchmarks import reference
from benchmarks.common import REPO, Row, median_seconds, model_config, photo_files
from configs import casia1_best
from forgery_jax import predict
from forgery_jax.data.preparation import Preparation
from forgery_jax.detectors import export
from forgery_jax.detectors import paper_cnn


def untrained_run(config, workdir: str, preparation: Preparation) -> str:
  """A run folder holding the export of an untrained model (same shapes, same work to predict)."""
  task = paper_cnn.PaperCnn.task(config, None)
  graphdef, state = nnx.split(task.create_model(config, nnx.Rngs(params=0)))
  detector = paper_cnn.PaperCnn(config, graphdef, state)
  export.write(detector, workdir, preparation)
  return workdir


def _rate(workdir: str, files: list[str], panels: bool, repeats: int) -> float:
  with tempfile.TemporaryDirectory() as out:
    seconds = median_seconds(lambda: predict.predict_paths(workdir, files, out, panels=panels),
                             repeats, warmup=1)
  return len(files) / seconds


def first_result_seconds(workdir: str, path: str, repeats: int = 5) -> float:
  """Median wall time of `python -m forgery_jax.predict` on one file, each in a fresh process,
  its JAX compilation cache warm (a first invocation, not counted, fills it). One start alone
  varies by a second on a busy machine."""
  cmd = [sys.executable, '-m', 'forgery_jax.predict', f'--workdir={workdir}', '--nopanels',
         f'--output={workdir}/first', path]
  return median_seconds(lambda: subprocess.run(cmd, cwd=REPO, capture_output=True, check=True),
                        repeats, warmup=1)


def predict_rows(count: int, repeats: int) -> list[Row]:
  with tempfile.TemporaryDirectory() as tmp:
    files, label = photo_files(count, tmp)
    paper = untrained_run(model_config(128), os.path.join(tmp, 'paper'), Preparation('resize', 128))
    best = casia1_best.get_config()
    keypoints = untrained_run(best, os.path.join(tmp, 'keypoints'), Preparation('resize', 128))
    keras_model = reference.keras_model(128)
    keras = len(files) / median_seconds(lambda: reference.keras_inference(files, keras_model),
                                        repeats, warmup=1)
    rows = []
    for name, workdir, panels, target in (('paper model, no panels', paper, False, 1.0),
                                          ('paper model, with panels', paper, True, 0.5),
                                          ('keypoint model (casia1_best), no panels', keypoints, False, None)):
      ours = _rate(workdir, files, panels, repeats)
      rows.append(Row(f'predict, {name}', ours, keras, ours / keras, 'images/s', target,
                      f'{label}: python API of forgery_jax.predict vs the paper\'s Keras inference '
                      '(PIL decode, temp-file ELA, filter2D SRM, model.predict)'))
    starts = 2 * repeats - 1
    first = first_result_seconds(paper, files[0], starts)
    rows.append(Row('predict, first result in a fresh process (compilation cache warm)', first, 3.0,
                    3.0 / first, 'seconds', 1.0, f'python -m forgery_jax.predict on one file, '
                    f'median of {starts} fresh processes, interpreter start and imports included; '
                    'target 3 s'))
  return rows

"""The corpus of unusual and broken files (tests/corpus.py) through a dataset build and the
ELA / SRM / WLD functions, plus property tests on arbitrary shapes and dtypes.

Every file either works or fails with one message naming it; a failed build leaves nothing that
looks complete.
"""

import json
import os
import pathlib
import re
import subprocess
import sys
import threading

from hypothesis import given, settings, strategies as st
import jax.numpy as jnp
import numpy as np
import pytest

import experiments
from forgery_jax import atomic
from forgery_jax import image_io
from forgery_jax.data import build_lock
from forgery_jax.data import datasets
from forgery_jax.forensics import ela
from forgery_jax.data import releases
from forgery_jax.forensics import srm
from forgery_jax.forensics import wld
from tests.conftest import with_file_size_limit
from tests.corpus import make_corpus

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def micc_tree(tmp_path_factory):
  """The corpus as a MICC-style release: every file an authentic `<scene>_scale.<ext>`, listed in
  the ground truth, plus a symlink loop, a named pipe, a listed file that is missing and a folder
  loop."""
  corpus = tmp_path_factory.mktemp('corpus')
  expected = make_corpus(str(corpus))
  root = tmp_path_factory.mktemp('micc')
  renamed = {}
  for k, name in enumerate(sorted(expected)):
    new = f'c{k:02d}_scale{os.path.splitext(name)[1]}'
    os.replace(corpus / name, root / new)
    renamed[new] = expected[name]
  os.symlink('loop_scale.jpg', root / 'loop_scale.jpg')  # a symlink to itself
  renamed['loop_scale.jpg'] = 'cannot read image'
  os.symlink('.', root / 'folder_loop')  # a folder that contains itself
  os.mkfifo(root / 'pipe_scale.jpg')  # a named pipe: opening it to read would wait for ever
  renamed['pipe_scale.jpg'] = 'not a regular file'
  lines = [f'{n},0' for n in renamed] + ['missing_scale.jpg,0']
  (root / 'groundtruthDB_220.txt').write_text('\n'.join(lines) + '\n')
  return root, renamed


def test_build_keeps_every_good_file_and_reports_every_bad_one(micc_tree, tmp_path):
  root, expected = micc_tree
  datasets.build('micc_f220', 'paper128', str(tmp_path), str(root))
  builder = datasets.builder_class('micc_f220')(config='paper128', data_dir=str(tmp_path))
  report = builder.info.metadata
  skipped = {s['file']: s['reason'] for s in report['skipped']}
  good = {n for n, outcome in expected.items() if outcome == 'ok'}
  assert report['counts'] == {'authentic': len(good)}
  for name, outcome in expected.items():
    if outcome != 'ok':
      assert outcome in skipped[name] and name in skipped[name], (name, skipped.get(name))
  assert 'not found' in skipped['missing_scale.jpg']
  source = builder.as_data_source('train')
  assert {source[i]['filename'].decode() for i in range(len(source))} == good


def test_failed_build_leaves_nothing_that_looks_complete(tmp_path):
  empty = tmp_path / 'release'
  empty.mkdir()
  (empty / 'groundtruthDB_220.txt').write_text('a_scale.jpg,0\n')
  (empty / 'a_scale.jpg').write_bytes(b'not a jpeg')
  with pytest.raises(releases.LayoutError, match=r'no usable images among the 1 listed \(a_scale.jpg: cannot read image'):
    datasets.build('micc_f220', 'paper128', str(tmp_path / 'tfds'), str(empty))
  assert not list((tmp_path / 'tfds').rglob('dataset_info.json'))


def test_a_build_removes_what_a_build_killed_outright_left_unfinished(tmp_path, monkeypatch):
  """TFDS removes its `incomplete.*` folder when a build fails or is stopped, but a build killed
  outright (SIGKILL, the out-of-memory killer) left it behind for good, as large as the dataset.
  The next build of that dataset removes it, once it holds the build lock (a build still writing
  into such a folder holds it), and leaves everything else alone."""
  data_dir = tmp_path / 'tfds'
  builder = datasets.builder_class('micc_f220')(config='paper128', data_dir=str(data_dir))
  version = builder.version
  folder = data_dir / 'micc_f220' / 'paper128'
  killed = folder / f'incomplete.Q7ZK2A_{version}'
  killed.mkdir(parents=True)
  (killed / 'micc_f220-train.array_record-00000-of-00001').write_bytes(b'half written')
  kept = [folder / 'incomplete.Q7ZK2A_0.0.1', folder / f'notes_{version}']  # another version's; not TFDS's
  for path in kept:
    path.mkdir()
  said = []
  waiting = threading.Event()
  monkeypatch.setattr(datasets.progress, 'write', lambda line: said.append(line) or waiting.set())
  build = threading.Thread(target=datasets.build, args=(
      'micc_f220', 'paper128', str(data_dir), str(REPO / 'tfds_builders/micc_f220/dummy_data')))
  with build_lock.held(builder):  # a build under way
    build.start()
    assert waiting.wait(60), 'the build did not wait for the one under way'
    assert killed.exists()  # not removed while another build may be writing into it
  build.join(120)
  assert not killed.exists() and all(path.exists() for path in kept)
  assert builder.is_prepared()
  assert said[-1] == f'removed {killed}: left by a build of micc_f220/paper128/{version} that was killed'


def test_a_dataset_tfds_built_as_tfrecord_is_one_error_line(tmp_path):
  """`tfds build` without `--file_format=array_record` writes TFRecord, which cannot be read at
  random: a run on that data_dir ended in TFDS's NotImplementedError traceback, and `datasets
  build` said nothing (TFDS found the dataset prepared). Both now say what is wrong and what to do."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.dataset.data_dir = str(tmp_path)
  builder = datasets.get_builder(config.dataset)
  builder.download_and_prepare()  # TFDS's default format, as `tfds build` writes it
  message = (f'{builder.data_dir}: built as tfrecord (tfds build without --file_format=array_record); '
             'forgery_jax reads array_record only: remove that folder and build it again')
  with pytest.raises(datasets.DatasetError, match=re.escape(message)):
    datasets.ensure_built(config.dataset)
  with pytest.raises(datasets.DatasetError, match=re.escape(message)):
    datasets.build(config.dataset.name, builder.builder_config.name, str(tmp_path), None)


def test_a_table_that_fails_half_written_keeps_the_last_complete_one(tmp_path):
  """An experiment's or benchmark's JSON (`experiments.write_json`, `atomic.replaced_when_complete`)
  that fails while being written leaves the file it replaces as it was, and no half file."""
  path = str(tmp_path / 'results.json')
  experiments.write_json(path, {'pixel_f1': 0.5})
  with pytest.raises(TypeError):
    experiments.write_json(path, {'pixel_f1': 0.6, 'run': object()})  # not JSON: fails midway
  assert json.load(open(path)) == {'pixel_f1': 0.5}
  assert os.listdir(tmp_path) == ['results.json']


def test_two_writers_of_one_file_each_replace_it_whole(tmp_path):
  """Two commands writing one report at once (an `evaluate` beside another): the one that ends
  last leaves its whole file. They shared one file beside it, so the second truncated the first's
  half-written text and the first then wrote on into the renamed report."""
  path = str(tmp_path / 'report.md')
  with atomic.replaced_when_complete(path) as first:
    first.write('first ' * 100)
    with atomic.replaced_when_complete(path) as second:
      second.write('second')
    first.write('first ' * 100)
  assert open(path).read() == 'first ' * 200
  assert os.listdir(tmp_path) == ['report.md']


def test_a_file_named_as_a_folder_is_refused_before_building(tmp_path):
  a_file = tmp_path / 'notes.txt'
  a_file.write_text('kept')
  with pytest.raises(datasets.DatasetError, match=r'manual_dir .*notes.txt is a file, not a folder'):
    datasets.build('micc_f220', 'paper128', str(tmp_path / 'tfds'), str(a_file))
  with pytest.raises(datasets.DatasetError, match=r'data_dir .*notes.txt is a file, not a folder'):
    datasets.build('micc_f220', 'paper128', str(a_file), str(tmp_path))
  assert a_file.read_text() == 'kept' and not (tmp_path / 'tfds').exists()



def test_a_missing_or_misspelt_name_lists_the_choices_before_building(tmp_path):
  """`datasets build` without --name or --builder_config, or with one misspelt, says which flag
  and what it may be, instead of a TFDS error about a config named None."""
  tfds_dir = tmp_path / 'tfds'
  with pytest.raises(datasets.DatasetError, match=r"--name is required: one of \[.*'micc_f220'"):
    datasets.build(None, 'paper128', str(tfds_dir), str(tmp_path))
  with pytest.raises(datasets.DatasetError,
                     match=r"--builder_config is required: dataset 'micc_f220' has \[.*'native'"):
    datasets.build('micc_f220', None, str(tfds_dir), str(tmp_path))
  with pytest.raises(datasets.DatasetError, match=r"no builder config 'nat'; it has \[.*'native'"):
    datasets.build('micc_f220', 'nat', str(tfds_dir), str(tmp_path))
  with pytest.raises(datasets.DatasetError, match=r"unknown dataset 'micc': --name must be one of"):
    datasets.build('micc', 'native', str(tfds_dir), str(tmp_path))
  assert not tfds_dir.exists()

@pytest.mark.skipif(os.geteuid() == 0, reason='root reads files whatever their permissions')
def test_unreadable_permission_is_named(tmp_path):
  path = tmp_path / 'locked.jpg'
  path.write_bytes(b'\xff\xd8')
  path.chmod(0)
  with pytest.raises(ValueError, match='locked.jpg'):
    image_io.load_rgb(str(path))


def test_corpus_through_ela_srm_and_wld(tmp_path):
  expected = make_corpus(str(tmp_path))
  kernels = jnp.asarray(srm.srm_kernels())
  for name, outcome in expected.items():
    path = str(tmp_path / name)
    if outcome != 'ok':
      with pytest.raises(ValueError, match=name):
        image_io.load_rgb(path)
      continue
    rgb = image_io.load_rgb(path)
    plane = ela.ela(rgb)
    assert plane.shape == rgb.shape and plane.dtype == np.uint8
    residual = np.asarray(srm.srm_residual(jnp.asarray(rgb[None], jnp.float32), kernels))
    assert residual.shape == (1, *rgb.shape) and np.isfinite(residual).all()
    if min(rgb.shape[:2]) >= 4:
      features = wld.extract(rgb[None], wld.WldParams())
      assert np.isfinite(features).all()


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**16), quality=st.integers(1, 100))
def test_ela_on_any_shape(h, w, seed, quality):
  rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
  out = ela.ela(rgb, quality)
  assert out.shape == rgb.shape and out.dtype == np.uint8
  assert out.max() in (0, 255) or out.max() >= 254  # scaled so that the peak is (about) 255


@settings(max_examples=30, deadline=None)
@given(shape=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 4)),
       dtype=st.sampled_from([np.float32, np.float64, np.int16, np.bool_, np.uint16]))
def test_ela_rejects_anything_but_uint8_rgb(shape, dtype):
  array = np.zeros(shape, dtype)
  if dtype == np.uint8 and shape[-1] == 3:
    return
  with pytest.raises(ValueError, match='uint8 RGB'):
    ela.ela(array)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(1, 24), w=st.integers(1, 24), c=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_srm_on_any_shape(n, h, w, c, seed):
  images = np.random.default_rng(seed).uniform(0, 255, (n, h, w, c)).astype(np.float32)
  out = np.asarray(srm.srm_residual(jnp.asarray(images), jnp.asarray(srm.srm_kernels())))
  assert out.shape == images.shape and np.isfinite(out).all() and np.abs(out).max() <= 1.0


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), seed=st.integers(0, 2**16))
def test_wld_on_any_shape(h, w, seed):
  params = wld.WldParams(grid=(2, 2))
  rgb = np.random.default_rng(seed).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
  if h < 4 or w < 4:  # fewer interior pixels than blocks
    with pytest.raises(ValueError, match='WLD grid'):
      wld.extract(rgb, params)
    return
  out = wld.extract(rgb, params)
  assert out.shape == (1, params.length())
  np.testing.assert_allclose(out.reshape(-1, params.bins).sum(-1), 1.0, rtol=1e-5)


def test_a_build_that_cannot_write_its_records_is_one_error_line(tmp_path):
  """A write that fails (a full disk; here the file-size limit, a real failed write()) was
  array_record's RuntimeError traceback; it is one line naming the dataset and the file, and
  nothing that looks complete is left."""
  release = REPO / 'tfds_builders' / 'micc_f220' / 'dummy_data'
  result = subprocess.run(
      [*with_file_size_limit('forgery_jax.data.datasets', 100_000), 'build', '--name=micc_f220',
       '--builder_config=paper128',
       f'--data_dir={tmp_path / "tfds"}', f'--manual_dir={release}'],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 1
  last = result.stderr.strip().splitlines()[-1]
  assert 'error: building micc_f220/paper128 failed: ' in last and 'File too large' in last
  assert 'Traceback' not in result.stderr
  assert not list((tmp_path / 'tfds').rglob('dataset_info.json'))


def test_an_experiment_whose_checkpoint_save_fails_ends_in_one_error_line():
  """The experiments that train (learning_curve, table1) end as `main` does when a checkpoint
  cannot be saved: one line, not a traceback."""
  from forgery_jax.training import checkpointing

  @experiments.one_error_line
  def train():
    raise checkpointing.CheckpointError('/x/checkpoints: saving the checkpoint of step 8 failed '
                                        '(No space left on device)')
  with pytest.raises(SystemExit, match=r'^error: /x/checkpoints: saving the checkpoint of step 8'):
    train()

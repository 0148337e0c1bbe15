"""The localising detector end to end on the tiny synthetic set: maps, pixel scores and their
baselines, native crops, predict's mask files, the Python API's maps, the history control."""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
import numpy as np
from PIL import Image
import pytest

from configs import localiser as localiser_config
import forgery_jax
from forgery_jax import experiment
from forgery_jax import image_io
from forgery_jax import predict
from forgery_jax.data import input_pipeline
from forgery_jax.detectors import localiser
from forgery_jax.forensics import keypoints


def _config(tiny_config):
  config = localiser_config.get_config()
  config.dataset.update(tiny_config.dataset.to_dict())
  config.batch_size, config.eval_batch_size, config.num_epochs = 8, 8, 1
  config.model.update(ela_qualities=(90,), stem=4, levels=(8, 8, 8), hidden=8)
  return config


@pytest.fixture(scope='module')
def run(tiny_config, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('localiser'))
  config = _config(tiny_config)
  config.synthesis.fraction = 0.5  # forgeries synthesised on the device, beside the real ones
  return workdir, experiment.run(config, workdir)


def test_network_maps_every_pixel_of_any_size():
  for levels in ((8, 8, 8), (8, 12), (8, 12, 16, 20)):
    # Built and called abstractly: the shapes are what is asked, and nothing needs compiling.
    model = nnx.eval_shape(lambda: localiser.LocaliserNet(  # pylint: disable=cell-var-from-loop
        ela_qualities=(75, 95), stem=4, levels=levels, hidden=8, rngs=nnx.Rngs(0)))
    assert len(model.enc) == len(levels) and len(model.dec) == len(levels) - 1
    graph, params = nnx.split(model)
    for h, w in ((32, 48), (64, 64)):
      pixel, image = jax.eval_shape(lambda p, x: nnx.merge(graph, p)(x), params,
                                    jax.ShapeDtypeStruct((2, h, w, 3), jnp.uint8))
      assert pixel.shape == (2, h, w) and image.shape == (2,)
  with pytest.raises(ValueError, match='model.levels'):
    localiser.LocaliserNet(levels=(8, 8, 8, 8, 8), rngs=nnx.Rngs(0))


def test_zscore_features_judge_a_region_against_its_own_image():
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 2.0, (2, 16, 16, 5)).astype(np.float32)
  x[1, ..., 4] = 7.0                                        # a constant channel
  z = np.asarray(localiser.zscore(jnp.asarray(x)))
  np.testing.assert_allclose(z[0].mean((0, 1)), 0.0, atol=1e-5)
  np.testing.assert_allclose(z[0].std((0, 1)), 1.0, atol=1e-3)
  assert np.all(z[1, ..., 4] == 0.0)
  # The same image at another level and scale has the same Z-scores.
  np.testing.assert_allclose(np.asarray(localiser.zscore(jnp.asarray(10 * x[:1] - 4))), z[:1], atol=1e-3)
  # The network with them: the stems' and the bottleneck's Z-scores widen the layers that read them
  # and nothing else (the image head still reads the bottleneck's own features).
  plain = localiser.LocaliserNet(ela_qualities=(90,), stem=4, levels=(8, 12), hidden=8, rngs=nnx.Rngs(0))
  wide = localiser.LocaliserNet(ela_qualities=(90,), stem=4, levels=(8, 12), hidden=8,
                                zscore_features=True, rngs=nnx.Rngs(0))
  assert wide.enc[0].conv1.kernel.value.shape[2] == 2 * plain.enc[0].conv1.kernel.value.shape[2] == 24
  assert wide.dec[0].conv1.kernel.value.shape[2] == 2 * 12 + 8
  assert wide.fuse.kernel.value.shape[2] == 8 + 24 and wide.head1.in_features == plain.head1.in_features
  pixel, image = wide(jnp.asarray(rng.integers(0, 256, (2, 32, 48, 3)), jnp.uint8))
  assert pixel.shape == (2, 32, 48) and image.shape == (2,) and bool(jnp.isfinite(pixel).all())


def test_windowed_zscores_are_local_statistics():
  rng = np.random.default_rng(1)
  x = rng.normal(3.0, 2.0, (2, 12, 17, 3)).astype(np.float32)
  x[0, 2:6, 3:9] += 5.0                                     # a region at another level
  z = np.asarray(localiser.zscore(jnp.asarray(x), window=5))
  # Against the definition, pixel by pixel: the window around each pixel, cut at the border.
  want = np.empty_like(x)
  for i in range(12):
    for j in range(17):
      patch = x[:, max(i - 2, 0):i + 3, max(j - 2, 0):j + 3]
      mean, var = patch.mean((1, 2)), patch.var((1, 2))
      want[:, i, j] = (x[:, i, j] - mean) / np.sqrt(var + 1e-3)
  np.testing.assert_allclose(z, want, atol=2e-4)
  # A window that reaches every pixel from every pixel is the image-wide Z-score.
  np.testing.assert_allclose(np.asarray(localiser.zscore(jnp.asarray(x), window=33)),
                             np.asarray(localiser.zscore(jnp.asarray(x))), atol=2e-4)
  assert [localiser.window_at_level(w, s) for w, s in ((0, 1), (96, 1), (96, 8), (16, 8))] == [0, 97, 13, 3]
  # In the network: the same shapes as image-wide Z-scores, other values.
  kw = dict(ela_qualities=(90,), stem=4, levels=(8, 12), hidden=8, zscore_features=True)
  image = jnp.asarray(rng.integers(0, 256, (1, 32, 48, 3)), jnp.uint8)
  wide, local = (localiser.LocaliserNet(**kw, zscore_window=w, rngs=nnx.Rngs(0)) for w in (0, 16))
  (a, _), (b, _) = wide(image), local(image)
  assert a.shape == b.shape and not np.allclose(np.asarray(a), np.asarray(b))


def test_dct_stem_joins_the_encoder_at_one_eighth_resolution():
  kw = dict(ela_qualities=(90,), stem=4, levels=(8, 12, 16), hidden=8)
  plain = localiser.LocaliserNet(**kw, rngs=nnx.Rngs(0))
  with_dct = localiser.LocaliserNet(**kw, dct_stem=6, rngs=nnx.Rngs(0))
  assert plain.dct_stem is None
  assert with_dct.enc[2].conv1.kernel.value.shape[2] == plain.enc[2].conv1.kernel.value.shape[2] + 6 == 18
  image = jnp.asarray(np.random.default_rng(2).integers(0, 256, (2, 32, 48, 3)), jnp.uint8)
  (a, _), (b, _) = plain(image), with_dct(image)
  assert a.shape == b.shape == (2, 32, 48) and bool(jnp.isfinite(b).all())
  with pytest.raises(ValueError, match='model.dct_stem 6: .*at least 3 U-Net levels'):
    localiser.LocaliserNet(**dict(kw, levels=(8, 12)), dct_stem=6, rngs=nnx.Rngs(0))


def test_constrained_filters_are_learned_prediction_errors():
  conv = localiser.ConstrainedConv(3, 2, rngs=nnx.Rngs(0))
  conv.kernel.value = conv.kernel.value * 7.0 - 3.0          # any free weights, negative sums too
  w = np.asarray(conv.weights())
  assert w.shape == (5, 5, 3, 2)
  np.testing.assert_allclose(w[2, 2], -1.0)                    # the centre, per input and output
  np.testing.assert_allclose(w.sum((0, 1)), 0.0, atol=1e-5)    # the other 24 sum to 1
  # A prediction error: nothing on a flat image or, away from its border, on a plane through the
  # pixels when the filter predicts symmetrically; a dot stands out.
  flat = jnp.full((1, 12, 12, 3), 0.4)
  assert float(jnp.abs(conv(flat)[:, 2:-2, 2:-2]).max()) < 1e-5
  dot = flat.at[0, 6, 6].add(1.0)
  assert float(jnp.abs(conv(dot)[0, 6, 6]).max()) > 0.5
  sym = localiser.ConstrainedConv(1, 1, rngs=nnx.Rngs(1))
  k = np.asarray(sym.kernel.value)
  sym.kernel.value = jnp.asarray((k + k[::-1] + k[:, ::-1] + k[::-1, ::-1]) / 4)
  y, x = np.mgrid[:12, :12]
  plane = jnp.asarray((0.1 + 0.02 * y + 0.03 * x)[None, ..., None], jnp.float32)
  assert float(jnp.abs(sym(plane)[:, 2:-2, 2:-2]).max()) < 1e-5
  # In the network: a fourth stem, joined as the others are; its free weights are trained.
  kw = dict(ela_qualities=(90,), stem=4, levels=(8, 12), hidden=8)
  plain = localiser.LocaliserNet(**kw, rngs=nnx.Rngs(0))
  with_it = localiser.LocaliserNet(**kw, constrained_filters=3, rngs=nnx.Rngs(0))
  assert plain.constrained is None
  assert with_it.enc[0].conv1.kernel.value.shape[2] == plain.enc[0].conv1.kernel.value.shape[2] + 4
  image = jnp.asarray(np.random.default_rng(3).integers(0, 256, (2, 32, 48, 3)), jnp.uint8)
  grads = nnx.grad(lambda m: m(image)[0].mean())(with_it)
  assert float(jnp.abs(grads.constrained.kernel.value).max()) > 0
  pixel, _ = with_it(image)
  assert pixel.shape == (2, 32, 48) and bool(jnp.isfinite(pixel).all())


def test_exports_from_before_zscore_features_still_build(tiny_config):
  config = _config(tiny_config)
  model = config.model.to_dict()
  del model['zscore_features'], model['zscore_window'], model['dct_stem'], model['constrained_filters']
  del model['image_pooling']
  config.model = ml_collections.ConfigDict(model)
  built = localiser.create_model(config, nnx.Rngs(0))
  assert not built.zscore_features and built.zscore_window == 0 and built.dct_stem is None
  assert built.constrained is None and built.image_maxima


def test_image_pooling_means_leaves_the_maxima_out_of_the_image_head():
  kw = dict(ela_qualities=(90,), stem=4, levels=(8, 12), hidden=8)
  both = localiser.LocaliserNet(**kw, rngs=nnx.Rngs(0))
  means = localiser.LocaliserNet(**kw, image_pooling='means', rngs=nnx.Rngs(0))
  assert both.head1.in_features == 2 * 12 + 3 and means.head1.in_features == 12 + 2
  image = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3), np.uint8)
  pixels_both, image_both = both(jnp.asarray(image))
  pixels_means, image_means = means(jnp.asarray(image))
  assert pixels_means.shape == pixels_both.shape == (2, 32, 48) and image_means.shape == (2,)
  np.testing.assert_array_equal(pixels_means, pixels_both)  # the same draws up to the head
  with pytest.raises(ValueError, match="model.image_pooling 'max'"):
    localiser.LocaliserNet(**kw, image_pooling='max', rngs=nnx.Rngs(0))


def test_config_checks_levels_and_window_size(tiny_config):
  config = _config(tiny_config)
  config.input.crop = 40
  localiser.Localiser.check_config(config)  # 3 levels: multiples of 8
  config.model.levels = (8, 8, 8, 8)
  with pytest.raises(ValueError, match='input.crop 40: .*multiple of 16'):
    localiser.Localiser.check_config(config)
  config.model.levels = (8,)
  with pytest.raises(ValueError, match='model.levels'):
    localiser.Localiser.check_config(config)
  config.model.levels = (8, 8, 8)
  config.model.zscore_window = 96                           # without zscore_features: not read
  with pytest.raises(ValueError, match='model.zscore_window 96'):
    localiser.Localiser.check_config(config)
  config.model.zscore_features = True
  localiser.Localiser.check_config(config)
  config.model.zscore_window = -1
  with pytest.raises(ValueError, match='model.zscore_window -1'):
    localiser.Localiser.check_config(config)
  config.model.update(zscore_window=0, dct_stem=-1)
  with pytest.raises(ValueError, match='model.dct_stem -1'):
    localiser.Localiser.check_config(config)
  config.model.update(dct_stem=0, constrained_filters=-2)
  with pytest.raises(ValueError, match='model.constrained_filters -2'):
    localiser.Localiser.check_config(config)
  config.model.update(constrained_filters=0, image_pooling='max')
  with pytest.raises(ValueError, match="model.image_pooling 'max'"):
    localiser.Localiser.check_config(config)


def test_losses_use_masks_only_where_known():
  logits = jnp.zeros((3, 8, 8))
  batch = {'label': jnp.asarray([0, 1, 1]), 'has_mask': jnp.asarray([False, True, False]),
           'mask': jnp.zeros((3, 8, 8, 1), jnp.uint8).at[1, :4].set(255)}
  parts = localiser.losses(logits, jnp.zeros(3), batch, jnp.ones(2))
  assert float(parts['pixel_bce']) == pytest.approx(np.log(2), rel=1e-5)  # two images with targets
  assert 0 < float(parts['dice']) < 1 and float(parts['image_bce']) == pytest.approx(np.log(2), rel=1e-5)


def test_run_writes_pixel_scores_beside_their_baselines(run):
  _, results = run
  for key in ('pixel_f1', 'pixel_f1_best', 'pixel_auc', 'pixel_iou'):
    assert 0.0 <= results[f'test/{key}'] <= 1.0
    for baseline in ('all_tampered', 'centre_prior', 'mean_training_mask'):
      assert f'test/pixel_baseline/{baseline}/{key}' in results
  assert results['test/pixel_images'] == 16 and results['test/pixel_baseline/all_tampered/pixel_auc'] == 0.5
  assert results['test/copy_move/pixel_images'] + results['test/splicing/pixel_images'] == 16
  assert results['test/num_examples'] == 32
  # Each score beside its 95 % interval over the split's groups, per forgery type too.
  for key in ('accuracy', 'auc', 'pixel_f1', 'pixel_auc', 'splicing/pixel_f1', 'copy_move/pixel_iou'):
    low, high = results[f'test/{key}_ci95']
    assert low <= results[f'test/{key}'] <= high and low < high


def test_predict_writes_a_mask_at_the_input_size(run, tmp_path):
  workdir, _ = run
  rng = np.random.default_rng(0)
  path = tmp_path / 'photo.png'
  Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(path)
  rows, _ = predict.predict_paths(workdir, [str(path)], str(tmp_path / 'out'))
  with Image.open(rows[0]['mask']) as mask:
    assert mask.size == (70, 45) and mask.mode == 'L'
  assert 'beyond_training_size' not in rows[0]  # windows of the synthetic photos: no file sizes
  with Image.open(rows[0]['panel']) as panel:
    assert panel.size[0] == 4 * 256  # image, ELA, SRM, map
  result = forgery_jax.load(workdir).predict(np.asarray(Image.open(path)))
  assert result.map.shape == (45, 70) and result.map_kind == 'tamper_probability'
  assert result.beyond_training_size is None
  assert abs(float(np.round(result.map * 255).mean()) - np.asarray(Image.open(rows[0]['mask'])).mean()) < 1


def test_large_images_are_scored_in_tiles(run):
  workdir, _ = run
  detector = forgery_jax.load(workdir).detectors[0]
  assert localiser._tiles(2000, 300) == [(0, 0, 1024, 300), (896, 0, 1024, 300), (976, 0, 1024, 300)]
  probs, heat = detector._score_image({'image': np.zeros((1100, 40, 3), np.uint8)})
  assert heat.shape == (1100, 40) and probs.shape == (2,) and abs(probs.sum() - 1) < 1e-5
  assert (heat > 0).all()  # every pixel scored (a probability is never 0), the last rows too
  # smaller tiles (model.score_tile): the same kind of answer, from windows of that side
  with detector.config.unlocked():
    detector.config.model.score_tile = 144
  try:
    probs, heat = detector._score_image({'image': np.full((150, 300, 3), 128, np.uint8)})
  finally:
    with detector.config.unlocked():
      detector.config.model.score_tile = localiser.MAX_TILE
  assert heat.shape == (150, 300) and (heat > 0).all() and abs(probs.sum() - 1) < 1e-5


@pytest.mark.parametrize('h,w,tile', [(2005, 300, 1024), (1100, 1030, 1024), (300, 300, 192),
                                      (384, 256, 192), (256, 384, 1024), (1024, 1024, 1024)])
def test_tiles_cover_every_pixel_and_start_on_the_jpeg_grid(h, w, tile):
  tiles = localiser._tiles(h, w, tile)
  covered = np.zeros((h, w), int)
  for top, left, th, tw in tiles:
    assert top % localiser.ALIGN == 0 and left % localiser.ALIGN == 0
    assert th <= tile + localiser.ALIGN - 1 and tw <= tile + localiser.ALIGN - 1
    assert top + th <= h and left + tw <= w
    covered[top:top + th, left:left + tw] += 1
  assert covered.min() >= 1
  if h <= tile and w <= tile:
    assert tiles == [(0, 0, h, w)]


@pytest.mark.parametrize('tile', [100, 128])
def test_score_tile_must_be_on_the_grid_and_above_the_overlap(tiny_config, tile):
  config = tiny_config.copy_and_resolve_references()
  config.method = 'localiser'
  config.model.score_tile = tile
  with pytest.raises(ValueError, match='model.score_tile'):
    localiser.Localiser.check_config(config)


def test_native_crops_stay_on_the_jpeg_grid():
  ex = {'image': np.arange(40 * 70 * 3, dtype=np.uint8).reshape(40, 70, 3) % 251,
        'mask': np.zeros((40, 70, 1), np.uint8)}
  for seed in range(5):
    out = input_pipeline.crop_planes(ex, 32, 16, np.random.default_rng(seed))
    hits = [(t, l) for t in range(0, 9) for l in range(0, 39)
            if np.array_equal(ex['image'][t:t + 32, l:l + 32], out['image'])]
    assert hits and all(t % 16 == 0 and l % 16 == 0 for t, l in hits[:1])
  small = input_pipeline.crop_planes(ex, 64, 16, None)
  assert small['image'].shape == (64, 64, 3) and not small['mask'][40:].any()


# Without the average the case is a part of the one with it: long, so left to the slow runs.
@pytest.mark.parametrize('ema_decay', [pytest.param(0.0, marks=pytest.mark.slow), 0.9])
def test_synthesis_resumes_bit_identically(tiny_config, tmp_path, ema_decay):
  """Forgeries are drawn from the seed and the step: one epoch, then resumed to two, ends with
  the parameters of two epochs straight (with a moving average of the parameters too: the
  kept model is then the average, which the checkpoints carry)."""
  from forgery_jax.training import trainer  # pylint: disable=g-import-not-at-top
  config = _config(tiny_config)
  config.synthesis.fraction = 0.5
  config.ema_decay = ema_decay
  config.num_epochs = 2
  config.checkpoint.keep_final = True
  dataset = input_pipeline.load(config)
  weights = trainer.training_weights(config, dataset)
  task = localiser.Localiser.task(config, weights)

  def fit(num_epochs, workdir):
    run_config = config.copy_and_resolve_references()
    run_config.num_epochs = num_epochs
    trained = trainer.fit(run_config, dataset, str(workdir), task, weights)
    trained.release()
    return trained

  straight = fit(2, tmp_path / 'straight')
  fit(1, tmp_path / 'resumed')
  resumed = fit(2, tmp_path / 'resumed')
  assert resumed.info['resumed_from_step'] > 0
  assert resumed.info['final_step'] == straight.info['final_step']
  a, b = jax.tree.leaves(straight.state), jax.tree.leaves(resumed.state)
  assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_moving_average_of_the_parameters_is_what_is_evaluated(tiny_config):
  """With config.ema_decay the training state carries a third copy of the model, the average
  d * average + (1 - d) * parameters after every update (d = min(decay, (1 + t) / (10 + t)));
  the eval steps read it, and training itself is the same as without it."""
  from forgery_jax.training import mesh as mesh_lib  # pylint: disable=g-import-not-at-top
  from forgery_jax.training import trainer  # pylint: disable=g-import-not-at-top
  config = _config(tiny_config)
  config.augment_flips = False
  task = localiser.Localiser.task(config, np.ones(2, np.float32))
  mesh = mesh_lib.make_mesh()
  rng = np.random.default_rng(0)
  batches = [{'image': rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
              'mask': (rng.random((8, 32, 32, 1)) < 0.2).astype(np.uint8) * 255,
              'label': np.arange(8, dtype=np.int32) % 2, 'has_mask': np.ones(8, bool)}
             for _ in range(3)]

  def train(decay):
    config.ema_decay = decay
    graphdef, state = trainer.create_state(config, mesh, task)
    steps = trainer.make_steps(graphdef, mesh, task, decay)
    copy = lambda: jax.tree.map(np.array, nnx.state(nnx.merge(graphdef, state)[0], nnx.Param))
    params = [copy()]  # copies: each step donates the state
    for i, batch in enumerate(batches):
      state, _ = steps.train(state, mesh_lib.to_global(batch, steps.batch_sharding),
                             jax.random.key(i))
      params.append(copy())
    return graphdef, state, steps, params

  _, _, _, plain = train(0.0)
  graphdef, state, steps, params = train(0.5)
  for x, y in zip(jax.tree.leaves(plain), jax.tree.leaves(params)):  # the same training
    np.testing.assert_array_equal(x, y)
  expected = params[0]
  for t, p in enumerate(params[1:], 1):
    d = min(0.5, (1 + t) / (10 + t))
    expected = jax.tree.map(lambda a, b, d=d: d * a + (1 - d) * b, expected, p)
  merged = nnx.merge(graphdef, state)
  assert len(merged) == 3 and trainer.evaluated_model(merged) is merged[2]
  average = nnx.state(merged[2], nnx.Param)
  for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(average)):
    np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-7)
  assert not all(np.allclose(x, y) for x, y in
                 zip(jax.tree.leaves(average), jax.tree.leaves(params[-1])))
  batch = mesh_lib.to_global(batches[0], steps.batch_sharding)
  out = steps.outputs(state, batch)
  want = task.outputs(merged[2], batch)
  np.testing.assert_allclose(out['map'], want['map'], rtol=1e-5, atol=1e-6)
  config.ema_decay = 1.0
  with pytest.raises(ValueError, match='config.ema_decay must be in'):
    trainer.create_state(config, mesh, task)


def test_tampered_windows_hold_their_region():
  """A window of a tampered file with a mask holds part of the region (random among those that
  do for training, the most of it for validation); with no mask it is placed as for authentic."""
  mask = np.zeros((64, 160, 1), np.uint8)
  mask[40:56, 130:150] = 255
  image = (np.arange(64 * 160 * 3).reshape(64, 160, 3) % 251).astype(np.uint8)
  ex = {'image': image, 'mask': mask}
  starts = set()
  for seed in range(40):
    out = input_pipeline.crop_planes(ex, 32, 16, np.random.default_rng(seed), on_region=True)
    assert out['mask'].any()
    starts.add(int(np.flatnonzero(out['mask'].max((0, 2)))[0]))
  assert len(starts) > 1  # random among the windows holding it, not always the same one
  best = input_pipeline.crop_planes(ex, 32, 16, None, on_region=True)
  assert (best['mask'] > 0).sum() == (mask > 0).sum()  # the whole 16 x 20 region fits in one
  plain = [input_pipeline.crop_planes(ex, 32, 16, np.random.default_rng(s))['mask'].any()
           for s in range(40)]
  assert not all(plain)  # placed as for authentic files, most windows miss it
  empty = dict(ex, mask=np.zeros_like(mask))
  for seed in range(3):  # no region: the same window as without on_region
    rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
    np.testing.assert_array_equal(input_pipeline.crop_planes(empty, 32, 16, rng_a, True)['image'],
                                  input_pipeline.crop_planes(empty, 32, 16, rng_b)['image'])


def test_the_keypoint_map_is_fused_by_either_rule(monkeypatch):
  """`model.keypoint_map`: the copy-move map joins the network's map ('max': pixel by pixel;
  'replace': its region with the network's map halved beside it, in images where it marks one;
  'keypoints_alone': its region and nothing beside it; 'upper_copies': the same when it marks
  one region) and its p(tampered) when larger; the network's own scores are otherwise unchanged."""
  from forgery_jax.detectors import base  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(2)]
  found = [np.zeros((32, 48), np.float32), np.zeros((32, 48), np.float32)]
  found[1][4:12, 8:20] = 1
  network = base.Scores(np.float32([[0.8, 0.2], [0.7, 0.3]]),
                        [np.full((32, 48), 0.25, np.float32), np.full((32, 48), 0.7, np.float32)])
  keypoint_scores = base.Scores(np.float32([[1.0, 0.0], [0.1, 0.9]]), found)
  monkeypatch.setattr(localiser.copy_move_keypoints, 'score_images', lambda *_: keypoint_scores)
  for rule, beside in (('max', 0.7), ('replace', 0.35), ('keypoints_alone', 0.0), ('upper_copies', 0.0)):
    fused = localiser.fuse_keypoint_map(network, images, rule)
    np.testing.assert_allclose(fused.probabilities, [[0.8, 0.2], [0.1, 0.9]], atol=1e-6)
    np.testing.assert_array_equal(fused.maps[0], network.maps[0])   # no region found: unchanged
    assert fused.maps[1][4:12, 8:20].min() == 1 and fused.maps[1][0, 0] == np.float32(beside), rule
  with pytest.raises(ValueError, match='keypoint_fusion'):
    localiser.fuse_maps(network.maps[0], found[0], 'mean')


def test_ranked_upper_copies_decides_as_upper_copies_and_ranks_every_pixel():
  """'upper_copies_ranked': at 0.5 the copies the network chose ('upper_copies'); above them
  ranked by the network, below them the other copy, then the pixels near a copy before those far
  from it; so a pasted object whose flat middle the keypoint map missed scores a higher AUC."""
  from forgery_jax.evaluation import pixel_metrics  # pylint: disable=g-import-not-at-top
  h, w = 96, 128
  found = np.zeros((h, w), np.float32)
  found[10:20, 10:40] = 1                     # the pasted copy's textured rim (top) ...
  found[40:50, 10:40] = 1                     # ... and bottom; its flat middle rows 20-40 unmarked
  found[60:90, 80:110] = 1                    # its source
  network = np.full((h, w), 0.1, np.float32)
  network[10:20, 10:40] = network[40:50, 10:40] = 0.6   # the network marks the pasted copy more
  network[60:90, 80:110] = 0.3
  network[0:5, 100:128] = 0.3                 # and a far corner as much as the source
  ranked = localiser.fuse_maps(network, found, 'upper_copies_ranked')
  upper = localiser.fuse_maps(network, found, 'upper_copies')
  np.testing.assert_array_equal(ranked > 0.5, upper > 0.5)
  assert (ranked[10:20, 10:40] > 0.5).all() and not (ranked[60:90, 80:110] > 0.5).any()
  assert ranked.min() >= 0 and ranked.max() <= 1 and ranked.dtype == np.float32
  assert ranked[60:90, 80:110].min() > ranked[2, 120]       # the other copy above the far corner
  assert ranked[30, 25] > ranked[2, 60]                      # the flat middle above a far pixel
  assert ranked[30, 25] > ranked[2, 120]
  np.testing.assert_array_equal(localiser.fuse_maps(network, np.zeros_like(found), 'upper_copies_ranked'),
                                network)
  mask = np.zeros((h, w), np.uint8)
  mask[10:50, 10:40] = 255                    # the pasted object, its flat middle too
  auc = {rule: pixel_metrics.per_image(localiser.fuse_maps(network, found, rule), mask)['pixel_auc']
         for rule in ('replace', 'upper_copies', 'upper_copies_ranked')}
  assert auc['upper_copies_ranked'] > max(auc['replace'], auc['upper_copies']) + 0.05, auc


def test_evaluate_keypoint_map_fuses_into_a_finished_run(run):
  from forgery_jax import evaluate  # pylint: disable=g-import-not-at-top
  from tests.test_keypoints import _textured  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  with pytest.raises(ValueError, match='keypoint fusion'):
    evaluate.load_run(workdir, keypoint_map=True, keypoint_fusion='mean')
  detector = evaluate.load_run(workdir, keypoint_map=True).detectors[0]
  assert detector.config.model.keypoint_fusion == 'replace'
  assert detector.config.model.keypoint_map and not forgery_jax.load(workdir).detectors[0].config.model.get('keypoint_map')
  forged = _textured(3)
  forged[150:230, 250:350] = forged[20:100, 30:130]
  scores = detector.score([{'image': forged}])
  assert (scores.maps[0][150:230, 250:350] == 1.0).mean() > 0.8 and scores.p_tampered[0] > 0.9
  # A copy flipped left-right: drawn only by the map that matches mirror-wise too.
  flipped = _textured(3)
  flipped[150:230, 250:350] = flipped[20:100, 30:130][:, ::-1]
  mirrored = evaluate.load_run(workdir, keypoint_map=True, keypoint_mirrored=True).detectors[0]
  assert mirrored.config.model.keypoint_mirrored and not detector.config.model.keypoint_mirrored
  assert (mirrored.score([{'image': flipped}]).maps[0][150:230, 250:350] == 1.0).mean() > 0.8
  assert (detector.score([{'image': flipped}]).maps[0][150:230, 250:350] == 1.0).mean() < 0.2
  with pytest.raises(ValueError, match='needs --keypoint_map'):
    evaluate.load_run(workdir, keypoint_mirrored=True)
  # The map's image decision by clusters of matched keypoints: the same map, another p(tampered).
  clusters = evaluate.load_run(workdir, keypoint_map=True, keypoint_decision='clusters').detectors[0]
  assert clusters.config.model.keypoint_decision == 'clusters'
  assert detector.config.model.keypoint_decision == 'inliers'
  by_clusters = clusters.score([{'image': forged}])
  np.testing.assert_array_equal(by_clusters.maps[0], scores.maps[0])
  links = keypoints.copy_move_map(forged, keypoints.MapSettings(decision='clusters')).links
  assert by_clusters.p_tampered[0] >= float(keypoints.cluster_probability(links)) > 0.5
  with pytest.raises(ValueError, match='keypoint decision'):
    evaluate.load_run(workdir, keypoint_map=True, keypoint_decision='votes')
  with pytest.raises(ValueError, match='needs --keypoint_map'):
    evaluate.load_run(workdir, keypoint_decision='clusters')
  # The reports name how each run was scored: the network alone, or with what fused in.
  shutil.copytree(workdir, workdir + '_copy', dirs_exist_ok=True)  # a second run of the split
  names = [evaluate.load_run(workdir, **kw).name for kw in (
      {}, {'keypoint_map': True}, {'keypoint_map': True, 'keypoint_mirrored': True,
                                   'keypoint_decision': 'clusters', 'score_flips': True},
      {'keypoint_map': True, 'keypoint_fusion': 'upper_copies', 'average_with': [workdir + '_copy']})]
  assert names[0].endswith('+ SRM + RGB))') and names[1].endswith('+ keypoint map (replace))')
  assert names[2].endswith('+ keypoint map (replace, mirrored, clusters decision) + mean of four flips)')
  assert ' (synthetic_forgery, mean of 2 runs of localiser (' in names[3]
  assert names[3].endswith('+ keypoint map (upper_copies))')
  # ... and which stems its network reads.
  detector = evaluate.load_run(workdir).detectors[0]
  with detector.config.unlocked():
    detector.config.model.update(ela_qualities=(), dct_stem=16, constrained_filters=3,
                                 zscore_features=True, zscore_window=192)
  assert detector.describe() == ('localiser (SRM + RGB + DCT 16 + 3 constrained filters, Z-scores '
                                 'over 192 px)')


def test_predict_fuses_the_keypoint_map_into_a_finished_run(run, tmp_path, monkeypatch):
  """`predict --keypoint_map` (and `forgery_jax.load(..., keypoint_map=True)`): the mask file, the
  decision and the panel come from the fused maps and the keypoint pairs; a run is not changed."""
  from forgery_jax.detectors import base  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  found = lambda images, *_: base.Scores(np.float32([[0.0, 1.0]] * len(images)),
                                     [np.ones(np.shape(i)[:2], np.float32) for i in images])
  monkeypatch.setattr(localiser.copy_move_keypoints, 'score_images', found)
  monkeypatch.setattr(localiser.copy_move_keypoints, 'map_pairs',
                      lambda rgb, *_: (np.float32([[1, 2], [3, 4]]), np.float32([[20, 30], [25, 35]])))
  path = tmp_path / 'photo.png'
  Image.fromarray(np.random.default_rng(1).integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(path)
  plain, _ = predict.predict_paths(workdir, [str(path)], str(tmp_path / 'plain'))
  fused, _ = predict.predict_paths(workdir, [str(path)], str(tmp_path / 'fused'), keypoint_map=True)
  made_with = json.loads((tmp_path / 'fused' / predict.PREDICTED_WITH).read_text())
  assert made_with['options'] == {'keypoint_map': '--keypoint_map'}
  assert made_with['detector'].endswith('+ keypoint map (replace)')
  window = 32 * 32  # the tiny run prepares a 32-pixel window of the file, its map placed back
  assert (np.asarray(Image.open(fused[0]['mask'])) == 255).sum() == window
  assert (np.asarray(Image.open(plain[0]['mask'])) == 255).sum() < window
  assert fused[0]['p_tampered'] == 1.0 and fused[0]['prediction'] == 'tampered'
  with Image.open(fused[0]['panel']) as a, Image.open(plain[0]['panel']) as b:
    assert a.size[0] == b.size[0] + 256  # one more tile: the matched keypoint pairs
  result = forgery_jax.load(workdir, keypoint_map=True, keypoint_fusion='max').predict(str(path))
  assert (result.map == 1).sum() == window and result.p_tampered == 1.0
  assert not forgery_jax.load(workdir).detectors[0].config.model.get('keypoint_map')
  with pytest.raises(ValueError, match=f'{workdir}.*keypoint fusion'):
    predict.predict_paths(workdir, [str(path)], str(tmp_path / 'bad'), keypoint_map=True,
                          keypoint_fusion='mean')
  with pytest.raises(ValueError, match='needs --keypoint_map'):
    forgery_jax.load(workdir, keypoint_fusion='max')


def test_a_turned_photo_is_scored_as_stored_and_its_map_turned_with_it(run, tmp_path, monkeypatch):
  """A file with an EXIF orientation is scored from its stored pixels (the tiny run's window and the
  JPEG grid lie there), so it gets the decision of the same pixels without the tag, and its mask
  file is that map turned as a viewer shows the image."""
  from tests.test_predict import save_turned_pair  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  pairs = [save_turned_pair(str(tmp_path), o) for o in range(2, 9)]
  rows, _ = predict.predict_paths(workdir, [p for pair in pairs for p in pair], str(tmp_path / 'out'),
                                  panels=False)
  for orientation, (turned, straight) in zip(range(2, 9), zip(rows[::2], rows[1::2])):
    assert turned['p_tampered'] == straight['p_tampered'], orientation
    with Image.open(turned['mask']) as a, Image.open(straight['mask']) as b:
      np.testing.assert_array_equal(np.asarray(a), image_io.orient(np.asarray(b), orientation))
      assert a.size == ((45, 70) if orientation >= 5 else (70, 45))
  # The keypoint pairs the panel draws are matched in the stored pixels and turned with the map.
  matched = []
  monkeypatch.setattr(localiser.copy_move_keypoints, 'map_pairs',
                      lambda rgb, *_: matched.append(rgb.shape) or (np.float32([[1, 2]]), np.float32([[20, 30]])))
  drawn = []
  monkeypatch.setattr(predict.panels_lib, 'write_panel', lambda path, prepared, pred, pairs: drawn.append(pairs))
  predict.predict_paths(workdir, [pairs[6 - 2][0]], str(tmp_path / 'pairs'), keypoint_map=True)
  assert matched == [(45, 70, 3)]
  np.testing.assert_array_equal(drawn[0][0], [[45 - 1 - 2, 1]])  # orientation 6: x' = h - 1 - y, y' = x
  np.testing.assert_array_equal(drawn[0][1], [[45 - 1 - 30, 20]])


def test_validation_threshold_decides_at_the_chosen_threshold(run):
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  detector = forgery_jax.load(workdir).detectors[0]
  dataset = input_pipeline.load(detector.config)
  ctx = evaluators.Context(detector.config, dataset, workdir, write_metrics=False)
  out = evaluators.run_all(detector, ctx, ['test', 'validation_threshold'])
  t = out['threshold/value']
  validation = ctx.cache['validation'].p_tampered
  assert out['threshold/validation_accuracy'] == pytest.approx(
      ((validation >= t) == (dataset.labels[dataset.split.validation] != 0)).mean())
  test = ctx.cache['test'].p_tampered
  tampered = dataset.labels[dataset.split.test] != 0
  assert out['threshold/test/accuracy'] == pytest.approx(((test >= t) == tampered).mean())
  assert out['threshold/test/false_alarm_rate'] == pytest.approx((test[~tampered] >= t).mean())
  for k in ('accuracy', 'false_alarm_rate', 'detection_rate'):  # the decision fixed, groups resampled
    low, high = out[f'threshold/test/{k}_ci95']
    assert low <= out[f'threshold/test/{k}'] <= high
  # A validation split of one class (training on synthesised forgeries only) gives no threshold.
  validation = dataset.split.validation
  authentic_only = dataclasses.replace(dataset, split=dataclasses.replace(
      dataset.split, validation=validation[dataset.labels[validation] == 0]))
  ctx = evaluators.Context(detector.config, authentic_only, workdir, write_metrics=False)
  assert evaluators.run_all(detector, ctx, ['validation_threshold']) == {}


def test_cross_dataset_and_pixel_score_each_file_once(run):
  """With both `cross_dataset` and `pixel`, in either order, every file of the cross dataset is
  scored once (its tampered files' maps kept for the pixel scores), and the results are those of
  the two evaluators run apart."""
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  detector = forgery_jax.load(workdir).detectors[0]
  with detector.config.unlocked():
    detector.config.cross_dataset.update(name='synthetic_forgery', builder_config='tiny')
  dataset = input_pipeline.load(detector.config)
  scored = []
  score = detector.score

  def counting(examples):
    scored.append(len(examples))
    return score(examples)

  detector.score = counting

  def evaluated(names):
    scored.clear()
    ctx = evaluators.Context(detector.config, dataset, workdir, write_metrics=False)
    for cross in evaluators.cross_datasets(ctx):  # the synthetic set stores a mask for every file
      cross.has_mask = np.ones(len(cross.labels), bool)
    return evaluators.run_all(detector, ctx, names), sum(scored)

  cross_alone, n_cross = evaluated(['cross_dataset'])
  pixel_alone, n_pixel = evaluated(['pixel'])
  prefix = 'cross/synthetic_forgery/tiny/2.0.0'
  tampered = pixel_alone[f'{prefix}/pixel_images']
  assert n_cross == cross_alone[f'{prefix}/num_examples'] == 128 and 0 < tampered < 128
  assert n_pixel == len(dataset.split.test) + tampered
  for names in (['cross_dataset', 'pixel'], ['pixel', 'cross_dataset']):
    both, n_both = evaluated(names)
    assert n_both == 128 + len(dataset.split.test), names
    assert both == {**cross_alone, **pixel_alone}, names


def _noise_photos(folder, count: int, seed: int) -> list[str]:
  """`count` PNG files of noise, 56 pixels wide and 40, 48, ... high."""
  rng = np.random.default_rng(seed)
  paths = []
  for i in range(count):
    paths.append(str(folder / f'photo{i}.png'))
    Image.fromarray(rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8)).save(paths[-1])
  return paths


def _read_authentic_only_validation(dataset, monkeypatch):
  """Datasets read from now on have the validation split of `dataset` without its tampered files
  (as when training on synthesised forgeries only)."""
  validation = dataset.split.validation
  authentic_only = dataclasses.replace(dataset, split=dataclasses.replace(
      dataset.split, validation=validation[dataset.labels[validation] == 0]))
  monkeypatch.setattr(input_pipeline, 'load', lambda config: authentic_only)
  # A split changed by hand, not a dataset rebuilt from other files: not refused as one.
  monkeypatch.setattr(input_pipeline, 'check_trained_on', lambda *args: None)


def test_predict_decides_at_a_threshold_or_the_validation_threshold(run, tmp_path, monkeypatch):
  """`predict --threshold` (and `forgery_jax.load(..., threshold=)`): 'validation' is the threshold
  the `validation_threshold` evaluator chooses for the detector as loaded, and every file's label
  follows p(tampered) >= it; a bad value or nothing to choose on is one error naming the run."""
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  detector = forgery_jax.load(workdir).detectors[0]
  dataset = input_pipeline.load(detector.config)
  ctx = evaluators.Context(detector.config, dataset, workdir, write_metrics=False)
  chosen = evaluators.run_all(detector, ctx, ['validation_threshold'])['threshold/value']
  predictor = forgery_jax.load(workdir, threshold='validation')
  assert predictor.threshold == pytest.approx(chosen)
  # A run moved to another machine: its validation split read (here: built) where it is there.
  moved = tmp_path / 'tfds'
  assert forgery_jax.load(workdir, threshold='validation', data_dir=str(moved)).threshold == \
      pytest.approx(chosen)
  assert (moved / dataset.name.split('/')[0]).is_dir()
  paths = _noise_photos(tmp_path, 6, seed=3)
  plain, _ = predict.predict_paths(workdir, paths, str(tmp_path / 'plain'), panels=False)
  assert all('threshold' not in r for r in plain)
  p = np.float64([r['p_tampered'] for r in plain])
  # A threshold between the files' scores splits them; the files' scores are unchanged by it.
  middle = float(np.median(p))
  for threshold in (chosen, middle, 0.0, 1.0):
    rows, _ = predict.predict_paths(workdir, paths, str(tmp_path / 'at'), panels=False,
                                    threshold=threshold)
    assert [r['p_tampered'] for r in rows] == [r['p_tampered'] for r in plain]
    assert [r['prediction'] for r in rows] == ['tampered' if q >= threshold else 'authentic'
                                               for q in p]
    assert all(r['threshold'] == threshold for r in rows)
  assert predictor.predict(paths[0]).label == ('tampered' if p[0] >= predictor.threshold else 'authentic')
  assert predict.parse_threshold('validation') == 'validation' and predict.parse_threshold('0.25') == 0.25
  for bad in ('high', '1.5', 'nan'):
    with pytest.raises(ValueError, match=f'--threshold={bad}: a number in'):
      predict.parse_threshold(bad)
  with pytest.raises(ValueError, match='threshold: a number in'):
    forgery_jax.load(workdir, threshold=2)
  _read_authentic_only_validation(dataset, monkeypatch)
  with pytest.raises(ValueError, match=f'{workdir}: its validation split holds authentic files only'):
    forgery_jax.load(workdir, threshold='validation')


def test_pixel_threshold_is_chosen_on_validation_masks_and_applied_to_the_test_maps(run):
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  from forgery_jax.evaluation import pixel_eval  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  detector = forgery_jax.load(workdir).detectors[0]
  dataset = input_pipeline.load(detector.config)
  ctx = evaluators.Context(detector.config, dataset, workdir, write_metrics=False)
  with pytest.raises(ValueError, match="'pixel' evaluator"):
    evaluators.run_all(detector, ctx, ['pixel_threshold'])
  out = evaluators.run_all(detector, ctx, ['pixel', 'validation_threshold', 'pixel_threshold'])

  def mean_f1(split, t):  # F1 of map >= t against each tampered file's mask, by hand
    indices = pixel_eval.tampered_with_mask(dataset, getattr(dataset.split, split))
    position = {int(i): k for k, i in enumerate(getattr(dataset.split, split))}
    f1 = []
    for i in indices:
      truth = input_pipeline.decode_mask(dataset.source[int(i)]['mask'])[..., 0] > 127
      called = ctx.cache[split].maps[position[int(i)]] >= t
      tp = (called & truth).sum()
      f1.append(2 * tp / (called.sum() + truth.sum()))
    return np.mean(f1)

  thresholds = np.linspace(0.0, 1.0, 101)[1:-1]
  validation = [mean_f1('validation', t) for t in thresholds]
  assert out['pixel_threshold/value'] == pytest.approx(thresholds[int(np.argmax(validation))])
  assert out['pixel_threshold/validation_pixel_f1'] == pytest.approx(max(validation), abs=1e-6)
  assert out['pixel_threshold/test/pixel_f1'] == pytest.approx(
      mean_f1('test', out['pixel_threshold/value']), abs=1e-6)
  assert out['pixel_threshold/test/pixel_images'] == 16


def test_predict_draws_the_region_at_a_pixel_threshold_or_the_validation_one(run, tmp_path,
                                                                             monkeypatch):
  """`predict --pixel_threshold` (and `forgery_jax.load(..., pixel_threshold=)`): 'validation' is
  the threshold the `pixel_threshold` evaluator chooses, and regions/<stem>.png marks the pixels
  whose map reaches it, at the input's size; bad values are one error naming the run."""
  from forgery_jax.evaluation import evaluators  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  detector = forgery_jax.load(workdir).detectors[0]
  dataset = input_pipeline.load(detector.config)
  ctx = evaluators.Context(detector.config, dataset, workdir, write_metrics=False)
  chosen = evaluators.run_all(detector, ctx, ['pixel', 'pixel_threshold'])['pixel_threshold/value']
  predictor = forgery_jax.load(workdir, pixel_threshold='validation')
  assert predictor.pixel_threshold == pytest.approx(chosen) and predictor.threshold is None
  paths = _noise_photos(tmp_path, 3, seed=5)
  plain, _ = predict.predict_paths(workdir, paths, str(tmp_path / 'plain'), panels=False)
  assert all('region' not in r and 'pixel_threshold' not in r for r in plain)
  for path, row in zip(paths, plain):
    tamper_map = forgery_jax.load(workdir).predict(path).map
    values = np.unique(tamper_map)
    middle = float(values[len(values) // 2])  # pixels on either side
    rows, _ = predict.predict_paths(workdir, [path], str(tmp_path / 'at'),
                                    pixel_threshold=middle)
    tile = np.asarray(Image.open(rows[0]['panel']).convert('RGB'))[:, 3 * 256:4 * 256]
    assert (tile == (255, 255, 0)).all(-1).any()  # the region's outline over the map
    assert rows[0]['pixel_threshold'] == middle and rows[0]['p_tampered'] == row['p_tampered']
    region = np.asarray(Image.open(rows[0]['region']))
    assert region.shape == tamper_map.shape and set(np.unique(region)) <= {0, 255}
    np.testing.assert_array_equal(region == 255, tamper_map >= middle)
    assert 0 < (region == 255).mean() < 1
  assert predictor.predict(paths[0]).region.dtype == bool
  assert forgery_jax.load(workdir).predict(paths[0]).region is None
  for bad in ('wide', '-0.1'):
    with pytest.raises(ValueError, match=f'--pixel_threshold={bad}: a number in'):
      predict.parse_threshold(bad, 'pixel_threshold')
  with pytest.raises(ValueError, match='pixel_threshold: a number in'):
    forgery_jax.load(workdir, pixel_threshold=1.5)
  # A validation split without a tampered file with a mask: nothing to choose on.
  _read_authentic_only_validation(dataset, monkeypatch)
  with pytest.raises(ValueError, match=f'{workdir}: its validation split holds no tampered file'):
    forgery_jax.load(workdir, pixel_threshold='validation')


def test_checkpoint_selected_by_the_validation_maps(tiny_config, tmp_path):
  """With early_stopping_metric='pixel_f1_best' the kept step is the epoch whose validation maps
  score best, and every validation row carries the pixel scores."""
  import json  # pylint: disable=g-import-not-at-top
  from forgery_jax.training import trainer  # pylint: disable=g-import-not-at-top
  config = _config(tiny_config)
  config.synthesis.fraction = 0.5
  config.num_epochs = 3
  config.early_stopping_metric = 'pixel_f1_best'
  dataset = input_pipeline.load(config)
  weights = trainer.training_weights(config, dataset)
  trained = trainer.fit(config, dataset, str(tmp_path), localiser.Localiser.task(config, weights),
                        weights)
  trained.release()
  rows = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  val = [r for r in rows if r.get('split') == 'validation']
  assert len(val) == 3 and all(r['pixel_images'] > 0 for r in val)
  scores = [r['pixel_f1_best'] for r in val]
  assert trained.info['selected_by'] == 'pixel_f1_best'
  assert trained.info['best_validation_score'] == max(scores)
  assert trained.info['best_step'] in [r['step'] for r in val if r['pixel_f1_best'] == max(scores)]


@pytest.fixture(scope='module')
def second_run(tiny_config, tmp_path_factory):
  """The `run` fixture's recipe with another seed: the same split, other parameters."""
  workdir = str(tmp_path_factory.mktemp('localiser_seed1'))
  config = _config(tiny_config)
  config.synthesis.fraction = 0.5
  config.seed = 1
  experiment.run(config, workdir)
  return workdir


def test_runs_of_one_split_are_scored_as_their_average(run, second_run, tmp_path, monkeypatch):
  """`average_with`: the mean of the runs' probabilities and maps, the keypoint map fused once
  into that mean; evaluate, the Python API and predict all give it."""
  from forgery_jax import evaluate  # pylint: disable=g-import-not-at-top
  from forgery_jax.detectors import averaged  # pylint: disable=g-import-not-at-top
  from forgery_jax.detectors import base  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  # Each run once, however it is spelt (the second run twice would weigh it twice).
  loaded = evaluate.load_run(workdir, average_with=[second_run, f'{second_run}/', f'{workdir}/.'])
  mean = loaded.detectors[0]
  assert isinstance(mean, averaged.Averaged) and len(mean.members) == 2
  assert mean.describe().startswith('mean of 2 runs of localiser')
  dataset = loaded.datasets[0]
  examples = [dataset.source[int(i)] for i in dataset.split.test[:3]]
  one, two = (evaluate.load_run(w).detectors[0].score(examples) for w in (workdir, second_run))
  assert not np.allclose(one.maps[0], two.maps[0])  # the seeds differ
  scores = mean.score(examples)
  np.testing.assert_allclose(scores.probabilities, (one.probabilities + two.probabilities) / 2, atol=1e-6)
  for got, a, b in zip(scores.maps, one.maps, two.maps):
    np.testing.assert_allclose(got, (a + b) / 2, atol=1e-6)

  # With the keypoint map: a stand-in map over the top-left corner, fused into the mean once.
  found = lambda images, *_: base.Scores(
      np.float32([[0.0, 1.0]] * len(images)),
      [np.pad(np.ones((8, 8), np.float32), ((0, np.shape(i)[0] - 8), (0, np.shape(i)[1] - 8)))
       for i in images])
  monkeypatch.setattr(localiser.copy_move_keypoints, 'score_images', found)
  fused = evaluate.load_run(workdir, keypoint_map=True, average_with=[second_run]).detectors[0]
  assert fused.config.model.keypoint_map
  assert not any(m.config.model.get('keypoint_map') for m in fused.members)
  expected = localiser.fuse_keypoint_map(scores, [e['image'] for e in examples])
  got = fused.score(examples)
  np.testing.assert_allclose(got.probabilities, expected.probabilities, atol=1e-6)
  for g, e in zip(got.maps, expected.maps):
    np.testing.assert_allclose(g, e, atol=1e-6)
    assert g[:8, :8].min() == 1.0 and g[8:, 8:].max() <= 0.5  # beside the copy: halved

  # The Python API and predict: the averaged map at the input's size.
  monkeypatch.undo()
  path = tmp_path / 'photo.png'
  Image.fromarray(np.random.default_rng(2).integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(path)
  maps = [forgery_jax.load(w).predict(str(path)).map for w in (workdir, second_run)]
  result = forgery_jax.load(workdir, average_with=[second_run]).predict(str(path))
  # One run may be named alone (not read as the characters of its path).
  alone = forgery_jax.load(workdir, average_with=second_run).predict(str(path))
  np.testing.assert_array_equal(alone.map, result.map)
  np.testing.assert_allclose(result.map, (maps[0] + maps[1]) / 2, atol=1e-6)
  rows, _ = predict.predict_paths(workdir, [str(path)], str(tmp_path / 'out'), panels=False,
                                  average_with=[second_run])
  assert rows[0]['p_tampered'] == pytest.approx(result.p_tampered, abs=1e-6)
  np.testing.assert_array_equal(np.asarray(Image.open(rows[0]['mask'])),
                                np.round(result.map * 255).astype(np.uint8))


def test_only_runs_of_one_split_are_averaged(run, second_run, tmp_path):
  """A run of other files or split, another detector or no run at all: one error naming it."""
  from forgery_jax import api  # pylint: disable=g-import-not-at-top
  from forgery_jax.detectors import averaged  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  assert not isinstance(api.load_detectors(workdir, average_with=[f'{workdir}/'])[0], averaged.Averaged)
  first, other = api.load_detectors(workdir)[0], api.load_detectors(second_run)[0]
  with other.config.unlocked():
    other.config.dataset.split_seed += 1
  with pytest.raises(ValueError, match=f'{second_run}: dataset.split_seed is 1'):
    averaged.Averaged([first, other], [workdir, second_run])
  with pytest.raises(ValueError, match='at least two runs'):
    averaged.Averaged([first], [workdir])
  missing = str(tmp_path / 'nothing')
  with pytest.raises(ValueError, match=f'{missing}: no such folder'):
    api.load_detectors(workdir, average_with=[missing])
  with pytest.raises(ValueError, match='not trained'):
    averaged.Averaged.fit(first.config, None, None)


def test_score_flips_is_the_mean_over_the_four_flips_of_the_image(run, second_run, tmp_path):
  """`score_flips`: each image (any size) scored as the mean of its four flips, each map flipped
  back, in the detector, the average of runs (each member flips), evaluate, the API and predict."""
  from forgery_jax import api  # pylint: disable=g-import-not-at-top
  from forgery_jax import evaluate  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  plain = api.load_detectors(workdir)[0]
  image = np.random.default_rng(3).integers(0, 256, (45, 70, 3), dtype=np.uint8)
  padded = np.pad(image, ((0, 3), (0, 10), (0, 0)), mode='edge')  # to multiples of 16
  ps, maps = [], []
  for vertical, horizontal in localiser.FLIPS:
    flipped = padded[::-1] if vertical else padded
    flipped = np.ascontiguousarray(flipped[:, ::-1] if horizontal else flipped)
    scores = plain.score([{'image': flipped}])
    back = scores.maps[0][::-1] if vertical else scores.maps[0]
    ps.append(scores.probabilities[0])
    maps.append(back[:, ::-1] if horizontal else back)
  expected_p, expected_map = np.mean(ps, 0), np.mean(maps, 0)[:45, :70]
  assert not np.allclose(maps[0][:45, :70], expected_map, atol=1e-3)  # the flips do differ

  flipping = evaluate.load_run(workdir, score_flips=True).detectors[0]
  assert flipping.config.model.score_flips and not plain.config.model.get('score_flips')
  got = flipping.score([{'image': image}])
  np.testing.assert_allclose(got.probabilities[0], expected_p, atol=1e-6)
  np.testing.assert_allclose(got.maps[0], expected_map, atol=1e-6)
  # The API and predict (which prepare the image as the run's preparation says): the same map.
  predictor = forgery_jax.load(workdir, score_flips=True)
  assert predictor.detectors[0].config.model.score_flips
  path = tmp_path / 'photo.png'
  Image.fromarray(image).save(path)
  result = predictor.predict(str(path))
  assert not np.allclose(result.map, forgery_jax.load(workdir).predict(str(path)).map, atol=1e-3)
  rows, _ = predict.predict_paths(workdir, [str(path)], str(tmp_path / 'out'), panels=False,
                                  score_flips=True)
  assert rows[0]['p_tampered'] == pytest.approx(result.p_tampered, abs=1e-6)
  np.testing.assert_array_equal(np.asarray(Image.open(rows[0]['mask'])),
                                np.round(result.map * 255).astype(np.uint8))

  mean = api.load_detectors(workdir, average_with=[second_run], score_flips=True)[0]
  assert all(m.config.model.score_flips for m in mean.members)
  other = api.load_detectors(second_run, score_flips=True)[0].score([{'image': image}])
  np.testing.assert_allclose(mean.score([{'image': image}]).maps[0],
                             (expected_map + other.maps[0]) / 2, atol=1e-6)


def test_window_scores_equal_whole_scores_when_the_windows_hold_the_images(run):
  """experiments.window_scores: windows larger than every image score each one whole, exactly."""
  from experiments import window_scores  # pylint: disable=g-import-not-at-top
  workdir, results = run
  scores = window_scores.main(['--workdir', workdir, '--tile', '144'])
  whole, windows = scores['whole'], scores['windows of 144']
  assert whole == windows and whole['test/auc'] == results['test/auc']
  assert {'test/accuracy', 'test/pixel_f1', 'test/pixel_auc'} <= set(whole)


def test_turned_photos_scores_a_tagged_file_as_its_untagged_twin(run, tmp_path, capsys):
  """experiments.turned_photos: the file as stored, its map turned, scores what the same JPEG
  without the tag scores; the pixels turned first are scored too, as their own way."""
  from experiments import turned_photos  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  rng = np.random.default_rng(3)
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)).save(tmp_path / f'f{i}.png')
    mask = np.zeros((45, 70), np.uint8)
    mask[5 + i:25, 10:40 + i] = 255
    Image.fromarray(mask).save(tmp_path / f'f{i}_gt.png')
  Image.fromarray(np.zeros((9, 9), np.uint8)).save(tmp_path / 'other_gt.png')  # no image: skipped
  figures = turned_photos.main(['--workdir', workdir, '--masks', str(tmp_path), '--images',
                                str(tmp_path), '--orientation', '6', '--output', str(tmp_path / 'f.json')])
  assert set(figures) == set(turned_photos.WAYS) and capsys.readouterr().out.startswith('3 forgeries')
  assert figures['as stored, map turned'] == figures['no tag']
  assert json.loads((tmp_path / 'f.json').read_text()) == figures
  (tmp_path / 'empty').mkdir()
  with pytest.raises(ValueError, match='has a mask of its size'):
    turned_photos.main(['--workdir', workdir, '--masks', str(tmp_path / 'empty'), '--images', str(tmp_path)])
  with pytest.raises(ValueError, match='none: no such folder'):
    turned_photos.main(['--workdir', workdir, '--masks', str(tmp_path / 'none'), '--images', str(tmp_path)])


def test_size_scores_equal_whole_scores_when_the_windows_hold_the_images(run, tmp_path):
  """experiments.size_scores: windows larger than every image show each one whole, exactly."""
  from experiments import size_scores  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  output = tmp_path / 'sizes.json'
  figures = size_scores.main(['--workdir', workdir, '--dataset', 'synthetic_forgery:tiny',
                              '--windows', '144x144', '--limit', '16', '--output', str(output)])
  written = json.loads(output.read_text())
  scores = written['scores']
  assert len(scores['whole']) == 16 and 0 < sum(written['tampered']) < 16
  for way in ('144x144 centre', '144x144 windows: mean', '144x144 windows: max'):
    assert scores[way] == scores['whole'] and figures[way] == figures['whole']


def test_evaluate_report_shows_the_pixel_scores_beside_their_baselines(run, tmp_path):
  """report.md: the pixel scores of the test split, per forgery type and beside the baselines on
  the same files (results.json holds them all), and pixel F1 and AUC in the robustness table."""
  from forgery_jax import evaluate  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  report = evaluate.evaluate(workdir, [], evals=['test', 'pixel'], with_robustness=True,
                             max_examples=4, output=str(tmp_path / 'report'))
  results = report['runs'][0]['results']
  text = (tmp_path / 'report' / 'report.md').read_text()
  section = text.split(': pixel scores (')[1].split('\n\n#')[0]
  prior = results['test/pixel_baseline/centre_prior/pixel_f1']
  assert f"| test | baseline: centre_prior | {prior:.3f} |" in section
  f1, (low, high) = results['test/pixel_f1'], results['test/pixel_f1_ci95']
  assert f"| test | the run's maps | {f1:.3f} [{low:.3f}, {high:.3f}] |" in section
  assert '| test | splicing |' in section and '| test | baseline: mean_training_mask |' in section
  robustness = text.split('## Robustness')[1].split('\n\n#')[0]
  assert '| attack | strength |' in robustness and '| pixel_f1 | pixel_auc |' in robustness
  assert f"{report['robustness'][0]['pixel_f1']:.3f} |" in robustness


def test_two_seeds_are_compared_file_by_file(run, second_run, tmp_path):
  """evaluate WORKDIR --runs=OTHER of the same split: OTHER minus WORKDIR, image and pixel
  scores, each difference inside its paired interval."""
  from forgery_jax import evaluate  # pylint: disable=g-import-not-at-top
  workdir, _ = run
  report = evaluate.evaluate(workdir, [second_run], evals=['test', 'pixel'],
                             output=str(tmp_path / 'report'))
  (paired,) = report['paired']
  first, second = (r['results'] for r in report['runs'])
  for k in ('accuracy', 'auc', 'pixel_f1', 'pixel_auc', 'pixel_iou'):
    assert paired[k] == pytest.approx(second[f'test/{k}'] - first[f'test/{k}'])
    low, high = paired[f'{k}_ci95']
    assert low <= paired[k] <= high

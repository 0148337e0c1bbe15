"""Forgeries synthesised on the device: deterministic, masked where forged, histories for all."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from forgery_jax import jpeg, synthesis
from forgery_jax.data import synthetic


def _batch(n=6, size=64):
  photo = synthetic.load_photo('skimage', 'astronaut.png')
  images = np.stack([photo[i * 40:i * 40 + size, i * 30:i * 30 + size] for i in range(n)])
  return {'image': jnp.asarray(images), 'mask': jnp.zeros((n, size, size, 1), jnp.uint8),
          'has_mask': jnp.zeros(n, bool), 'label': jnp.asarray([0, 0, 0, 0, 1, 0][:n], jnp.int32)}


def _cfg(**overrides):
  cfg = default.get_config().synthesis
  cfg.update({'fraction': 1.0, **overrides})
  return cfg


def test_deterministic_from_the_key_and_different_across_keys():
  batch, cfg = _batch(), _cfg()
  fn = jax.jit(lambda b, k: synthesis.synthesise(b, k, cfg))
  a, b, c = fn(batch, jax.random.key(3)), fn(batch, jax.random.key(3)), fn(batch, jax.random.key(4))
  for k in a:
    np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]))
  assert not np.array_equal(np.asarray(a['mask']), np.asarray(c['mask']))


def test_forged_rows_carry_their_masks_and_real_ones_stay_real():
  batch = _batch()
  out = jax.jit(lambda b, k: synthesis.synthesise(b, k, _cfg(lossless_share=1.0)))(batch, jax.random.key(0))
  labels, masks = np.asarray(out['label']), np.asarray(out['mask'])[..., 0] > 0
  assert labels.tolist() == [1] * 6 and np.asarray(out['has_mask'])[:4].all()
  assert not masks[4].any()  # the real tampered row: no synthesised region, its label kept
  areas = masks[[0, 1, 2, 3, 5]].mean((1, 2))
  assert (areas > 0.003).all() and (areas < 0.6).all(), areas
  images, before = np.asarray(out['image']).astype(int), np.asarray(batch['image']).astype(int)
  for i in (0, 1, 2, 3, 5):  # lossless: pixels change inside the region (and its feather) only
    changed = np.abs(images[i] - before[i]).max(-1) > 0
    assert changed.any() and not changed[~_dilate(masks[i], 8)].any()
  np.testing.assert_array_equal(images[4], before[4])


def _dilate(mask, r):
  out = mask.copy()
  for dy in range(-r, r + 1):
    for dx in range(-r, r + 1):
      out |= np.roll(np.roll(mask, dy, 0), dx, 1)
  return out


def test_every_row_gets_a_last_save_and_none_forged_at_fraction_zero():
  batch = _batch()
  out = jax.jit(lambda b, k: synthesis.synthesise(b, k, _cfg(fraction=0.0, lossless_share=0.0)))(
      batch, jax.random.key(1))
  assert np.asarray(out['label']).tolist() == np.asarray(batch['label']).tolist()
  assert not np.asarray(out['mask']).any()
  changed = np.abs(np.asarray(out['image']).astype(int) - np.asarray(batch['image'])).max((1, 2, 3))
  assert (changed > 0).all()  # re-saved as JPEG, authentic and real tampered rows alike
  keep_real = jax.jit(lambda b, k: synthesis.synthesise(
      b, k, _cfg(fraction=0.0, lossless_share=0.0, reencode_real=False)))(batch, jax.random.key(1))
  np.testing.assert_array_equal(np.asarray(keep_real['image'])[4], np.asarray(batch['image'])[4])


def test_regions_cover_the_asked_share_of_the_image():
  alpha, centre, radius = synthesis.region_masks(jax.random.key(0), 200, 96, 96, (0.01, 0.3), 0.5)
  share = np.asarray(alpha).mean((1, 2))
  assert 0.004 < share.min() and share.max() < 0.5 and 0.03 < np.median(share) < 0.15
  assert (np.asarray(centre) >= 0).all() and (np.asarray(centre) < 96).all()


def test_the_paper_cnn_trains_on_synthesised_batches(tiny_config, tmp_path):
  """The paper CNN takes the same batches when its ELA is computed in the model; with stored ELA
  planes, which synthesis would leave behind, the config is refused."""
  import pytest  # pylint: disable=g-import-not-at-top
  from forgery_jax import experiment  # pylint: disable=g-import-not-at-top
  config = tiny_config.copy_and_resolve_references()
  config.num_epochs = 1
  config.evals = ('test',)
  config.synthesis.fraction = 0.5
  with pytest.raises(ValueError, match='ela_source'):
    experiment.run(config, str(tmp_path / 'stored'))
  config.model.ela_source = 'device'
  results = experiment.run(config, str(tmp_path / 'device'))
  assert 0.0 <= results['test/accuracy'] <= 1.0 and np.isfinite(results['test/auc'])


def test_donor_jpeg_changes_only_the_spliced_regions():
  batch = _batch()
  make = lambda **o: jax.jit(lambda b, k: synthesis.synthesise(
      b, k, _cfg(lossless_share=1.0, copy_move_share=0.5, **o)))(batch, jax.random.key(1))
  with_history, without = make(), make(donor_jpeg=False)
  np.testing.assert_array_equal(np.asarray(with_history['mask']), np.asarray(without['mask']))
  diff = np.abs(np.asarray(with_history['image']).astype(int) - np.asarray(without['image'])).max(-1)
  masks = np.asarray(without['mask'])[..., 0] > 0
  spliced = [i for i in range(6) if diff[i].any()]
  assert spliced and len(spliced) < 5  # some rows are spliced, the others copy-moved (or real)
  for i in spliced:  # the donor's JPEG history shows inside the region (and its feather) only
    assert not diff[i][~_dilate(masks[i], 8)].any()


def test_region_edits_change_only_the_regions_and_leave_every_other_draw_alone():
  batch = _batch()
  make = lambda **o: jax.jit(lambda b, k: synthesis.synthesise(
      b, k, _cfg(lossless_share=1.0, **o)))(batch, jax.random.key(2))
  plain, edited = make(), make(region_edit_share=1.0)
  for k in ('mask', 'label', 'has_mask'):  # the same regions and labels: the edits draw their own keys
    np.testing.assert_array_equal(np.asarray(plain[k]), np.asarray(edited[k]))
  diff = np.abs(np.asarray(edited['image']).astype(int) - np.asarray(plain['image'])).max(-1)
  masks = np.asarray(plain['mask'])[..., 0] > 0
  for i in (0, 1, 2, 3, 5):  # every forged row is edited, inside its region (and feather) only
    assert diff[i][masks[i]].mean() > 0.5 and not diff[i][~_dilate(masks[i], 8)].any()
  assert not diff[4].any()  # the real tampered row is not forged, so not edited


def test_a_second_save_is_one_more_round_trip_of_the_saved_rows_only():
  batch = _batch()
  make = lambda **o: jax.jit(lambda b, k: synthesis.synthesise(
      b, k, _cfg(**{'lossless_share': 0.5, **o})))(batch, jax.random.key(5))
  once, twice = make(), make(second_save_share=1.0)
  for k in ('mask', 'label', 'has_mask'):  # the same forgeries: the second save draws its own keys
    np.testing.assert_array_equal(np.asarray(once[k]), np.asarray(twice[k]))
  lossless = make(lossless_share=1.0)
  once_img, twice_img = np.asarray(once['image']), np.asarray(twice['image'])
  saved = [i for i in range(6) if not np.array_equal(once_img[i], np.asarray(lossless['image'])[i])]
  assert 0 < len(saved) < 6  # some rows were kept lossless, and those are not saved at all
  for i in set(range(6)) - set(saved):
    np.testing.assert_array_equal(twice_img[i], once_img[i])
  qualities = np.arange(70, 96)
  again = np.asarray(jax.jit(jpeg.round_trip)(
      jnp.repeat(once['image'][jnp.asarray(saved)], len(qualities), 0),
      jnp.tile(jnp.asarray(qualities), len(saved)))).reshape(len(saved), len(qualities), 64, 64, 3)
  for j, i in enumerate(saved):  # exactly the once-saved row through the codec at some final quality
    assert any(np.array_equal(twice_img[i], again[j, q]) for q in range(len(qualities))), i
    assert not np.array_equal(twice_img[i], once_img[i])


@pytest.mark.parametrize('key, value, message', [
    ('fraction', 1.5, r'synthesis.fraction 1.5: a share, from 0 to 1'),
    ('lossless_share', -0.1, r'synthesis.lossless_share -0.1: a share'),
    ('final_quality', (50, 101), r'synthesis.final_quality \(50, 101\): \(low, high\), low <= high, from 1 to 100'),
    ('donor_quality', (95, 50), r'synthesis.donor_quality \(95, 50\): \(low, high\), low <= high'),
    ('area', (0.3, 0.01), r'synthesis.area \(0.3, 0.01\): \(low, high\)'),
    ('area', (0.0, 0.3), r'synthesis.area \(0.0, 0.3\): \(low, high\)'),
    ('scale', (1.25,), r'synthesis.scale \(1.25,\): \(low, high\)'),
    ('rotate', -5.0, r'synthesis.rotate -5.0 and feather_sigmas'),
])
def test_a_synthesis_setting_out_of_range_is_refused_before_any_work(tmp_path, key, value, message):
  from configs import localiser
  from forgery_jax import experiment
  config = localiser.get_config()
  synthesis.check_config(config.synthesis)  # the default holds
  config.synthesis[key] = value
  with pytest.raises(ValueError, match=message):
    experiment.run(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_ela_qualities_must_be_jpeg_qualities(tmp_path):
  from configs import localiser
  from forgery_jax import experiment
  config = localiser.get_config()
  config.model.ela_qualities = (90, 120)
  with pytest.raises(ValueError, match=r'model.ela_qualities \(90, 120\): JPEG qualities from 1 to 100'):
    experiment.run(config, str(tmp_path / 'run'))

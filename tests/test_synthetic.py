"""The embedded dataset: deterministic, masks where forged, no source region in two splits."""

import itertools

import numpy as np
import tensorflow_datasets as tfds

from forgery_jax.data import synthetic
from forgery_jax.data import datasets


def test_examples_are_deterministic_and_well_formed():
  regions = synthetic.split_regions(40, seed=0)
  for i in range(8):
    a = synthetic.make_example(regions['train'], 'train', i, seed=0, resolution=32)
    b = synthetic.make_example(regions['train'], 'train', i, seed=0, resolution=32)
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
    assert a['image'].shape == a['ela'].shape == (32, 32, 3)
    assert a['label'] == (a['forgery_type'] != 'authentic')
    assert (a['mask'].max() > 0) == bool(a['label'])


def _rect(r):
  return r.photo, r.y, r.x, r.y + r.size, r.x + r.size


def test_regions_of_different_splits_never_overlap():
  regions = synthetic.split_regions(160, seed=0)
  assert all(regions[s] for s in synthetic.SPLITS)
  for s1, s2 in itertools.combinations(synthetic.SPLITS, 2):
    for a, b in itertools.product(map(_rect, regions[s1]), map(_rect, regions[s2])):
      if a[0] == b[0]:
        overlap = min(a[3], b[3]) > max(a[1], b[1]) and min(a[4], b[4]) > max(a[2], b[2])
        assert not overlap, (s1, a, s2, b)


def test_built_dataset_is_deterministic_and_splits_share_no_group(tiny_config, tmp_path):
  """Two independent builds are identical; train and test share no source region."""
  first = datasets.get_builder(tiny_config.dataset)
  second_config = tiny_config.dataset.copy_and_resolve_references()
  second_config.data_dir = str(tmp_path)
  second = datasets.ensure_built(second_config)
  groups = {}
  for split in ('train', 'validation', 'test'):
    a, b = first.as_data_source(split), second.as_data_source(split)
    assert len(a) == len(b) > 0
    for i in range(len(a)):
      ea, eb = a[i], b[i]
      for k in ea:
        np.testing.assert_array_equal(ea[k], eb[k])
    groups[split] = {a[i]['group'] for i in range(len(a))}
  assert not groups['train'] & groups['test']
  assert not groups['train'] & groups['validation']
  assert not groups['validation'] & groups['test']
  assert isinstance(first, tfds.core.DatasetBuilder)

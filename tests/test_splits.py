"""Split protocols: grouped keeps connected groups on one side; random is stratified; k-fold partitions."""

import numpy as np
import pytest

from forgery_jax.data import splits


def _casia_like(n=400, seed=0):
  """Tampered images name a source and a target scene; authentic ones one scene."""
  rng = np.random.default_rng(seed)
  groups, labels = [], []
  for i in range(n):
    if i % 2:
      a = rng.integers(0, 120)
      b = a if rng.random() < 0.5 else rng.integers(0, 120)
      groups.append(f's{a}+s{b}')
      labels.append(1 + (a != b))
    else:
      groups.append(f's{rng.integers(0, 120)}')
      labels.append(0)
  return np.array(labels), groups


def test_connected_groups_join_source_and_target():
  comp = splits.connected_groups(['a', 'b', 'a+c', 'c', 'd', 'e+d', ''])
  assert comp[0] == comp[2] == comp[3]
  assert comp[4] == comp[5]
  assert len({comp[0], comp[1], comp[4], comp[6]}) == 4  # empty group: its own component


@pytest.mark.parametrize('protocol', ['grouped', 'kfold'])
def test_grouped_protocols_never_share_a_component(protocol):
  labels, groups = _casia_like()
  comp = splits.connected_groups(groups)
  s = splits.make_split(labels, groups, protocol, seed=0)
  sides = [set(comp[s.train]), set(comp[s.validation]), set(comp[s.test])]
  assert not (sides[0] & sides[2]) and not (sides[0] & sides[1]) and not (sides[1] & sides[2])
  assert sorted(np.concatenate([s.train, s.validation, s.test]).tolist()) == list(range(len(labels)))
  # every class is present in the test split
  assert set(labels[s.test]) == {0, 1, 2}


def test_random_is_stratified_80_20_and_deterministic():
  labels, groups = _casia_like()
  a = splits.make_split(labels, groups, 'random', seed=3)
  b = splits.make_split(labels, groups, 'random', seed=3)
  np.testing.assert_array_equal(a.test, b.test)
  assert abs(len(a.test) / len(labels) - 0.2) < 0.02
  for c in range(3):
    frac = (labels[a.test] == c).mean()
    assert abs(frac - (labels == c).mean()) < 0.03


def test_kfold_test_folds_partition_the_data():
  labels, groups = _casia_like()
  tests = [splits.make_split(labels, groups, 'kfold', seed=0, num_folds=5, fold=k).test for k in range(5)]
  everything = np.sort(np.concatenate(tests))
  np.testing.assert_array_equal(everything, np.arange(len(labels)))


def test_unknown_protocol():
  with pytest.raises(ValueError, match='protocol'):
    splits.make_split(np.zeros(10, int), None, 'leave_one_out', seed=0)


def test_random_kfold_ignores_groups_and_partitions():
  labels = np.repeat([0, 1], 50)
  groups = [f'g{i // 10}' for i in range(100)]
  tests = [splits.make_split(labels, groups, 'random_kfold', seed=0, num_folds=5, fold=k).test
           for k in range(5)]
  assert sorted(np.concatenate(tests).tolist()) == list(range(100))
  # Groups of 10 are split across folds, which the grouped kfold never does.
  assert any(len({groups[i] for i in t} & {groups[i] for i in tests[0]}) for t in tests[1:])


@pytest.mark.parametrize('protocol', ['grouped', 'random'])
def test_seventy_thirty_hold_out(protocol):
  labels = np.repeat([0, 1, 2], 100)
  groups = [f'g{i // 3}' for i in range(300)]
  split = splits.make_split(labels, groups, protocol, seed=0, test_fraction=0.3)
  assert abs(len(split.test) / 300 - 0.3) < 0.03
  assert not set(split.test) & set(split.train) and not set(split.test) & set(split.validation)
  if protocol == 'grouped':
    assert not {groups[i] for i in split.test} & {groups[i] for i in split.train}


def test_training_share_takes_whole_groups_nested_across_shares():
  groups = [f'g{i // 3}' for i in range(240)] + [f'g{i}+h{i}' for i in range(40)] + ['h5'] * 4
  comp = splits.connected_groups(groups)
  train = np.arange(0, len(groups), 2)  # every other example: groups cut by the split itself
  shares = {f: splits.training_share(train, comp, f, seed=3) for f in (0.25, 0.5, 1.0)}
  np.testing.assert_array_equal(shares[1.0], train)
  for f in (0.25, 0.5):
    kept = shares[f]
    assert set(kept) <= set(train) and np.all(np.diff(kept) > 0)
    assert abs(len(kept) - f * len(train)) <= 4  # one group's worth over at most
    # a group is kept whole or not at all (within the training examples)
    assert set(train[np.isin(comp[train], comp[kept])]) == set(kept)
  assert set(shares[0.25]) < set(shares[0.5])
  np.testing.assert_array_equal(shares[0.5], splits.training_share(train, comp, 0.5, seed=3))
  assert not np.array_equal(shares[0.5], splits.training_share(train, comp, 0.5, seed=4))
  with pytest.raises(ValueError, match='training share'):
    splits.training_share(train, comp, 0.0, seed=3)

"""Train / validation / test protocols over a dataset's examples.

Forgery releases have no official splits, and the same scene often appears in
several images (a CASIA tampered image is made from a source and a target
photo; MICC-F220's forgeries come from 11 scenes). A random split then puts
one scene on both sides and measures recognition of scenes. The `grouped`
protocol (the default) keeps every *connected component* of groups on one
side: an example's `group` may name several ids joined by '+', and examples
sharing any id are linked.

* random  stratified 80/20 with a fixed seed (the papers' protocol, for comparison)
* grouped stratified by class, no group component on both sides (the honest default)
* kfold   stratified grouped k-fold; `fold` picks the test fold
* random_kfold  stratified k-fold ignoring groups (the papers' cross-validation, for comparison)

`test_fraction` need not be 1/n: 0.3 gives a 70/30 hold-out (3 of 10 folds held out).

Validation is carved from the training side with the same protocol, so model
selection never sees the test split.
"""

from __future__ import annotations

import dataclasses

from absl import logging
import numpy as np

PROTOCOLS = ('grouped', 'random', 'kfold', 'random_kfold')
KFOLD_PROTOCOLS = ('kfold', 'random_kfold')
GROUP_SEPARATOR = '+'


@dataclasses.dataclass(frozen=True)
class Split:
  """Indices into the pooled examples."""
  train: np.ndarray
  validation: np.ndarray
  test: np.ndarray

  def sizes(self) -> dict[str, int]:
    return {'train': len(self.train), 'validation': len(self.validation), 'test': len(self.test)}


def connected_groups(groups: list[str]) -> np.ndarray:
  """Component id per example: examples sharing any '+'-separated id are linked."""
  parent: dict[str, str] = {}

  def find(x: str) -> str:
    while parent.setdefault(x, x) != x:
      parent[x] = parent[parent[x]]
      x = parent[x]
    return x

  ids_per_example = [[i for i in g.split(GROUP_SEPARATOR) if i] or [f'#example{n}']
                     for n, g in enumerate(groups)]
  for ids in ids_per_example:
    root = find(ids[0])
    for other in ids[1:]:
      parent[find(other)] = root
  roots = [find(ids[0]) for ids in ids_per_example]
  _, component = np.unique(roots, return_inverse=True)
  return component


def hold_out_fraction(strata: np.ndarray, components: np.ndarray | None, fraction: float, seed: int,
                      candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(kept, held_out) with about `fraction` held out: one fold of 1/fraction, or k of 10 folds."""
  if abs(1 / fraction - round(1 / fraction)) < 1e-9:
    return hold_out(strata, components, round(1 / fraction), 0, seed, candidates)
  k = round(fraction * 10)
  if not 1 <= k <= 9:
    raise ValueError(f'a held-out fraction of {fraction} is neither 1/n nor a multiple of 0.1')
  held = np.concatenate([hold_out(strata, components, 10, f, seed, candidates)[1] for f in range(k)])
  return np.setdiff1d(candidates, held), np.sort(held)


def hold_out(strata: np.ndarray, components: np.ndarray | None, n_splits: int, fold: int,
              seed: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Splits `candidates` into (kept, held_out), fold `fold` of `n_splits` held out."""
  # Imported here: scikit-learn takes a second to import, which `predict` (it reads this
  # module's names, never splits) would pay before its first answer.
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  x = np.zeros(len(candidates))
  y = strata[candidates]
  counts = np.bincount(y)
  # Stratification needs every present class at least n_splits times.
  n = max(2, min(n_splits, int(counts[counts > 0].min())))
  if components is None:
    folds = model_selection.StratifiedKFold(n, shuffle=True, random_state=seed).split(x, y)
  else:
    g = components[candidates]
    sizes = np.bincount(g)
    if (sizes > 0).sum() < 2:
      raise ValueError('grouped split impossible: all examples form one connected group')
    n = min(n, int((sizes > 0).sum()))
    if sizes.max() > len(candidates) / n:
      logging.warning('grouped split: one connected group holds %d of %d examples, more than '
                      'a 1/%d share; the held-out part will be unbalanced', sizes.max(),
                      len(candidates), n)
    folds = model_selection.StratifiedGroupKFold(n, shuffle=True, random_state=seed).split(x, y, g)
  kept, held = list(folds)[fold % n]
  return candidates[kept], candidates[held]


def training_share(candidates: np.ndarray, components: np.ndarray, fraction: float,
                   seed: int) -> np.ndarray:
  """About `fraction` of `candidates`, whole connected groups at a time, for learning curves.

  The groups are taken in one order drawn from `seed` until the share is reached, so with one seed
  a smaller fraction's examples are all in a larger one's: the points of a curve are nested.
  """
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f'a training share must be in (0, 1], got {fraction}')
  if fraction == 1.0:
    return candidates
  owner = components[candidates]
  order = np.random.default_rng(seed).permutation(np.unique(owner))
  sizes = np.cumsum(np.bincount(owner, minlength=owner.max() + 1)[order])
  wanted = max(1, round(fraction * len(candidates)))
  taken = order[:int(np.searchsorted(sizes, wanted)) + 1]
  return np.sort(candidates[np.isin(owner, taken)])


def make_split(strata: np.ndarray, groups: list[str] | None, protocol: str, *, seed: int,
               test_fraction: float = 0.2, validation_fraction: float = 0.1,
               num_folds: int = 10, fold: int = 0) -> Split:
  """Indices of train/validation/test for `protocol`; `strata` are class ids to balance."""
  if protocol not in PROTOCOLS:
    raise ValueError(f'unknown split protocol {protocol!r}; choose one of {PROTOCOLS}')
  strata = np.asarray(strata)
  grouped = protocol in ('grouped', 'kfold') and groups is not None
  components = connected_groups(groups) if grouped else None
  everything = np.arange(len(strata))
  if protocol in KFOLD_PROTOCOLS:
    train, test = hold_out(strata, components, num_folds, fold, seed, everything)
  else:
    train, test = hold_out_fraction(strata, components, test_fraction, seed, everything)
  train, validation = hold_out_fraction(strata, components, validation_fraction, seed + 1, train)
  return Split(np.sort(train), np.sort(validation), np.sort(test))

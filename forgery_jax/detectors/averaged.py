"""Several finished runs as one detector: their probabilities and maps averaged.

Runs of one recipe trained with other seeds disagree most where each is unsure; the mean of their
maps ranks pixels about as well as the best of them, and with the keypoint map fused a little
better (docs/localisation.md: "The two seeds' maps averaged"; docs/synthesis.md: the three
synthetic-only seeds averaged). Made from inference exports only (`api.load_detectors(...,
average_with=...)`, `evaluate --average_with`, `predict --average_with`); it is not trained or
saved. Every run must have been trained on the same files and split with the same inputs, so that
an evaluation's test split is each member's test split. A localiser's copy-move keypoint map, when
fused, is fused once into the averaged map (`localiser.fuse_keypoint_map`), never into each
member's.
"""

from __future__ import annotations

import copy

import numpy as np

from forgery_jax.detectors import base

# What decides which files a run trained, validated and was tested on, and how they were read.
SAME_DATA_KEYS = ('name', 'builder_config', 'split', 'split_seed', 'test_fraction',
                  'validation_fraction', 'num_folds', 'fold', 'num_classes')


def check_members(members: list[base.Detector], names: list[str]) -> None:
  """ValueError naming the first run (of `names`, one per member) that cannot be averaged with
  the first: another dataset or split, other classes, inputs or image preparation."""
  if len(members) < 2:
    raise ValueError('an average needs at least two runs')
  first, first_name = members[0], names[0]
  want = first.inputs(first.config)
  for member, name in zip(members[1:], names[1:]):
    for key in SAME_DATA_KEYS:
      a, b = first.config.dataset.get(key), member.config.dataset.get(key)
      if a != b:
        raise ValueError(f'{name}: dataset.{key} is {b!r}, {first_name} has {a!r}: only runs '
                         'trained on the same files and split can be averaged')
    if member.split_fingerprint and first.split_fingerprint and (
        member.split_fingerprint != first.split_fingerprint):
      raise ValueError(f'{name}: its {first.config.dataset.name} was split otherwise than '
                       f"{first_name}'s (split fingerprints {member.split_fingerprint[:12]} and "
                       f'{first.split_fingerprint[:12]}): only runs trained on the same files '
                       'and split can be averaged')
    if member.class_names != first.class_names:
      raise ValueError(f'{name}: classes {member.class_names}, {first_name} has {first.class_names}')
    if member.inputs(member.config) != want:
      raise ValueError(f'{name}: reads {member.inputs(member.config)}, {first_name} reads {want}')
    if member.preparation != first.preparation:
      raise ValueError(f'{name}: its images are prepared otherwise than {first_name}\'s')
    if member.localises != first.localises:
      raise ValueError(f'{name}: one of {first_name} and {name} draws maps, the other does not')


class Averaged(base.Detector):
  """The members' class probabilities and maps, each averaged over the members; the first
  member's config (its dataset, evaluators, keypoint fusion) speaks for the average."""

  def __init__(self, members: list[base.Detector], names: list[str]):
    check_members(members, names)
    first = members[0]
    super().__init__(copy.deepcopy(first.config))
    self.members = members
    self.names = list(names)
    self.preparation = first.preparation
    self.training_sizes = first.training_sizes  # runs of one split read the same files
    self.split_fingerprint = first.split_fingerprint
    self.localises = first.localises
    self.info = {'averaged_runs': self.names}
    for member in members:  # the keypoint map is fused once, into the average (score)
      if member.config.model.get('keypoint_map', False):
        with member.config.unlocked():
          member.config.model.keypoint_map = False

  @staticmethod
  def inputs(config) -> tuple[str, ...]:
    from forgery_jax import detectors  # pylint: disable=g-import-not-at-top
    return detectors.get(config.method).inputs(config)

  def describe(self) -> str:
    fused = ''
    if self.localises:  # the keypoint map is fused into the mean, not into each member
      from forgery_jax.detectors import localiser  # pylint: disable=g-import-not-at-top
      fused = localiser.scored_as(self.config, flips=False)
    return f'mean of {len(self.members)} runs of {self.members[0].describe()}{fused}'

  def keypoint_pairs(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if self.localises:
      from forgery_jax.detectors import localiser  # pylint: disable=g-import-not-at-top
      pairs = localiser.fused_map_pairs(rgb, self.config)
      if pairs is not None:
        return pairs
    return self.members[0].keypoint_pairs(rgb)

  def fuse_keypoint_map(self, rule: str | None = None, mirrored: bool = False,
                        decision: str | None = None) -> None:
    if not self.localises:
      super().fuse_keypoint_map(rule, mirrored, decision)  # raises: only a localiser's maps take it
    from forgery_jax.detectors import localiser  # pylint: disable=g-import-not-at-top
    localiser.set_keypoint_fusion(self.config, rule, mirrored, decision)

  def score_flips(self) -> None:
    for member in self.members:  # each member flips; the mean of their means is the same
      member.score_flips()
    with self.config.unlocked():
      self.config.model.score_flips = True

  @classmethod
  def fit(cls, config, dataset, run):
    raise ValueError('an average of runs is made from finished runs (average_with); it is not trained')

  def save(self, export_dir: str) -> None:
    raise ValueError('an average of runs is not saved: load its runs with average_with again')

  @classmethod
  def restore(cls, config, export_dir: str):
    raise ValueError('an average of runs is not saved: load its runs with average_with again')

  def score(self, examples: list[dict]) -> base.Scores:
    parts = [m.score(examples) for m in self.members]
    probabilities = np.mean([p.probabilities for p in parts], 0).astype(np.float32)
    maps = None
    if parts[0].maps is not None:
      maps = [np.mean([p.maps[i] for p in parts], 0).astype(np.float32)
              for i in range(len(examples))]
    scores = base.Scores(probabilities, maps, parts[0].map_kind)
    if not self.localises:
      return scores
    from forgery_jax.detectors import localiser  # pylint: disable=g-import-not-at-top
    return localiser.fused_as_configured(scores, examples, self.config)

  def score_split(self, dataset, indices: np.ndarray, batch_size: int = 0, desc: str = '',
                  keep_maps: bool = True) -> base.Scores:
    # A localiser scores whole images of any size one at a time anyway.
    batch_size = 1 if self.localises else (batch_size or 32)
    return super().score_split(dataset, indices, batch_size, desc, keep_maps)

"""Every config in configs/ loads, names a real builder config at its resolution, and overrides."""

import pathlib

import pytest

from configs import default
from configs import ela_only
from configs import paper
from experiments import table1
from forgery_jax import detectors
from forgery_jax.data import datasets
from forgery_jax.evaluation import evaluators

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[1] / 'configs').glob('*.py')
                 if not p.stem.startswith('_') and p.stem not in ('ela_only', 'paper'))
ALL = ([(name, None) for name in CONFIGS] + [('paper', d) for d in paper.DATASETS]
       + [('localiser_synthetic', 'both'), ('localiser_micc_f220', 'synthesis'),
          ('copy_move_keypoints', 'micc_f220')])


def _load(name, arg):
  module = __import__(f'configs.{name}', fromlist=['get_config'])
  return module.get_config() if arg is None else module.get_config(arg)


@pytest.mark.parametrize('name,arg', ALL)
def test_config_loads_and_matches_a_builder_config(name, arg):
  config = _load(name, arg)
  chosen = datasets.builder_config_name(config.dataset.name, config.dataset.resolution,
                                        config.dataset.builder_config)
  assert chosen
  detectors.get(config.method)
  for e in config.evals:
    evaluators.get(e)


def _flat(d, prefix=''):
  out = set()
  for k, v in d.items():
    out |= _flat(v, f'{prefix}{k}.') if isinstance(v, dict) else {f'{prefix}{k}'}
  return out


@pytest.mark.parametrize('name,arg', ALL)
def test_variants_only_override_the_defaults(name, arg):
  """Every field lives in default.py; a variant adds only its method's own section."""
  fields = _flat(_load(name, arg).to_dict())
  extra = {f.split('.')[0] for f in fields - _flat(default.get_config().to_dict())}
  assert extra <= {'wld', 'xgboost'}, extra


def test_paper_config_per_dataset():
  assert paper.get_config('combined').dataset.num_classes == 3
  assert paper.get_config('casia2').dataset.name == 'casia2'
  assert paper.get_config('micc_f220').model.branches == ('ela', 'srm')
  with pytest.raises(ValueError, match='casia1'):
    paper.get_config('casia3')


def test_ela_only_drops_the_srm_branch_of_any_config():
  config = ela_only.get_config('casia1')
  assert config.model.branches == ('ela',) and config.dataset.name == 'casia1'
  assert ela_only.get_config().dataset.name == 'synthetic_forgery'
  assert ela_only.get_config('casia1_best').model.head == 'pool'


def test_table_names_the_strongest_shortcut():
  results = {'baseline/majority_accuracy': 0.5, 'baseline/jpeg_quality_lookup_accuracy': 0.99,
             'baseline/height_lookup_accuracy': 0.6, 'test/accuracy': 0.7}
  assert table1.best_baseline(results) == ('jpeg_quality', 0.99)
  # A k-fold run's: the spread and the per-fold values beside each mean are not baselines.
  results = {'baseline/majority_accuracy': 0.5, 'baseline/majority_accuracy_std': 0.6,
             'baseline/majority_accuracy_per_fold': [0.1, 0.9]}
  assert table1.best_baseline(results) == ('majority', 0.5)

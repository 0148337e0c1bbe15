"""Every config in configs/ loads, names a real builder config at its resolution, and overrides."""

import pathlib

import pytest

from configs import ela_only
from forgery_jax import datasets
from forgery_jax import table1

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).resolve().parents[1] / 'configs').glob('*.py')
                 if not p.stem.startswith('_') and p.stem != 'ela_only')


@pytest.mark.parametrize('name', CONFIGS)
def test_config_loads_and_matches_a_builder_config(name):
  config = __import__(f'configs.{name}', fromlist=['get_config']).get_config()
  chosen = datasets.builder_config_name(config.dataset.name, config.dataset.resolution,
                                        config.dataset.builder_config)
  assert chosen
  assert config.model.branches == ('ela', 'srm')


def test_ela_only_drops_the_srm_branch_of_any_config():
  config = ela_only.get_config('casia1')
  assert config.model.branches == ('ela',) and config.dataset.name == 'casia1'
  assert ela_only.get_config().dataset.name == 'synthetic_forgery'


def test_combined_is_three_classes():
  from configs import combined  # pylint: disable=g-import-not-at-top
  assert combined.get_config().dataset.num_classes == 3


def test_table_names_the_strongest_shortcut():
  results = {'baseline/majority_accuracy': 0.5, 'baseline/jpeg_quality_lookup_accuracy': 0.99,
             'baseline/height_lookup_accuracy': 0.6, 'test/accuracy': 0.7}
  assert table1.best_baseline(results) == ('jpeg_quality', 0.99)

"""Shared fixtures: paths to the real data beside the checkout, and a tiny built dataset."""

from __future__ import annotations

import os
import re
import pathlib

import ml_collections
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get('FORGERY_JAX_SHARED', REPO.parent / 'shared'))


def shared_path(*parts: str) -> pathlib.Path:
  """A file or folder under ../shared (or $FORGERY_JAX_SHARED); skips the test if absent."""
  path = SHARED.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'real data not found at {path} (set FORGERY_JAX_SHARED to the shared/ folder)')
  return path


@pytest.fixture(scope='session')
def tfds_dir(tmp_path_factory) -> str:
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='session')
def tiny_config(tfds_dir) -> ml_collections.ConfigDict:
  """configs/tiny.py with the dataset in a session temp dir, built once."""
  from configs import tiny  # pylint: disable=g-import-not-at-top
  from forgery_jax.data import datasets  # pylint: disable=g-import-not-at-top
  config = tiny.get_config()
  config.dataset.data_dir = tfds_dir
  datasets.ensure_built(config.dataset)
  return config


_OWN_MODULES = {p.name for p in (REPO / 'forgery_jax').rglob('*.py')}


def assert_no_library_info(stderr: str) -> None:
  """Every absl INFO line of a command's output comes from forgery_jax itself."""
  for line in stderr.splitlines():
    m = re.match(r'^I\d{4} [\d:.]+ +\d+ ([\w.]+):\d+\]', line)
    if m:
      assert m.group(1) in _OWN_MODULES, f'library INFO line: {line}'

"""Quality estimation from quantisation tables."""

import numpy as np
from PIL import Image
import pytest

from forgery_jax.forensics import jpeg_quality
from tests.conftest import shared_path


@pytest.mark.parametrize('quality', [10, 35, 50, 51, 75, 88, 90, 95, 100])
def test_recovers_pil_quality(tmp_path, quality):
  rng = np.random.default_rng(quality)
  path = tmp_path / 'x.jpg'
  Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path, quality=quality)
  est = jpeg_quality.estimate(str(path))
  assert est.quality == quality and est.exact


def test_non_jpeg_gives_none(tmp_path):
  path = tmp_path / 'x.png'
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
  assert jpeg_quality.estimate(str(path)) is None


def test_casia1_tables_differ_between_classes():
  """CASIA v1's authentic and tampered files were saved with different tables (a known shortcut)."""
  root = shared_path('datasets', 'casia1')
  au = {jpeg_quality.estimate(str(p)).table_hash for p in sorted((root / 'Au').iterdir())[:40]}
  sp = {jpeg_quality.estimate(str(p)).table_hash for p in sorted((root / 'Sp').iterdir())[:40]}
  assert au and sp and not au & sp

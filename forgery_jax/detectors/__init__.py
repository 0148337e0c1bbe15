"""Detectors: every method forgery_jax trains and runs, behind one interface (`base.Detector`).

`config.method` names a detector: a key of `REGISTRY` (one line per detector; its module is
imported only when used), or `package.module:Class` for a detector defined outside forgery_jax.
`averaged.Averaged` is not a method one trains: it scores several finished runs as one.
"""

from __future__ import annotations

import importlib

from forgery_jax.detectors.base import Detector, Run, Scores

REGISTRY = {
    'cnn': 'forgery_jax.detectors.paper_cnn:PaperCnn',                # the dual-branch ELA + SRM CNN
    'wld_xgboost': 'forgery_jax.detectors.wld_xgboost:WldXgboost',    # WLD features + XGBoost DART
    'localiser': 'forgery_jax.detectors.localiser:Localiser',         # per-pixel ELA + SRM + RGB U-Net
    'copy_move_keypoints':                                            # repeated regions, SIFT + affine
        'forgery_jax.detectors.copy_move_keypoints:CopyMoveKeypoints',
}


def names() -> list[str]:
  return sorted(REGISTRY)


def get(method: str) -> type[Detector]:
  """The detector class `method` names; an unknown name is an error listing the registered ones."""
  spec = REGISTRY.get(method, method if ':' in method else None)
  if spec is None:
    raise ValueError(f'config.method must be one of {names()} (or package.module:Class), '
                     f'got {method!r}')
  module_name, _, attr = spec.partition(':')
  try:
    cls = getattr(importlib.import_module(module_name), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f'config.method={method!r}: cannot import {spec}: {e}') from e
  if not (isinstance(cls, type) and issubclass(cls, Detector)):
    raise ValueError(f'config.method={method!r}: {spec} is not a forgery_jax Detector')
  return cls


__all__ = ['Detector', 'Run', 'Scores', 'REGISTRY', 'get', 'names']

"""ELA-only ablation of any config: --config=configs/ela_only.py:<base> (default: default).

<base> is a config module (`default`, `casia1_best`, ...) or a dataset of configs/paper.py, e.g.
`--config=configs/ela_only.py:casia1` is `configs/paper.py:casia1` without the SRM branch.
"""

import importlib

from configs import paper


def get_config(base: str = 'default'):
  if base in paper.DATASETS:
    config = paper.get_config(base)
  else:
    config = importlib.import_module(f'configs.{base}').get_config()
  config.model.branches = ('ela',)
  return config

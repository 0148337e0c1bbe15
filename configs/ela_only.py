"""ELA-only ablation of any config: --config=configs/ela_only.py:<config name> (default: default).

e.g. `--config=configs/ela_only.py:casia1` is configs/casia1.py without the SRM branch.
"""

import importlib


def get_config(base: str = 'default'):
  config = importlib.import_module(f'configs.{base}').get_config()
  config.model.branches = ('ela',)
  return config

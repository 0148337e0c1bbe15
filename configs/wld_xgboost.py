"""WLD + XGBoost (DART), three classes, 10-fold grouped cross-validation (synthetic set by default).

Same datasets and split protocols as the CNN, e.g.
`--config.dataset.name=casia1 --config.dataset.manual_dir=../shared/datasets/casia1`;
`--config.dataset.split=random_kfold` for the paper's random folds, `grouped`/`random` with
`--config.dataset.test_fraction=0.3` for a 70/30 hold-out.
"""

import ml_collections

from configs import default


def get_config():
  config = default.get_config()
  config.method = 'wld_xgboost'
  config.dataset.num_classes = 3
  config.dataset.split = 'kfold'

  config.wld = ml_collections.ConfigDict()
  config.wld.orientations = 8   # T
  config.wld.bands = 3          # M
  config.wld.bins_per_band = 5  # S
  config.wld.grid = (2, 2)      # blocks per channel: 2 channels x 4 blocks x 120 bins = 960 values
  config.wld.batch_size = 64

  config.xgboost = ml_collections.ConfigDict()
  config.xgboost.n_estimators = 100  # DART re-predicts dropped trees: fit time grows ~quadratically
  config.xgboost.max_depth = 6
  config.xgboost.learning_rate = 0.1
  config.xgboost.subsample = 0.8
  config.xgboost.colsample_bytree = 0.5
  config.xgboost.rate_drop = 0.1   # DART: share of trees dropped per round
  config.xgboost.skip_drop = 0.5   # DART: chance of no dropout in a round
  config.xgboost.threads = 0       # 0 = every core
  return config

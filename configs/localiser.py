"""Where is the forgery: the localising ELA + SRM + RGB network on the embedded synthetic set.

Per-pixel tamper maps, scored against the masks (`pixel` evaluator) beside their baselines, and
the image-level decision derived from the map. See configs/localiser_casia1.py for CASIA v1.
"""

from configs import default


def get_config():
  config = default.get_config()
  config.method = 'localiser'
  config.augment_flips = True
  config.model.hidden = 32
  config.learning_rate = 1e-3
  config.lr_decay = 0.0
  config.eval_batch_size = 16
  config.num_epochs = 2
  config.early_stopping_ties = 'loss'
  # Its maps and p(tampered) are poorly calibrated on real data: also decide at the thresholds
  # chosen on the validation split.
  config.evals = tuple(config.evals) + ('pixel_threshold', 'validation_threshold')
  return config

"""Tiny: seconds on a CPU, for tests (32x32 synthetic set, 2 epochs)."""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.builder_config = 'tiny'
  config.dataset.resolution = 32
  config.batch_size = 8
  config.eval_batch_size = 16
  config.num_epochs = 2
  config.log_every_steps = 4
  return config

"""The paper's dual-branch model on the union of the releases under manual_dir, three classes.

Pass the release folder: --config.dataset.manual_dir=<folder> (built on first use).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'combined'
  config.dataset.builder_config = 'paper128'
  config.dataset.num_classes = 3
  config.num_epochs = 50  # early stopping on validation accuracy (patience 7) usually ends it
  return config

"""The paper's dual-branch model on CASIA v1.0 (800 authentic, 921 tampered; all JPEG).

Pass the release folder: --config.dataset.manual_dir=<folder> (built on first use).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'casia1'
  config.dataset.builder_config = 'paper128'
  config.num_epochs = 50  # early stopping on validation accuracy (patience 7) usually ends it
  return config

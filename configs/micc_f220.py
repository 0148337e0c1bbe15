"""The paper's dual-branch model on MICC-F220 (110 copy-move forgeries of 11 scenes, 110 authentic).

Pass the release folder: --config.dataset.manual_dir=<folder> (built on first use).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'micc_f220'
  config.dataset.builder_config = 'paper128'
  config.num_epochs = 50  # early stopping on validation accuracy (patience 7) usually ends it
  return config

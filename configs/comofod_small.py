"""The paper's dual-branch model on CoMoFoD small (200 scenes x 50 images; the 25 variants of a scene stay together).

Pass the release folder: --config.dataset.manual_dir=<folder> (built on first use).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'comofod_small'
  config.dataset.builder_config = 'paper128'
  config.num_epochs = 50  # early stopping on validation accuracy (patience 7) usually ends it
  return config

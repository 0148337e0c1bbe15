"""The paper's dual-branch model on CASIA v2.0 (7491 authentic, 5123 tampered). Compare with
`--config.dataset.builder_config=jpeg_normalised128` to see what the TIFF bias buys.

Pass the release folder: --config.dataset.manual_dir=<folder> (built on first use).
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'casia2'
  config.dataset.builder_config = 'paper128'
  config.num_epochs = 50  # early stopping on validation accuracy (patience 7) usually ends it
  return config

"""The localiser on MICC-F220, image level, grouped 5-fold (every fold trained and scored).

MICC-F220 has no masks: its forgeries train the image head only (their pixel loss is skipped),
its authentic files train both heads with all-zero maps. Both classes carry the same quantisation
tables, so the header lookup says nothing here; the files are read as released (`native`), at
their own size (722 x 480 to 800 x 1070), 192 x 192 training windows, whole images scored.

`:synthesis` also turns half of the training split's authentic rows into forgeries made on the
device (copy-move and splicing, with masks; forgery_jax/synthesis.py), never from a test fold.

Pass the release folder: --config.dataset.manual_dir=<micc_f220>.
"""

from configs import localiser_casia1

MODES = ('real', 'synthesis')


def get_config(mode: str = 'real'):
  if mode not in MODES:
    raise ValueError(f'configs/localiser_micc_f220.py:<mode> takes one of {MODES}, got {mode!r}')
  config = localiser_casia1.get_config()
  config.dataset.name = 'micc_f220'
  config.dataset.builder_config = 'native'
  config.dataset.also_test = ()
  config.dataset.control = ''
  config.dataset.split = 'kfold'
  config.dataset.num_folds = 5
  config.cross_dataset.name = ''
  if mode == 'synthesis':
    config.synthesis.fraction = 0.5
  return config

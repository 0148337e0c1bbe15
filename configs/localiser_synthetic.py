"""The localiser trained on forgeries synthesised on the device (forgery_jax/synthesis.py).

`--config=configs/localiser_synthetic.py` (or `:only`): no CASIA v1 tampered image and no CASIA v1
mask is read for training. The train and validation splits keep CASIA v1's authentic files only;
half of them become copy-move or spliced forgeries in every batch, each with its mask and a random
history, and the validation split's forgeries are made the same way with a fixed key. Tested on
the grouped test split as released and JPEG-randomised, and on every CASIA v1 file
(`cross_dataset`: all 1,721, as released and JPEG-randomised), none of whose forgeries it saw.

`--config=configs/localiser_synthetic.py:both`: the real training forgeries too (configs/
localiser_casia1.py), with half of the authentic rows turned into synthesised ones.
"""

from configs import localiser_casia1

MODES = ('only', 'both')


def get_config(mode: str = 'only'):
  if mode not in MODES:
    raise ValueError(f'configs/localiser_synthetic.py:<mode> takes one of {MODES}, got {mode!r}')
  config = localiser_casia1.get_config()
  config.synthesis.fraction = 0.5
  if mode == 'only':
    config.dataset.train_classes = ('authentic',)
    # Every CASIA v1 file, as released and JPEG-randomised: none of its forgeries was seen.
    config.cross_dataset.update(name='casia1', builder_config='native',
                                also_test=('native_jpeg_randomised',))
  return config

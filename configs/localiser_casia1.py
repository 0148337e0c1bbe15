"""The localiser on CASIA v1.0: trained on native-resolution crops of the JPEG-randomised files.

* data: `native_jpeg_randomised` (every file re-encoded once at a quality drawn from 70-95, so
  the quantisation tables that separate CASIA v1's classes say nothing), planes at the files' own
  size; training reads 192 x 192 windows at multiples of 16 pixels (JPEG grids stay put), a
  tampered file's window on part of its region (`input.crop_on_region`);
* tested on the same test files as released (`also_test=('native',)`), pixel scores at the
  original resolution beside their baselines, the history-matched control
  (`native_history_matched`: authentic files given a tampered file's first save), and MICC-F220
  as a cross-dataset check of the image-level decision.

Pass the release folders: --config.dataset.manual_dir=<casia1> and
--config.cross_dataset.manual_dir=<micc_f220> (or --config.cross_dataset.name= for none).
"""

from configs import localiser


def get_config():
  config = localiser.get_config()
  config.dataset.name = 'casia1'
  config.dataset.builder_config = 'native_jpeg_randomised'
  config.dataset.also_test = ('native',)
  config.dataset.control = 'native_history_matched'
  config.cross_dataset.name = 'micc_f220'
  config.cross_dataset.builder_config = 'native'
  config.input.crop = 192  # on 2 CPU cores: 12 epochs and the evaluations in 35 minutes
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_epochs = 12
  config.early_stopping_patience = 6
  return config

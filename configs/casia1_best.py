"""An ELA + SRM detector that finds manipulations, not file histories (CASIA v1.0).

Every step is measured in the README's "Beyond the paper" table. Against the paper's recipe
(configs/paper.py:casia1):
* data: every file re-encoded once as JPEG at a quality drawn from 70-95 (the
  `jpeg_randomised128` builder config), so the quantisation tables that separate CASIA v1's
  classes no longer do; the original files are scored too (`dataset.also_test`);
* SRM: the 30 residuals of the grey image in float, kept per kernel (a `lax.conv`);
* head: global mean + max pooling instead of the 67 M-parameter flatten-dense;
* copy-move evidence: SIFT keypoints matched within the image (forgery_jax/forensics/keypoints.py),
  computed at full resolution at build time like ELA, joins the pooled features;
* flips while training; a validation split carved from the training data picks the checkpoint,
  equal validation accuracies decided by the validation loss.

The same recipe on MICC-F220, grouped k-fold (no cross-dataset test: it is the training set):
  --config.dataset.name=micc_f220 --config.dataset.split=kfold --config.dataset.num_folds=5
  --config.cross_dataset.name=
"""

from configs import default


def get_config():
  config = default.get_config()
  config.dataset.name = 'casia1'
  config.dataset.builder_config = 'jpeg_randomised128'
  config.dataset.also_test = ('paper128',)  # the same test files as they are on disk
  config.dataset.control = 'history_matched128'  # against its own jpeg_randomised128
  config.cross_dataset.name = 'micc_f220'
  config.cross_dataset.builder_config = 'paper128'
  config.model.srm_residuals = 'per_kernel'
  config.model.head = 'pool'
  config.model.copy_move = True
  config.model.features = 16
  config.model.hidden = 64
  config.augment_flips = True
  config.batch_size = 32
  config.num_epochs = 60
  config.early_stopping_patience = 10
  config.early_stopping_ties = 'loss'
  return config

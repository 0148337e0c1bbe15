"""Default: the paper's dual-branch ELA + SRM network on the embedded synthetic dataset.

Finishes on a 2-core CPU in about 15 minutes, dataset build included.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.method = 'cnn'  # 'cnn' (forgery_jax/train.py) or 'wld_xgboost' (configs/wld_xgboost.py)

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = 'synthetic_forgery'  # a folder of tfds_builders/
  config.dataset.builder_config = ''         # '' = the builder's config at `resolution`
  config.dataset.data_dir = ''               # '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.dataset.manual_dir = ''             # where the release files are, for real datasets
  config.dataset.split = 'grouped'           # grouped | random | kfold | random_kfold (splits.py)
  config.dataset.split_seed = 0
  config.dataset.test_fraction = 0.2
  config.dataset.validation_fraction = 0.1
  config.dataset.num_folds = 10
  config.dataset.fold = -1                   # k-fold: -1 runs every fold and averages
  # Other builder configs of the same dataset whose test split (the same files) is scored too,
  # e.g. ('jpeg_randomised128',): the test images re-encoded at random qualities.
  config.dataset.also_test = ()
  config.dataset.num_classes = 2             # 2: authentic/tampered; 3: authentic/copy-move/splicing
  config.dataset.resolution = 128

  # Cross-dataset evaluation: after training, also test on every example of another dataset
  # (same data_dir, resolution and task). '' = none.
  config.cross_dataset = ml_collections.ConfigDict()
  config.cross_dataset.name = ''
  config.cross_dataset.builder_config = ''
  config.cross_dataset.manual_dir = ''

  config.model = ml_collections.ConfigDict()
  config.model.branches = ('ela', 'srm')     # ('ela',) or ('srm',) for the paper's ablation
  config.model.features = 32
  config.model.hidden = 256
  config.model.srm_trainable = False
  config.model.srm_clip = 3.0
  config.model.srm_residuals = 'mean'        # or 'per_kernel': 30 residuals of the grey image
  config.model.head = 'flatten'              # or 'pool': global mean + max pooling
  config.model.copy_move = False             # join the SIFT copy-move evidence (keypoints.py)
  config.model.dtype = 'float32'             # or 'bfloat16'

  # The paper: Adam 1e-3 with decay 1e-4 per step, batch 16, class weights,
  # early stopping on validation accuracy with patience 7.
  config.learning_rate = 1e-3
  config.lr_decay = 1e-4
  config.batch_size = 16
  config.eval_batch_size = 64
  config.num_epochs = 2
  config.early_stopping_patience = 7
  config.early_stopping_ties = 'first'       # or 'loss': equal accuracy with lower loss counts as better
  config.class_weights = True
  config.augment_flips = False               # random horizontal and vertical flips while training
  config.seed = 0

  config.input = ml_collections.ConfigDict()
  config.input.num_threads = 2
  config.input.prefetch = 4
  config.input.worker_processes = 0  # > 0: batches made in that many processes (for GPUs)

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.keep = 3
  config.checkpoint.every_steps = 0          # 0: at the end of every epoch only

  config.log_every_steps = 25
  return config

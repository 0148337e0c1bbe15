"""Default: the paper's dual-branch ELA + SRM network on the embedded synthetic dataset.

Every config field and its default live here; variant configs import this one and override.
Finishes on a 2-core CPU in about 10 minutes, dataset build included.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # A detector of forgery_jax.detectors.REGISTRY ('cnn', 'wld_xgboost', ...), or package.module:Class.
  config.method = 'cnn'
  # Evaluators run after the fit (forgery_jax/evaluation/evaluators.py): test, baselines, pixel,
  # also_test, cross_dataset, control, robustness. Those with nothing to do (no also_test, no
  # cross dataset, no control, no map) add nothing.
  config.evals = ('test', 'baselines', 'pixel', 'also_test', 'cross_dataset', 'control')

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
  # The `control` evaluator: a history-matched builder config of the same files (e.g.
  # 'native_history_matched'), against `control_reference` ('' = the run's own builder config).
  config.dataset.control = ''
  config.dataset.control_reference = ''
  config.dataset.resolution = 128

  # Cross-dataset evaluation: after training, also test on every example of another dataset
  # (same data_dir, resolution and task). '' = none.
  config.cross_dataset = ml_collections.ConfigDict()
  config.cross_dataset.name = ''
  config.cross_dataset.builder_config = ''
  config.cross_dataset.manual_dir = ''        # '' with the run's own dataset: its folder
  config.cross_dataset.also_test = ()        # its other builder configs, every example too

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
  config.model.ela_source = 'stored'         # the CNN: stored ELA planes, or 'device' (from image)
  # The localiser (method 'localiser', detectors/localiser.py): ELA computed in the model at these
  # qualities, stem width, U-Net widths at 1/2, 1/4, 1/8 (, 1/16) resolution, loss weights.
  config.model.ela_qualities = (75, 85, 95)
  config.model.stem = 8
  config.model.levels = (24, 48, 64)
  config.model.zscore_features = False       # join each feature's image-wide Z-score (stems, bottleneck)
  config.model.zscore_window = 0             # ... over this window (input pixels) instead; 0: whole image
  config.model.dct_stem = 0                  # > 0: a stem of this width on the 8 x 8 block DCT (forensics/dct.py)
  config.model.constrained_filters = 0       # > 0: a stem on this many learned constrained (Bayar) 5 x 5 residuals
  config.model.image_pooling = 'mean_max'    # the image head reads means and maxima, or 'means' only
  config.model.loss_weights = ml_collections.ConfigDict({'pixel': 1.0, 'dice': 1.0, 'image': 1.0})
  config.model.keypoint_map = False          # fuse the copy-move keypoint map into the maps when scoring
  config.model.keypoint_fusion = 'replace'   # how: localiser.fuse_maps ('replace', 'max', 'keypoints_alone', 'upper_copies',
                                             # 'upper_copies_ranked')
  config.model.keypoint_mirrored = False     # the keypoint map also matches regions copied mirror-wise
  config.model.keypoint_decision = 'inliers'  # the keypoint map's image decision, or 'clusters'
  config.model.score_tile = 1024             # scoring: images larger than this go in overlapping tiles of it
  config.model.score_flips = False           # scoring: the mean over each image's four flips (localiser.flip_average)

  # The paper: Adam 1e-3 with decay 1e-4 per step, batch 16, class weights,
  # early stopping on validation accuracy with patience 7.
  config.learning_rate = 1e-3
  config.lr_decay = 1e-4
  config.lr_schedule = 'inverse_time'        # or 'cosine': warm-up, then a cosine to 0 at the last step
  config.warmup_steps = 0                    # 'cosine' only
  # > 0 (e.g. 0.99): validate, keep and export the exponential moving average of the parameters
  # (decay min(ema_decay, (1 + step) / (10 + step))) instead of the parameters of the last step.
  config.ema_decay = 0.0
  config.batch_size = 16
  config.eval_batch_size = 64
  config.num_epochs = 2
  config.early_stopping_patience = 7         # validations without improvement
  config.validate_every_epochs = 1           # validate (and may stop) after every k-th epoch and the last
  config.early_stopping_ties = 'first'       # or 'loss': equal accuracy with lower loss counts as better
  config.early_stopping_metric = 'accuracy'  # or, for detectors that draw maps, 'pixel_f1' / 'pixel_f1_best' of the validation crops
  config.class_weights = True
  config.augment_flips = False               # random horizontal and vertical flips while training
  config.seed = 0

  # Forgeries made on the device inside the training step (forgery_jax/synthesis.py), for
  # detectors that read `image` and `mask` (the localiser; the CNN with model.ela_source='device').
  config.synthesis = ml_collections.ConfigDict()
  config.synthesis.fraction = 0.0           # share of authentic rows made forgeries (0: none)
  config.synthesis.last_save = False        # with no forgeries: only the random last save below
  config.synthesis.copy_move_share = 0.5    # the rest are spliced from another row
  config.synthesis.area = (0.01, 0.30)      # region area, a share of the image (log-uniform)
  config.synthesis.polygon_share = 0.5      # polygons, else object-like blobs
  config.synthesis.feather_sigmas = (0.0, 1.0, 2.0)
  config.synthesis.rotate = 30.0            # degrees, either way
  config.synthesis.scale = (0.8, 1.25)
  config.synthesis.flip = 0.5
  config.synthesis.region_edit_share = 0.0  # pasted regions also blurred, noised, tone-shifted
  config.synthesis.donor_jpeg = True         # a spliced region carries its own JPEG history:
  config.synthesis.donor_quality = (50, 95)  # at a quality from this range
  config.synthesis.final_quality = (70, 95)  # the last save of every row
  config.synthesis.lossless_share = 0.1     # rows not saved again
  config.synthesis.second_save_share = 0.0  # saved rows saved once more, at another final quality
  config.synthesis.reencode_real = True     # real tampered rows get a random last save too
  # Keep only these forgery types in the train and validation splits (e.g. ('authentic',) to
  # train on synthesised forgeries alone); () keeps every example.
  config.dataset.train_classes = ()
  # Every authentic file of other releases joins the training split ('NAME:CONFIG[:MANUAL_DIR]',
  # e.g. 'casia2:native:../shared/datasets/casia2_subset'): more photographs to learn from and,
  # with synthesis, to forge. Those releases can then no longer be a cross-dataset test.
  config.dataset.extra_authentic = ()
  # Train on this share of the training split only (whole groups, nested across shares for one
  # seed), for learning curves; validation and test are unchanged.
  config.dataset.train_fraction = 1.0

  config.input = ml_collections.ConfigDict()
  config.input.num_threads = 2
  config.input.prefetch = 4
  config.input.worker_processes = 0  # > 0: batches made in that many processes (for GPUs)
  # Native-size planes (the `native*` builder configs): crop x crop windows, at multiples of
  # crop_align pixels from the top-left so that a file's JPEG block grid stays where it was
  # (random for training, central for validation). 0: planes are used as stored.
  config.input.crop = 0
  config.input.crop_align = 16
  # A tampered file's window (with a mask) holds part of its tampered region: random among the
  # windows that do for training, the one holding most of it for validation. False: windows are
  # placed as for authentic files, and a window that misses the region still says "tampered".
  config.input.crop_on_region = True

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.keep = 3                 # the latest N; the best is kept beside them
  config.checkpoint.every_steps = 0          # 0: at the end of every epoch only
  # A finished run keeps its inference export (parameters, no optimiser state); True also keeps
  # its last training checkpoint, to continue it later with more epochs.
  config.checkpoint.keep_final = False

  # The `robustness` evaluator: attacks on the first N test files (0 = all).
  config.robustness = ml_collections.ConfigDict()
  config.robustness.max_examples = 0

  config.log_every_steps = 25
  return config

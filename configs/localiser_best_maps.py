"""The localiser recipe that draws the best maps measured on CASIA v1 (docs/localisation.md,
"Dice × 3 on the Z-score and DCT-stem recipe").

`configs/localiser_synthetic.py:both` (the real training forgeries, and half of the authentic
rows forged on the device) with hard-edged regions, each feature's image-wide Z-score, the 8 × 8
block-DCT stem, the Dice term weighed three times, ten epochs, and the epoch kept by its
validation maps (`pixel_f1_best`). The same run as that paragraph's command line; its maps are
best with the copy-move keypoint map fused when scoring (inference only):
`evaluate --keypoint_map --keypoint_fusion=upper_copies_ranked` for both pixel F1 and pixel AUC
(`upper_copies` draws the same map at 0.5), and the mean of several seeds (`--average_with`).
"""

from configs import localiser_synthetic


def get_config():
  config = localiser_synthetic.get_config('both')
  config.num_epochs = 10
  config.cross_dataset.name = ''
  config.synthesis.feather_sigmas = (0.0,)
  config.model.zscore_features = True
  config.model.dct_stem = 16
  config.model.loss_weights.dice = 3.0
  config.early_stopping_metric = 'pixel_f1_best'
  config.early_stopping_patience = 10
  return config

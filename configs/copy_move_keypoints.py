"""The copy-move keypoint map alone (no training), tested as the localiser is.

`:casia1` (the default): CASIA v1.0, the same data, split, evaluations and control as
configs/localiser_casia1.py, so its figures stand beside the localiser's: a lower bound for
copy-move localisation that no file history can explain, and blind to splicing by design. Pass
--config.dataset.manual_dir=<casia1> and --config.cross_dataset.manual_dir=<micc_f220> (or
--config.cross_dataset.name= for none).

`:micc_f220`: MICC-F220's grouped 5-fold, as configs/localiser_micc_f220.py (every fold scored;
nothing is fitted, so the folds only split the files). Pass --config.dataset.manual_dir=<micc_f220>.

`--config.model.keypoint_decision=clusters` decides by clusters of matched keypoints (Amerini et
al. 2011) instead of the affine model's inliers (forensics/keypoints.py).
"""

from configs import default
from configs import localiser_casia1
from configs import localiser_micc_f220

MODES = ('casia1', 'micc_f220')


def get_config(mode: str = 'casia1'):
  if mode not in MODES:
    raise ValueError(f'configs/copy_move_keypoints.py:<mode> takes one of {MODES}, got {mode!r}')
  localiser = localiser_casia1.get_config() if mode == 'casia1' else localiser_micc_f220.get_config()
  # The localiser's data, split and evaluations; the default network and training settings,
  # which the map reads none of.
  config = default.get_config()
  config.method = 'copy_move_keypoints'
  for key in ('evals', 'dataset', 'cross_dataset', 'eval_batch_size'):
    config[key] = localiser[key]
  return config

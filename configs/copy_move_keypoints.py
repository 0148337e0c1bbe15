"""The copy-move keypoint map alone (no training) on CASIA v1.0, as the localiser is tested.

Same data, split, evaluations and control as configs/localiser_casia1.py, so its figures stand
beside the localiser's: a lower bound for copy-move localisation that no file history can explain,
and blind to splicing by design. Pass --config.dataset.manual_dir=<casia1> and
--config.cross_dataset.manual_dir=<micc_f220> (or --config.cross_dataset.name= for none).
"""

from configs import localiser_casia1


def get_config():
  config = localiser_casia1.get_config()
  config.method = 'copy_move_keypoints'
  return config

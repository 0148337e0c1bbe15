"""forgery_jax: image forgery detection in JAX/Flax.

    import forgery_jax
    detector = forgery_jax.load(workdir)      # a finished run of `python -m forgery_jax.main`
    detector.predict('photo.jpg')             # class, probabilities and, where localised, a map

Subpackages: `data` (release naming, builders, preparation, input pipeline, splits), `forensics`
(ELA, SRM, WLD, keypoints, JPEG quality), `detectors` (the interface and its members), `training`
(the JAX training loop and checkpoints), `evaluation` (metrics, baselines, evaluators).
"""

__version__ = '0.2.0'


def load(workdir: str, keypoint_map: bool = False, keypoint_fusion: str | None = None,
         threshold: float | str | None = None, pixel_threshold: float | str | None = None,
         keypoint_mirrored: bool = False, average_with=(), keypoint_decision: str | None = None, *,
         score_flips: bool = False, data_dir: str = ''):
  """The detector of a finished run, ready to `predict` (see `forgery_jax.api`); `keypoint_map`:
  a localiser's maps with the copy-move keypoint map fused in (`keypoint_mirrored`: matching
  regions copied mirror-wise too; `keypoint_decision`: 'inliers' or 'clusters', its image decision,
  None: the run's own); `average_with`: another run's workdir or a list of them, trained on the
  same split, whose probabilities and maps are averaged with this run's; `threshold`: tampered when
  p(tampered) >= it, a number or 'validation' (chosen on the run's validation split);
  `pixel_threshold`: a localiser's `region` is where its map reaches it (a number or 'validation',
  chosen on the validation split's masks); `score_flips`: a localiser's answer is the mean over
  each image's four flips; `data_dir`: where that validation split is read, instead of the
  data_dir the run recorded (a run moved to another machine)."""
  from forgery_jax import api  # pylint: disable=g-import-not-at-top
  return api.load(workdir, keypoint_map, keypoint_fusion, threshold, pixel_threshold,
                  keypoint_mirrored=keypoint_mirrored, average_with=average_with,
                  keypoint_decision=keypoint_decision, score_flips=score_flips, data_dir=data_dir)

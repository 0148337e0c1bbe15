"""casia2: CASIA Image Tampering Detection Evaluation Database v2.0 (7491 authentic, 5123 tampered).

Tampered names `Tp_<D|S>_<code>_<size>_<letter>_<src>_<tgt>_<id>`: the class is copy-move when
source == target and splicing otherwise (the S/D letter is wrong for about a hundred files). Masks,
where present, are `<stem>_gt.png` (one is `_gt3.png`, some are transposed) in
`CASIA 2 Groundtruth/` or `groundtruth/`. No authentic file is TIFF, 60 % of the tampered ones are:
`source_format` exposes this, and the `jpeg_normalised128` config removes it from the pixels.
"""

from forgery_jax.data import release_builder
from forgery_jax.data import releases


class Builder(release_builder.ReleaseBuilder):
  """CASIA v2.0: ELA, image and mask planes per file (configs: see forgery_jax.release_builder)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = release_builder.instructions(
      'CASIA v2.0 is distributed by the Institute of Automation, Chinese Academy of '
      'Sciences (http://forensics.idealtest.org); copies circulate on Kaggle. '
      'Ground-truth masks are from https://github.com/namtpham/casia2groundtruth '
      '(optional).',
      releases.CASIA2_TREE)
  HOMEPAGE = 'http://forensics.idealtest.org/'
  list_release = staticmethod(releases.list_casia2)

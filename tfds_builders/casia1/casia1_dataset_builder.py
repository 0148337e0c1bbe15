"""casia1: CASIA Image Tampering Detection Evaluation Database v1.0 (800 authentic, 921 tampered).

All files are JPEG 384x256. A tampered image names its source and target scenes
(`Sp_<S|D>_<code>_<A|..>_<src>_<tgt>_<id>`); its class comes from the folder of its mask
(`groundtruth/CM` or `groundtruth/Sp`) when one matches, else from source == target, never from
the S/D letter, which is wrong for some files. Authentic and tampered files use disjoint JPEG
quantisation tables: compare any score with the `jpeg_quality` shortcut baseline.
"""

from forgery_jax.data import release_builder
from forgery_jax.data import releases


class Builder(release_builder.ReleaseBuilder):
  """CASIA v1.0: ELA, image and mask planes per file (configs: see forgery_jax.release_builder)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = release_builder.instructions(
      'CASIA v1.0 is distributed by the Institute of Automation, Chinese Academy of '
      'Sciences (http://forensics.idealtest.org); copies circulate on Kaggle and '
      'GitHub.',
      releases.CASIA1_TREE)
  HOMEPAGE = 'http://forensics.idealtest.org/'
  list_release = staticmethod(releases.list_casia1)

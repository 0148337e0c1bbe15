"""comofod_small: CoMoFoD copy-move forgeries, small (512x512) set: 200 scenes x 50 images.

`NNN_F` is forged, `NNN_O` the original, each also in 24 post-processed variants (`_JC1-9` JPEG,
`_IB1-3` blur, `_NA1-3` noise, `_BC1-3` brightness, `_CR1-3` colour reduction, `_CA1-3` contrast);
`NNN_B` is the binary mask of every forged variant of NNN and `NNN_M` a colour mask (not an
example). `group` is NNN, so the 50 images of a scene never sit on both sides of a split;
`variant` keeps the post-processing.
"""

from forgery_jax.data import release_builder
from forgery_jax.data import releases


class Builder(release_builder.ReleaseBuilder):
  """CoMoFoD (small, 512x512): ELA, image and mask planes per file (configs: see forgery_jax.release_builder)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = release_builder.instructions(
      'CoMoFoD is distributed by the University of Zagreb '
      '(https://www.vcl.fer.hr/comofod/).',
      releases.COMOFOD_TREE)
  HOMEPAGE = 'https://www.vcl.fer.hr/comofod/'
  list_release = staticmethod(releases.list_comofod)

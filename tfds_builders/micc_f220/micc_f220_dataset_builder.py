"""micc_f220: MICC-F220 copy-move forgeries (110 tampered, 110 authentic).

Labels come from `groundtruthDB_220.txt`; the scene from the name (`<scene>tamp<N>.jpg`,
`<scene>_scale.jpg`, with the release's `nikon7_scale.jpg` meaning scene `nikon_7`). The 110
forgeries come from 11 scenes, so a random split tests scene recognition: `group` is the scene.
"""

from forgery_jax.data import release_builder
from forgery_jax.data import releases


class Builder(release_builder.ReleaseBuilder):
  """MICC-F220: ELA, image and mask planes per file (configs: see forgery_jax.release_builder)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = release_builder.instructions(
      'MICC-F220 is distributed by the Media Integration and Communication Center, '
      'University of Florence '
      '(http://lci.micc.unifi.it/labd/2015/01/copy-move-forgery-detection-and-localization/).',
      releases.MICC_TREE)
  HOMEPAGE = 'http://lci.micc.unifi.it/labd/2015/01/copy-move-forgery-detection-and-localization/'
  list_release = staticmethod(releases.list_micc)

"""micc_f2000: MICC-F2000 copy-move forgeries (700 tampered, 1300 authentic, 2048x1536).

Same rules as micc_f220: labels from `groundtruthDB_2000.txt`, `group` is the scene.
"""

from forgery_jax.data import release_builder
from forgery_jax.data import releases


class Builder(release_builder.ReleaseBuilder):
  """MICC-F2000: ELA, image and mask planes per file (configs: see forgery_jax.release_builder)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = release_builder.instructions(
      'MICC-F2000 is distributed by the Media Integration and Communication Center, '
      'University of Florence '
      '(http://lci.micc.unifi.it/labd/2015/01/copy-move-forgery-detection-and-localization/).',
      releases.MICC_TREE)
  HOMEPAGE = 'http://lci.micc.unifi.it/labd/2015/01/copy-move-forgery-detection-and-localization/'
  list_release = staticmethod(releases.list_micc)

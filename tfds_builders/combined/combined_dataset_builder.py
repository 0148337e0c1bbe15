"""combined: the union of the releases found in one folder, for the three-class task.

The WLD + XGBoost paper trains one authentic / copy-move / splicing classifier on the union of the
public sets. Each release sits in a sub-folder named after its builder (`casia1/`, `casia2/`,
`comofod_small/`, `micc_f220/`, `micc_f2000/`), laid out as that builder expects; any subset may
be present. `release` names each example's set; groups are prefixed with it and never join across
sets. Use it with `config.dataset.num_classes = 3`.
"""

from forgery_jax.data import release_builder
from forgery_jax.data import releases


class Builder(release_builder.ReleaseBuilder):
  """The union of releases: ELA, image and mask planes per file (configs: see forgery_jax.release_builder)."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = release_builder.instructions(
      'Put each release you have in a sub-folder named after its builder, laid out as '
      'that builder\'s instructions say: casia1/, casia2/, comofod_small/, micc_f220/, '
      'micc_f2000/.',
      None)
  list_release = staticmethod(releases.list_combined)

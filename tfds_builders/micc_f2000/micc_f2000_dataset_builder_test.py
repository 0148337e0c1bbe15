"""DatasetBuilderTestCase for micc_f2000 on its dummy_data tree (the release's naming, faults included)."""

import tensorflow_datasets as tfds

from tfds_builders.micc_f2000 import micc_f2000_dataset_builder


class MiccF2000Test(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = micc_f2000_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['paper128']
  SPLITS = {'train': 6}
  SKIP_CHECKSUMS = True


if __name__ == '__main__':
  tfds.testing.test_main()

"""DatasetBuilderTestCase for casia1 on its dummy_data tree (the release's naming, faults included)."""

import tensorflow_datasets as tfds

from tfds_builders.casia1 import casia1_dataset_builder


class Casia1Test(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = casia1_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['paper128']
  SPLITS = {'train': 11}
  SKIP_CHECKSUMS = True


if __name__ == '__main__':
  tfds.testing.test_main()

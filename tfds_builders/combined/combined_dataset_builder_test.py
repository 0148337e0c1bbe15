"""DatasetBuilderTestCase for combined on its dummy_data tree (the release's naming, faults included)."""

import tensorflow_datasets as tfds

from tfds_builders.combined import combined_dataset_builder


class CombinedTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = combined_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['paper128']
  SPLITS = {'train': 18}
  SKIP_CHECKSUMS = True


if __name__ == '__main__':
  tfds.testing.test_main()

"""DatasetBuilderTestCase for comofod_small on its dummy_data tree (the release's naming, faults included)."""

import tensorflow_datasets as tfds

from tfds_builders.comofod_small import comofod_small_dataset_builder


class ComofodSmallTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = comofod_small_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['paper128']
  SPLITS = {'train': 16}
  SKIP_CHECKSUMS = True


if __name__ == '__main__':
  tfds.testing.test_main()

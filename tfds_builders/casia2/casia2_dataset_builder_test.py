"""DatasetBuilderTestCase for casia2 on its dummy_data tree: 13 listed, 1 undecodable and skipped."""

import tensorflow_datasets as tfds

from tfds_builders.casia2 import casia2_dataset_builder


class Casia2Test(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = casia2_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['paper128', 'crop128', 'jpeg_normalised128']
  SPLITS = {'train': 12}
  SKIP_CHECKSUMS = True


if __name__ == '__main__':
  tfds.testing.test_main()

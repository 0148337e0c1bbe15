"""DatasetBuilderTestCase for synthetic_forgery (its tiny config; nothing to download)."""

import tensorflow_datasets as tfds

from tfds_builders.synthetic_forgery import synthetic_forgery_dataset_builder


class SyntheticForgeryTest(tfds.testing.DatasetBuilderTestCase):
  DATASET_CLASS = synthetic_forgery_dataset_builder.Builder
  BUILDER_CONFIG_NAMES_TO_TEST = ['tiny']
  SPLITS = {'train': 64, 'validation': 32, 'test': 32}
  SKIP_CHECKSUMS = True


if __name__ == '__main__':
  tfds.testing.test_main()

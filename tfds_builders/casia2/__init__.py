"""casia2: CASIA v2.0 as a TFDS dataset with precomputed ELA planes."""

from tfds_builders.casia2.casia2_dataset_builder import Builder

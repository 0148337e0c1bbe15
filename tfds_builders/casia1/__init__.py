"""casia1: CASIA v1.0 as a TFDS dataset with precomputed ELA planes."""

from tfds_builders.casia1.casia1_dataset_builder import Builder

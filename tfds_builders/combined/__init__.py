"""combined: combined as a TFDS dataset with precomputed ELA planes."""

from tfds_builders.combined.combined_dataset_builder import Builder

"""comofod_small: CoMoFoD (small, 512x512) as a TFDS dataset with precomputed ELA planes."""

from tfds_builders.comofod_small.comofod_small_dataset_builder import Builder

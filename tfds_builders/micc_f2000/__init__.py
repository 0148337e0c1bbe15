"""micc_f2000: MICC-F2000 as a TFDS dataset with precomputed ELA planes."""

from tfds_builders.micc_f2000.micc_f2000_dataset_builder import Builder

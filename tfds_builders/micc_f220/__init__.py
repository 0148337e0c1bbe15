"""micc_f220: MICC-F220 as a TFDS dataset with precomputed ELA planes."""

from tfds_builders.micc_f220.micc_f220_dataset_builder import Builder

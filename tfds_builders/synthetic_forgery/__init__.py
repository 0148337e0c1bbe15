"""synthetic_forgery: forgeries made from photographs bundled with installed packages."""

from tfds_builders.synthetic_forgery.synthetic_forgery_dataset_builder import Builder

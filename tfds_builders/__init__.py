"""TFDS builders of forgery_jax; importing a builder's package registers it with TFDS."""

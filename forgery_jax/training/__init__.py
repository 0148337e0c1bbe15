"""Training of the JAX detectors: the loop (`trainer`), what a detector gives it (`task`), the
device mesh (`mesh`), checkpoints (`checkpointing`) and metric files (`writers`)."""

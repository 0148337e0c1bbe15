"""Side-by-side benchmarks of forgery_jax's hot paths: `python -m benchmarks.run`."""

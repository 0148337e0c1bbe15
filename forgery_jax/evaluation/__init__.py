"""Evaluation: classification metrics, shortcut baselines, the pluggable evaluators a config
names, robustness attacks and `evaluate`'s report."""

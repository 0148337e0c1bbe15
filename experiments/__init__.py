"""Experiment scripts that regenerate the README's tables from the library (not part of it)."""

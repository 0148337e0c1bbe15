"""Experiment scripts that regenerate the tables of the README and docs/ from the library (not part
of it)."""

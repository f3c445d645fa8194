"""Experiments: the paper's conditions, runs over them, z-scores and their tables."""

"""Probabilistic record linkage: cleaned attributes, blocking, comparison levels, the EM-fitted model."""

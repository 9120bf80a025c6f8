"""Experiment grids that reproduce the papers' ablation tables (see identity_mappings.py)."""

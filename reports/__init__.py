"""Reports generated from committed run records (python -m reports.make_identity_mappings)."""

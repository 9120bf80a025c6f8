"""Training, evaluation and recipes for keras_preact models (see training/README.md)."""

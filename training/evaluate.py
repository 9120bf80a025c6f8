"""Checkout alias of `python -m keras_preact.training.evaluate` (evaluate a training run directory)."""

from absl import app

from keras_preact.training.evaluate import main

if __name__ == "__main__":
    app.run(main)

"""The user scripts in examples/ run as written (at toy scale)."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import keras_preact  # noqa: F401 (registers its layers: load_model needs them)
from image_folders import make_image_folder

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CLASSES = ["cat", "dog", "frog"]


def run_example(script, *args, cwd):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)],
                            capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr[-4000:]}"
    return result.stdout


def test_finetune_image_folder(tmp_path):
    data = Path(make_image_folder(tmp_path / "images", classes=CLASSES, n_train=4, n_test=0,
                                  fmt="jpg")) / "train"
    out = tmp_path / "out"
    stdout = run_example("finetune_image_folder.py", "--data", data, "--out", out,
                         "--epochs", 1, "--steps_per_epoch", 2, "--batch_size", 4, cwd=tmp_path)

    # fit ran under MirroredStrategy over 2 logical CPU devices.
    assert "MirroredStrategy with 2 replicas" in stdout, stdout
    assert "the reloaded model gives the same predictions" in stdout, stdout

    model = keras.saving.load_model(out / "model.keras")
    assert model.output_shape == (None, len(CLASSES))
    pixels = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    probabilities = model.predict(pixels, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)

    export_dir = out / "saved_model" / "1"
    assert (export_dir / "saved_model.pb").is_file()
    serving = tf.saved_model.load(str(export_dir))
    assert {"serving_default", "serving_bytes"} <= set(serving.signatures)
    # The SavedModel serves what the .keras model predicts.
    served = serving.signatures["serving_default"](images=tf.constant(pixels.astype("uint8")))
    np.testing.assert_allclose(served["probabilities"].numpy(), probabilities, atol=1e-5)

    # The script's last line: one image file through `serving_bytes`, top class by name.
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("serving_bytes: ") and last.split(" -> ")[1].split(" (")[0] in CLASSES

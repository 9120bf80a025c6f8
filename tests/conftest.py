"""Shared test setup: quiet TensorFlow logs, deterministic seeds."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Downloads and on-demand SavedModels go to $KERAS_HOME/keras_preact: keep the tests' out of ~.
os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="keras_preact_test_home_")
atexit.register(shutil.rmtree, os.environ["KERAS_HOME"], ignore_errors=True)

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_and_clear():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session(free_memory=False)

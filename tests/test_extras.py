"""Every extra installs what its feature needs: a fresh venv with only `[tf-cpu,EXTRA]`.

Each case builds the wheel from a copy of this checkout, installs `WHEEL[tf-cpu,EXTRA]` with pip
into a new virtual environment (downloads from the package index, through pip's cache) and runs
that extra's feature end to end from an empty folder: `keras-preact export --format EXTRA` and a
prediction through the exported file for onnx, openvino and litert; a zoo model built and run
under `KERAS_BACKEND=jax` for jax. Nothing is borrowed from the test environment, so a
dependency the extra forgets (scipy for OpenVINO: Keras' OpenVINO backend imports it) fails here
even when the test environment has it from another package. Minutes per case (TensorFlow alone
is a 250 MB wheel): slow suite only.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from wheels import build_wheel

from test_zoo_support import REPO

ZOO_MODEL = "resnetv2_20_cifar10"
EXTRAS = ("onnx", "openvino", "litert", "jax")


def run(command, cwd, env=None, timeout=1800):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel of this checkout, built from a copy of what the sdist holds."""
    return build_wheel(tmp_path_factory.mktemp("extras_wheel"))


def user_env(home):
    """The environment a user's shell would have: none of the test run's Python or TF settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "KERAS_BACKEND", "KERAS_PREACT_ZOO",
            "TF_CPP_MIN_LOG_LEVEL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["KERAS_HOME"] = str(home)
    return env


def fresh_venv(root, wheel, extra):
    """bin/ of a new virtual environment holding `WHEEL[tf-cpu,EXTRA]` and nothing else."""
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         f"{wheel}[tf-cpu,{extra}]"], cwd=root)
    return venv / "bin"


PREDICT_EXPORT = """
import json, sys
import keras, numpy as np
from keras_preact import runtimes
out, image = sys.argv[1], sys.argv[2]
predictor = runtimes.load_predictor(out)
pixels = np.array(keras.utils.load_img(image, target_size=(predictor.height, predictor.width)))
probabilities = predictor(pixels[None])[0]
names = json.load(open(f"{out}/{runtimes.INFO_FILE}"))["class_names"]
print(predictor.format, predictor.runtime, names[int(probabilities.argmax())])
"""

PREDICT_JAX = """
import sys
import keras, numpy as np
import keras_preact
assert keras.backend.backend() == "jax", keras.backend.backend()
model = keras_preact.get_model("resnetv2_20", weights=sys.argv[1])
pixels = np.array(keras.utils.load_img(sys.argv[2], target_size=(32, 32)))[None]
probabilities = np.asarray(model(pixels, training=False))[0]
print(keras.backend.backend(),
      keras_preact.zoo.get_card(sys.argv[1])["class_names"][int(probabilities.argmax())])
"""


@pytest.mark.slow
@pytest.mark.parametrize("extra", EXTRAS)
def test_an_extra_alone_runs_its_feature(extra, wheel, tmp_path):
    bin_dir = fresh_venv(tmp_path, wheel, extra)
    user = tmp_path / "user"  # an empty folder: the checkout is not importable from here
    user.mkdir()
    image = shutil.copy(REPO / "docs" / "samples" / "cat.jpg", user / "cat.jpg")
    env = user_env(tmp_path / "keras_home")
    if extra == "jax":
        output = run([str(bin_dir / "python"), "-c", PREDICT_JAX, ZOO_MODEL, str(image)],
                     cwd=user, env=dict(env, KERAS_BACKEND="jax"))
        assert output.split()[-2:] == ["jax", "cat"], output
        return
    out = user / extra
    output = run([str(bin_dir / "keras-preact"), "export", "--model", ZOO_MODEL, "--format", extra,
                  "--out", str(out)], cwd=user, env=env)
    assert "checked with" in output, output
    info = json.loads((out / "model_info.json").read_text())
    assert info["max_abs_diff_vs_keras"] < 1e-4, info
    output = run([str(bin_dir / "python"), "-c", PREDICT_EXPORT, str(out), str(image)],
                 cwd=user, env=env)
    fmt, *_, top = output.split()
    assert (fmt, top) == (extra, "cat"), output

"""keras-preact as a user gets it: a wheel installed into a fresh virtual environment.

The wheel is built from this checkout and installed with pip (not `-e`) into a new
environment that borrows the test environment's TensorFlow through a `.pth` file, so
nothing is downloaded twice. Every command then runs from an empty folder that also holds
a decoy `training.py` and `bench.py` (common file names in users' folders): the installed
package must work without the checkout and must never import either.
"""

import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from wheels import build_wheel

import keras_preact

from test_zoo_support import CIFAR_ARCHIVE, CIFAR_MISSING, REPO

ZOO_MODEL = "resnetv2_20_cifar10"
DECOY = (
    "import pathlib\n"
    "pathlib.Path(__file__).with_name('DECOY_IMPORTED').write_text(__name__)\n"
    "raise SystemExit('the decoy ' + __name__ + ' was imported')\n"
)


def run(command, cwd, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel path, virtual environment's bin/, empty user folder with the decoys)."""
    root = tmp_path_factory.mktemp("package")
    wheel = build_wheel(root)
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    venv_python = venv / "bin" / "python"
    purelib = run([str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  cwd=root).strip()
    # Borrow TensorFlow, Keras and pip from the test environment. A .pth line adds a folder to
    # sys.path without running the .pth files inside it, so the checkout's editable install
    # there stays inert.
    Path(purelib, "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run([str(venv_python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        cwd=root)
    user = root / "user"
    user.mkdir()
    (user / "training.py").write_text(DECOY)
    (user / "bench.py").write_text(DECOY)
    shutil.copy(REPO / "docs" / "samples" / "cat.jpg", user / "cat.jpg")
    yield wheel, venv / "bin", user
    assert not (user / "DECOY_IMPORTED").exists(), "a decoy module in the user's folder was imported"


def test_the_wheel_installs_one_top_level_package(installed):
    wheel, _, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"keras_preact"}
    # decode_predictions' ImageNet class names, beside keras_preact/models/imagenet.py.
    assert "keras_preact/models/imagenet_class_index.json" in names
    packaged = {name for name in names if name.startswith("keras_preact/zoo/models/")}
    for card in (REPO / "keras_preact" / "zoo" / "models").glob("*/model_card.json"):
        weights = json.loads(card.read_text())["weights"]
        assert f"keras_preact/zoo/models/{card.parent.name}/model_card.json" in packaged
        if weights["source"] == "package":
            assert f"keras_preact/zoo/models/{card.parent.name}/{weights['file']}" in packaged
    # README's "The wheel is about 8.5 MB" (megabytes of 10**6 bytes, to the nearest half).
    megabytes = round(wheel.stat().st_size / 1e6 * 2) / 2
    assert f"The wheel is about {megabytes:g} MB:" in " ".join((REPO / "README.md").read_text().split())


def test_the_installed_zoo_lists_every_model_and_reproduces_a_card(installed):
    _, bin_dir, user = installed
    listed = run([str(bin_dir / "python"), "-c",
                  "import json, keras_preact; "
                  "print(json.dumps([keras_preact.__file__, keras_preact.list_zoo()]))"], cwd=user)
    location, names = json.loads(listed.strip().splitlines()[-1])
    assert not Path(location).is_relative_to(REPO), f"imported from the checkout: {location}"
    expected = sorted(p.parent.name for p in (REPO / "keras_preact" / "zoo" / "models").glob("*/model_card.json"))
    assert names == expected and ZOO_MODEL in names
    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(CIFAR_MISSING)
    # weights="resnetv2_20_cifar10" in `evaluate`, compared with the card's CI-slice numbers.
    output = run([str(bin_dir / "python"), "-m", "keras_preact.cli", "evaluate", "--model", ZOO_MODEL,
                  "--dataset", f"folder:{CIFAR_ARCHIVE}", "--limit", "500", "--check", "--quiet"],
                 cwd=user)
    assert f"OK: matches the model card of {ZOO_MODEL}" in output


def test_the_installed_commands_predict_export_and_train(installed):
    _, bin_dir, user = installed
    script = str(bin_dir / "keras-preact")
    predicted = run([script, "predict", "--model", ZOO_MODEL, "cat.jpg"], cwd=user)
    ranked = [line.split()[1] for line in predicted.splitlines() if line.strip()[:2] == "1."]
    assert ranked == ["cat"], predicted
    run([script, "export", "--model", ZOO_MODEL, "--out", "serving/1"], cwd=user)
    assert (user / "serving" / "1" / "saved_model.pb").is_file()
    help_text = run([script, "train", "--help"], cwd=user)
    for flag in ("--model_dir", "--dataset", "--config", "--strategy", "--cpu_devices", "--mixed_precision"):
        assert flag in help_text


# Issue 35's flagship models by their builders, as README's first example writes them.
FLAGSHIPS = {"ResNetV2_164": "resnetv2_164_cifar10", "DenseNet_BC_100_12": "densenet_bc_100_12_cifar10"}
_PREDICT_CAT = (
    "import json, sys, keras, keras_preact\n"
    "image = keras.utils.img_to_array(keras.utils.load_img(sys.argv[3], target_size=(32, 32)))[None]\n"
    "model = getattr(keras_preact, sys.argv[1])(weights=sys.argv[2])\n"
    "print(json.dumps([keras_preact.__file__, model(image, training=False).numpy()[0].tolist()]))\n"
)


@pytest.mark.parametrize("builder", sorted(FLAGSHIPS))
def test_the_installed_flagships_load_their_zoo_weights_by_builder(installed, builder):
    """`keras_preact.ResNetV2_164(weights="resnetv2_164_cifar10")` from the wheel, offline: the
    weights inside the package give the checkout's probabilities for the sample cat."""
    _, bin_dir, user = installed
    name = FLAGSHIPS[builder]
    output = run([str(bin_dir / "python"), "-c", _PREDICT_CAT, builder, name, "cat.jpg"], cwd=user)
    location, installed_probabilities = json.loads(output.strip().splitlines()[-1])
    assert not Path(location).is_relative_to(REPO), f"imported from the checkout: {location}"
    image = keras.utils.img_to_array(keras.utils.load_img(user / "cat.jpg", target_size=(32, 32)))[None]
    expected = getattr(keras_preact, builder)(weights=name)(image, training=False).numpy()[0]
    np.testing.assert_allclose(installed_probabilities, expected, atol=1e-6)
    assert abs(sum(installed_probabilities) - 1) < 1e-5

"""Shared fixtures of the export / zoo / CLI / serving tests: a tiny trained run and zoo.

The expensive pieces (a training run directory, a published zoo model, an
image folder) are built once per test session and cached, because exporting
even a small network takes seconds. Test modules import the fixtures they
use from here.

The run directory follows the training engineer's contract: run.json,
model.keras, final.weights.h5. The network is the registry's `resnet_20`
(the smallest CIFAR network) with 3 classes, fitted for one step.
"""

import atexit
import functools
import io
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
# The one setting for where the CIFAR-10 JPEG copy is: .ci/run exports it; a checkout with
# ../shared beside it needs nothing.
CIFAR_ARCHIVE = Path(os.environ.get("KERAS_PREACT_CIFAR10_TAR")
                     or REPO.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz")
CIFAR_MISSING = (f"the CIFAR-10 JPEG copy is not at {CIFAR_ARCHIVE}; set KERAS_PREACT_CIFAR10_TAR "
                 "to its cifar10-jpeg.tar.gz")
CLASS_NAMES = ["airplane", "cat", "ship"]
IMAGES_PER_CLASS = 8
ARCHITECTURE = "resnet_20"
MODEL_KWARGS = {"classes": len(CLASS_NAMES)}
ZOO_NAME = "tiny_resnet_test"


def _scratch_dir(prefix):
    """A temporary directory removed when the test process exits."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def encode_image(pixels, image_format, **options):
    """Bytes of a uint8 array saved as JPEG or PNG by PIL."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, image_format, **options)
    return buffer.getvalue()


def random_pixels(seed, height=32, width=32, channels=3):
    """Smooth-ish random uint8 pixels (noise on a gradient), reproducible from `seed`."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 200, width)[None, :, None] + rng.integers(0, 56, (height, width, channels))
    return base.clip(0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def image_folder():
    """`folder:` dataset root: {train,test}/<class>/NNNN.jpg (JPEG q75, 32x32).

    The test split has IMAGES_PER_CLASS images per class, train one.
    """
    root = _scratch_dir("keras_preact_images_")
    for split, count in (("train", 1), ("test", IMAGES_PER_CLASS)):
        for label, class_name in enumerate(CLASS_NAMES):
            folder = root / split / class_name
            folder.mkdir(parents=True)
            for index in range(count):
                pixels = random_pixels(seed=1000 * (split == "train") + 100 * label + index)
                (folder / f"{index:04d}.jpg").write_bytes(encode_image(pixels, "JPEG", quality=75))
    return root


@functools.lru_cache(maxsize=None)
def run_dir():
    """A training run directory holding a tiny model fitted for one step."""
    import keras

    import keras_preact

    root = _scratch_dir("keras_preact_run_")
    keras.utils.set_random_seed(1)
    model = keras_preact.get_model(ARCHITECTURE, **MODEL_KWARGS)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    images = np.stack([random_pixels(seed) for seed in range(6)]).astype("float32")
    model.fit(images, np.arange(6) % len(CLASS_NAMES), epochs=1, batch_size=6, verbose=0)
    model.save(root / "model.keras")
    model.save_weights(root / "final.weights.h5")
    record = {
        "model": ARCHITECTURE,
        "model_kwargs": MODEL_KWARGS,
        "dataset": f"folder:{image_folder()}",
        "class_names": CLASS_NAMES,
        "input_shape": [32, 32, 3],
        "config": {"epochs": 1, "batch_size": 6, "optimizer": "sgd", "learning_rate": 0.01},
        "replicas": 1,
        "epochs": [{"epoch": 1, "loss": 1.1, "accuracy": 0.33}],
        "final": {"test_accuracy": 0.33},
        "versions": {"keras": keras.__version__},
        "hardware": {"device": "CPU", "cores": 2},
        "wall_time_s": 1.5,
    }
    (root / "run.json").write_text(json.dumps(record, indent=2))
    return root


@functools.lru_cache(maxsize=None)
def published_zoo():
    """A zoo folder with the tiny run published as ZOO_NAME through the CLI."""
    from keras_preact import cli

    root = _scratch_dir("keras_preact_zoo_")
    status = cli.main([
        "publish", "--model_dir", str(run_dir()), "--name", ZOO_NAME,
        "--dataset", f"folder:{image_folder()}", "--dataset_label", "tiny-test-jpeg",
        "--zoo_dir", str(root), "--quiet",
    ])
    assert status == 0, "publishing the tiny test model failed"
    return root


def trained_model():
    """The tiny run's model, rebuilt from the registry with its final weights."""
    from keras_preact.training.run_dir import build_trained_model, read_run

    return build_trained_model(read_run(run_dir()))


@pytest.fixture
def tiny_zoo(monkeypatch):
    """KERAS_PREACT_ZOO pointed at the published tiny zoo; yields its path."""
    root = published_zoo()
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(root))
    return root


@pytest.fixture
def zoo_copy(tmp_path, monkeypatch):
    """A private, writable copy of the tiny zoo (for tests that damage it)."""
    root = tmp_path / "zoo"
    shutil.copytree(published_zoo(), root)
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(root))
    return root


@functools.lru_cache(maxsize=None)
def cifar_folder():
    """Root of the CIFAR-10 JPEG copy (repo data/ or extracted from the shared archive), or None."""
    in_repo = REPO / "data" / "cifar10-jpeg"
    if (in_repo / "test").is_dir():
        return in_repo
    if not CIFAR_ARCHIVE.is_file():
        return None
    root = _scratch_dir("keras_preact_cifar_")
    with tarfile.open(CIFAR_ARCHIVE) as archive:  # ~55 MB; keras_preact.data wants both splits.
        archive.extractall(root, filter="data")
    found = [path.parent for path in root.rglob("test") if path.is_dir()]
    return found[0] if found else None


def cifar_jpegs(count):
    """Bytes of `count` CIFAR-10 test JPEGs, read without unpacking the archive; or skip."""
    in_repo = REPO / "data" / "cifar10-jpeg" / "test"
    if in_repo.is_dir():
        return [path.read_bytes() for path in sorted(in_repo.rglob("*.jpg"))[:count]]
    if not CIFAR_ARCHIVE.is_file():
        pytest.skip(CIFAR_MISSING)
    found = []
    with tarfile.open(CIFAR_ARCHIVE) as archive:
        for member in archive:
            if member.isfile() and member.name.startswith("test/") and member.name.endswith(".jpg"):
                found.append(archive.extractfile(member).read())
                if len(found) == count:
                    break
    return found

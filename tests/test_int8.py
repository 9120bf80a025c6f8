"""int8 exports (`keras-preact export --format onnx|openvino|litert --int8`, issue 37).

`resnetv2_20_cifar10` is quantized through the CLI on 64 training images of the CIFAR-10
JPEG copy (CI cost: about 15-25 s per runtime), then run, as tests/test_runtimes.py runs the
float exports, in a fresh process in which `import keras`, `import keras_preact` and
`import tensorflow` fail. Each int8 model must return float32 probabilities that sum to 1,
give the Keras model's top-1 class on at least 95% of the 500-image CI slice of the test
split, and reject bad input as the float exports do. Calibration must refuse the test split.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_preact import cli, quantization, runtimes
from test_runtimes import (  # noqa: F401 (fixtures)
    CIFAR_MODEL,
    assert_rejects_bad_input,
    cifar_keras,
    cifar_slice,
    serve_in_fresh_process,
    work,
)
from test_zoo_support import CIFAR_ARCHIVE, CIFAR_MISSING, ZOO_NAME, cifar_folder, image_folder, tiny_zoo  # noqa: F401

INT8_FORMATS = ("onnx", "openvino", "litert")
CALIBRATION_COUNT = 64
MIN_AGREEMENT = 0.95
_SERVED = {}


def served_int8(fmt, work, cifar_slice):
    """Export `fmt --int8` through the CLI and serve it on the CI slice in a keras-free process."""
    if fmt in _SERVED:
        return _SERVED[fmt]
    folder = work / f"int8_{fmt}"
    folder.mkdir()
    export = folder / "export"
    status = cli.main(["export", "--model", CIFAR_MODEL, "--format", fmt, "--int8",
                       "--calibration", f"folder:{CIFAR_ARCHIVE}",
                       "--calibration_count", str(CALIBRATION_COUNT), "--out", str(export)])
    assert status == cli.EXIT_OK
    np.save(folder / "cifar.npy", cifar_slice[0])
    report, outputs = serve_in_fresh_process(
        fmt, folder, [{"name": "cifar", "export": str(export), "images": str(folder / "cifar.npy")}])
    _SERVED[fmt] = (report, outputs["cifar"], export)
    return _SERVED[fmt]


@pytest.fixture
def cifar(cifar_slice):
    if cifar_slice is None:
        pytest.skip(CIFAR_MISSING)
    return cifar_slice


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_int8_export_serves_without_keras_and_agrees_with_the_float_model(fmt, work, cifar, cifar_keras):
    from keras_preact import zoo

    report, outputs, export = served_int8(fmt, work, cifar)
    assert report["leaked"] == []
    probabilities = outputs["all"]
    assert probabilities.dtype == np.float32 and probabilities.shape == cifar_keras.shape
    for key in ("one", "five", "all"):
        np.testing.assert_allclose(outputs[key].sum(-1), 1.0, atol=runtimes.INT8_SUM_TOLERANCE)
        assert (outputs[key] >= 0).all()
    # N = 1 and N = 5 answer what the whole batch answers for the same images.
    np.testing.assert_allclose(outputs["one"], probabilities[:1], atol=1e-3)
    np.testing.assert_allclose(outputs["five"], probabilities[:5], atol=1e-3)
    agreement = float((probabilities.argmax(-1) == cifar_keras.argmax(-1)).mean())
    top1 = float((probabilities.argmax(-1) == cifar[1]).mean())
    print(f"int8 {fmt}: {CIFAR_MODEL} on the CIFAR-10 (JPEG q75 copy) CI slice: top-1 agreement with Keras "
          f"{agreement:.3f}, top-1 {top1:.3f}, max |difference| {np.abs(probabilities - cifar_keras).max():.3f}")
    assert agreement >= MIN_AGREEMENT, agreement
    card_top1 = zoo.get_card(CIFAR_MODEL)["evaluation"]["ci_slice"]["top1"]
    assert abs(top1 - card_top1) <= 0.02, (top1, card_top1)
    # Quantized for real: int8 weights make the artifact much smaller than float32 (about 1.1 MB).
    size = sum(f.stat().st_size for f in export.iterdir() if f.name.startswith("model.")
               and f.suffix != ".json")
    assert size < 0.5 * zoo.get_card(CIFAR_MODEL)["params"] * 4, size


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_int8_export_rejects_bad_input_as_the_float_exports_do(fmt, work, cifar):
    report, _, _ = served_int8(fmt, work, cifar)
    assert_rejects_bad_input(fmt, report, classes=10)


@pytest.mark.parametrize("fmt", INT8_FORMATS)
def test_int8_export_records_its_calibration_set(fmt, work, cifar):
    _, _, export = served_int8(fmt, work, cifar)
    info = json.loads((export / runtimes.INFO_FILE).read_text())
    assert info["precision"] == "int8" and info["quantization"] == quantization.RECORD_FILE
    record = json.loads((export / quantization.RECORD_FILE).read_text())
    assert record["precision"] == "int8" and record["format"] == fmt and record["method"]
    calibration = record["calibration"]
    assert calibration["split"] == "train" and calibration["count"] == CALIBRATION_COUNT
    assert calibration["seed"] == quantization.DEFAULT_SEED
    assert calibration["dataset"].startswith("folder:") and calibration["dataset"].endswith(CIFAR_ARCHIVE.name)
    assert len(calibration["files_sha256"]) == 64
    assert record["check"]["num_examples"] == CALIBRATION_COUNT
    assert record["check"]["top1_agreement_calibration"] >= runtimes.INT8_MIN_AGREEMENT


def test_calibration_set_is_a_seeded_sample_of_the_training_split():
    root = cifar_folder()
    if root is None:
        pytest.skip(CIFAR_MISSING)
    first = quantization.calibration_set(f"folder:{root}", height=32, width=32, count=8, seed=3)
    again = quantization.calibration_set(f"folder:{root}", height=32, width=32, count=8, seed=3)
    other = quantization.calibration_set(f"folder:{root}", height=32, width=32, count=8, seed=4)
    assert first.images.shape == (8, 32, 32, 3) and first.images.dtype == np.uint8
    np.testing.assert_array_equal(first.images, again.images)
    assert first.record == again.record and first.record["files_sha256"] != other.record["files_sha256"]
    # The hash is of the chosen training files' relative paths: recompute it from the seed.
    import os

    files = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, names in os.walk(Path(root, "train"))
                   for f in names if f.lower().endswith((".jpg", ".jpeg", ".png")))
    chosen = np.sort(np.random.default_rng(3).choice(len(files), 8, replace=False))
    listing = "\n".join(files[i] for i in chosen)
    assert all(files[i].startswith("train/") for i in chosen)
    assert first.record["files_sha256"] == hashlib.sha256(listing.encode()).hexdigest()


def test_calibration_refuses_the_test_split(tiny_zoo, tmp_path, capsys):
    root = image_folder()
    with pytest.raises(ValueError, match="training split only, not 'test'"):
        quantization.calibration_set(f"folder:{root}", height=32, width=32, count=2, split="test")
    with pytest.raises(ValueError, match="training split only, not 'test'"):
        quantization.calibration_set(f"folder:{root / 'test'}", height=32, width=32, count=2)
    out = tmp_path / "out"
    status = cli.main(["export", "--model", ZOO_NAME, "--format", "onnx", "--int8",
                       "--calibration", f"folder:{root / 'test'}", "--out", str(out)])
    assert status == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "training split only, not 'test'" in error, error
    assert not out.exists()
    # The training split of the same folder is accepted (3 images: one per class).
    calibration = quantization.calibration_set(f"folder:{root}", height=32, width=32, count=3)
    assert calibration.record["split"] == "train" and calibration.images.shape == (3, 32, 32, 3)
    with pytest.raises(ValueError, match="has 3 training images"):
        quantization.calibration_set(f"folder:{root}", height=32, width=32, count=4)


def test_int8_flags_are_refused_where_they_do_not_apply(tiny_zoo, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["export", "--model", ZOO_NAME, "--int8", "--out", str(out)]) == cli.EXIT_USAGE
    assert "--int8 is available for --format onnx, openvino, litert" in capsys.readouterr().err
    assert cli.main(["export", "--model", ZOO_NAME, "--format", "onnx", "--calibration", "folder:x",
                     "--out", str(out)]) == cli.EXIT_USAGE
    assert "go with --int8" in capsys.readouterr().err
    # Without --calibration, the card's own dataset (here: the tiny test folder, 3 training images).
    assert cli.main(["export", "--model", ZOO_NAME, "--format", "onnx", "--int8", "--out", str(out)]) \
        == cli.EXIT_USAGE
    assert "has 3 training images; the calibration set asks for 512" in capsys.readouterr().err
    assert not out.exists()
    from test_zoo_support import trained_model

    with pytest.raises(ValueError, match="an int8 export needs training images to calibrate on"):
        runtimes.export_model(trained_model(), out, "onnx", class_names=["a", "b", "c"], int8=True)


def test_a_missing_quantizer_is_one_line_naming_the_extra(tiny_zoo, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nncf", None)  # as if not installed; openvino itself is
    out = tmp_path / "out"
    assert cli.main(["export", "--model", ZOO_NAME, "--format", "openvino", "--int8",
                     "--calibration", f"folder:{image_folder()}", "--out", str(out)]) == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    assert "--int8 needs nncf" in error and error.endswith('pip install "keras-preact[openvino]"'), error
    assert not out.exists()
    # The float export does not need it.
    assert runtimes.missing_modules("openvino") == [] and runtimes.missing_modules("openvino", int8=True) == ["nncf"]

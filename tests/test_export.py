"""The exported SavedModel: its signatures, TensorFlow-only loading, and saved_model_cli."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_preact import export
from keras_preact.training.run_dir import read_run
from test_zoo_support import (  # noqa: F401 (fixtures)
    CLASS_NAMES,
    ZOO_NAME,
    encode_image,
    random_pixels,
    run_dir,
    tiny_zoo,
    trained_model,
)

SAVED_MODEL_CLI = Path(sys.executable).parent / "saved_model_cli"
PROBABILITY_TOLERANCE = 1e-5


def saved_model_dir(zoo_root):
    """The tiny zoo model's SavedModel, exported on demand (once: it is cached)."""
    from keras_preact.export import zoo_saved_model

    return zoo_saved_model(ZOO_NAME)


def sample_images(count=4, height=32, width=32):
    return np.stack([random_pixels(seed, height, width) for seed in range(count)])


def run_tool(*args, **kwargs):
    """Run a command, failing the test with its output if it fails."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=180, **kwargs)
    assert result.returncode == 0, f"{args[:3]} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_saved_model_cli_lists_both_signatures(tiny_zoo):
    shown = run_tool(str(SAVED_MODEL_CLI), "show", "--dir", str(saved_model_dir(tiny_zoo)), "--all")
    default = shown[shown.index("signature_def['serving_default']"):]
    by_bytes = shown[shown.index("signature_def['serving_bytes']"):]
    assert "inputs['images']" in default and "DT_UINT8" in default
    assert "shape: (-1, -1, -1, 3)" in default
    assert "inputs['image_bytes']" in by_bytes and "DT_STRING" in by_bytes
    for output in export.OUTPUT_NAMES:
        assert f"outputs['{output}']" in default.split("signature_def[")[1]
        assert f"outputs['{output}']" in by_bytes.split("signature_def[")[1]
    assert f"shape: (-1, {len(CLASS_NAMES)})" in default
    assert "tensorflow/serving/predict" in default


TENSORFLOW_ONLY_SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["keras"] = None          # `import keras` now fails: TensorFlow alone must do.
    sys.modules["keras_preact"] = None
    import numpy as np
    import tensorflow as tf

    saved_model, work = sys.argv[1], sys.argv[2]
    loaded = tf.saved_model.load(saved_model)
    images = np.load(f"{work}/images.npy")
    by_pixels = loaded.signatures["serving_default"](images=tf.constant(images))
    pngs = [open(f"{work}/{i}.png", "rb").read() for i in range(len(images))]
    by_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.constant(pngs))
    np.save(f"{work}/by_pixels.npy", by_pixels["probabilities"].numpy())
    np.save(f"{work}/by_bytes.npy", by_bytes["probabilities"].numpy())
    np.save(f"{work}/names.npy", by_bytes["top_k_class_names"].numpy().astype(str))
    leaked = [m for m in sys.modules if m.split(".")[0] in ("keras", "keras_preact")
              and sys.modules[m] is not None]
    assert not leaked, leaked
    print("TENSORFLOW-ONLY OK")
""")


def test_tensorflow_only_process_matches_keras(tiny_zoo, tmp_path):
    images = sample_images()
    np.save(tmp_path / "images.npy", images)
    for index, pixels in enumerate(images):
        (tmp_path / f"{index}.png").write_bytes(encode_image(pixels, "PNG"))
    script = tmp_path / "serve.py"
    script.write_text(TENSORFLOW_ONLY_SCRIPT)
    output = run_tool(sys.executable, str(script), str(saved_model_dir(tiny_zoo)), str(tmp_path))
    assert "TENSORFLOW-ONLY OK" in output

    expected = trained_model().predict(images.astype("float32"), verbose=0)
    for name in ("by_pixels", "by_bytes"):
        served = np.load(tmp_path / f"{name}.npy")
        assert served.dtype == np.float32 and served.shape == expected.shape
        np.testing.assert_allclose(served, expected, atol=PROBABILITY_TOLERANCE, rtol=0)
    best = np.argsort(-expected, axis=-1, kind="stable")[:, :3]
    np.testing.assert_array_equal(np.load(tmp_path / "names.npy"), np.array(CLASS_NAMES)[best])


@pytest.mark.slow  # two saved_model_cli processes; test_tensorflow_only_process_matches_keras runs both signatures
def test_saved_model_cli_runs_both_signatures(tiny_zoo, tmp_path):
    images = sample_images(count=2)
    np.save(tmp_path / "images.npy", images)
    encoded = np.array([encode_image(pixels, "PNG") for pixels in images], dtype=object)
    np.save(tmp_path / "bytes.npy", encoded, allow_pickle=True)
    expected = trained_model().predict(images.astype("float32"), verbose=0)
    for signature, inputs in (("serving_default", "images"), ("serving_bytes", "image_bytes")):
        outdir = tmp_path / signature
        source = "images.npy" if inputs == "images" else "bytes.npy"
        run_tool(
            str(SAVED_MODEL_CLI), "run", "--dir", str(saved_model_dir(tiny_zoo)),
            "--tag_set", "serve", "--signature_def", signature,
            "--inputs", f"{inputs}={tmp_path / source}", "--outdir", str(outdir),
        )
        probabilities = np.load(outdir / "probabilities.npy")
        np.testing.assert_allclose(probabilities, expected, atol=PROBABILITY_TOLERANCE, rtol=0)
        assert np.load(outdir / "top_k_classes.npy").shape == (2, len(CLASS_NAMES))


def test_other_image_sizes_are_resized_in_graph(tiny_zoo):
    loaded = tf.saved_model.load(str(saved_model_dir(tiny_zoo)))
    large = sample_images(count=2, height=57, width=41)
    served = loaded.signatures["serving_default"](images=tf.constant(large))["probabilities"]
    resized = tf.image.resize(large.astype("float32"), (32, 32), antialias=True).numpy()
    expected = trained_model().predict(resized, verbose=0)
    np.testing.assert_allclose(served.numpy(), expected, atol=PROBABILITY_TOLERANCE, rtol=0)


def test_top_k_is_capped_at_the_class_count_and_sorted(tiny_zoo):
    loaded = tf.saved_model.load(str(saved_model_dir(tiny_zoo)))
    outputs = loaded.signatures["serving_default"](images=tf.constant(sample_images(3)))
    top = outputs["top_k_probabilities"].numpy()
    assert top.shape == (3, len(CLASS_NAMES))  # 3 classes < 5.
    assert np.all(np.diff(top, axis=-1) <= 0)
    np.testing.assert_allclose(outputs["probabilities"].numpy().sum(-1), 1.0, atol=1e-5)
    assert outputs["top_k_class_names"].dtype == tf.string


def test_logits_model_exports_probabilities(tmp_path):
    import keras_preact

    model = keras_preact.build_variant("resnet_20", depth=8, classes=6, classifier_activation=None)
    path = export.export_model(model, tmp_path / "sm", class_names=list("abcdef"))
    images = sample_images(2)
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=images)
    logits = model.predict(images.astype("float32"), verbose=0)
    expected = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5, rtol=0)
    assert served["top_k_classes"].shape == (2, 5)


def test_export_rejects_models_it_cannot_serve(tmp_path):
    import keras_preact

    raw = keras_preact.build_variant("resnet_20", depth=8, classes=3, include_preprocessing=False)
    with pytest.raises(ValueError, match="include_preprocessing=True"):
        export.export_model(raw, tmp_path / "a", class_names=CLASS_NAMES)
    headless = keras_preact.build_variant("resnet_20", depth=8, include_top=False, pooling="avg")
    with pytest.raises(ValueError, match="include_top=True"):
        export.export_model(headless, tmp_path / "b", class_names=CLASS_NAMES)
    model = keras_preact.build_variant("resnet_20", depth=8, classes=3)
    with pytest.raises(ValueError, match="3 classes but 2 class names"):
        export.export_model(model, tmp_path / "c", class_names=["x", "y"])
    assert not any(tmp_path.iterdir()), "nothing may be written when the export is refused"


def test_read_run_names_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="no run.json"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"model": "resnet_20"}))
    with pytest.raises(ValueError, match="lacks the keys"):
        read_run(tmp_path)
    record = json.loads((run_dir() / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match="final.weights.h5"):
        read_run(tmp_path)

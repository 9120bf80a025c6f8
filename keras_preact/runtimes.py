"""Export a keras-preact classifier for ONNX Runtime, OpenVINO or LiteRT, and run what was exported.

    keras-preact export --model NAME --format onnx|openvino|litert --out DIR

Every format takes the same input and gives the same output as the SavedModel's
`serving_default`, less what a format cannot hold:

- input `images`: uint8 `[N, H, W, 3]` RGB pixels 0..255 at the model's own size
  (32x32 for the CIFAR zoo), any N (the batch dimension is dynamic). The
  normalization the model was trained with runs inside the artifact. Unlike the
  SavedModel there is no in-graph resize and no JPEG/PNG input: resize and decode
  on the client.
- output `probabilities`: float32 `[N, classes]`, softmax over the classes in label order.

This module writes the exports; keras_preact/formats.py, which it re-exports (`EXPORT_FORMATS`,
`INPUT_NAME`, `require`, `load_predictor`, ...), holds the format constants, the float
converters and the code that runs an export.

`DIR` gets the artifact (`model.onnx`; `model.xml` + `model.bin`; `model.tflite`)
and `model_info.json` (format, input, output, class names, the runtime version the
export was checked with). Each export is checked before it is reported written:
the artifact runs in its own runtime on 1 and 5 images and must give the Keras
model's probabilities within `AGREEMENT_TOLERANCE`.

`load_predictor(DIR)` runs an exported artifact, checking every batch first
(`check_pixels`); both are formats.py's, which tests/test_runtimes.py runs loaded by path
in a process without Keras, TensorFlow or keras_preact.

`--int8` (`export_model(..., int8=True, calibration=...)`) writes a post-training int8
model instead, quantized by the runtime's own tool and calibrated on training images
(keras_preact/quantization.py): same input and output, plus `quantization.json`, the record
of the method and the calibration set. Its check is looser (int8 changes the numbers): it
must run on 1 and 5 images, give probabilities that sum to 1, and give the Keras model's
top-1 class on at least `INT8_MIN_AGREEMENT` of the calibration images.

Imports go one way: formats <- quantization <- runtimes, and runtimes also builds on
export (the SavedModel, the exportable checks), the zoo store (`export_zoo_model`) and
`keras_preact.training.run_dir` (`export_run`).
"""

import json
import os
from pathlib import Path

import keras
import numpy as np

from keras_preact import export, quantization, store
from keras_preact.formats import (  # noqa: F401 (re-exported: keras_preact.runtimes.load_predictor, ...)
    ARTIFACTS,
    EXPORTERS,
    EXTRA_MODULES,
    EXPORT_FORMATS,
    INFO_FILE,
    INPUT_NAME,
    INT8_MODULES,
    OPENVINO_CONFIG,
    OUTPUT_NAME,
    RUNTIME_DISTRIBUTIONS,
    RUNTIME_NAMES,
    MissingExtraError,
    Predictor,
    check_pixels,
    export_litert,
    export_onnx,
    export_openvino,
    find_artifact,
    load_predictor,
    missing_modules,
    require,
    runtime_version,
)
from keras_preact.models.data_format import channels_last_twin
from keras_preact.models.registry import load_zoo_model
from keras_preact.training.run_dir import RUN_FILE, build_trained_model, read_run

AGREEMENT_TOLERANCE = 1e-4
# An int8 export must give the Keras model's top-1 class on this share of its calibration images.
INT8_MIN_AGREEMENT = 0.9
INT8_SUM_TOLERANCE = 1e-3  # |sum of an image's probabilities - 1|: the Softmax stays float in int8 exports


# --- Export -------------------------------------------------------------------------------


def pixel_model(model):
    """`model` wrapped to take uint8 pixels and give probabilities: what every format exports.

    uint8 `[N, H, W, 3]` -> cast to float32 -> `model` (its `ImageNormalization`
    normalizes) -> softmax if the model ends in logits -> `{"probabilities": ...}`.
    """
    height, width, _ = export.check_exportable(model, class_names=_placeholder_names(model))
    to_probabilities = export.probabilities_fn(model)

    class Pixels(keras.layers.Layer):
        """uint8 -> float32: the pixels keep their 0..255 values."""

        def call(self, images):
            return keras.ops.cast(images, "float32")

    class Probabilities(keras.layers.Layer):
        def call(self, scores):
            return to_probabilities(keras.ops.cast(scores, "float32"))

    images = keras.Input((height, width, 3), dtype="uint8", name=INPUT_NAME)
    probabilities = Probabilities(name=OUTPUT_NAME)(model(Pixels(name="to_float32")(images), training=False))
    return keras.Model(images, {OUTPUT_NAME: probabilities}, name=f"{model.name}_pixels")


def _placeholder_names(model):
    return [str(i) for i in range(int(model.outputs[0].shape[-1]))]


def export_model(model, out_dir, fmt, *, class_names, source=None, check=True, int8=False,
                 calibration=None):
    """Write `model` to `out_dir` in format `fmt`; return the artifact's path.

    Args:
        model: keras.Model. A keras-preact classifier, as `export.export_model` takes.
        out_dir: str or Path. Folder to write into (created).
        fmt: "saved_model", "onnx", "openvino" or "litert".
        class_names: list of str, in label order.
        source: str or None. What was exported (a zoo name, a run directory), for model_info.json.
        check: bool. Run the artifact on 1 and 5 images and compare with Keras (default True;
            benchmarks that measure the agreement themselves turn it off).
        int8: bool. Post-training static int8 quantization with the runtime's own tool
            (onnx, openvino, litert; keras_preact/quantization.py).
        calibration: with int8, a `quantization.Calibration` (training images and their
            record), or a dataset ("folder:PATH", a tfds name) whose training split gives
            `quantization.DEFAULT_COUNT` seeded images.

    Raises:
        MissingExtraError: the format's packages are not installed.
        ValueError: the model cannot be exported (see `export.export_model`), or the
            artifact does not reproduce the Keras model's probabilities.
    """
    require(fmt, int8)
    # NHWC pixels in, whatever the model's data format: a channels_first model goes as its twin.
    model = channels_last_twin(model)
    if fmt == "saved_model":
        return export.export_model(model, out_dir, class_names=class_names)
    export.check_exportable(model, class_names)
    height, width, _ = (int(d) for d in model.inputs[0].shape[1:])
    if int8:
        if calibration is None:
            raise ValueError("an int8 export needs training images to calibrate on: pass a dataset "
                             "(--calibration folder:PATH) whose train/ split is sampled.")
        if not isinstance(calibration, quantization.Calibration):
            calibration = quantization.calibration_set(calibration, height=height, width=width)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if int8:
        path = quantization.QUANTIZERS[fmt](pixel_model(model), out_dir / ARTIFACTS[fmt], calibration)
        checked = _check_int8(model, out_dir, fmt, calibration.images) if check else {}
        difference = checked.get("max_abs_diff_vs_keras")
        quantization.write_record(out_dir, fmt, calibration, check=checked or None)
    else:
        path = EXPORTERS[fmt](pixel_model(model), out_dir / ARTIFACTS[fmt])
        difference = _check_against_keras(model, out_dir, fmt, height, width) if check else None
    info = {
        "format": fmt,
        "file": ARTIFACTS[fmt],
        "source": source,
        "input": {"name": INPUT_NAME, "dtype": "uint8", "shape": [None, height, width, 3],
                  "description": f"RGB pixels 0..255 at {height}x{width} (resize on the client); "
                                 "normalization is inside the model"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, len(class_names)],
                   "description": "softmax probabilities, in label order"},
        "class_names": [str(name) for name in class_names],
        "checked_with": runtime_version(fmt) if check else None,
        "max_abs_diff_vs_keras": difference,
    }
    if fmt == "openvino":
        info["compile_config"] = OPENVINO_CONFIG
    info["precision"] = "int8" if int8 else "float32"
    if int8:
        info["quantization"] = "quantization.json"
    (out_dir / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    return path


def _check_int8(model, out_dir, fmt, calibration_images):
    """Run an int8 export on 1, 5 and the calibration images; ValueError if it is not the model any more.

    Returns {"max_abs_diff_vs_keras", "top1_agreement_calibration", "num_examples"}.
    """
    expected = keras_probabilities(model, calibration_images)
    try:
        predict = load_predictor(out_dir, fmt)
        one, five = predict(calibration_images[:1]), predict(calibration_images[:5])
        every = np.concatenate([predict(calibration_images[i:i + 256])
                                for i in range(0, len(calibration_images), 256)])
    except Exception as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"The int8 {fmt} export in {out_dir} does not run in {runtime_version(fmt)}: "
                         f"{first_line}") from error
    if one.shape != expected[:1].shape or five.shape != expected[:5].shape:
        raise ValueError(f"The int8 {fmt} export in {out_dir} answers shapes {one.shape} and {five.shape} "
                         f"for 1 and 5 images; the Keras model answers {expected.shape[1:]} per image.")
    sums = float(np.abs(every.sum(-1) - 1).max())
    agreement = float((every.argmax(-1) == expected.argmax(-1)).mean())
    if not sums <= INT8_SUM_TOLERANCE or not agreement >= INT8_MIN_AGREEMENT:
        raise ValueError(
            f"The int8 {fmt} export in {out_dir} is not the model any more: top-1 agrees with Keras on "
            f"{100 * agreement:.1f}% of the {len(every)} calibration images (at least "
            f"{100 * INT8_MIN_AGREEMENT:.0f}% expected), probabilities sum to 1 within {sums:.1e}. Try more "
            "calibration images, or report this with your runtime versions.")
    return {"max_abs_diff_vs_keras": float(np.abs(every - expected).max()),
            "top1_agreement_calibration": round(agreement, 4), "num_examples": int(len(every))}


def _check_against_keras(model, out_dir, fmt, height, width):
    """Max |probability difference| of the artifact vs Keras on 1 and 5 images; ValueError past the tolerance."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, height, width, 3), dtype=np.uint8)
    expected = keras_probabilities(model, images)
    try:
        predict = load_predictor(out_dir, fmt)
        one, five = predict(images[:1]), predict(images)
    except Exception as error:  # each runtime raises its own types; the user needs one line
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"The {fmt} export in {out_dir} does not run in {runtime_version(fmt)}: "
                         f"{first_line}") from error
    if one.shape != expected[:1].shape or five.shape != expected.shape:
        raise ValueError(f"The {fmt} export in {out_dir} answers shapes {one.shape} and {five.shape} "
                         f"for 1 and 5 images; the Keras model answers {expected.shape[1:]} per image.")
    difference = float(max(np.abs(one - expected[:1]).max(), np.abs(five - expected).max()))
    if not difference <= AGREEMENT_TOLERANCE:
        raise ValueError(
            f"The {fmt} export in {out_dir} does not reproduce the Keras model: max |probability "
            f"difference| {difference:.2e} > {AGREEMENT_TOLERANCE}. Please report this with your "
            "runtime versions."
        )
    return difference


def keras_probabilities(model, images):
    """The Keras model's probabilities for uint8 `images` (softmax applied to a logits model)."""
    scores = model.predict(np.asarray(images, dtype=np.float32), verbose=0)
    return np.asarray(export.probabilities_fn(model)(scores), dtype=np.float32)


def export_zoo_model(name, out_dir, fmt, *, int8=False, calibration=None, calibration_count=None):
    """Export zoo model `name` (weights verified against its card) as `fmt`; return the artifact's path.

    int8: calibrated on `calibration` (a dataset; default: the card's dataset, when it is here),
    `calibration_count` training images (default `quantization.DEFAULT_COUNT`).
    """
    card = store.get_card(name)
    model = load_zoo_model(name)
    if int8:
        calibration = _calibration(model, calibration, calibration_count,
                                   card.get("evaluation", {}).get("dataset"), f"zoo model {name}'s card")
    return export_model(model, out_dir, fmt, class_names=card["class_names"], source=f"zoo:{name}",
                        int8=int8, calibration=calibration)


def export_run(model_dir, out_dir, fmt, *, int8=False, calibration=None, calibration_count=None):
    """Export a training run directory's final weights as `fmt`; return the artifact's path (int8: as above)."""
    run = read_run(model_dir)
    model = build_trained_model(run)
    if int8:
        calibration = _calibration(model, calibration, calibration_count, run.record.get("dataset"),
                                   f"{Path(model_dir) / RUN_FILE}")
    return export_model(model, out_dir, fmt, class_names=run.class_names,
                        source=f"run:{Path(model_dir).name}", int8=int8, calibration=calibration)


def _calibration(model, dataset, count, default, where):
    """The calibration set of `dataset` (or the recorded `default` dataset, when it exists here)."""
    if dataset is None:
        readable = default and (not default.startswith("folder:") or os.path.exists(default[len("folder:"):]))
        if not readable:
            raise ValueError(
                "--int8 needs training images to calibrate on: pass --calibration folder:PATH (a "
                f"PATH/train/<class>/*.jpg tree or its .tar.gz)"
                + (f"; the dataset {where} names, {default}, is not here." if default else "."))
        dataset = default
    height, width, _ = (int(d) for d in model.inputs[0].shape[1:])
    return quantization.calibration_set(dataset, height=height, width=width,
                                        count=quantization.DEFAULT_COUNT if count is None else count)

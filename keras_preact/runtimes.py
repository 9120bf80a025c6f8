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

`DIR` gets the artifact (`model.onnx`; `model.xml` + `model.bin`; `model.tflite`)
and `model_info.json` (format, input, output, class names, the runtime version the
export was checked with). Each export is checked before it is reported written:
the artifact runs in its own runtime on 1 and 5 images and must give the Keras
model's probabilities within `AGREEMENT_TOLERANCE`.

`load_predictor(DIR)` runs an exported artifact. It checks every batch first
(`check_pixels`), so a wrong rank, channel count, size or dtype, or encoded image
bytes, fail with one clear ValueError instead of whatever the runtime does (LiteRT's
signature runner, for one, silently resizes its input to any shape), and answers an
empty batch with zero rows, as the SavedModel does. The running half of this module
uses only NumPy and the format's runtime (TensorFlow for a SavedModel): this file
works loaded by path in a process without Keras, TensorFlow or keras_preact, as
tests/test_runtimes.py runs it (importing it as `keras_preact.runtimes` imports the
package, and so Keras).

`--int8` (`export_model(..., int8=True, calibration=...)`) writes a post-training int8
model instead, quantized by the runtime's own tool and calibrated on training images
(keras_preact/quantization.py): same input and output, plus `quantization.json`, the record
of the method and the calibration set. Its check is looser (int8 changes the numbers): it
must run on 1 and 5 images, give probabilities that sum to 1, and give the Keras model's
top-1 class on at least `INT8_MIN_AGREEMENT` of the calibration images.

OpenVINO's CPU plugin runs in bfloat16 by default on CPUs with AVX512_BF16 or AMX;
`load_predictor` compiles with `INFERENCE_PRECISION_HINT=f32`, without which the
probabilities of the CIFAR zoo models differ from Keras' by up to 0.035.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np

FORMATS = ("saved_model", "onnx", "openvino", "litert")
INPUT_NAME = "images"
OUTPUT_NAME = "probabilities"
INFO_FILE = "model_info.json"
ARTIFACTS = {"onnx": "model.onnx", "openvino": "model.xml", "litert": "model.tflite"}
# The Python modules each format needs to be exported and checked, by the extra that installs them.
EXTRA_MODULES = {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "openvino": ("openvino",),
                 "litert": ("ai_edge_litert",)}
# The distribution that runs each format (its version goes into model_info.json and the cards).
RUNTIME_DISTRIBUTIONS = {"saved_model": "tensorflow-cpu", "onnx": "onnxruntime", "openvino": "openvino",
                         "litert": "ai-edge-litert"}
RUNTIME_NAMES = {"saved_model": "TF SavedModel", "onnx": "ONNX Runtime", "openvino": "OpenVINO",
                 "litert": "LiteRT"}
AGREEMENT_TOLERANCE = 1e-4
# An int8 export must give the Keras model's top-1 class on this share of its calibration images.
INT8_MIN_AGREEMENT = 0.9
INT8_SUM_TOLERANCE = 1e-3  # |sum of an image's probabilities - 1|: the Softmax stays float in int8 exports
# The modules the int8 path needs beyond the format's own (keras_preact/quantization.py), by extra.
INT8_MODULES = {"onnx": ("onnxruntime.quantization",), "openvino": ("nncf",), "litert": ("tensorflow",)}
OPENVINO_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}


class MissingExtraError(ValueError):
    """A format's converter or runtime is not installed; the message is the one line to fix it."""


def _installed(module):
    if module in sys.modules:
        return sys.modules[module] is not None  # None: blocked (as tests block a package)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(fmt, int8=False):
    """The modules `fmt` (its int8 export when `int8`) needs that are not installed (empty: it can be used)."""
    names = EXTRA_MODULES.get(fmt, ()) + (INT8_MODULES.get(fmt, ()) if int8 else ())
    return [name for name in dict.fromkeys(names) if not _installed(name)]


def require(fmt, int8=False):
    """Raise MissingExtraError (one line: which extra to install) unless `fmt` (`--int8`) can be used."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; valid formats are {', '.join(FORMATS)}.")
    if int8 and fmt not in INT8_MODULES:
        raise ValueError(f"--int8 is available for --format {', '.join(INT8_MODULES)}, not {fmt}.")
    missing = missing_modules(fmt, int8)
    if missing:
        raise MissingExtraError(
            f"--format {fmt}{' --int8' if int8 else ''} needs {' and '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not installed: "
            f'pip install "keras-preact[{fmt}]"'
        )


def runtime_version(fmt):
    """'onnxruntime 1.32.0': the installed package that runs `fmt`, or None."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("tensorflow-cpu", "tensorflow") if fmt == "saved_model" else (RUNTIME_DISTRIBUTIONS[fmt],)
    for name in names:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return None


# --- Export -------------------------------------------------------------------------------


def pixel_model(model):
    """`model` wrapped to take uint8 pixels and give probabilities: what every format exports.

    uint8 `[N, H, W, 3]` -> cast to float32 -> `model` (its `ImageNormalization`
    normalizes) -> softmax if the model ends in logits -> `{"probabilities": ...}`.
    """
    import keras

    from keras_preact import export

    height, width, _ = export._check_exportable(model, class_names=_placeholder_names(model))
    to_probabilities = export._probabilities_fn(model)

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


def _input_signature(height, width):
    import tensorflow as tf

    return [tf.TensorSpec([None, height, width, 3], tf.uint8, name=INPUT_NAME)]


def export_onnx(wrapped, path):
    """ONNX via Keras' `model.export(format="onnx")` (tf2onnx), default opset."""
    import logging
    import warnings

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    _, height, width, _ = wrapped.inputs[0].shape
    with warnings.catch_warnings():  # Keras' numpy-2 patch of tf2onnx touches np.object
        warnings.simplefilter("ignore", FutureWarning)
        wrapped.export(str(path), format="onnx", verbose=False,
                       input_signature=_input_signature(height, width))
    return path


def export_openvino(wrapped, path):
    """OpenVINO IR (`.xml` + `.bin`, float32 weights) via Keras' `model.export(format="openvino")`."""
    _, height, width, _ = wrapped.inputs[0].shape
    wrapped.export(str(path), format="openvino", verbose=False,
                   input_signature=_input_signature(height, width))
    return path


def export_litert(wrapped, path):
    """A `.tflite` flatbuffer (builtin ops, float32) via Keras' `model.export(format="litert")`."""
    _, height, width, _ = wrapped.inputs[0].shape
    wrapped.export(str(path), format="litert", verbose=False,
                   input_signature=_input_signature(height, width))
    return path


EXPORTERS = {"onnx": export_onnx, "openvino": export_openvino, "litert": export_litert}


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
    from keras_preact import export

    require(fmt, int8)
    if fmt == "saved_model":
        return export.export_model(model, out_dir, class_names=class_names)
    export._check_exportable(model, class_names)
    height, width, _ = (int(d) for d in model.inputs[0].shape[1:])
    if int8:
        from keras_preact import quantization

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
    from keras_preact import export

    scores = model.predict(np.asarray(images, dtype=np.float32), verbose=0)
    return np.asarray(export._probabilities_fn(model)(scores), dtype=np.float32)


def export_zoo_model(name, out_dir, fmt, *, int8=False, calibration=None, calibration_count=None):
    """Export zoo model `name` (weights verified against its card) as `fmt`; return the artifact's path.

    int8: calibrated on `calibration` (a dataset; default: the card's dataset, when it is here),
    `calibration_count` training images (default `quantization.DEFAULT_COUNT`).
    """
    from keras_preact import zoo

    card = zoo.get_card(name)
    model = zoo.load_model(name)
    if int8:
        calibration = _calibration(model, calibration, calibration_count,
                                   card.get("evaluation", {}).get("dataset"), f"zoo model {name}'s card")
    return export_model(model, out_dir, fmt, class_names=card["class_names"], source=f"zoo:{name}",
                        int8=int8, calibration=calibration)


def export_run(model_dir, out_dir, fmt, *, int8=False, calibration=None, calibration_count=None):
    """Export a training run directory's final weights as `fmt`; return the artifact's path (int8: as above)."""
    from keras_preact import export

    run = export.read_run(model_dir)
    model = export.build_trained_model(run)
    if int8:
        calibration = _calibration(model, calibration, calibration_count, run.record.get("dataset"),
                                   f"{Path(model_dir) / export.RUN_FILE}")
    return export_model(model, out_dir, fmt, class_names=run.class_names,
                        source=f"run:{Path(model_dir).name}", int8=int8, calibration=calibration)


def _calibration(model, dataset, count, default, where):
    """The calibration set of `dataset` (or the recorded `default` dataset, when it exists here)."""
    from keras_preact import quantization

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


# --- Running an export (NumPy and the format's runtime only) -------------------------------


def find_artifact(path):
    """(format, artifact path) of an export folder or file; ValueError if there is none."""
    path = Path(path)
    if path.is_dir():
        if (path / "saved_model.pb").is_file():
            return "saved_model", path
        for fmt, name in ARTIFACTS.items():
            if (path / name).is_file():
                return fmt, path / name
    else:
        for fmt, name in ARTIFACTS.items():
            if path.suffix == Path(name).suffix and path.is_file():
                return fmt, path
    raise ValueError(f"{path} holds no exported model (saved_model.pb, {', '.join(ARTIFACTS.values())}).")


def check_pixels(images, height=None, width=None):
    """`images` as a uint8 `[N, H, W, 3]` array, or ValueError saying what is wrong with it.

    height, width: the size the artifact takes (None: any size, as the SavedModel resizes).
    """
    if isinstance(images, (bytes, bytearray, str)) or (
            isinstance(images, (list, tuple)) and images and isinstance(images[0], (bytes, bytearray, str))):
        raise ValueError(
            "got encoded bytes or text, not pixels: decode each image first (e.g. "
            "np.asarray(PIL.Image.open(file).convert('RGB'))) and pass uint8 [N, H, W, 3]; only the "
            "SavedModel's serving_bytes signature takes JPEG/PNG files"
        )
    array = np.asarray(images)
    if array.dtype.kind in "OSU":
        raise ValueError(f"got an array of {array.dtype} (encoded images?), not uint8 pixels [N, H, W, 3]")
    if array.dtype != np.uint8:
        raise ValueError(
            f"got {array.dtype} pixels; the model takes uint8 RGB 0..255. Convert with "
            "np.clip(np.round(x), 0, 255).astype(np.uint8) (multiply by 255 first if yours are 0..1)"
        )
    if array.ndim != 4:
        hint = " (one image: pass images[None])" if array.ndim == 3 else ""
        raise ValueError(f"expected a batch [N, H, W, 3]; got shape {array.shape} (rank {array.ndim}){hint}")
    if array.shape[-1] != 3:
        raise ValueError(
            f"expected 3 (RGB) channels; got {array.shape[-1]} in shape {array.shape} (drop an alpha "
            "channel with images[..., :3]; repeat a grayscale one with np.repeat(images, 3, -1))"
        )
    if height is not None and tuple(array.shape[1:3]) != (height, width):
        raise ValueError(
            f"expected {height}x{width} images; got {array.shape[1]}x{array.shape[2]} (shape "
            f"{array.shape}). This format has no in-graph resize: resize on the client, or serve the "
            "SavedModel, which resizes"
        )
    if array.shape[1] < 1 or array.shape[2] < 1:
        raise ValueError(f"images must have height and width >= 1; got shape {array.shape}")
    return np.ascontiguousarray(array)


class Predictor:
    """uint8 `[N, H, W, 3]` -> float32 probabilities `[N, classes]` through one runtime.

    Attributes:
        format: str. One of FORMATS.
        height, width: int or None. The input size the artifact takes (None: any).
        classes: int. Number of classes.
        runtime: str. 'onnxruntime 1.32.0' and the like.
        settings: dict. What the runtime was set up with (threads, OpenVINO's precision).
    """

    def __init__(self, fmt, run, *, height, width, classes, settings=None):
        self.format, self._run = fmt, run
        self.height, self.width, self.classes = height, width, classes
        self.settings = dict(settings or {})
        self.runtime = runtime_version(fmt)

    def __call__(self, images):
        images = check_pixels(images, self.height, self.width)
        if len(images) == 0:  # as the SavedModel answers: no rows (LiteRT would fail to prepare)
            return np.zeros((0, self.classes), np.float32)
        return np.asarray(self._run(images), dtype=np.float32)

    def __repr__(self):
        size = f"{self.height}x{self.width}" if self.height else "any size"
        return f"<Predictor {self.format} ({self.runtime}), uint8 [N, {size}, 3] -> [N, {self.classes}]>"


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_predictor(path, fmt=None, *, threads=None, openvino_config=None):
    """A `Predictor` for an exported model folder (or artifact file).

    Args:
        path: str or Path. What `keras-preact export` wrote (or its artifact file).
        fmt: str or None. The format; found from the files when None.
        threads: int or None. Threads for ONNX Runtime and LiteRT (None: ONNX Runtime's
            default, and all CPUs for LiteRT, which otherwise uses one). OpenVINO and
            TensorFlow use their defaults (all cores).
        openvino_config: dict or None. OpenVINO compile properties; None: `OPENVINO_CONFIG`
            (float32). `{}` gives the CPU plugin's defaults (bfloat16 where the CPU has it).
    """
    found, artifact = find_artifact(path)
    fmt = fmt or found
    if fmt != found:
        raise ValueError(f"{path} holds a {found} export, not {fmt}.")
    if fmt == "openvino":
        config = OPENVINO_CONFIG if openvino_config is None else openvino_config
        return _load_openvino(artifact, threads, config)
    return _LOADERS[fmt](artifact, threads)


def _load_saved_model(path, threads):
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    classes = int(signature.structured_outputs[OUTPUT_NAME].shape[-1])
    return Predictor("saved_model", lambda x: signature(images=tf.constant(x))[OUTPUT_NAME].numpy(),
                     height=None, width=None, classes=classes)


def _load_onnx(path, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (source,) = session.get_inputs()
    _, height, width, _ = source.shape
    output = next(o for o in session.get_outputs() if o.name == OUTPUT_NAME)
    return Predictor("onnx", lambda x: session.run([OUTPUT_NAME], {source.name: x})[0],
                     height=height, width=width, classes=int(output.shape[-1]),
                     settings={"intra_op_num_threads": options.intra_op_num_threads or "default"})


def _load_openvino(path, threads, config=OPENVINO_CONFIG):
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", dict(config))
    request = compiled.create_infer_request()
    _, height, width, _ = (d.get_length() if d.is_static else None for d in compiled.inputs[0].partial_shape)
    classes = compiled.outputs[0].partial_shape[-1].get_length()

    def run(images):
        # set_input_tensor is strict about dtype and shape; infer({0: x}) would convert a float array.
        request.set_input_tensor(openvino.Tensor(images))
        request.infer()
        return request.get_output_tensor(0).data.copy()

    precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    return Predictor("openvino", run, height=height, width=width, classes=classes,
                     settings={"INFERENCE_PRECISION_HINT": _openvino_type_name(precision),
                               "INFERENCE_NUM_THREADS": compiled.get_property("INFERENCE_NUM_THREADS")})


def _openvino_type_name(text):
    """"<Type: 'bfloat16'>" -> "bfloat16"."""
    return text.split("'")[1] if "'" in text else text


def _load_litert(path, threads):
    from ai_edge_litert.interpreter import Interpreter

    threads = threads or _cpu_count()
    interpreter = Interpreter(model_path=str(path), num_threads=int(threads))
    runner = interpreter.get_signature_runner()
    source = runner.get_input_details()[INPUT_NAME]
    output = runner.get_output_details()[OUTPUT_NAME]
    _, height, width, _ = (int(d) for d in source["shape_signature"])
    index, output_index = source["index"], output["index"]
    state = {"batch": None}

    def run(images):
        if state["batch"] != len(images):
            # strict: only the batch dimension (-1 in the signature) may change.
            interpreter.resize_tensor_input(index, images.shape, strict=True)
            interpreter.allocate_tensors()
            state["batch"] = len(images)
        interpreter.set_tensor(index, images)
        interpreter.invoke()
        return interpreter.get_tensor(output_index).copy()

    return Predictor("litert", run, height=height, width=width, classes=int(output["shape_signature"][-1]),
                     settings={"num_threads": int(threads)})


_LOADERS = {"saved_model": _load_saved_model, "onnx": _load_onnx, "openvino": _load_openvino,
            "litert": _load_litert}

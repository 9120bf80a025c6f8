"""The ONNX, OpenVINO and LiteRT formats: their names, the float converters, and running what was exported.

The bottom of the export modules: it imports nothing of keras_preact, and Keras, TensorFlow
and the runtimes only inside the functions that use them, so this file works loaded by path
in a process without Keras, TensorFlow or keras_preact, as tests/test_runtimes.py and
tests/test_int8.py run it. keras_preact/quantization.py (the int8 quantizers) and
keras_preact/runtimes.py (`export_model`: the pixel model, the checks against Keras, zoo
models and training runs) import it; runtimes re-exports its public names, so
`keras_preact.runtimes.load_predictor` and the like are the ones here.

Every artifact takes input `INPUT_NAME` (uint8 pixels `[N, H, W, 3]`) and gives output
`OUTPUT_NAME` (float32 probabilities `[N, classes]`); keras_preact/runtimes.py's docstring
states the contract in full.

The float converters (`EXPORTERS`: `export_onnx`, `export_openvino`, `export_litert`) write
a pixel model (`runtimes.pixel_model`) with Keras' own `model.export`.

`load_predictor(DIR)` runs an exported artifact. It checks every batch first
(`check_pixels`), so a wrong rank, channel count, size or dtype, or encoded image
bytes, fail with one clear ValueError instead of whatever the runtime does (LiteRT's
signature runner, for one, silently resizes its input to any shape), and answers an
empty batch with zero rows, as the SavedModel does. It uses only NumPy and the format's
runtime (TensorFlow for a SavedModel).

OpenVINO's CPU plugin runs in bfloat16 by default on CPUs with AVX512_BF16 or AMX;
`load_predictor` compiles with `INFERENCE_PRECISION_HINT=f32`, without which the
probabilities of the CIFAR zoo models differ from Keras' by up to 0.035.
"""

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np

EXPORT_FORMATS = ("saved_model", "onnx", "openvino", "litert")
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
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; valid formats are {', '.join(EXPORT_FORMATS)}.")
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
    return package_version(*(("tensorflow-cpu", "tensorflow") if fmt == "saved_model"
                             else (RUNTIME_DISTRIBUTIONS[fmt],)))


def package_version(*names):
    """'NAME VERSION' of the first of the distributions `names` that is installed, or None."""
    from importlib.metadata import PackageNotFoundError, version

    for name in names:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return None



# --- Float converters (a pixel model in, an artifact out) ----------------------------------


def input_signature(height, width):
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
                       input_signature=input_signature(height, width))
    return path


def export_openvino(wrapped, path):
    """OpenVINO IR (`.xml` + `.bin`, float32 weights) via Keras' `model.export(format="openvino")`."""
    _, height, width, _ = wrapped.inputs[0].shape
    wrapped.export(str(path), format="openvino", verbose=False,
                   input_signature=input_signature(height, width))
    return path


def export_litert(wrapped, path):
    """A `.tflite` flatbuffer (builtin ops, float32) via Keras' `model.export(format="litert")`."""
    _, height, width, _ = wrapped.inputs[0].shape
    wrapped.export(str(path), format="litert", verbose=False,
                   input_signature=input_signature(height, width))
    return path


EXPORTERS = {"onnx": export_onnx, "openvino": export_openvino, "litert": export_litert}


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
        format: str. One of EXPORT_FORMATS.
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

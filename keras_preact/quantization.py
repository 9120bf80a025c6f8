"""Post-training static int8 quantization of the ONNX, OpenVINO and LiteRT exports.

    keras-preact export --model NAME --format onnx|openvino|litert --int8 [--calibration DATASET] --out DIR

Each runtime's own quantizer does the work, on the same pixel model the float exports
take (`runtimes.pixel_model`: uint8 pixels in, normalization inside, float32
probabilities out), so the int8 artifact has the float export's input and output:

- ONNX Runtime: `onnxruntime.quantization.quantize_static` on the float ONNX file after
  `quant_pre_process` (shape inference and ONNX Runtime's graph optimizations, which fold
  the batch norm that follows a convolution into it), QDQ format, int8 weights per output
  channel, uint8 activations, MinMax calibration. The Softmax stays float. Two rewrites
  around it (issue 37, bench/int8_remedies.py measured them on ResNetV2-56):
  a pre-activation batch norm (BN-ReLU before a convolution, after a residual add or a
  concatenation) cannot fold into a convolution and stays a per-channel Mul and Add, which
  the quantizer turns into QLinearMul/QLinearAdd with a per-channel broadcast: slow kernels
  that took half of the int8 time, with the BN's scale quantized per tensor. Before
  quantizing, each such Mul(x, s) -> Add(b) pair becomes the depthwise 1x1 convolution it
  is (weights s, bias b, one group per channel), which quantizes per channel into a
  QLinearConv (on ResNetV2-56 the float model takes ~2.2x the int8 model's CPU time at batch
  32 and ~1.8x at batch 1, against ~1.5x / ~1.3x without it). After quantizing, the tensor
  and node names (tf2onnx's long Keras paths, repeated by every Q/DQ node the quantizer
  adds: a quarter of the file) are replaced by short ones (input and output keep theirs):
  ResNetV2-56's file goes from 0.35x to 0.27x the float file's size.
- OpenVINO: NNCF's `nncf.quantize` on the float IR (its default, symmetric "performance"
  preset, which folds batch norm first, and fast bias correction); `subset_size` is the
  calibration set's size. NNCF leaves the Softmax float.
- LiteRT: the TFLite converter's full-integer path (`optimizations=[tf.lite.Optimize.DEFAULT]`,
  a `representative_dataset`, int8 builtin kernels); the input stays uint8 (the graph's
  first op casts it), the output float32. The Softmax is kept float with the converter's
  quantization debugger (`denylisted_ops=["SOFTMAX"]`), so probabilities sum to 1 instead of
  being multiples of 1/256.

Calibration images come from a dataset's training split, never its test split (the split
the accuracy is measured on): `calibration_set` refuses any other split, and a dataset path
that is itself a test folder. It takes a fixed, seeded sample of `count` training files
and records what it took (dataset, split, count, seed, sha256 of the sorted list of file
names) in the export folder's `quantization.json`.

Imports go one way: this module takes the float converters and the input name from
keras_preact/formats.py and datasets from keras_preact/data.py; keras_preact/runtimes.py
(`export_model(..., int8=True)`) imports it, never the other way round. The modules the
int8 path needs are `formats.INT8_MODULES`.
"""

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_preact import data, formats

DEFAULT_COUNT = 512
DEFAULT_SEED = 0
CALIBRATION_SPLIT = "train"
RECORD_FILE = "quantization.json"
METHODS = {
    "onnx": "onnxruntime.quantization.quantize_static after quant_pre_process: QDQ, int8 weights per "
            "channel, uint8 activations, MinMax calibration; Softmax kept float32; pre-activation batch "
            "norms (per-channel Mul + Add) rewritten as depthwise 1x1 convolutions before quantizing, "
            "tensor and node names shortened after",
    "openvino": "nncf.quantize (preset performance: symmetric int8 weights per channel and activations, "
                "fast bias correction); Softmax kept float32",
    "litert": "TFLiteConverter full-integer quantization (Optimize.DEFAULT, representative_dataset, "
              "TFLITE_BUILTINS_INT8); uint8 input, float32 output; Softmax kept float32 "
              "(QuantizationDebugger denylisted_ops)",
}


@dataclass
class Calibration:
    """Calibration images (uint8 `[N, H, W, 3]`) and the record of where they came from."""

    images: np.ndarray
    record: dict = field(default_factory=dict)


def _refuse_split(split, what):
    if split != CALIBRATION_SPLIT:
        raise ValueError(
            f"int8 calibration takes images from the training split only, not {split!r} ({what}): "
            "calibrating on the images the accuracy is measured on would tune the int8 model on its "
            f"own test. Pass the dataset (its {CALIBRATION_SPLIT}/ split is used).")


def calibration_set(dataset, *, height, width, count=DEFAULT_COUNT, seed=DEFAULT_SEED,
                    split=CALIBRATION_SPLIT, data_dir=None):
    """A seeded sample of `count` images of `dataset`'s training split, at `height` x `width`.

    Args:
        dataset: "folder:PATH" (a `PATH/train/<class>/*.jpg` tree or its .tar.gz) or a tfds name.
        height, width: the model's input size (other sizes are resized, bilinear with antialias,
            as the SavedModel does).
        count: int. How many images (without replacement).
        seed: int. Seed of the sample.
        split: must be "train": any other split (the test split) is refused.

    Raises:
        ValueError: another split than "train", a folder path that is a split folder other than
            train/, too few images, or a dataset that cannot be read.
    """
    _refuse_split(split, "--calibration takes no other split")
    if count < 1:
        raise ValueError(f"the calibration set needs at least 1 image; got {count}")
    kind, ref = data.parse_dataset(dataset)
    if kind == "folder":
        if os.path.basename(os.path.normpath(ref)) in set(data.SPLITS) - {CALIBRATION_SPLIT}:
            _refuse_split(os.path.basename(os.path.normpath(ref)), f"{dataset} is a split folder")
        report = data.check_folder(ref, splits=(CALIBRATION_SPLIT,))
        bad = {path for path, _ in report.bad_files}
        files = sorted(os.path.relpath(path, ref) for paths in report.files[CALIBRATION_SPLIT].values()
                       for path in paths if path not in bad)
        chosen = _choose(len(files), count, seed, dataset)
        names = [files[i] for i in chosen]
        images = np.stack([_decode(Path(ref, name).read_bytes(), height, width) for name in names])
        listing = "\n".join(name.replace(os.sep, "/") for name in names)
        source = {"files_sha256": hashlib.sha256(listing.encode()).hexdigest(),
                  "files": f"{len(files)} images in {CALIBRATION_SPLIT}/; the sorted relative paths of "
                           "the chosen ones, one a line, hash to files_sha256"}
    else:
        stream, info = data.load_split(dataset, CALIBRATION_SPLIT, data_dir=data_dir)
        chosen = _choose(int(info.num_examples), count, seed, dataset)
        wanted, picked = set(int(i) for i in chosen), []
        for index, (image, _) in enumerate(stream):
            if index in wanted:
                picked.append(_resize(image.numpy(), height, width))
                if len(picked) == len(wanted):
                    break
        images = np.stack(picked)
        listing = "\n".join(str(int(i)) for i in chosen)
        source = {"indices_sha256": hashlib.sha256(listing.encode()).hexdigest(),
                  "files": f"{int(info.num_examples)} examples in tfds {CALIBRATION_SPLIT}; the chosen "
                           "indices (in the split's order), one a line, hash to indices_sha256"}
    record = {"dataset": data.portable_dataset(dataset), "split": CALIBRATION_SPLIT, "count": int(len(images)),
              "seed": int(seed), "selection": "numpy.random.default_rng(seed).choice(n, count, replace=False), "
                                              "sorted", **source}
    return Calibration(images=images, record=record)


def _choose(available, count, seed, dataset):
    if available < count:
        raise ValueError(f"{dataset} has {available} training images; the calibration set asks for {count}")
    return np.sort(np.random.default_rng(seed).choice(available, size=count, replace=False))


def _decode(image_bytes, height, width):
    import tensorflow as tf

    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8).numpy()
    return _resize(image, height, width)


def _resize(image, height, width):
    if image.shape[:2] == (height, width):
        return image.astype(np.uint8)
    import tensorflow as tf

    resized = tf.image.resize(image, (height, width), antialias=True).numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8)


# --- The three quantizers -------------------------------------------------------------------


def quantize_onnx(wrapped, path, calibration):
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quant_pre_process, quantize_static

    logging.getLogger("root").setLevel(logging.ERROR)  # quant_pre_process advises at WARNING

    class Reader(CalibrationDataReader):
        def __init__(self, images, batch=32):
            self._batches = iter([images[i:i + batch] for i in range(0, len(images), batch)])

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {formats.INPUT_NAME: batch}

    with tempfile.TemporaryDirectory(prefix="keras_preact_int8_") as work:
        float_path = formats.export_onnx(wrapped, Path(work) / "float.onnx")
        prepared = Path(work) / "prepared.onnx"
        # ONNX shape inference suffices (only the batch is dynamic); the symbolic one needs sympy.
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        affine_to_depthwise_conv(model)
        onnx.save(model, str(prepared))
        softmax = [node.name for node in model.graph.node if node.op_type == "Softmax"]
        quantize_static(str(prepared), str(path), Reader(calibration.images), **onnx_settings(),
                        nodes_to_exclude=softmax)
    quantized = onnx.load(str(path))
    shorten_names(quantized)
    onnx.save(quantized, str(path))
    return path


def onnx_settings():
    """`quantize_static`'s keyword arguments (but `nodes_to_exclude`) for the int8 ONNX exports."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)


def affine_to_depthwise_conv(model):
    """Rewrite each per-channel `Mul(x, s) -> Add(b)` on an NCHW tensor as `Conv(x, s, b, group=C)`, in place.

    What a batch norm that cannot fold into a convolution (pre-activation: BN-ReLU before the
    convolution) looks like after tf2onnx and `quant_pre_process`. As a depthwise 1x1
    convolution it computes the same numbers (up to float rounding) and quantizes, per channel,
    into a QLinearConv instead of ONNX Runtime's slow broadcasting QLinearMul and QLinearAdd.
    Only pairs whose constants are float32 of shape [1, C, 1, 1] or [C, 1, 1], whose Mul output
    feeds the Add alone and whose input is known (shape inference) to be rank 4 with C channels
    on axis 1 are rewritten. Returns how many were.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in list(graph.value_info) + list(graph.input) if v.type.tensor_type.HasField("shape")}
    consumers = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def per_channel(name):
        tensor = constants.get(name)
        if tensor is None or tensor.data_type != TensorProto.FLOAT or len(tensor.dims) not in (3, 4):
            return None
        dims = list(tensor.dims)[-3:]
        if dims[1:] != [1, 1] or (len(tensor.dims) == 4 and tensor.dims[0] != 1):
            return None
        return numpy_helper.to_array(tensor).reshape(-1)

    def split(node):  # (the variable input, the per-channel constant) of a two-input node
        for i in (0, 1):
            values = per_channel(node.input[1 - i])
            if values is not None and node.input[i] not in constants:
                return node.input[i], values
        return None, None

    nodes, skip, rewritten = [], set(), 0
    for node in graph.node:
        if id(node) in skip:
            continue
        following = consumers.get(node.output[0], []) if node.op_type == "Mul" else []
        if len(following) == 1 and following[0].op_type == "Add" and node.output[0] not in outputs:
            add = following[0]
            x, scale = split(node)
            _, shift = split(add)
            shape = shapes.get(x)
            if (x is not None and shift is not None and len(scale) == len(shift) and shape is not None
                    and len(shape) == 4 and shape[1] == len(scale)):
                channels = len(scale)
                weight, bias = f"{add.name}_depthwise_weight", f"{add.name}_depthwise_bias"
                graph.initializer.extend([
                    numpy_helper.from_array(scale.reshape(channels, 1, 1, 1).astype("float32"), weight),
                    numpy_helper.from_array(shift.astype("float32"), bias)])
                nodes.append(helper.make_node("Conv", [x, weight, bias], [add.output[0]],
                                              name=f"{add.name}_depthwise", group=channels, kernel_shape=[1, 1]))
                skip.add(id(add))
                rewritten += 1
                continue
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return rewritten


def shorten_names(model):
    """Rename every tensor but the graph's inputs and outputs `t0, t1, ...` and every node `n0, ...`, in place.

    The quantizer repeats each tensor's name (tf2onnx's full Keras path) in the names of its
    quantized initializer, scale, zero point and Q/DQ outputs: on ResNetV2-56 the names were a
    quarter of the int8 file. `value_info` (intermediate shapes, which ONNX Runtime infers
    again) is dropped.
    """
    graph = model.graph
    keep = {v.name for v in list(graph.input) + list(graph.output)}
    renamed = {}

    def rename(name):
        if not name or name in keep:
            return name
        return renamed.setdefault(name, f"t{len(renamed)}")

    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for index, node in enumerate(graph.node):
        node.input[:] = [rename(name) for name in node.input]
        node.output[:] = [rename(name) for name in node.output]
        node.name = f"n{index}"
    del graph.value_info[:]
    return len(renamed)


def quantize_openvino(wrapped, path, calibration):
    import logging

    import nncf
    import openvino

    logging.getLogger("nncf").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="keras_preact_int8_") as work:
        float_path = formats.export_openvino(wrapped, Path(work) / "float.xml")
        model = openvino.Core().read_model(str(float_path))
        images = calibration.images
        dataset = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
        quantized = nncf.quantize(model, dataset, subset_size=len(images))
        openvino.save_model(quantized, str(path), compress_to_fp16=False)
    return path


def quantize_litert(wrapped, path, calibration):
    import warnings

    import tensorflow as tf

    _, height, width, _ = wrapped.inputs[0].shape
    images = calibration.images

    def representative():
        for i in range(len(images)):
            yield [images[i:i + 1]]

    with tempfile.TemporaryDirectory(prefix="keras_preact_int8_") as work:
        saved = str(Path(work) / "saved_model")
        wrapped.export(saved, format="tf_saved_model", verbose=False,
                       input_signature=formats.input_signature(height, width))
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        # Int8 kernels for everything but the denylisted Softmax, which needs the float builtins.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = tf.uint8  # the input is uint8 already: it stays so
        converter.inference_output_type = tf.float32
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["SOFTMAX"])
        with warnings.catch_warnings():  # the debugger runs tf.lite.Interpreter, which warns it is deprecated
            warnings.simplefilter("ignore")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=representative, debug_options=options)
            flatbuffer = debugger.get_nondebug_quantized_model()
    Path(path).write_bytes(flatbuffer)
    return path


QUANTIZERS = {"onnx": quantize_onnx, "openvino": quantize_openvino, "litert": quantize_litert}


def write_record(out_dir, fmt, calibration, **extra):
    """`out_dir/quantization.json`: precision, method, quantizer version and the calibration set."""
    record = {"precision": "int8", "format": fmt, "method": METHODS[fmt],
              "quantizer": _quantizer_version(fmt) or formats.runtime_version(fmt),
              "calibration": calibration.record, **extra}
    (Path(out_dir) / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _quantizer_version(fmt):
    return formats.package_version(*{"onnx": ("onnxruntime",), "openvino": ("nncf",),
                                     "litert": ("tensorflow-cpu", "tensorflow")}[fmt])

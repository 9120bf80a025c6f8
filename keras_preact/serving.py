"""The TensorFlow-only half of serving: in-graph image decoding and TF Serving's REST format.

Everything in the exported SavedModel around the network itself is built
from the functions here, with TensorFlow ops only, so the SavedModel loads
and runs with nothing but TensorFlow installed (no Keras, no keras_preact):

- `decode_images` turns a batch of encoded JPEG/PNG files into a float32
  pixel batch at the model's input size. It checks each file's format and
  header-declared size *before* decoding, so a corrupt or hostile file fails
  with `InvalidArgumentError` naming the image's index in the batch, and a
  tiny file that claims a huge size never gets its pixels allocated.
- `resize_images` is the one resize both signatures use (bilinear with
  antialiasing, skipped when the size already matches).
- `classification_outputs` is the shared output dictionary.

`rest_predict` answers a TF Serving REST `:predict` request body from a
loaded SavedModel the way `tensorflow_model_server` does (row and columnar
formats, `{"b64": ...}` binary values, `{"error": ...}` on failure). It is
how the tests prove the REST contract without the server binary, and how a
user can check a request body before deploying.
"""

import base64
import json

import numpy as np
import tensorflow as tf

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# 40 megapixels: a 7,000 x 5,700 photo, about 120 MB once decoded to RGB.
DEFAULT_MAX_PIXELS = 40_000_000


def resize_images(images, height, width):
    """Resize a `[N, h, w, 3]` batch to `[N, height, width, 3]` float32.

    Bilinear with antialiasing (a proper low-pass when shrinking), clipped
    to 0..255 against float rounding. A batch already at the target size is
    only cast, so its pixels reach the model bit for bit.
    """
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    same_size = tf.logical_and(tf.equal(shape[1], height), tf.equal(shape[2], width))
    resized = tf.cond(
        same_size,
        lambda: images,
        lambda: tf.clip_by_value(
            tf.image.resize(images, [height, width], method="bilinear", antialias=True),
            0.0, 255.0,
        ),
    )
    return tf.ensure_shape(resized, [None, height, width, 3])


def check_pixel_batch(images):
    """Fail with InvalidArgumentError unless `images` has height and width >= 1."""
    shape = tf.shape(images)
    return tf.debugging.Assert(
        tf.logical_and(shape[1] > 0, shape[2] > 0),
        [tf.strings.format("images must have height and width >= 1; received shape {}", shape)],
    )


def _png_size(data):
    """(height, width) from a PNG's IHDR chunk (bytes 16..23, big-endian)."""
    padded = tf.strings.join([data, tf.constant(b"\0" * 24)])
    header = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 16, 8), tf.uint8), tf.int64)
    weights = tf.constant([1 << 24, 1 << 16, 1 << 8, 1], tf.int64)
    width = tf.reduce_sum(header[:4] * weights)
    height = tf.reduce_sum(header[4:] * weights)
    return height, width


def _jpeg_size(data):
    """(height, width) from a JPEG's frame header; InvalidArgumentError if it has none."""
    shape = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
    return shape[0], shape[1]


def _decode_one(data, index, *, height, width, max_pixels):
    """Decode one JPEG/PNG to float32 `[height, width, 3]`, checking it first.

    Grayscale becomes RGB by repeating the channel; a PNG's alpha channel is
    dropped (its colour values are kept as stored, not composited).
    """
    prefix = tf.strings.substr(tf.strings.join([data, tf.constant(b"\0" * 8)]), 0, 8)
    is_jpeg = tf.equal(tf.strings.substr(prefix, 0, 3), JPEG_MAGIC)
    is_png = tf.equal(prefix, PNG_MAGIC)
    format_check = tf.debugging.Assert(
        tf.logical_or(is_jpeg, is_png),
        [tf.strings.format(
            "serving_bytes: image {} is not a JPEG or PNG file (it has {} bytes; a JPEG "
            "starts with FF D8 FF, a PNG with 89 50 4E 47)",
            (index, tf.strings.length(data)),
        )],
    )
    with tf.control_dependencies([format_check]):
        image_height, image_width = tf.cond(
            is_jpeg, lambda: _jpeg_size(data), lambda: _png_size(data)
        )
    size_check = tf.debugging.Assert(
        tf.logical_and(
            tf.logical_and(image_height > 0, image_width > 0),
            image_height * image_width <= max_pixels,
        ),
        [tf.strings.format(
            "serving_bytes: image {} declares {} x {} pixels (height x width); the limit "
            "is 1 to {} pixels",
            (index, image_height, image_width, max_pixels),
        )],
    )
    with tf.control_dependencies([size_check]):
        pixels = tf.io.decode_image(tf.identity(data), channels=3, expand_animations=False)
    pixels = tf.ensure_shape(pixels, [None, None, 3])
    return resize_images(pixels[tf.newaxis], height, width)[0]


def decode_images(image_bytes, *, height, width, max_pixels=DEFAULT_MAX_PIXELS):
    """Decode a `[N]` tf.string batch of JPEG/PNG files to float32 `[N, height, width, 3]`.

    Pixels stay on the 0..255 scale (the model normalizes them itself).
    Any image that is not a decodable JPEG/PNG of 1..max_pixels pixels fails
    the whole batch with InvalidArgumentError; the message names the index
    of the first bad image when the format or size check catches it, and
    carries the decoder's own message when the file body is corrupt.
    """
    indices = tf.range(tf.size(image_bytes, out_type=tf.int64))
    return tf.map_fn(
        lambda args: _decode_one(
            args[0], args[1], height=height, width=width, max_pixels=max_pixels
        ),
        (image_bytes, indices),
        fn_output_signature=tf.TensorSpec([height, width, 3], tf.float32),
    )


def classification_outputs(probabilities, class_names, top_k):
    """The output dictionary both signatures return.

    Args:
        probabilities: float32 `[N, classes]`.
        class_names: tf.string `[classes]` constant.
        top_k: int. How many of the best classes to report.
    """
    best = tf.math.top_k(probabilities, k=top_k)
    return {
        "probabilities": probabilities,
        "top_k_classes": best.indices,
        "top_k_probabilities": best.values,
        "top_k_class_names": tf.gather(class_names, best.indices),
    }


def readable_error(message):
    """The one informative line of a TensorFlow error message, for people.

    `tf.debugging.Assert` failures ("assertion failed: [text]") become "text";
    otherwise the first line that is not TensorFlow's boilerplate (graph
    execution, node names, stack-trace notes).
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("assertion failed:"):
            return line[len("assertion failed:"):].strip().removeprefix("[").removesuffix("]")
    boilerplate = ("Graph execution error", "Detected at node", "<stack traces", "[[")
    informative = [line for line in lines if not line.startswith(boilerplate)]
    return (informative or lines or [message])[0].split(" [Op:")[0]


# --- TF Serving's REST predict format -------------------------------------------------


def _decode_b64(value):
    """Replace every `{"b64": ...}` in a JSON value by the bytes it encodes."""
    if isinstance(value, dict):
        if set(value) == {"b64"}:
            return base64.b64decode(value["b64"], validate=True)
        return {key: _decode_b64(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_b64(item) for item in value]
    return value


def _jsonable(name, array):
    """A numpy output as TF Serving writes it: lists, strings, b64 for `*_bytes`."""
    if array.dtype.kind in "OS":
        if name.endswith("_bytes"):
            encode = lambda b: {"b64": base64.b64encode(b).decode("ascii")}  # noqa: E731
        else:
            encode = lambda b: b.decode("utf-8")  # noqa: E731
        return np.vectorize(encode, otypes=[object])(array).tolist() if array.size else []
    return array.tolist()


def _row_format_inputs(instances, input_specs):
    """{input name: batch} from a row-format `instances` list."""
    names = list(input_specs)
    named_rows = all(isinstance(row, dict) and set(row) == set(names) for row in instances)
    if len(names) == 1 and not named_rows:
        return {names[0]: instances}
    if not named_rows:
        raise ValueError(
            f"Each instance must be an object with exactly the inputs {names}; "
            "this signature has more than one input."
        )
    return {name: [row[name] for row in instances] for name in names}


def _columnar_inputs(inputs, input_specs):
    """{input name: batch} from a columnar `inputs` value."""
    names = list(input_specs)
    if isinstance(inputs, dict) and set(inputs) == set(names):
        return inputs
    if len(names) == 1:
        return {names[0]: inputs}
    raise ValueError(f"`inputs` must be an object with exactly the inputs {names}.")


def rest_predict(loaded, body):
    """Answer a TF Serving REST `:predict` body with a `tf.saved_model.load` result.

    Args:
        loaded: the object `tf.saved_model.load(path)` returned.
        body: str or dict. The JSON request body, e.g.
            `{"signature_name": "serving_bytes", "instances": [{"image_bytes": {"b64": "..."}}]}`.

    Returns:
        (http_status, response dict): 200 and `{"predictions": [...]}` (row
        format) or `{"outputs": {...}}` (columnar), or 400 and `{"error": msg}`,
        as `tensorflow_model_server` answers.
    """
    try:
        request = json.loads(body) if isinstance(body, (str, bytes)) else body
        signature_name = request.get("signature_name", "serving_default")
        if signature_name not in loaded.signatures:
            raise ValueError(
                f"Serving signature name: {signature_name!r} not found in signature def; "
                f"valid names are {sorted(loaded.signatures)}."
            )
        function = loaded.signatures[signature_name]
        input_specs = function.structured_input_signature[1]
        if ("instances" in request) == ("inputs" in request):
            raise ValueError("The request must have exactly one of 'instances' or 'inputs'.")
        if "instances" in request:
            values = _row_format_inputs(_decode_b64(request["instances"]), input_specs)
        else:
            values = _columnar_inputs(_decode_b64(request["inputs"]), input_specs)
        tensors = {
            name: tf.constant(values[name], dtype=spec.dtype) for name, spec in input_specs.items()
        }
        outputs = {name: tensor.numpy() for name, tensor in function(**tensors).items()}
    except (ValueError, TypeError, KeyError, tf.errors.InvalidArgumentError) as error:
        message = error.message if isinstance(error, tf.errors.OpError) else str(error)
        return 400, {"error": message}
    except tf.errors.OpError as error:
        return 500, {"error": error.message}
    if "instances" in request:
        rows = len(next(iter(outputs.values())))
        predictions = [
            {name: _jsonable(name, array[i]) for name, array in outputs.items()}
            for i in range(rows)
        ]
        if len(outputs) == 1:  # A single output is written without its name.
            predictions = [next(iter(row.values())) for row in predictions]
        return 200, {"predictions": predictions}
    columns = {name: _jsonable(name, array) for name, array in outputs.items()}
    return 200, {"outputs": next(iter(columns.values())) if len(columns) == 1 else columns}

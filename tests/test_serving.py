"""Serving: TF Serving's REST request format, and what bad image bytes do.

TF Serving itself is not installable here, so the REST contract is checked
by `serving.rest_predict`, which decodes a request body exactly as
`tensorflow_model_server` documents it and calls the SavedModel signature.
"""

import base64
import http.server
import json
import re
import struct
import subprocess
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_preact import serving
from test_zoo_support import (  # noqa: F401 (fixtures)
    CLASS_NAMES,
    ZOO_NAME,
    cifar_jpegs,
    encode_image,
    random_pixels,
    tiny_zoo,
    trained_model,
)

TOLERANCE = 1e-5


@pytest.fixture
def loaded(tiny_zoo):
    from keras_preact.export import zoo_saved_model

    return tf.saved_model.load(str(zoo_saved_model(ZOO_NAME)))


def b64(data):
    return {"b64": base64.b64encode(data).decode("ascii")}


def jpeg_and_png(seed=0, height=32, width=32):
    pixels = random_pixels(seed, height, width)
    return pixels, encode_image(pixels, "JPEG", quality=90), encode_image(pixels, "PNG")


def png_claiming_size(height, width):
    """A small, well-formed PNG whose header declares height x width pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (serving.PNG_MAGIC + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def jpeg_claiming_size(height, width):
    """A real JPEG whose frame header (SOF0) is patched to declare height x width."""
    data = encode_image(random_pixels(3), "JPEG")
    start = data.index(b"\xff\xc0") + 5  # marker (2), length (2), precision (1)
    return data[:start] + struct.pack(">HH", height, width) + data[start + 4:]


# --- The REST request body -----------------------------------------------------------------


def test_rest_b64_request_is_served_like_keras(loaded):
    pixels_png = [jpeg_and_png(seed)[0] for seed in range(3)]
    body = {
        "signature_name": "serving_bytes",
        "instances": [{"image_bytes": b64(encode_image(p, "PNG"))} for p in pixels_png],
    }
    status, response = serving.rest_predict(loaded, body)
    assert status == 200, response
    expected = trained_model().predict(np.stack(pixels_png).astype("float32"), verbose=0)
    predictions = response["predictions"]
    assert len(predictions) == 3
    served = np.array([row["probabilities"] for row in predictions])
    np.testing.assert_allclose(served, expected, atol=TOLERANCE, rtol=0)
    best = np.argsort(-expected, axis=-1, kind="stable")
    for row, order in zip(predictions, best):
        assert row["top_k_class_names"] == [CLASS_NAMES[i] for i in order]
        assert row["top_k_classes"] == order.tolist()


def test_rest_accepts_bare_and_columnar_forms(loaded):
    _, jpeg, png = jpeg_and_png(1)
    named = serving.rest_predict(loaded, {
        "signature_name": "serving_bytes", "instances": [{"image_bytes": b64(jpeg)}, {"image_bytes": b64(png)}],
    })
    bare = serving.rest_predict(loaded, {"signature_name": "serving_bytes", "instances": [b64(jpeg), b64(png)]})
    columnar = serving.rest_predict(loaded, {
        "signature_name": "serving_bytes", "inputs": {"image_bytes": [b64(jpeg), b64(png)]},
    })
    assert named[0] == bare[0] == columnar[0] == 200
    assert named[1] == bare[1]
    np.testing.assert_allclose(
        columnar[1]["outputs"]["probabilities"],
        [row["probabilities"] for row in named[1]["predictions"]], atol=0,
    )


def test_rest_default_signature_takes_pixel_lists(loaded):
    pixels = random_pixels(5)
    status, response = serving.rest_predict(loaded, f'{{"instances": [{pixels.tolist()}]}}')
    assert status == 200, response
    expected = trained_model().predict(pixels[None].astype("float32"), verbose=0)
    np.testing.assert_allclose(response["predictions"][0]["probabilities"], expected[0],
                               atol=TOLERANCE, rtol=0)


def test_rest_errors_are_json_not_exceptions(loaded):
    status, response = serving.rest_predict(loaded, {"signature_name": "nope", "instances": []})
    assert status == 400 and "nope" in response["error"]
    status, response = serving.rest_predict(loaded, {"instances": [1], "inputs": [1]})
    assert status == 400 and "exactly one" in response["error"]
    status, response = serving.rest_predict(loaded, "{not json")
    assert status == 400


# --- Bad and unusual images ------------------------------------------------------------------


def serve_bytes(loaded, images):
    return loaded.signatures["serving_bytes"](image_bytes=tf.constant(images, dtype=tf.string))


@pytest.mark.parametrize(
    "case, data, message",
    [
        ("empty string", b"", "image 0 is not a JPEG or PNG file (it has 0 bytes"),
        ("text", b"hello, world", "is not a JPEG or PNG"),
        ("GIF", encode_image(random_pixels(0), "GIF"), "is not a JPEG or PNG"),
        ("truncated JPEG", jpeg_and_png()[1][:300], "Invalid JPEG data"),
        ("JPEG header only", jpeg_and_png()[1][:20], "JPEG"),
        ("truncated PNG", jpeg_and_png()[2][:200], "PNG"),
        ("huge JPEG", jpeg_claiming_size(60000, 60000), "image 0 declares 60000 x 60000 pixels"),
        ("huge PNG", png_claiming_size(100000, 100000), "declares 100000 x 100000 pixels"),
        ("zero-size PNG", png_claiming_size(0, 10), "declares 0 x 10 pixels"),
    ],
)
def test_bad_bytes_raise_invalid_argument(loaded, case, data, message):
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        serve_bytes(loaded, [data])
    assert message in error.value.message
    assert message in serving.readable_error(error.value.message)


def test_bad_image_in_a_batch_fails_the_batch_naming_it_then_serving_goes_on(loaded):
    _, jpeg, png = jpeg_and_png(2)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image 1 is not a JPEG"):
        serve_bytes(loaded, [jpeg, b"not an image", png])
    status, response = serving.rest_predict(
        loaded, {"signature_name": "serving_bytes", "instances": [b64(jpeg), b64(b"x"), b64(png)]})
    assert status == 400 and "image 1 is not a JPEG" in response["error"]
    assert serve_bytes(loaded, [jpeg, png])["probabilities"].shape == (2, len(CLASS_NAMES))


def test_alpha_and_grayscale_are_served_as_rgb(loaded):
    pixels = random_pixels(7)
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 30, np.uint8)])
    opaque = serve_bytes(loaded, [encode_image(pixels, "PNG")])["probabilities"]
    with_alpha = serve_bytes(loaded, [encode_image(rgba, "PNG")])["probabilities"]
    np.testing.assert_array_equal(with_alpha.numpy(), opaque.numpy())  # Alpha is dropped.

    gray = pixels[..., 0]
    as_gray = serve_bytes(loaded, [encode_image(gray, "PNG")])["probabilities"]
    as_rgb = serve_bytes(loaded, [encode_image(np.dstack([gray] * 3), "PNG")])["probabilities"]
    np.testing.assert_array_equal(as_gray.numpy(), as_rgb.numpy())  # Gray repeats to RGB.
    gray_jpeg = serve_bytes(loaded, [encode_image(gray, "JPEG")])["probabilities"]
    assert gray_jpeg.shape == (1, len(CLASS_NAMES))


def test_sixteen_bit_png_and_empty_batch(loaded):
    wide = (random_pixels(8)[..., 0].astype(np.uint16) * 257)
    assert serve_bytes(loaded, [encode_image(wide, "PNG")])["probabilities"].shape == (1, 3)
    empty = serve_bytes(loaded, [])
    assert empty["probabilities"].shape == (0, len(CLASS_NAMES))
    assert empty["top_k_class_names"].shape == (0, len(CLASS_NAMES))


def test_large_image_is_resized_not_refused(loaded):
    _, jpeg, _ = jpeg_and_png(9, height=900, width=1300)
    assert serve_bytes(loaded, [jpeg])["probabilities"].shape == (1, len(CLASS_NAMES))


def test_zero_sized_pixel_batch_is_refused(loaded):
    with pytest.raises(tf.errors.InvalidArgumentError, match="height and width >= 1"):
        loaded.signatures["serving_default"](images=tf.zeros([1, 0, 5, 3], tf.uint8))


def test_serving_decodes_jpegs_like_the_training_pipeline(tmp_path):
    """serving_bytes sees the same pixels as keras_preact/data.py for real CIFAR JPEGs."""
    load_split = pytest.importorskip("keras_preact.data").load_split
    files = cifar_jpegs(6)  # Skips without the dataset.
    for split in ("train", "test"):
        for index, data in enumerate(files):
            folder = tmp_path / split / ("even" if index % 2 == 0 else "odd")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:04d}.jpg").write_bytes(data)
    dataset, _ = load_split(f"folder:{tmp_path}", "test")
    pipeline = sorted(image.numpy().tobytes() for image, _ in dataset)
    served = serving.decode_images(tf.constant(files), height=32, width=32).numpy()
    assert pipeline == sorted(pixels.astype(np.uint8).tobytes() for pixels in served)


# --- Fuzzing the decode path -----------------------------------------------------------------

_decode = tf.function(
    lambda data: serving.decode_images(data, height=8, width=8, max_pixels=1 << 16),
    input_signature=[tf.TensorSpec([None], tf.string)],
)
_SEEDS = [jpeg_and_png(seed, 12, 10)[1] for seed in range(2)] + [
    jpeg_and_png(seed, 9, 14)[2] for seed in range(2)
] + [encode_image(random_pixels(4)[..., 0], "PNG")]


def _mutate(seed, edits, cut):
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    return bytes(data[: max(0, len(data) - cut)])


fuzz_inputs = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda tail: serving.PNG_MAGIC + tail, st.binary(max_size=64)),
    st.builds(lambda tail: b"\xff\xd8\xff" + tail, st.binary(max_size=64)),
    st.builds(
        _mutate,
        st.sampled_from(_SEEDS),
        st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6),
        st.integers(0, 400),
    ),
)


@settings(max_examples=2000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=fuzz_inputs)
def test_fuzz_decode_returns_pixels_or_invalid_argument(data):
    try:
        pixels = _decode(tf.constant([data])).numpy()
    except tf.errors.InvalidArgumentError:
        return
    assert pixels.shape == (1, 8, 8, 3)
    assert np.all(np.isfinite(pixels)) and pixels.min() >= 0 and pixels.max() <= 255


# --- The examples in docs/deployment.md, against a stand-in for the REST server -----------------

DEPLOYMENT = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"


def deployment_code_blocks(language):
    text = DEPLOYMENT.read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


@pytest.fixture
def rest_server(loaded):
    """An HTTP server answering `/v1/models/<name>:predict` with serving.rest_predict."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status, response = serving.rest_predict(loaded, body)
            payload = json.dumps(response).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_deployment_curl_body_is_a_valid_request(loaded, tmp_path):
    script = next(block for block in deployment_code_blocks("shell") if "request.json" in block)
    printf = script.split("curl")[0]
    (tmp_path / "cat.jpg").write_bytes(jpeg_and_png(11)[1])
    (tmp_path / "ship.png").write_bytes(jpeg_and_png(12)[2])
    subprocess.run(["bash", "-c", printf], cwd=tmp_path, check=True, timeout=30)
    status, response = serving.rest_predict(loaded, (tmp_path / "request.json").read_text())
    assert status == 200, response
    assert len(response["predictions"]) == 2


def test_deployment_python_client_works_against_the_rest_format(rest_server, tmp_path):
    client = next(block for block in deployment_code_blocks("python") if "def classify" in block)
    namespace = {}
    exec(client.split("for row in")[0], namespace)  # Define classify(), skip the demo loop.
    image = tmp_path / "cat.jpg"
    image.write_bytes(jpeg_and_png(13)[1])
    predictions = namespace["classify"]([str(image)], ZOO_NAME, host=rest_server)
    assert len(predictions) == 1
    assert set(predictions[0]["top_k_class_names"]) == set(CLASS_NAMES)

"""Other runtimes: `keras-preact export --format onnx|openvino|litert` gives the Keras model's answers.

Each format is exported through the CLI (the tiny test zoo, and `resnetv2_20_cifar10` on
the CIFAR-10 CI slice when the archive is here), then run in a fresh process in which
`import keras`, `import keras_preact` and (except for the SavedModel) `import tensorflow`
fail, through keras_preact/formats.py loaded by path: the runtime and NumPy alone must do.
Every image must get the Keras model's top-1 class, and every probability must be within
`runtimes.AGREEMENT_TOLERANCE` (1e-4) of Keras'. The same process feeds bad input to the
artifact, both through `runtimes.load_predictor` (which must raise a clear ValueError) and
through the runtime's own API (which must raise, or be one of the silent behaviours
docs/deployment.md warns about).

TF Serving's request protos are checked with its own client library, tensorflow-serving-api,
when it is installed (it is not in the test extra: its wheel requires `tensorflow`, which pip
would install next to `tensorflow-cpu`).
"""

import base64
import functools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_preact import cli, formats, runtimes
from test_zoo_support import (  # noqa: F401 (fixtures)
    CIFAR_MISSING,
    CLASS_NAMES,
    ZOO_NAME,
    cifar_folder,
    encode_image,
    random_pixels,
    run_dir,
    tiny_zoo,
    trained_model,
)

EXPORT_FORMATS = runtimes.EXPORT_FORMATS
CIFAR_MODEL = "resnetv2_20_cifar10"
# The keras-free half of the runtimes (constants, converters, load_predictor), loaded by path below.
FORMATS_PY = Path(formats.__file__).resolve()
# What each runtime's own API does with bad input without raising; load_predictor must raise for
# all of them. The rest of BAD_INPUTS must make the raw runtime raise. docs/deployment.md lists these.
SILENT_IN_RAW_RUNTIME = {
    "saved_model": {"other_size"},  # resized in-graph: a documented feature, not an error
    "onnx": set(),
    "openvino": {"float_0_to_1"},  # compiled_model(x) converts a float array to uint8
    "litert": {"rank_3", "other_size"},  # the signature runner resizes its input to any shape
}

SERVE_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    fmt, formats_py, work = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.modules["keras"] = None          # `import keras` now fails
    sys.modules["keras_preact"] = None
    if fmt != "saved_model":
        sys.modules["tensorflow"] = None  # ONNX Runtime, OpenVINO and LiteRT need no TensorFlow
    import numpy as np

    spec = importlib.util.spec_from_file_location("formats", formats_py)
    runtimes = importlib.util.module_from_spec(spec)  # what keras_preact.runtimes re-exports
    spec.loader.exec_module(runtimes)
    jobs = json.load(open(f"{work}/jobs.json"))
    report = {}
    for job in jobs:
        predict = runtimes.load_predictor(job["export"])
        images = np.load(job["images"])
        out = {"one": predict(images[:1]), "five": predict(images[:5])}
        out["all"] = np.concatenate([predict(images[i:i + 100]) for i in range(0, len(images), 100)])
        np.savez(f"{work}/{job['name']}.npz", **out)
        report[job["name"]] = {"predictor": repr(predict)}

    # Bad input, to our predictor and to the runtime's own API.
    job = jobs[0]
    predict = runtimes.load_predictor(job["export"])
    good = np.load(job["images"])[:2]
    bad = {
        "rank_3": good[0],
        "four_channels": np.concatenate([good, good[..., :1]], axis=-1),
        "other_size": np.zeros((2, 16, 16, 3), np.uint8),
        "float_0_to_1": good.astype(np.float32) / 255,
        "bytes": np.array([b"not an image"]),
        "empty": np.zeros((0,) + good.shape[1:], np.uint8),
    }
    fmt_, artifact = runtimes.find_artifact(job["export"])
    if fmt == "onnx":
        import onnxruntime
        session = onnxruntime.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        raw = lambda x: session.run(None, {"images": x})[0]
    elif fmt == "openvino":
        import openvino
        compiled = openvino.Core().compile_model(str(artifact), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        raw = lambda x: compiled(x)[0]
    elif fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter
        def raw(x):  # a fresh interpreter each time: a failed resize leaves one unusable
            return Interpreter(model_path=str(artifact)).get_signature_runner()(images=x)["probabilities"]
    else:
        import tensorflow as tf
        loaded = tf.saved_model.load(str(artifact))
        raw = lambda x: loaded.signatures["serving_default"](images=tf.constant(x))["probabilities"].numpy()

    def attempt(function, value):
        try:
            return {"shape": list(np.asarray(function(value)).shape)}
        except Exception as error:
            return {"error": type(error).__name__, "message": str(error).strip()[:1500]}

    report["bad"] = {name: {"predictor": attempt(predict, value), "raw": attempt(raw, value)}
                     for name, value in bad.items()}
    report["bad"]["raw_bytes"] = {"predictor": attempt(predict, b"GIF89a not an image"), "raw": None}
    if fmt == "litert":  # the strict resize load_predictor uses rejects what the runner accepts
        interpreter = Interpreter(model_path=str(artifact))
        index = interpreter.get_input_details()[0]["index"]
        report["litert_strict_resize"] = {
            name: attempt(lambda x: interpreter.resize_tensor_input(index, x.shape, strict=True), bad[name])
            for name in ("rank_3", "other_size", "four_channels")}
    if fmt == "saved_model":
        report["not_an_image"] = attempt(
            lambda x: loaded.signatures["serving_bytes"](image_bytes=tf.constant(x)), [b"not an image"])
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in ("keras", "keras_preact", "tensorflow")
                    and sys.modules[m] is not None)
    report["leaked"] = leaked if fmt != "saved_model" else [m for m in leaked if not m.startswith("tensorflow")]
    json.dump(report, open(f"{work}/report.json", "w"))
    print("SERVED OK")
""")


def sample_images(count=8):
    return np.stack([random_pixels(seed) for seed in range(count)])


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("runtimes")


@pytest.fixture(scope="module")
def cifar_slice(work):
    """(uint8 images [500, 32, 32, 3], labels) of the CIFAR-10 CI slice, or None without the archive."""
    from keras_preact import zoo
    from keras_preact.zoo.evaluation import load_eval_split

    root = cifar_folder()
    if root is None:
        return None
    data, _ = load_eval_split(f"folder:{root}", class_names=zoo.get_card(CIFAR_MODEL)["class_names"],
                              limit=zoo.CI_SLICE)
    images, labels = zip(*((image.numpy(), int(label)) for image, label in data))
    return np.stack(images), np.array(labels)


@functools.lru_cache(maxsize=None)
def cifar_model():
    from keras_preact import zoo

    return zoo.load_model(CIFAR_MODEL)


@pytest.fixture(scope="module")
def cifar_keras(cifar_slice):
    if cifar_slice is None:
        return None
    return runtimes.keras_probabilities(cifar_model(), cifar_slice[0])


_SERVED = {}


def export_tiny(fmt, out):
    """The tiny zoo model through the CLI (openvino: from its training run directory)."""
    if fmt == "saved_model":
        from keras_preact.export import zoo_saved_model

        return zoo_saved_model(ZOO_NAME)
    source = ["--model_dir", str(run_dir())] if fmt == "openvino" else ["--model", ZOO_NAME]
    assert cli.main(["export", *source, "--format", fmt, "--out", str(out)]) == 0
    return out


def export_cifar(fmt, out):
    """The real zoo model (the serving process compares it with Keras; no second check here)."""
    from keras_preact import zoo

    if fmt == "saved_model":
        from keras_preact.export import zoo_saved_model

        return zoo_saved_model(CIFAR_MODEL)
    runtimes.export_model(cifar_model(), out, fmt, class_names=zoo.get_card(CIFAR_MODEL)["class_names"],
                          check=False)
    return out


def served(fmt, work, cifar_slice):
    """Export `fmt` (tiny model; CIFAR model when the slice is here) and serve it in a fresh process."""
    if fmt in _SERVED:
        return _SERVED[fmt]
    folder = work / fmt
    folder.mkdir()
    np.save(folder / "tiny.npy", sample_images())
    jobs = [{"name": "tiny", "export": str(export_tiny(fmt, folder / "tiny_export")),
             "images": str(folder / "tiny.npy")}]
    if cifar_slice is not None:
        np.save(folder / "cifar.npy", cifar_slice[0])
        jobs.append({"name": "cifar", "export": str(export_cifar(fmt, folder / "cifar_export")),
                     "images": str(folder / "cifar.npy")})
    report, outputs = serve_in_fresh_process(fmt, folder, jobs)
    _SERVED[fmt] = (report, outputs, jobs)
    return _SERVED[fmt]


def serve_in_fresh_process(fmt, folder, jobs):
    """Run SERVE_SCRIPT on `jobs` ([{name, export, images}]) in a fresh, keras-free process.

    Returns (report, {job name: {"one", "five", "all": probabilities}}); shared with test_int8.
    """
    (folder / "jobs.json").write_text(json.dumps(jobs))
    script = folder / "serve.py"
    script.write_text(SERVE_SCRIPT)
    result = subprocess.run([sys.executable, str(script), fmt, str(FORMATS_PY), str(folder)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "SERVED OK" in result.stdout, result.stderr[-3000:]
    report = json.loads((folder / "report.json").read_text())
    return report, {job["name"]: dict(np.load(folder / f"{job['name']}.npz")) for job in jobs}


def assert_agrees(served_outputs, expected):
    """Same top-1 on every image, probabilities within the tolerance, for N = 1, 5 and all."""
    np.testing.assert_allclose(served_outputs["one"], expected[:1], atol=runtimes.AGREEMENT_TOLERANCE, rtol=0)
    np.testing.assert_allclose(served_outputs["five"], expected[:5], atol=runtimes.AGREEMENT_TOLERANCE, rtol=0)
    probabilities = served_outputs["all"]
    assert probabilities.dtype == np.float32 and probabilities.shape == expected.shape
    np.testing.assert_array_equal(probabilities.argmax(-1), expected.argmax(-1))
    difference = float(np.abs(probabilities - expected).max())
    assert difference <= runtimes.AGREEMENT_TOLERANCE, difference
    return difference


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_export_serves_the_keras_answers_without_keras(fmt, tiny_zoo, work, cifar_slice):
    report, outputs, jobs = served(fmt, work, cifar_slice)
    assert report["leaked"] == []
    expected = runtimes.keras_probabilities(trained_model(), sample_images())
    difference = assert_agrees(outputs["tiny"], expected)
    print(f"{fmt}: tiny model, max |probability difference| from Keras {difference:.1e}")
    if fmt != "saved_model":
        info = json.loads((Path(jobs[0]["export"]) / runtimes.INFO_FILE).read_text())
        assert info["class_names"] == CLASS_NAMES and info["format"] == fmt
        assert info["input"] == {**info["input"], "name": "images", "dtype": "uint8", "shape": [None, 32, 32, 3]}
        assert info["max_abs_diff_vs_keras"] <= runtimes.AGREEMENT_TOLERANCE
        assert "uint8 [N, 32x32, 3]" in report["tiny"]["predictor"]


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_cifar_slice_same_top1_and_card_accuracy(fmt, tiny_zoo, work, cifar_slice, cifar_keras):
    if cifar_slice is None:
        pytest.skip(CIFAR_MISSING)
    from keras_preact import zoo

    _, outputs, _ = served(fmt, work, cifar_slice)
    difference = assert_agrees(outputs["cifar"], cifar_keras)
    print(f"{fmt}: {CIFAR_MODEL} on the CIFAR-10 (JPEG q75 copy) CI slice, max |difference| {difference:.1e}")
    top1 = round(float((outputs["cifar"]["all"].argmax(-1) == cifar_slice[1]).mean()), 4)
    assert top1 == zoo.get_card(CIFAR_MODEL)["evaluation"]["ci_slice"]["top1"]


BAD_INPUTS = ("rank_3", "four_channels", "other_size", "float_0_to_1", "bytes", "empty")


@pytest.mark.parametrize("fmt", EXPORT_FORMATS)
def test_bad_input_is_an_error_never_a_silent_answer(fmt, tiny_zoo, work, cifar_slice):
    report, _, _ = served(fmt, work, cifar_slice)
    assert_rejects_bad_input(fmt, report, classes=len(CLASS_NAMES))


def assert_rejects_bad_input(fmt, report, *, classes):
    """SERVE_SCRIPT's report on bad input: load_predictor raises a clear ValueError for each, and the
    runtime's own API raises too, except for the documented SILENT_IN_RAW_RUNTIME cases."""
    bad = report["bad"]
    expected_messages = {"rank_3": "expected a batch [N, H, W, 3]", "four_channels": "expected 3 (RGB) channels",
                         "other_size": "expected 32x32 images", "float_0_to_1": "got float32 pixels",
                         "bytes": "encoded images?"}
    for name in BAD_INPUTS:
        ours, raw = bad[name]["predictor"], bad[name]["raw"]
        if name == "empty":  # no images, no rows: what the SavedModel answers
            assert ours == {"shape": [0, classes]}, ours
            # The runtimes differ, and OpenVINO differs by network (its MaxPool refuses a batch of 0):
            # zero rows or an error, never rows of numbers.
            assert raw == {"shape": [0, classes]} or "error" in raw, raw
            continue
        if fmt == "saved_model" and name == "other_size":
            assert ours == {"shape": [2, classes]} and raw == ours  # resized in-graph
            continue
        assert ours["error"] == "ValueError" and expected_messages[name] in ours["message"], (name, ours)
        if name in SILENT_IN_RAW_RUNTIME[fmt]:
            assert "shape" in raw, (name, raw)  # documented: the runtime alone would answer
        else:
            assert "error" in raw, (name, raw)
    assert bad["raw_bytes"]["predictor"]["error"] == "ValueError"
    assert "decode each image first" in bad["raw_bytes"]["predictor"]["message"]
    if fmt == "litert":
        assert all("error" in r for r in report["litert_strict_resize"].values()), report["litert_strict_resize"]
    if fmt == "saved_model":
        assert "is not a JPEG or PNG file" in report["not_an_image"]["message"]


@pytest.mark.parametrize("fmt", ["onnx", "openvino", "litert"])
def test_a_missing_converter_is_one_line_naming_the_extra(fmt, tiny_zoo, tmp_path, monkeypatch, capsys):
    for module in runtimes.EXTRA_MODULES[fmt]:
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    out = tmp_path / "out"
    assert cli.main(["export", "--model", ZOO_NAME, "--format", fmt, "--out", str(out)]) == cli.EXIT_USAGE
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0, error
    assert error.endswith(f'pip install "keras-preact[{fmt}]"') and "not installed" in error
    assert not out.exists()


def test_export_rejects_a_file_as_out_and_an_unknown_format(tiny_zoo, tmp_path, capsys):
    taken = tmp_path / "file"
    taken.write_text("x")
    assert cli.main(["export", "--model", ZOO_NAME, "--format", "onnx", "--out", str(taken)]) == cli.EXIT_USAGE
    assert "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", "--model", ZOO_NAME, "--format", "coreml", "--out", str(tmp_path / "x")])
    with pytest.raises(ValueError, match="holds no exported model"):
        runtimes.load_predictor(tmp_path)


# --- TF Serving's request formats ------------------------------------------------------------


@pytest.fixture
def loaded(tiny_zoo):
    from keras_preact.export import zoo_saved_model

    return tf.saved_model.load(str(zoo_saved_model(ZOO_NAME)))


def serve_predict_request(loaded, request):
    """What tensorflow_model_server does with a PredictRequest: TensorProtos -> arrays -> signature.

    Returns the PredictResponse, with each output as a TensorProto.
    """
    from tensorflow_serving.apis import predict_pb2

    signature = loaded.signatures[request.model_spec.signature_name or "serving_default"]
    inputs = {name: tf.constant(tf.make_ndarray(proto)) for name, proto in request.inputs.items()}
    outputs = signature(**inputs)
    response = predict_pb2.PredictResponse()
    response.model_spec.CopyFrom(request.model_spec)
    for name, tensor in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(tensor.numpy()))
    return response


def test_predict_request_protos_of_both_signatures(loaded):
    predict_pb2 = pytest.importorskip(
        "tensorflow_serving.apis.predict_pb2",
        reason="tensorflow-serving-api is not installed; it is not in the test extra because its wheel "
               "requires `tensorflow`, which pip would install next to tensorflow-cpu. Install it with "
               "`pip install --no-deps tensorflow-serving-api==2.21.*` (it needs only the protos "
               "tensorflow-cpu has).")
    from keras_preact import export

    pixels = np.stack([random_pixels(seed) for seed in range(3)])
    files = [encode_image(p, "PNG") for p in pixels]
    expected = trained_model().predict(pixels.astype("float32"), verbose=0)
    for signature, name, value in (("serving_default", "images", pixels),
                                   ("serving_bytes", "image_bytes", files)):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = ZOO_NAME
        request.model_spec.signature_name = signature
        proto = tf.make_tensor_proto(value) if name == "images" else tf.make_tensor_proto(value, dtype=tf.string)
        request.inputs[name].CopyFrom(proto)
        assert request.inputs[name].dtype == (tf.uint8 if name == "images" else tf.string).as_datatype_enum
        request = predict_pb2.PredictRequest.FromString(request.SerializeToString())  # over the wire
        response = predict_pb2.PredictResponse.FromString(
            serve_predict_request(loaded, request).SerializeToString())
        assert set(response.outputs) == set(export.OUTPUT_NAMES)
        shapes = {key: [d.size for d in proto.tensor_shape.dim] for key, proto in response.outputs.items()}
        k = len(CLASS_NAMES)
        assert shapes == {"probabilities": [3, k], "top_k_classes": [3, k], "top_k_probabilities": [3, k],
                          "top_k_class_names": [3, k]}
        np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, atol=1e-5)
        names = tf.make_ndarray(response.outputs["top_k_class_names"])
        assert [n.decode() for n in names[:, 0]] == [CLASS_NAMES[i] for i in expected.argmax(-1)]


def test_tensor_protos_and_rest_b64_give_the_same_answer(loaded):
    """The TensorProto round trip (TensorFlow's own protos) and the REST `{"b64": ...}` body agree."""
    from keras_preact import serving

    pixels = np.stack([random_pixels(seed) for seed in range(2)])
    files = [encode_image(p, "JPEG", quality=90) for p in pixels]
    by_proto = loaded.signatures["serving_bytes"](
        image_bytes=tf.constant(tf.make_ndarray(tf.make_tensor_proto(files, dtype=tf.string))))
    body = {"signature_name": "serving_bytes",
            "instances": [{"image_bytes": {"b64": base64.b64encode(f).decode("ascii")}} for f in files]}
    status, response = serving.rest_predict(loaded, json.dumps(body))
    assert status == 200
    np.testing.assert_allclose([row["probabilities"] for row in response["predictions"]],
                               by_proto["probabilities"].numpy(), atol=1e-6)
    uint8_proto = tf.make_tensor_proto(pixels)
    assert uint8_proto.dtype == tf.uint8.as_datatype_enum
    by_pixels = loaded.signatures["serving_default"](images=tf.constant(tf.make_ndarray(uint8_proto)))
    np.testing.assert_allclose(by_pixels["probabilities"].numpy(),
                               trained_model().predict(pixels.astype("float32"), verbose=0), atol=1e-5)

"""keras.applications' own application tests, run against our builders, in both data formats.

The checks of Keras 3's `keras/src/applications/applications_test.py`, one test of ours per test
of theirs, on the nine builders that share a name with keras.applications (ResNet50/101/152,
ResNet50V2/101V2/152V2, DenseNet121/169/201), on every registered CIFAR builder and on the
v2 paper's ablations, each under `channels_last` and `channels_first`:

- test_application_notop_variable_input_channels: no top, input (None, None, 1) and
  (None, None, 4) (channels first: (1, None, None), (4, None, None)): a 4D feature map with
  the network's last width on the channel axis;
- test_application_notop_custom_input_shape: no top, a 123x123x3 input;
- test_application_notop_custom_input_tensor: no top, `input_tensor` = a strided Conv2D(3) of
  a 200x200x4 Input;
- test_application_pooling: no top, `pooling="max"` gives [None, last width];
- test_application_classifier_activation: `classifier_activation="softmax"` is the last
  layer's activation;
- test_application_base: what of it runs offline. It needs `weights="imagenet"` (a download)
  and an elephant photo from the internet; here the model is built with its defaults
  (`weights=None`) and round-trips `serialize_keras_object` / `deserialize_keras_object` with
  the same weights. ImageNet weights in both formats are tested with keras.applications
  itself standing in for the download (test_imagenet_weights_in_both_formats).

Keras skips DenseNet (and ConvNeXt, NASNet) under channels_first. Ours builds it with the same
layers (BatchNormalization and Concatenate on axis 1), so nothing is skipped here; only
`DenseNet(memory_efficient=True)` refuses channels_first (its layers reduce over the last axis).

Added to Keras' checks: `input_tensor` with a batch size, `pooling="avg"`, `classes` with
`weights=None`, the `.keras` round trip, any channel count with `include_preprocessing=True`,
the same outputs from the same weights in both formats (on transposed inputs), and the JAX
backend (in a subprocess: the backend is fixed per process).

The networks' channels_first and channels_last outputs are compared on TensorFlow's CPU,
whose oneDNN convolution takes NCHW (Keras' own test skips its one channels_first forward pass
on a CPU; Keras' TensorFlow backend transposes pooling itself), and on JAX.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact import zoo
from keras_preact.models.data_format import DATA_FORMATS
from keras_preact.models.layers import ChannelZeroPad, ImageNormalization
from keras_preact.models.registry import get_model_spec, list_models
from keras_preact.models.residual import SHORTCUTS, UNIT_LAYOUTS

# keras.applications' MODEL_LIST entries for the nine networks ours has, with its last widths.
SHARED = {
    "ResNet50": 2048, "ResNet101": 2048, "ResNet152": 2048,
    "ResNet50V2": 2048, "ResNet101V2": 2048, "ResNet152V2": 2048,
    "DenseNet121": 1024, "DenseNet169": 1664, "DenseNet201": 1920,
}
CIFAR = [n for n in list_models() if get_model_spec(n).dataset == "cifar"]
# Thousands of layers: a second or more per Keras check and format; the same units as
# resnet_110 / resnetv2_164, so they run in the slow suite only.
DEEPEST = ("resnet_1202", "resnetv2_1001")


def _builder_by_name():
    """Registry name -> public builder (ResNet_20, ResNetV2_164, DenseNet_BC_100_12, ...)."""
    builders = {}
    for attribute in dir(keras_preact):
        builder = getattr(keras_preact, attribute)
        if hasattr(builder, "registry_name"):
            builders[builder.registry_name] = builder
    return builders


BUILDERS = _builder_by_name()


def _ablation(unit="full_preactivation", shortcut="identity"):
    def build(**kwargs):
        return keras_preact.ResNetV2(8, unit=unit, shortcut=shortcut, **kwargs)

    build.__name__ = f"ResNetV2(8, unit={unit!r}, shortcut={shortcut!r})"
    return build


def _cifar_width(name):
    """The last feature width of a registered CIFAR net, from the papers' rules (not from the
    model): 64 (4 x 64 with bottleneck units) for the ResNets; for a DenseNet, the initial
    features plus k per dense layer, times theta at each transition."""
    kwargs = get_model_spec(name).kwargs
    if not name.startswith("densenet"):
        return 64 * (4 if kwargs.get("block") == "bottleneck" else 1)
    k, bc = kwargs["growth_rate"], kwargs.get("bottleneck", False)
    n = (kwargs["depth"] - 4) // (6 if bc else 3)
    width = 2 * k if bc else 16
    for block in range(3):
        width += n * k
        if block < 2:
            width = int(width * kwargs.get("compression", 1.0))
    return width


# (builder, last width), by test id: the nine shared names, every CIFAR builder, the ablations.
APPS = (
    [pytest.param(getattr(keras_preact, name), width, id=name) for name, width in SHARED.items()]
    + [pytest.param(BUILDERS[name], _cifar_width(name), id=name,
                    marks=[pytest.mark.slow] if name in DEEPEST else [])
       for name in CIFAR]
    + [pytest.param(_ablation(unit=u), 64, id=f"unit_{u}")
       for u in UNIT_LAYOUTS if u != "full_preactivation"]
    + [pytest.param(_ablation(shortcut=s), 64, id=f"shortcut_{s}") for s in SHORTCUTS]
)


@pytest.fixture(params=DATA_FORMATS)
def data_format(request):
    before = keras.config.image_data_format()
    keras.config.set_image_data_format(request.param)
    yield request.param
    keras.config.set_image_data_format(before)


def _shape(hwc, data_format):
    h, w, c = hwc
    return (h, w, c) if data_format == "channels_last" else (c, h, w)


def _channel_axis(data_format):
    return -1 if data_format == "channels_last" else 1


# --- keras.applications' checks -------------------------------------------------------------

def _shapes_only():
    """Keras' checks look at shapes and layers, never at values: the models are built with their
    variables created but not initialized, which makes a build 2-4x cheaper (ResNet152: 0.5-0.7 s
    of CPU instead of 2.1-2.8 s; DenseNet201 0.9 s instead of 1.7 s) and this file's ~400 builds
    affordable in the default run."""
    return keras.StatelessScope(initialize_variables=False)


@pytest.mark.parametrize("app, width", APPS)
def test_application_notop_variable_input_channels(app, width, data_format):
    expected = ([None, None, None, width] if data_format == "channels_last"
                else [None, width, None, None])
    for channels in (1, 4):
        with _shapes_only():
            model = app(weights=None, include_top=False,
                        input_shape=_shape((None, None, channels), data_format))
        assert list(model.outputs[0].shape) == expected, channels


@pytest.mark.parametrize("app, width", APPS)
def test_application_notop_custom_input_shape(app, width, data_format):
    with _shapes_only():
        model = app(weights=None, include_top=False, input_shape=_shape((123, 123, 3), data_format))
    assert list(model.outputs[0].shape)[_channel_axis(data_format)] == width


@pytest.mark.parametrize("app, width", APPS)
def test_application_notop_custom_input_tensor(app, width, data_format):
    inputs = keras.Input(shape=_shape((200, 200, 4), data_format), name="custom_input")
    with _shapes_only():
        tensor = keras.layers.Conv2D(3, (2, 2), padding="valid", strides=(2, 2))(inputs)
        model = app(weights=None, include_top=False, input_tensor=tensor)
    assert list(model.outputs[0].shape)[_channel_axis(data_format)] == width
    assert model.inputs[0] is inputs


@pytest.mark.parametrize("app, width", APPS)
def test_application_pooling(app, width, data_format):
    with _shapes_only():
        model = app(weights=None, include_top=False, pooling="max")
    assert list(model.outputs[0].shape) == [None, width]
    assert isinstance(model.layers[-1], keras.layers.GlobalMaxPooling2D)
    assert model.layers[-1].data_format == data_format


@pytest.mark.parametrize("app, width", APPS)
def test_application_classifier_activation_and_serialization(app, width, data_format):
    """Keras' test_application_classifier_activation, and test_application_base's
    serialization round trip (its ImageNet inference needs a download)."""
    with _shapes_only():
        model = app(weights=None, include_top=True, classifier_activation="softmax")
        config = keras.saving.serialize_keras_object(model)
        reconstructed = keras.saving.deserialize_keras_object(config)
    assert model.layers[-1].activation.__name__ == "softmax"
    assert len(reconstructed.weights) == len(model.weights)
    assert reconstructed.input_shape == model.input_shape
    assert reconstructed.input_shape[_channel_axis(data_format)] == 3


# --- what Keras' tests do not check ------------------------------------------------------------

SMALL = ("resnet_20", "resnetv2_20", "densenet_40_12")


@pytest.mark.parametrize("name", ["ResNet50", "ResNet50V2", "DenseNet121", *SMALL])
def test_input_tensor_with_batch_size_and_avg_pooling_and_classes(name, data_format):
    builder = getattr(keras_preact, name, None) or BUILDERS[name]
    size = 64 if name in SHARED else 32
    inputs = keras.Input(shape=_shape((size, size, 3), data_format), batch_size=2)
    headless = builder(weights=None, include_top=False, pooling="avg", input_tensor=inputs)
    width = headless.output_shape[-1]
    assert headless.input_shape == (2, *_shape((size, size, 3), data_format))
    assert headless.output_shape == (2, width)
    assert isinstance(headless.layers[-1], keras.layers.GlobalAveragePooling2D)
    pixels = np.random.RandomState(0).uniform(0, 255, (2, *_shape((size, size, 3), data_format)))
    features = np.asarray(headless([pixels.astype("float32")]))
    assert features.shape == (2, width) and np.isfinite(features).all()
    classifier = builder(weights=None, classes=7, input_shape=_shape((size, size, 3), data_format))
    assert classifier.output_shape == (None, 7)
    assert classifier.get_layer("predictions").kernel.shape == (width, 7)


@pytest.mark.parametrize("name", SMALL)
def test_keras_file_round_trip(name, data_format, tmp_path):
    model = BUILDERS[name](classifier_activation=None)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.input_shape == (None, *_shape((32, 32, 3), data_format))
    x = np.random.RandomState(0).uniform(0, 255, (2, *_shape((32, 32, 3), data_format)))
    np.testing.assert_array_equal(loaded(x.astype("float32"), training=False),
                                  model(x.astype("float32"), training=False))
    # The file says which layout it holds: loading it under the other one changes nothing.
    other = DATA_FORMATS[1 - DATA_FORMATS.index(data_format)]
    keras.config.set_image_data_format(other)
    again = keras.saving.load_model(path)
    assert again.input_shape == loaded.input_shape
    assert again.get_layer("preprocessing").data_format == data_format


# --- same weights, same function, in either format ----------------------------------------------

def _nchw(x):
    return np.transpose(x, (0, 3, 1, 2))


def _both_formats(build, x, *, share_weights=True):
    """Outputs of `build()` under channels_last on x, and of the channels_first model with
    the same weights (set_weights, unless `build` loads them) on x transposed to NCHW."""
    keras.config.set_image_data_format("channels_last")
    last = build()
    y_last = np.asarray(last(x, training=False))
    keras.config.set_image_data_format("channels_first")
    first = build()
    assert first.input_shape[1] == x.shape[-1]  # channels first
    if share_weights:
        first.set_weights(last.get_weights())
    y_first = np.asarray(first(_nchw(x), training=False))
    return y_last, y_first


@pytest.fixture
def restore_format():
    before = keras.config.image_data_format()
    yield
    keras.config.set_image_data_format(before)


@pytest.mark.parametrize("zoo_name", ["resnet_20_cifar10", "resnetv2_20_cifar10"])
def test_zoo_weights_give_the_same_outputs_in_both_formats(zoo_name, restore_format):
    """A trained model, its own weights file loaded in each format: max |diff| <= 1e-5
    (measured: 7e-9 and 6e-8; resnetv2_56 1.2e-7, densenet_bc_100_12 4.5e-8)."""
    x = np.random.RandomState(0).randint(0, 256, (4, 32, 32, 3)).astype("float32")
    y_last, y_first = _both_formats(lambda: zoo.load_model(zoo_name), x, share_weights=False)
    # The file's weights, no set_weights: both models loaded them themselves.
    np.testing.assert_allclose(y_first, y_last, atol=1e-5, rtol=0)
    assert y_last.max() > 0.5  # a trained model's confident probabilities, not a flat output


CIFAR_EQUAL = ["resnet_20", "resnetv2_20", "densenet_40_12", "densenet_bc_100_12"]


@pytest.mark.parametrize("build", [
    *[pytest.param(lambda n=n: BUILDERS[n](classifier_activation=None), id=n)
      for n in CIFAR_EQUAL],
    pytest.param(lambda: keras_preact.ResNet(20, shortcut_type="B", classifier_activation=None),
                 id="resnet_20_option_B"),
    *[pytest.param(lambda s=s: _ablation(shortcut=s)(classifier_activation=None),
                   id=f"shortcut_{s}") for s in SHORTCUTS],
    *[pytest.param(lambda u=u: _ablation(unit=u)(classifier_activation=None),
                   id=f"unit_{u}") for u in UNIT_LAYOUTS],
])
def test_cifar_nets_compute_the_same_function_in_both_formats(build, restore_format):
    x = np.random.RandomState(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    y_last, y_first = _both_formats(build, x)
    np.testing.assert_allclose(y_first, y_last, atol=1e-5 * np.abs(y_last).max(), rtol=0)
    assert np.abs(y_last).max() > 0


def _shared_pair(name):
    # Untrained ImageNet nets in inference mode (BN at its initial statistics) give logits
    # up to ~1e5 (ResNet50), so the tolerance is 1e-5 of the largest; measured: 1e-6 of it.
    return pytest.param(
        name, marks=[] if name in ("ResNet50", "ResNet50V2", "DenseNet121") else [pytest.mark.slow])


@pytest.mark.parametrize("name", [_shared_pair(n) for n in SHARED])
def test_shared_nets_compute_the_same_function_in_both_formats(name, restore_format):
    """Preprocessing inside ("caffe" BGR for ResNet50, "tf" for ResNet50V2, "torch" for
    DenseNet121) and the network, at 64x64."""
    x = np.random.RandomState(2).uniform(0, 255, (2, 64, 64, 3)).astype("float32")

    def build():
        shape = (64, 64, 3) if keras.config.image_data_format() == "channels_last" else (3, 64, 64)
        return getattr(keras_preact, name)(classifier_activation=None, input_shape=shape)

    y_last, y_first = _both_formats(build, x)
    np.testing.assert_allclose(y_first, y_last, atol=1e-5 * np.abs(y_last).max(), rtol=0)


def test_image_normalization_follows_the_data_format():
    caffe = dict(mean=(103.9, 116.8, 123.7), std=(1.0, 2.0, 4.0), scale=1.0, reverse_channels=True)
    x = np.random.RandomState(3).uniform(0, 255, (2, 5, 6, 3)).astype("float32")
    last = np.asarray(ImageNormalization(**caffe, data_format="channels_last")(x))
    expected = (x[..., ::-1] - np.array(caffe["mean"], "float32")) / np.array(caffe["std"], "float32")
    np.testing.assert_allclose(last, expected, rtol=1e-6, atol=1e-4)
    first = np.asarray(ImageNormalization(**caffe, data_format="channels_first")(_nchw(x)))
    np.testing.assert_allclose(first, _nchw(last), rtol=1e-6, atol=1e-4)
    padded = ChannelZeroPad(2, data_format="channels_first")(_nchw(x))
    assert tuple(padded.shape) == (2, 5, 5, 6)
    np.testing.assert_array_equal(np.asarray(padded)[:, :3], _nchw(x))
    assert not np.asarray(padded)[:, 3:].any()
    # Saved before the data_format argument existed: channels_last, whatever the global setting.
    config = ImageNormalization(**caffe, data_format="channels_last").get_config()
    del config["data_format"]
    keras.config.set_image_data_format("channels_first")
    try:
        assert ImageNormalization.from_config(config).data_format == "channels_last"
        assert ImageNormalization(**caffe).data_format == "channels_first"
    finally:
        keras.config.set_image_data_format("channels_last")
    with pytest.raises(ValueError, match="data_format"):
        ChannelZeroPad(2, data_format="NCHW")


@pytest.fixture
def offline_resnet50v2(monkeypatch):
    """keras.applications.ResNet50V2 standing in for its ImageNet download (seeded weights)."""
    built = []
    original = keras.applications.ResNet50V2

    def stand_in(weights="imagenet", **kwargs):
        assert weights == "imagenet"
        keras.utils.set_random_seed(7)
        built.append(original(weights=None, **kwargs))
        return built[-1]

    monkeypatch.setattr(keras.applications, "ResNet50V2", stand_in)
    return built


def test_imagenet_weights_in_both_formats(offline_resnet50v2, data_format):
    ours = keras_preact.ResNet50V2(weights="imagenet", classifier_activation=None)
    [theirs] = offline_resnet50v2
    assert ours.input_shape == theirs.input_shape == (None, *_shape((224, 224, 3), data_format))
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    pixels = np.random.RandomState(4).randint(0, 256, (1, 224, 224, 3)).astype("float32")
    if data_format == "channels_first":
        pixels = _nchw(pixels)
    expected = theirs(keras.applications.resnet_v2.preprocess_input(pixels.copy()), training=False)
    np.testing.assert_allclose(keras.activations.softmax(ours(pixels, training=False)), expected,
                               atol=1e-5, rtol=0)


# --- any channel count with include_preprocessing=True -------------------------------------------

@pytest.mark.parametrize("channels", [1, 2, 4])
def test_other_channel_counts_pass_through_unnormalized(channels, data_format):
    """keras.applications' convention (ConvNeXt, EfficientNetV2): 3 channels are normalized,
    any other count reaches the first conv as it is."""
    shape = _shape((32, 32, channels), data_format)
    model = keras_preact.ResNetV2_20(input_shape=shape, classifier_activation=None)
    assert not [l for l in model.layers if isinstance(l, ImageNormalization)]
    raw = keras_preact.ResNetV2_20(input_shape=shape, include_preprocessing=False,
                                   classifier_activation=None)
    raw.set_weights(model.get_weights())
    x = np.random.RandomState(5).uniform(0, 255, (2, *shape)).astype("float32")
    np.testing.assert_array_equal(model(x, training=False), raw(x, training=False))
    assert model.get_layer("conv1_conv").kernel.shape == (3, 3, channels, 16)
    rgb = keras_preact.ResNetV2_20(input_shape=_shape((32, 32, 3), data_format))
    assert rgb.get_layer("preprocessing").data_format == data_format


# --- what refuses, and says why ---------------------------------------------------------------------

def test_channels_first_refusals_say_why(restore_format):
    keras.config.set_image_data_format("channels_first")
    with pytest.raises(ValueError, match=r"memory_efficient=True builds channels_last models only"):
        keras_preact.DenseNet_40_12(memory_efficient=True)
    with pytest.raises(ValueError, match=r"\(channels, height, width\).*channels_first"):
        keras_preact.ResNet_20(input_shape=(32, 32))
    with pytest.raises(ValueError, match=r"at least 4"):
        keras_preact.ResNet_20(input_shape=(3, 32, 2))


# --- the JAX backend ----------------------------------------------------------------------------------

JAX_SCRIPT = """
import numpy as np, keras, keras_preact
assert keras.backend.backend() == "jax"
x = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
for name in ("ResNet_20", "ResNetV2_20"):
    builder = getattr(keras_preact, name)
    outputs = {}
    for fmt in ("channels_last", "channels_first"):
        keras.config.set_image_data_format(fmt)
        shape = (None, None, 1) if fmt == "channels_last" else (1, None, None)
        width = builder(include_top=False, input_shape=shape).outputs[0].shape
        assert list(width) == ([None, None, None, 64] if fmt == "channels_last"
                               else [None, 64, None, None]), (name, fmt, width)
        assert builder(include_top=False, pooling="max").output_shape == (None, 64)
        model = builder(classifier_activation=None)
        if fmt == "channels_last":
            weights = model.get_weights()
            outputs[fmt] = np.asarray(model(x, training=False))
        else:
            model.set_weights(weights)
            outputs[fmt] = np.asarray(model(np.transpose(x, (0, 3, 1, 2)), training=False))
    diff = np.abs(outputs["channels_first"] - outputs["channels_last"]).max()
    scale = np.abs(outputs["channels_last"]).max()
    assert diff <= 1e-5 * scale, (name, diff, scale)
    print("ok", name, diff, scale, flush=True)
"""


def test_both_formats_on_jax():
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("ok ") == 2, result.stdout


# --- exports take NHWC pixels whatever the model's format ----------------------------------------

def test_channels_first_model_exports_a_saved_model_taking_nhwc_uint8(restore_format, tmp_path):
    import tensorflow as tf

    from keras_preact import export
    from keras_preact.models.data_format import channels_last_twin, model_data_format

    keras.config.set_image_data_format("channels_last")
    last = keras_preact.build_variant("resnet_20", depth=8, classes=3, classifier_activation=None)
    keras.config.set_image_data_format("channels_first")
    first = keras_preact.build_variant("resnet_20", depth=8, classes=3, classifier_activation=None)
    first.set_weights(last.get_weights())
    assert model_data_format(first) == "channels_first"
    twin = channels_last_twin(first)
    assert model_data_format(twin) == "channels_last" and twin.input_shape == (None, 32, 32, 3)
    assert channels_last_twin(twin) is twin
    path = export.export_model(first, tmp_path / "sm", class_names=["a", "b", "c"])
    pixels = np.random.RandomState(6).randint(0, 256, (2, 32, 32, 3)).astype("uint8")
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=pixels)
    expected = keras.ops.softmax(last(pixels.astype("float32"), training=False))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5, rtol=0)

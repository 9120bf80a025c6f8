"""The keras.applications calling convention, errors, weights, serialization."""

import inspect
import re

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.models.layers import ImageNormalization

X = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")


# --- calling convention -------------------------------------------------------

def test_cifar_defaults_are_32x32x3_and_10_classes():
    model = keras_preact.ResNetV2_20()
    assert model.input_shape == (None, 32, 32, 3)
    assert model.output_shape == (None, 10)
    assert model.name == "resnetv2_20"
    np.testing.assert_allclose(np.sum(model(X), axis=-1), 1.0, atol=1e-5)


def test_imagenet_defaults_are_224x224x3_and_1000_classes():
    model = keras_preact.ResNetV2_18()
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)


@pytest.mark.parametrize("pooling, shape", [(None, (None, 8, 8, 64)), ("avg", (None, 64)), ("max", (None, 64))])
def test_include_top_false_and_pooling(pooling, shape):
    model = keras_preact.ResNet_20(include_top=False, pooling=pooling)
    assert model.output_shape == shape


def test_classes_and_logits():
    model = keras_preact.DenseNet_40_12(classes=100, classifier_activation=None)
    assert model.output_shape == (None, 100)
    assert not np.allclose(np.sum(model(X), axis=-1), 1.0)


def test_variable_input_size_without_top_and_with_top():
    model = keras_preact.ResNetV2_20(input_shape=(None, None, 3), include_top=False, pooling="avg")
    assert model(np.zeros((1, 48, 40, 3), "float32")).shape == (1, 64)
    model = keras_preact.ResNetV2_20(input_shape=(64, 64, 3))
    assert model.output_shape == (None, 10)


def test_input_tensor_is_used_and_its_producers_kept():
    image = keras.Input((32, 32, 3))
    doubled = keras.layers.Rescaling(2.0)(image)
    model = keras_preact.ResNet_20(input_tensor=doubled, classifier_activation=None)
    # The model starts at the Input that produced `input_tensor`, with the layers between kept.
    assert model.inputs[0] is image
    assert isinstance(model.layers[1], keras.layers.Rescaling)
    assert model.output_shape == (None, 10)
    # ... and computes on the doubled pixels: a model without it needs 2 * X for the same outputs.
    plain = keras_preact.ResNet_20(classifier_activation=None)
    plain.set_weights(model.get_weights())
    np.testing.assert_allclose(model(X), plain(2.0 * X), rtol=1e-4, atol=1e-4)
    assert not np.allclose(model(X), plain(X), rtol=1e-4, atol=1e-4)


def test_include_preprocessing_normalizes_raw_pixels_inside():
    with_pre = keras_preact.ResNetV2_20(classifier_activation=None)
    without = keras_preact.ResNetV2_20(include_preprocessing=False, classifier_activation=None)
    without.set_weights(with_pre.get_weights())
    mean = np.array([0.4914, 0.4822, 0.4465], "float32")
    std = np.array([0.2470, 0.2435, 0.2616], "float32")
    np.testing.assert_allclose(with_pre(X), without((X / 255.0 - mean) / std), atol=1e-4)
    assert isinstance(with_pre.get_layer("preprocessing"), ImageNormalization)


def test_stochastic_depth_and_zero_init_are_off_by_default_and_work():
    plain = keras_preact.ResNetV2_20()
    assert not [l for l in plain.layers if "drop" in l.name]
    dropped = keras_preact.ResNetV2_20(drop_path_rate=0.5)
    rates = [dropped.get_layer(f"conv{s}_block{b}_drop_path").rate for s in (2, 3, 4) for b in (1, 2, 3)]
    assert rates == sorted(rates) and rates[-1] == pytest.approx(0.5)
    # Training-mode outputs vary run to run, inference-mode outputs do not.
    assert not np.allclose(dropped(X, training=True), dropped(X, training=True))
    np.testing.assert_allclose(dropped(X, training=False), dropped(X, training=False))
    zero = keras_preact.ResNet_20(zero_init_residual=True)
    assert np.all(zero.get_layer("conv2_block1_2_bn").gamma.numpy() == 0)
    zero_pre = keras_preact.ResNetV2_20(zero_init_residual=True)
    assert np.all(zero_pre.get_layer("conv2_block1_2_conv").kernel.numpy() == 0)


def test_feature_extractor_returns_every_stage():
    features = keras_preact.feature_extractor(keras_preact.ResNetV2_20())
    outputs = features(X)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "conv1": (2, 32, 32, 16), "conv2": (2, 32, 32, 16),
        "conv3": (2, 16, 16, 32), "conv4": (2, 8, 8, 64),
    }
    dense = keras_preact.feature_extractor(keras_preact.DenseNet121(include_top=False))
    shapes = {k: v.shape[1:3] for k, v in zip(dense.output.keys(), dense.outputs)}
    assert shapes == {"conv1": (112, 112), "conv2": (56, 56), "conv3": (28, 28),
                      "conv4": (14, 14), "conv5": (7, 7)}


def test_resnet_v1_cifar_uses_parameter_free_option_a_shortcuts():
    model = keras_preact.ResNet_20()
    assert not [l for l in model.layers if l.name.endswith("_0_conv")]
    assert model.get_layer("conv3_block1_0_pad").channels == 16
    b = keras_preact.ResNet(20, shortcut_type="B")
    assert len([l for l in b.layers if l.name.endswith("_0_conv")]) == 2


# --- errors -------------------------------------------------------------------

@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: keras_preact.ResNetV2(163, block="bottleneck"), r"9n\+2.*155 and 164"),
        (lambda: keras_preact.ResNet(21), r"6n\+2.*20 and 26"),
        (lambda: keras_preact.ResNet(51, stem="imagenet"), r"18, 34, 50, 101, 152, 200"),
        (lambda: keras_preact.DenseNet(41), r"3n\+4.*40 and 43"),
        (lambda: keras_preact.DenseNet(43, bottleneck=True), r"6n\+4.*40 and 46"),
        (lambda: keras_preact.DenseNet(40, growth_rate=0), r"growth_rate.*received growth_rate=0"),
        (lambda: keras_preact.DenseNet(40, compression=1.5), r"compression.*\(0, 1\]"),
        (lambda: keras_preact.DenseNet(40, compression=0), r"compression"),
        (lambda: keras_preact.ResNet_20(input_shape=(2, 2, 3)), r"at least 4"),
        (lambda: keras_preact.ResNet50(input_shape=(16, 16, 3)), r"at least 32"),
        (lambda: keras_preact.ResNet_20(classes=0), r"classes.*>= 1"),
        (lambda: keras_preact.ResNet_20(pooling="mean"), r"pooling.*'avg', 'max'"),
        (lambda: keras_preact.ResNetV2(20, unit="preact"), r"unit.*full_preactivation"),
        (lambda: keras_preact.ResNetV2(20, shortcut="gated"), r"shortcut.*exclusive_gating"),
        (lambda: keras_preact.ResNetV2_20(drop_path_rate=1.0), r"drop_path_rate"),
        (lambda: keras_preact.ResNet_20(weights="imagenet"), r"'resnet_20' is not one of them"),
        (lambda: keras_preact.ResNet_20(weights="resnet20_cifar10"), r"neither a zoo model nor an existing file"),
        (lambda: keras_preact.get_model("resnetv2_163"), r"Did you mean.*resnetv2_164"),
    ],
)
def test_impossible_configurations_raise_clear_errors(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_errors_are_raised_before_any_layer_is_built(monkeypatch):
    built = []
    monkeypatch.setattr(keras.layers.Conv2D, "build", lambda self, s: built.append(self.name))
    with pytest.raises(ValueError):
        keras_preact.ResNet_20(classes=-1)
    assert built == []


# --- weights and serialization -------------------------------------------------

def test_weights_file_round_trip(tmp_path):
    model = keras_preact.ResNet_20()
    path = str(tmp_path / "r20.weights.h5")
    model.save_weights(path)
    again = keras_preact.ResNet_20(weights=path)
    np.testing.assert_allclose(again(X), model(X), atol=1e-6)
    headless = keras_preact.ResNet_20(weights=path, include_top=False, pooling="avg")
    # Without the top, every weight of the file but the classifier's is loaded, as saved...
    saved = {w.path: w.numpy() for w in model.weights}
    assert {w.path for w in headless.weights} == set(saved) - {"predictions/kernel", "predictions/bias"}
    for weight in headless.weights:
        np.testing.assert_array_equal(weight.numpy(), saved[weight.path], err_msg=weight.path)
    # ... so the headless model computes the full model's pooled features.
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output)
    np.testing.assert_allclose(headless(X), features(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("other", [lambda: keras_preact.ResNet_32(), lambda: keras_preact.ResNet_20(classes=5)])
def test_weights_of_another_architecture_raise(tmp_path, other):
    path = str(tmp_path / "other.weights.h5")
    other().save_weights(path)
    with pytest.raises(ValueError, match="do not fit"):
        keras_preact.ResNet_20(weights=path)


def test_weights_saved_from_a_compiled_model_load(tmp_path):
    """A trained (compiled) model's .weights.h5 also holds optimizer state."""
    model = keras_preact.ResNet_20()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(X, np.array([0, 1]), verbose=0)
    path = str(tmp_path / "trained.weights.h5")
    model.save_weights(path)
    np.testing.assert_allclose(keras_preact.ResNet_20(weights=path)(X), model(X), atol=1e-6)


def test_keras_layout_keeps_keras_name():
    assert keras_preact.ResNet50V2(include_top=False).name == "resnet50v2"


def test_truncated_weights_file_raises(tmp_path):
    path = tmp_path / "t.weights.h5"
    keras_preact.ResNet_20().save_weights(str(path))
    path.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(ValueError, match="damaged or truncated"):
        keras_preact.ResNet_20(weights=str(path))


def test_failed_load_leaves_the_model_untouched(tmp_path):
    from keras_preact.models.weights import load_weights

    model = keras_preact.ResNet_20()
    before = [w.copy() for w in model.get_weights()]
    path = str(tmp_path / "deeper.weights.h5")
    keras_preact.ResNet_32().save_weights(path)
    with pytest.raises(ValueError):
        load_weights(model, path)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["resnet_20", "resnetv2_20", "densenet_40_12"])
def test_keras_file_round_trip_gives_identical_outputs(tmp_path, name):
    model = keras_preact.get_model(name, drop_path_rate=0.1) if "resnet" in name else keras_preact.get_model(name)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(X, training=False), model(X, training=False))


# --- registry and docs ----------------------------------------------------------

def test_registry_lists_every_public_builder():
    names = keras_preact.list_models()
    assert names == sorted(names) and all(n == n.lower() for n in names)
    for name in names:
        spec = keras_preact.get_model_spec(name)
        assert spec.paper, name
        assert "Table" in spec.paper or "keras.applications" in spec.paper, spec.paper
    # One public named builder per registry name, and nothing else named like one.
    public = {n for n in dir(keras_preact) if re.match(r"^(ResNet|DenseNet)\w*\d", n)}
    registered = {getattr(keras_preact, n).registry_name: n for n in public
                  if hasattr(getattr(keras_preact, n), "registry_name")}
    assert sorted(registered) == names
    assert public - set(registered.values()) == {"ResNetV2"}  # the generic builder
    for name, builder_name in registered.items():
        assert builder_name.lower() == name
        assert f"_build_named({name!r}, locals())" in inspect.getsource(getattr(keras_preact, builder_name))

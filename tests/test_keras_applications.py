"""Our keras.applications look-alikes hold their weights in their order and
compute the same function: `ours.set_weights(theirs.get_weights())` gives the
same outputs on random input, exactly (README and docs/models.md say "max
difference 0.0"; that is what is measured, and asserted).

All nine networks run in the default suite at 64x64 (their stages see 32..2 pixels: every
conv, pooling and shortcut of the 224x224 network, on a 12x smaller image); the slow suite
runs them at 224x224. Before the copy, keras.applications' BatchNormalization layers get
random statistics and affine parameters (fresh ones are all 1s and 0s, under which swapping
two BN layers of one width would go unnoticed)."""

import re

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.models.registry import imagenet_weight_sources

PAIRS = {
    "ResNet50V2": "resnet50v2",
    "DenseNet121": "densenet121",
    "ResNet50": "resnet50",
    "ResNet101": "resnet101",
    "ResNet152": "resnet152",
    "ResNet101V2": "resnet101v2",
    "ResNet152V2": "resnet152v2",
    "DenseNet169": "densenet169",
    "DenseNet201": "densenet201",
}
# keras.applications' preprocess_input module of each layout.
MODES = {"ResNet50": "resnet", "ResNet50V2": "resnet_v2", "DenseNet121": "densenet"}


def test_pairs_are_the_registry_networks_that_load_imagenet_weights():
    assert {ours: theirs for theirs, ours in PAIRS.items()} == imagenet_weight_sources()


def _randomize_batch_norm(model, seed):
    """Random moving mean/variance and gamma/beta in every BatchNormalization layer of `model`."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                               rng.normal(0, 0.1, beta.shape).astype("float32"),
                               rng.normal(0, 0.1, mean.shape).astype("float32"),
                               rng.uniform(0.5, 1.5, variance.shape).astype("float32")])


def _pair(application, size, *, include_preprocessing=False):
    """(theirs, ours): keras.applications' network with random weights, and ours with a copy."""
    theirs = getattr(keras.applications, application)(
        weights=None, classifier_activation=None, input_shape=(size, size, 3))
    _randomize_batch_norm(theirs, seed=3)
    ours = keras_preact.get_model(PAIRS[application], include_preprocessing=include_preprocessing,
                                  classifier_activation=None, input_shape=(size, size, 3))
    their_weights = theirs.get_weights()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in their_weights]
    ours.set_weights(their_weights)
    return theirs, ours


def _check_same_function(application, size):
    theirs, ours = _pair(application, size)
    x = np.random.RandomState(0).uniform(-1, 1, (2, size, size, 3)).astype("float32")
    # Logits, not probabilities: near-uniform softmax outputs would hide differences.
    expected = np.asarray(theirs(x, training=False))
    assert np.abs(expected).max() > 1e-3 and np.std(expected) > 1e-3, "a trivial output proves nothing"
    np.testing.assert_array_equal(np.asarray(ours(x, training=False)), expected)


@pytest.mark.parametrize("application", PAIRS)
def test_same_weights_same_outputs(application):
    _check_same_function(application, 64)


@pytest.mark.slow
@pytest.mark.parametrize("application", PAIRS)
def test_same_weights_same_outputs_at_224(application):
    _check_same_function(application, 224)


@pytest.mark.parametrize("application", MODES)
def test_preprocessing_inside_matches_preprocess_input(application):
    """With include_preprocessing=True, raw pixels in == keras' preprocess_input + model."""
    theirs, ours = _pair(application, 64, include_preprocessing=True)
    pixels = np.random.RandomState(1).randint(0, 256, (1, 64, 64, 3)).astype("float32")
    preprocess = getattr(keras.applications, MODES[application]).preprocess_input
    np.testing.assert_allclose(
        ours(pixels, training=False), theirs(preprocess(pixels.copy()), training=False),
        atol=1e-4, rtol=0,
    )


# --------------------------------------------------------------------------- weights="imagenet"
# keras.applications downloads ImageNet weights, which CI cannot. The tests stand in for the
# download: keras.applications builds the network with random weights and records it, so
# what must hold is that ours ends with exactly those weights and computes the same function.


@pytest.fixture
def offline_applications(monkeypatch):
    """Replace keras.applications.ResNet50V2 and ResNet50 by recording, download-free stand-ins."""
    built = []

    def stand_in_for(original):
        def stand_in(weights="imagenet", **kwargs):
            assert weights == "imagenet"
            keras.utils.set_random_seed(7)
            model = original(weights=None, **kwargs)
            built.append((kwargs, model))
            return model
        return stand_in

    for name in ("ResNet50V2", "ResNet50"):
        monkeypatch.setattr(keras.applications, name, stand_in_for(getattr(keras.applications, name)))
    return built


def test_imagenet_weights_are_keras_applications_weights(offline_applications):
    ours = keras_preact.ResNet50V2(weights="imagenet", classifier_activation=None)
    [(kwargs, theirs)] = offline_applications
    assert kwargs["include_top"] is True
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    pixels = np.random.RandomState(2).randint(0, 256, (1, 224, 224, 3)).astype("float32")
    np.testing.assert_allclose(
        keras.activations.softmax(ours(pixels, training=False)),
        theirs(keras.applications.resnet_v2.preprocess_input(pixels.copy()), training=False),
        atol=1e-5, rtol=0)


def test_imagenet_weights_without_top_at_another_size(offline_applications):
    ours = keras_preact.ResNet50V2(weights="imagenet", include_top=False, pooling="avg",
                                   input_shape=(96, 96, 3))
    [(kwargs, theirs)] = offline_applications
    assert kwargs["include_top"] is False
    assert ours.output_shape == (None, 2048)
    for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("build, message", [
    (lambda: keras_preact.ResNetV2_164(weights="imagenet"),
     "'resnetv2_164' is not one of them"),
    (lambda: keras_preact.get_model("resnetv2_50", weights="imagenet"),
     "the networks that are keras.applications' own: densenet121, densenet169, densenet201, "
     "resnet101, resnet101v2, resnet152, resnet152v2, resnet50, resnet50v2."),
    (lambda: keras_preact.ResNet50V2(weights="imagenet", classes=10),
     "needs classes=1000 (ImageNet's); received classes=10. Pass include_top=False"),
])
def test_imagenet_weights_refused_before_building(monkeypatch, build, message):
    monkeypatch.setattr(keras.applications, "ResNet50V2", lambda **kw: pytest.fail("built"))
    with pytest.raises(ValueError, match=re.escape(message)):
        build()


def test_imagenet_weights_that_do_not_fit_are_refused(offline_applications):
    # resnet50 without keras.applications' conv biases: the same registry name, fewer arrays.
    with pytest.raises(ValueError, match=r"ResNet50's ImageNet weights do not fit model 'resnet50': "
                                         r"320 arrays against the model.s 267, first difference at array 5"):
        keras_preact.build_variant("resnet50", weights="imagenet", conv_bias=False)


def test_imagenet_download_failure_says_what_happened(monkeypatch):
    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setattr(keras.applications, "DenseNet121", offline)
    with pytest.raises(RuntimeError, match=r"ImageNet weights of keras.applications.DenseNet121: "
                                           r"keras.applications downloads them .* URL fetch failure"):
        keras_preact.DenseNet121(weights="imagenet")

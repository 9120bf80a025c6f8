"""Our keras.applications look-alikes hold their weights in their order and
compute the same function: `ours.set_weights(theirs.get_weights())` gives the
same outputs (within 1e-4) on random input."""

import keras
import numpy as np
import pytest

import keras_preact

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
IN_CI = ("ResNet50V2", "DenseNet121")


def _check_same_function(application, ours_name):
    theirs = getattr(keras.applications, application)(weights=None, classifier_activation=None)
    ours = keras_preact.get_model(ours_name, include_preprocessing=False, classifier_activation=None)
    their_weights = theirs.get_weights()
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in their_weights]
    ours.set_weights(their_weights)
    x = np.random.RandomState(0).uniform(-1, 1, (2, 224, 224, 3)).astype("float32")
    # Logits, not probabilities: near-uniform softmax outputs would hide differences.
    np.testing.assert_allclose(ours(x, training=False), theirs(x, training=False), atol=1e-4, rtol=0)


@pytest.mark.parametrize("application", IN_CI)
def test_same_weights_same_outputs(application):
    _check_same_function(application, PAIRS[application])


@pytest.mark.slow
@pytest.mark.parametrize("application", [a for a in PAIRS if a not in IN_CI])
def test_same_weights_same_outputs_all(application):
    _check_same_function(application, PAIRS[application])


@pytest.mark.parametrize("application, mode", [("ResNet50V2", "resnet_v2"), ("DenseNet121", "densenet")])
def test_preprocessing_inside_matches_preprocess_input(application, mode):
    """With include_preprocessing=True, raw pixels in == keras' preprocess_input + model."""
    theirs = getattr(keras.applications, application)(weights=None, classifier_activation=None)
    ours = keras_preact.get_model(PAIRS[application], classifier_activation=None)
    ours.set_weights(theirs.get_weights())
    pixels = np.random.RandomState(1).randint(0, 256, (1, 224, 224, 3)).astype("float32")
    preprocess = getattr(keras.applications, mode).preprocess_input
    np.testing.assert_allclose(
        ours(pixels, training=False), theirs(preprocess(pixels.copy()), training=False),
        atol=1e-4, rtol=0,
    )

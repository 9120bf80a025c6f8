"""memory_efficient=True (Pleiss et al. 2017) is the plain DenseNet computed
with less memory: same weights (same order), same outputs, same gradients and
the same BN moving statistics after a training step, within 1e-5."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_preact
from keras_preact.models import densenet_memory

X = np.random.RandomState(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
Y = np.arange(8) % 10


def _pair(**kwargs):
    kwargs = dict(depth=22, growth_rate=12, bottleneck=True, compression=0.5,
                  classifier_activation=None, **kwargs)
    plain = keras_preact.DenseNet(**kwargs)
    efficient = keras_preact.DenseNet(memory_efficient=True, **kwargs)
    efficient.set_weights(plain.get_weights())
    return plain, efficient


def _train_step(model):
    with tf.GradientTape() as tape:
        logits = model(X, training=True)
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(Y, logits, from_logits=True))
    return np.asarray(logits), tape.gradient(loss, model.trainable_weights)


@pytest.mark.parametrize("bottleneck", [True, False])
def test_same_outputs_gradients_and_moving_statistics(bottleneck):
    plain, efficient = _pair() if bottleneck else _pair_no_bottleneck()
    assert [w.shape for w in plain.weights] == [w.shape for w in efficient.weights]
    np.testing.assert_allclose(efficient(X, training=False), plain(X, training=False), atol=1e-5)
    plain_out, plain_grads = _train_step(plain)
    efficient_out, efficient_grads = _train_step(efficient)
    np.testing.assert_allclose(efficient_out, plain_out, atol=1e-5)
    for g_plain, g_eff in zip(plain_grads, efficient_grads):
        np.testing.assert_allclose(g_eff, g_plain, atol=1e-5)
    # Moving mean/variance changed by exactly one update, as in the plain model.
    moving = [w for w in plain.weights if "moving" in w.path]
    assert moving
    for w_plain, w_eff in zip(plain.weights, efficient.weights):
        np.testing.assert_allclose(w_eff.numpy(), w_plain.numpy(), atol=1e-5)


def _pair_no_bottleneck():
    plain = keras_preact.DenseNet(13, growth_rate=12, classifier_activation=None)
    efficient = keras_preact.DenseNet(13, growth_rate=12, classifier_activation=None,
                                      memory_efficient=True)
    efficient.set_weights(plain.get_weights())
    return plain, efficient


def test_fit_keeps_moving_statistics_equal():
    plain, efficient = _pair()
    for model in (plain, efficient):
        model.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    for w_plain, w_eff in zip(plain.weights, efficient.weights):
        np.testing.assert_allclose(w_eff.numpy(), w_plain.numpy(), atol=1e-5)


def test_memory_efficient_model_saves_and_loads(tmp_path):
    _, efficient = _pair(dropout_rate=0.2)
    path = str(tmp_path / "efficient.keras")
    efficient.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(X, training=False), efficient(X, training=False))


def test_memory_efficient_model_keeps_plain_layout():
    """The block's maps stay a list and each transition is one layer, but the
    stage features and the serialized model are the plain model's."""
    plain, efficient = _pair()
    assert any(isinstance(l, densenet_memory.MemoryEfficientTransition) for l in efficient.layers)
    assert not any(l.name == "conv2_concat" for l in efficient.layers)  # never concatenated
    plain_features = keras_preact.feature_extractor(plain)(X)
    efficient_features = keras_preact.feature_extractor(efficient)(X)
    assert sorted(efficient_features) == sorted(plain_features) == ["conv1", "conv2", "conv3", "conv4"]
    for stage, value in plain_features.items():
        np.testing.assert_allclose(efficient_features[stage], value, atol=1e-5)


JAX_SCRIPT = """
import numpy as np, keras, keras_preact
assert keras.backend.backend() == "jax"
kw = dict(depth=10, growth_rate=6, bottleneck=True, compression=0.5, classifier_activation=None)
plain = keras_preact.DenseNet(**kw)
efficient = keras_preact.DenseNet(memory_efficient=True, **kw)
efficient.set_weights(plain.get_weights())
x = np.random.RandomState(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
y = np.arange(4) % 10
assert np.abs(np.asarray(efficient(x)) - np.asarray(plain(x))).max() < 1e-5
for model in (plain, efficient):
    model.compile(optimizer=keras.optimizers.SGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.train_on_batch(x, y)
diff = max(float(np.abs(a - b).max()) for a, b in zip(plain.get_weights(), efficient.get_weights()))
assert diff < 1e-5, diff
print("ok")
"""


@pytest.mark.slow  # 50-70 s; the TensorFlow twin of this check runs in every CI run
def test_memory_efficient_model_trains_the_same_under_jax():
    """keras.remat and the moving-statistics updates also hold on the JAX backend:
    after one SGD step the weights and moving statistics match the plain model's."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", JAX_SCRIPT], env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")

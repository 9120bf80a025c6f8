"""Batch-norm statistics recomputed for averaged weights (keras_preact.training.batch_norm_statistics)."""

import numpy as np
import pytest
import tensorflow as tf
import keras

import keras_preact
from keras_preact.training import batch_norm_statistics
from keras_preact.training.fused_batch_norm import use_fused_batch_norm


def _tiny_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _batches(n, size=16):
    # Batches from different distributions: the average of their statistics is not any one's.
    rng = np.random.default_rng(0)
    return [(rng.normal(i, 1 + i, (size, 8, 8, 3)).astype(np.float32), np.zeros(size, np.int64)) for i in range(n)]


def _iterator(strategy, batches):
    ds = tf.data.Dataset.from_tensor_slices(
        (np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))).batch(len(batches[0][0]))
    return iter(strategy.experimental_distribute_dataset(ds))


@pytest.mark.parametrize("fused", [False, True])
def test_statistics_are_the_average_of_the_batches_statistics(fused):
    """Each moving statistic becomes the mean over the batches of that batch's (biased) statistic, the
    layer's momentum is kept, and inference uses the new statistics; the fused training kernel gives the same."""
    model = _tiny_model()
    if fused:
        assert use_fused_batch_norm(model) == 1
    batches = _batches(3)
    conv = keras.Model(model.input, model.get_layer("conv").output)
    features = [np.asarray(conv(x)) for x, _ in batches]
    want_mean = np.mean([f.mean(axis=(0, 1, 2)) for f in features], axis=0)
    want_var = np.mean([f.var(axis=(0, 1, 2)) for f in features], axis=0)
    strategy = tf.distribute.get_strategy()
    bn = model.get_layer("bn")
    assert batch_norm_statistics.recompute(strategy, model, _iterator(strategy, batches), 3) == 1
    np.testing.assert_allclose(np.asarray(bn.moving_mean), want_mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), want_var, rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.9
    # Inference now normalises with them.
    x = batches[0][0]
    f = features[0]
    expected = (f - want_mean) / np.sqrt(want_var + bn.epsilon) * np.asarray(bn.gamma) + np.asarray(bn.beta)
    normalized = keras.Model(model.input, bn.output)(x, training=False)
    np.testing.assert_allclose(np.asarray(normalized), expected, rtol=1e-4, atol=1e-4)


def test_weights_are_untouched():
    model = _tiny_model()
    before = [np.array(w) for w in model.trainable_weights]
    strategy = tf.distribute.get_strategy()
    batch_norm_statistics.recompute(strategy, model, _iterator(strategy, _batches(2)), 2)
    for a, b in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(a, np.asarray(b))


def test_finds_the_memory_efficient_densenets_nested_layers():
    """The memory-efficient DenseNet keeps its batch norms inside custom layers: all are found, once each."""
    plain = keras_preact.get_model("densenet_40_12", weights=None)
    compact = keras_preact.get_model("densenet_40_12", weights=None, memory_efficient=True)
    expected = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    assert expected == 39  # 36 dense layers + 2 transitions + the final BN (Huang et al. 2017, DenseNet L=40)
    assert len(batch_norm_statistics.batch_norm_layers(plain)) == expected
    found = batch_norm_statistics.batch_norm_layers(compact)
    assert len(found) == expected == len({id(layer) for layer in found})


def test_needs_a_batch():
    strategy = tf.distribute.get_strategy()
    with pytest.raises(ValueError, match="batches must be >= 1, got 0"):
        batch_norm_statistics.recompute(strategy, _tiny_model(), iter([]), 0)

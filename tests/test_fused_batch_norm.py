"""The trainer's fused batch norm (issue 27) changes kernels, not the function: a layer's
outputs, gradients and moving statistics, and a whole training step of the trainer, agree
with Keras' composite batch norm; inference keeps Keras' code; layers the fused op cannot
stand in for are left alone; the recipe switch turns it off."""

from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_preact
from keras_preact.training import configs, loop
from keras_preact.training.fused_batch_norm import use_fused_batch_norm


def _pair(name="resnetv2_20", **overrides):
    ref = keras_preact.build_variant(name, classifier_activation=None, **overrides)
    fused = keras_preact.build_variant(name, classifier_activation=None, **overrides)
    fused.set_weights(ref.get_weights())
    return ref, fused


def _train_pass(model, x):
    with tf.GradientTape() as tape:
        y = model(x, training=True)
        loss = tf.reduce_sum(y * tf.range(y.shape[-1], dtype=tf.float32))
    grads = tape.gradient(loss, model.trainable_variables)
    return y.numpy(), [g.numpy() for g in grads], [v.numpy() for v in model.non_trainable_variables]


def test_fused_layer_computes_what_keras_batch_norm_computes():
    ref, fused = _pair(depth=8)
    assert use_fused_batch_norm(fused) == 7  # ResNetV2-8: 3 units x 2 + the final pre-activation
    x = tf.constant(np.random.RandomState(0).randint(0, 256, (4, 32, 32, 3)).astype("float32"))
    (y0, g0, s0), (y1, g1, s1) = _train_pass(ref, x), _train_pass(fused, x)
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-4)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)
    moved = 0
    for a, b, before in zip(s1, s0, [v.numpy() for v in keras_preact.build_variant(
            "resnetv2_20", depth=8, classifier_activation=None).non_trainable_variables]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
        moved += not np.allclose(a, before)
    assert moved == 14  # every moving mean and variance was updated, as Keras updates them
    np.testing.assert_allclose(fused(x, training=False).numpy(), ref(x, training=False).numpy(),
                               rtol=1e-5, atol=1e-5)


def test_densenet_bottleneck_layers_are_fused_too():
    ref, fused = _pair("densenet_bc_100_12", depth=16)
    n = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in fused.layers)
    assert use_fused_batch_norm(fused) == n > 0
    x = tf.constant(np.random.RandomState(1).randint(0, 256, (2, 32, 32, 3)).astype("float32"))
    (y0, g0, _), (y1, g1, _) = _train_pass(ref, x), _train_pass(fused, x)
    np.testing.assert_allclose(y1, y0, rtol=1e-4, atol=1e-4)
    for a, b in zip(g1, g0):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-3)


def test_layers_the_fused_op_cannot_replace_keep_keras_code():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.BatchNormalization(name="plain")(inputs)
    x = keras.layers.BatchNormalization(synchronized=True, name="synchronized")(x)
    x = keras.layers.BatchNormalization(axis=1, name="axis1")(x)
    flat = keras.layers.BatchNormalization(name="rank2")(keras.layers.Flatten()(x))
    model = keras.Model(inputs, flat)
    assert use_fused_batch_norm(model) == 1
    assert "call" in vars(model.get_layer("plain"))
    for name in ("synchronized", "axis1", "rank2"):
        assert "call" not in vars(model.get_layer(name)), name


def _trainer(fused: bool, tmp_path):
    cfg = configs.get_config("cifar_cpu_short").replace(batch_size=16, fused_batch_norm=fused)
    run = loop.RunSpec(model="resnetv2_20", dataset="cifar10", model_dir=str(tmp_path / str(fused)), cfg=cfg,
                       model_overrides={"depth": 8})
    trainer = loop.Trainer(run, tf.distribute.get_strategy())
    trainer.train_info = SimpleNamespace(num_examples=1600, num_classes=10, class_names=[str(i) for i in range(10)])
    trainer._build()
    return trainer


def test_trainer_step_with_fused_batch_norm_equals_the_keras_step(tmp_path):
    """The recipe's default (fused) and --nofused_batch_norm take the same SGD step."""
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, (16, 32, 32, 3)).astype("uint8")
    labels = rng.randint(0, 10, (16,)).astype("int64")
    trainers = {fused: _trainer(fused, tmp_path) for fused in (True, False)}
    assert configs.get_config("cifar_cpu_short").fused_batch_norm is True
    assert trainers[True].fused_batch_norm_layers == 7 and trainers[False].fused_batch_norm_layers == 0
    initial = trainers[False].model.get_weights()
    trainers[True].model.set_weights(initial)
    after = {}
    for fused, trainer in trainers.items():
        it = iter(tf.data.Dataset.from_tensors((pixels, labels)).repeat())
        out = [float(v) for v in trainer.train_step(it)]
        after[fused] = (out, trainer.model.get_weights())
    np.testing.assert_allclose(after[True][0], after[False][0], rtol=1e-4)
    assert not np.allclose(after[False][1][0], initial[0])  # the step did move the weights
    for a, b in zip(after[True][1], after[False][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_fused_batch_norm_is_a_recipe_field_and_a_flag():
    assert configs.TrainConfig().fused_batch_norm is True
    assert configs.get_config("smoke").replace(fused_batch_norm=False).to_dict()["fused_batch_norm"] is False
    from keras_preact.training import train  # noqa: F401 -- defines the absl flags
    from absl import flags

    assert "fused_batch_norm" in flags.FLAGS


@pytest.mark.parametrize("backend", ["jax"])
def test_other_backends_are_refused_with_a_reason(backend, monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    with pytest.raises(ValueError, match="TensorFlow backend, not 'jax'"):
        use_fused_batch_norm(keras_preact.build_variant("resnetv2_20", depth=8))


def test_model_fit_with_fused_batch_norm_takes_keras_steps():
    """A user's model.fit (TensorFlow backend) may switch it on too: same weights after fit."""
    rng = np.random.RandomState(2)
    x = rng.randint(0, 256, (32, 32, 32, 3)).astype("float32")
    y = rng.randint(0, 10, (32,))
    weights = []
    for fused in (False, True):
        keras.utils.set_random_seed(3)
        model = keras_preact.build_variant("resnetv2_20", depth=8)
        if fused:
            model.set_weights(weights[0][0])
            assert use_fused_batch_norm(model) == 7
        start = model.get_weights()
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
        weights.append((start, model.get_weights()))
    assert not np.allclose(weights[0][1][0], weights[0][0][0])
    for a, b in zip(weights[1][1], weights[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)

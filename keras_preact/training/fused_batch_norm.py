"""Batch norm in one fused kernel for the TensorFlow trainer.

Keras 3 builds a training-mode ``BatchNormalization`` from about ten element-wise ops and
reductions (moments, then ``batch_normalization``), and their gradient from more. On the
CPU that composite cost 28-35% of a pre-activation ResNet's training step, more than
any convolution direction, while TensorFlow's ``FusedBatchNormV3`` (oneDNN on the CPU,
cuDNN on a GPU) computes the same function forward and backward in one kernel each
(BENCHMARKS.md, "CPU training step vs PyTorch"; bench/profile_step.py).

:func:`use_fused_batch_norm` switches a built model's layers to it for training only.
Nothing about the model changes: the same variables (so checkpoints, ``.weights.h5``,
exports and keras.applications' weights are untouched), the same moving-statistics update
(Keras keeps the *biased* batch variance, the fused op returns the unbiased one: converted),
and inference still runs Keras' own code. Layers the fused op cannot stand in for (masks,
batch renormalization, synchronized statistics, a non-channels-last axis) keep Keras' code.
"""

from __future__ import annotations

import types

import keras


def _fusable(layer) -> bool:
    rank = len(layer.input.shape) if _has_input(layer) else 4
    axis = layer.axis if isinstance(layer.axis, int) else None
    return (rank == 4 and axis in (-1, 3) and not getattr(layer, "renorm", False)
            and not getattr(layer, "synchronized", False))


def _has_input(layer) -> bool:
    try:
        layer.input  # noqa: B018 -- raises for a layer never called symbolically
        return True
    except (AttributeError, ValueError):
        return False


def _fused_call(self, inputs, training=None, mask=None):
    """``BatchNormalization.call`` with FusedBatchNormV3 when training (same results)."""
    import tensorflow as tf

    if not (training and self.trainable) or mask is not None or len(inputs.shape) != 4:
        return keras.layers.BatchNormalization.call(self, inputs, training=training, mask=mask)
    # Statistics in float32 under every policy, as Keras' layer computes them.
    x = tf.cast(inputs, tf.float32)
    channels = x.shape[-1]
    gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
    beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
    y, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon,
                                                        data_format="NHWC", is_training=True)
    n = tf.cast(tf.size(x) // channels, tf.float32)
    variance = unbiased * ((n - 1.0) / n)  # Bessel's correction undone: Keras keeps the biased variance
    self.moving_mean.assign(tf.cast(self.moving_mean, tf.float32) * self.momentum + mean * (1.0 - self.momentum))
    self.moving_variance.assign(
        tf.cast(self.moving_variance, tf.float32) * self.momentum + variance * (1.0 - self.momentum))
    return tf.cast(y, self.compute_dtype)


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):  # a nested Model or Sequential
            yield from _all_layers(layer)


def use_fused_batch_norm(model) -> int:
    """Make `model`'s channels-last BatchNormalization layers train with FusedBatchNormV3.

    Only under Keras' TensorFlow backend (the op is TensorFlow's). Returns how many layers
    were switched; the rest keep Keras' code.
    """
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"fused batch norm needs Keras' TensorFlow backend, not {keras.backend.backend()!r}")
    count = 0
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and _fusable(layer):
            layer.call = types.MethodType(_fused_call, layer)
            count += 1
    return count

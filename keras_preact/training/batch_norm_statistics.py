"""Batch-norm statistics recomputed for averaged weights (SWA's ``bn_update``).

Batch norm's moving mean and variance belong to the weights that produced them. A run with
``ema_momentum`` evaluates and exports the weights' moving average, but Keras averages only
the trainable variables: the moving statistics stay the live weights', and while the
learning rate is high the two sets of weights differ enough that the mismatch ruins the
average. Measured on the ResNetV2-164 run of issue 35 at epoch 7 (lr 0.2): 67.0% top-1 on
1,000 training images with the live weights, 10.1% with their average and the live
statistics (docs/zoo.md). Izmailov et al. 2018 ("Averaging Weights Leads to Wider Optima",
sec. 3.2) meet the same problem with SWA and recompute the statistics with one pass over
the training data; torch.optim.swa_utils.update_bn does it as a cumulative average of the
batches' statistics. :func:`recompute` does the same for a Keras model under any
``tf.distribute`` strategy.
"""

from __future__ import annotations

from typing import Iterator, List

import numpy as np
import tensorflow as tf
import keras


def batch_norm_layers(model) -> List[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of `model`, nested models and custom layers' sub-layers
    (the memory-efficient DenseNet's) included, each once, in the order found."""
    found, seen = [], set()

    def visit(obj):
        if isinstance(obj, (list, tuple)):
            for item in obj:
                visit(item)
            return
        if not isinstance(obj, keras.layers.Layer) or id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, keras.layers.BatchNormalization):
            found.append(obj)
        # A Model lists its layers; a custom layer holds its sub-layers as attributes, as
        # Keras itself tracks them.
        children = list(getattr(obj, "layers", None) or []) if isinstance(obj, keras.Model) else []
        children += [v for v in vars(obj).values() if isinstance(v, (keras.layers.Layer, list, tuple))]
        visit(children)

    visit(model)
    return found


def recompute(strategy: tf.distribute.Strategy, model, iterator: Iterator, batches: int) -> int:
    """Replace the moving statistics of `model`'s batch-norm layers by the average of their
    statistics on `batches` batches of `iterator` (a distributed iterator of (images, labels)),
    computed in training mode with the model's current weights. Every replica ends with the
    same values (the average over all replicas' batches, once the caller syncs the workers).
    Nothing else changes: the momentum of each layer is restored. Returns how many layers.
    """
    if batches < 1:
        raise ValueError(f"batches must be >= 1, got {batches}")
    norms = batch_norm_layers(model)
    if not norms:
        return 0
    momenta = [n.momentum for n in norms]
    statistics = [v for n in norms for v in (n.moving_mean, n.moving_variance)]
    try:
        # Momentum 0: after a training-mode call each moving statistic *is* that batch's
        # statistic (read at trace time, hence a function traced here, after the change).
        for n in norms:
            n.momentum = 0.0

        @tf.function
        def forward(it):
            images, _ = next(it)
            strategy.run(lambda x: model(tf.cast(x, tf.float32), training=True), args=(images,))

        sums = [np.zeros(v.shape, np.float64) for v in statistics]
        count = 0
        for _ in range(batches):
            forward(iterator)
            for total, v in zip(sums, statistics):
                for local in strategy.experimental_local_results(v.value):
                    total += np.asarray(local, np.float64)
            count += len(strategy.experimental_local_results(statistics[0].value))
    finally:
        for n, m in zip(norms, momenta):
            n.momentum = m

    @tf.function
    def assign(values):
        for v, value in zip(statistics, values):
            v.assign(tf.cast(value, v.dtype))

    assign([np.asarray(total / count, np.float32) for total in sums])
    return len(norms)

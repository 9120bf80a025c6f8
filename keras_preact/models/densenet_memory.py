"""Memory-efficient DenseNet layers, what `DenseNet(memory_efficient=True)` is built from.

Reference: Pleiss, Chen, Huang, Li, van der Maaten, Weinberger.
"Memory-Efficient Implementation of DenseNets", arXiv 1707.06990.

`MemoryEfficientDenseBlock` keeps each dense block's feature maps as a list,
computes each map's batch moments once, and recomputes every dense layer
(`MemoryEfficientDenseLayer`) and transition (`MemoryEfficientTransition`) in
the backward pass (with dropout: the concatenation, first BN-ReLU and first
conv only, since a recomputed dropout would draw new masks), so the stored
activations grow linearly with depth instead of quadratically. Weights,
outputs, gradients and BN moving statistics are those of the plain model
(`keras_preact.models.densenet`), whose layer names and weight order they keep.
"""

import keras
from keras import layers, ops

from keras_preact.models import _builder

BOTTLENECK_WIDTH = 4  # the 1x1 conv of DenseNet-B makes 4k feature maps (sec. 3)


@keras.saving.register_keras_serializable(package="keras_preact")
class MemoryEfficientDenseLayer(layers.Layer):
    """`densenet.dense_layer` on a list of feature maps, rematerialized in the backward pass.

    A sub-layer of `MemoryEfficientDenseBlock`, which hands it the block's
    feature maps and their batch moments. In training it stores nothing but its
    k-channel output, not the growing concatenation nor the 4k-channel
    bottleneck: memory linear in depth (Pleiss et al. 2017). With dropout, only
    concat -> BN -> ReLU -> first conv is recomputed (new dropout masks would
    change the gradients), and the first conv's output is stored. Three details
    keep it exactly the plain layer:
    - the first BN's batch moments are those of the input maps, computed once
      per map by the block (a channel's moments do not depend on what it is
      concatenated with), and the bottleneck BN's are returned by the
      recomputed function, so the moving statistics are updated once per step,
      never during recomputation;
    - in inference nothing is recomputed (there is no backward pass);
    - its sub-layers are the plain layer's (`_0_bn`, `_1_conv`, `_1_bn`,
      `_2_conv`), created in the same order, so `get_weights()` of a
      memory-efficient and a plain model line up one to one.

    Args:
        growth_rate: int. k, the channels this layer adds.
        bottleneck: bool. DenseNet-B's 1x1 conv to 4k channels first.
        dropout_rate: float. Dropout after each conv.
    """

    def __init__(self, growth_rate, bottleneck, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        self.growth_rate = int(growth_rate)
        self.bottleneck = bool(bottleneck)
        self.dropout_rate = float(dropout_rate)
        first_index = 1 if bottleneck else 2
        self.norm0 = layers.BatchNormalization(
            epsilon=_builder.BN_EPSILON, name=f"{self.name}_0_bn")
        self.conv_first = layers.Conv2D(
            BOTTLENECK_WIDTH * growth_rate if bottleneck else growth_rate,
            1 if bottleneck else 3, padding="same", use_bias=False,
            kernel_initializer="he_normal", name=f"{self.name}_{first_index}_conv",
        )
        self.drop_first = layers.Dropout(dropout_rate, name=f"{self.name}_{first_index}_drop")
        if bottleneck:
            self.norm1 = layers.BatchNormalization(
                epsilon=_builder.BN_EPSILON, name=f"{self.name}_1_bn")
            self.conv2 = layers.Conv2D(
                growth_rate, 3, padding="same", use_bias=False,
                kernel_initializer="he_normal", name=f"{self.name}_2_conv",
            )
            self.drop2 = layers.Dropout(dropout_rate, name=f"{self.name}_2_drop")

    def build(self, input_shape):
        concatenated = (*input_shape[0][:-1], sum(shape[-1] for shape in input_shape))
        self.norm0.build(concatenated)
        self.conv_first.build(concatenated)
        if self.bottleneck:
            middle = (*concatenated[:-1], BOTTLENECK_WIDTH * self.growth_rate)
            self.norm1.build(middle)
            self.conv2.build(middle)

    def call(self, features, moments=None, training=False):
        """The layer's k new maps from `features`, the block's maps so far.

        `moments`: the (mean, variance) of each map in `features`, needed in
        training; computed here when not given.
        """
        features = list(features)
        norm0 = self.norm0
        if training and moments is None:
            moments = [batch_moments(f) for f in features]
        mean, variance = normalization_moments(norm0, moments, training)
        dtype = self.compute_dtype
        scale0, shift0 = _scale_and_shift(norm0.gamma, norm0.beta, mean, variance, norm0.epsilon, dtype)
        kernel_first = ops.cast(self.conv_first.kernel, dtype)

        if not training:  # nothing is stored for a backward pass: no recomputation
            y = concat_normalize_convolve(scale0, shift0, kernel_first, *features)
            if self.bottleneck:
                y = self.conv2(ops.relu(self.norm1(y, training=False)))
            return y

        if self.bottleneck and not self.dropout_rate:
            # The whole layer is recomputed: it then stores nothing but its k-channel
            # output, where recomputing only up to the 1x1 conv would keep the 4k-channel
            # bottleneck three times over (conv output, BN output, ReLU output).
            # The bottleneck BN's batch moments come out of the recomputed function,
            # so its moving statistics are updated once, outside it.
            norm1 = self.norm1

            def whole_layer(scale, shift, kernel, gamma1, beta1, kernel2, *maps):
                y = concat_normalize_convolve(scale, shift, kernel, *maps)
                mean1, variance1 = batch_moments(y)
                scale1, shift1 = _scale_and_shift(gamma1, beta1, mean1, variance1, norm1.epsilon, dtype)
                y = ops.relu(y * scale1 + shift1)
                return ops.conv(y, kernel2, strides=1, padding="same"), mean1, variance1

            y, mean1, variance1 = keras.remat(whole_layer)(
                scale0, shift0, kernel_first,
                # as tensors (read through a cast): recompute_grad differentiates
                # its tensor arguments, not variables handed in as they are
                ops.cast(norm1.gamma, "float32"), ops.cast(norm1.beta, "float32"),
                ops.cast(self.conv2.kernel, dtype), *features)
            update_moving_statistics(norm1, mean1, variance1)
            return y

        # Dropout draws new random masks when recomputed, so with dropout only the
        # deterministic part (concat, BN, ReLU, first conv) is rematerialized.
        y = keras.remat(concat_normalize_convolve)(scale0, shift0, kernel_first, *features)
        y = self.drop_first(y, training=training)
        if not self.bottleneck:
            return y
        y = ops.relu(self.norm1(y, training=training))
        y = self.conv2(y)
        return self.drop2(y, training=training)

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], self.growth_rate)

    def get_config(self):
        return {**super().get_config(), "growth_rate": self.growth_rate,
                "bottleneck": self.bottleneck, "dropout_rate": self.dropout_rate}


@keras.saving.register_keras_serializable(package="keras_preact")
class MemoryEfficientDenseBlock(layers.Layer):
    """A dense block of `MemoryEfficientDenseLayer`s, returning the block's
    feature maps as a list (the input, then each layer's k new maps), never
    their concatenation.

    Each map's batch moments are computed once, when it is made, and handed to
    every later layer: the first BN of a dense layer normalizes the
    concatenation of all earlier maps channel by channel, so one reduction per
    map serves them all, where per-layer moments would add L^2/2 reductions
    and as many full-size gradient terms (measured with the transitions
    recomputed as well: DenseNet-BC-100's step memory at batch 128 went from
    0.43x to 0.34x of the plain model's; BENCHMARKS.md section 5).

    The sub-layers are the plain block's layers `{prefix}_block1`, ... with
    the plain layers' names and order, so the weights line up with the plain
    DenseNet's.

    Args:
        num_layers: int. Dense layers in the block.
        growth_rate: int. k.
        bottleneck: bool. DenseNet-B layers.
        dropout_rate: float. Dropout after each conv.
        prefix: str. The plain model's name prefix of the block ("conv2").
    """

    def __init__(self, num_layers, growth_rate, bottleneck, dropout_rate=0.0, prefix="conv2", **kwargs):
        super().__init__(**kwargs)
        self.num_layers = int(num_layers)
        self.growth_rate = int(growth_rate)
        self.bottleneck = bool(bottleneck)
        self.dropout_rate = float(dropout_rate)
        self.prefix = prefix
        self.dense_layers = [
            MemoryEfficientDenseLayer(growth_rate, bottleneck, dropout_rate, name=f"{prefix}_block{i}")
            for i in range(1, self.num_layers + 1)
        ]

    def build(self, input_shape):
        shapes = [tuple(input_shape)]
        for layer in self.dense_layers:
            layer.build(shapes)
            shapes.append((*shapes[0][:-1], self.growth_rate))

    def call(self, inputs, training=False):
        features = [inputs]
        moments = [batch_moments(inputs)] if training else None
        for layer in self.dense_layers:
            features.append(layer(features, moments, training=training))
            if training:
                moments.append(batch_moments(features[-1]))
        return features

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape)] + [(*input_shape[:-1], self.growth_rate)] * self.num_layers

    def get_config(self):
        return {**super().get_config(), "num_layers": self.num_layers, "growth_rate": self.growth_rate,
                "bottleneck": self.bottleneck, "dropout_rate": self.dropout_rate, "prefix": self.prefix}


@keras.saving.register_keras_serializable(package="keras_preact")
class MemoryEfficientTransition(layers.Layer):
    """`densenet.transition_layer` (BN-ReLU-Conv1x1-AvgPool2x2, sec. 3) on a dense
    block's list of feature maps, the concatenation, BN, ReLU and conv
    rematerialized in the backward pass, so the block's concatenation is never
    stored. Sub-layers `{name}_bn`, `{name}_conv` as in the plain model.

    Args:
        compression: float. theta: the transition keeps floor(theta * m) of
            its m channels.
        dropout_rate: float. Dropout after the conv.
    """

    def __init__(self, compression, dropout_rate=0.0, **kwargs):
        super().__init__(**kwargs)
        self.compression = float(compression)
        self.dropout_rate = float(dropout_rate)
        self.norm = layers.BatchNormalization(epsilon=_builder.BN_EPSILON, name=f"{self.name}_bn")
        self.drop = layers.Dropout(dropout_rate, name=f"{self.name}_drop")

    def build(self, input_shape):
        concatenated = (*input_shape[0][:-1], sum(shape[-1] for shape in input_shape))
        self.norm.build(concatenated)
        self.conv = layers.Conv2D(
            int(concatenated[-1] * self.compression), 1, padding="same", use_bias=False,
            kernel_initializer="he_normal", name=f"{self.name}_conv")
        self.conv.build(concatenated)

    def call(self, features, training=False):
        features = list(features)
        norm = self.norm
        moments = [batch_moments(f) for f in features] if training else None
        mean, variance = normalization_moments(norm, moments, training)
        dtype = self.compute_dtype
        scale, shift = _scale_and_shift(norm.gamma, norm.beta, mean, variance, norm.epsilon, dtype)
        compute = keras.remat(concat_normalize_convolve) if training else concat_normalize_convolve
        y = compute(scale, shift, ops.cast(self.conv.kernel, dtype), *features)
        y = self.drop(y, training=training)
        return ops.average_pool(y, 2, strides=2, padding="valid")

    def compute_output_shape(self, input_shape):
        channels = sum(shape[-1] for shape in input_shape)
        pooled = tuple(None if d is None else d // 2 for d in input_shape[0][1:3])
        return (input_shape[0][0], *pooled, int(channels * self.compression))

    def get_config(self):
        return {**super().get_config(), "compression": self.compression, "dropout_rate": self.dropout_rate}


def batch_moments(x):
    """Per-channel batch mean and variance (float32), as BatchNormalization computes them."""
    return ops.moments(ops.cast(x, "float32"), axes=[0, 1, 2])


def normalization_moments(norm, moments, training):
    """The (mean, variance) the BatchNormalization `norm` applies to a concatenation.

    In training: the concatenated per-map batch `moments`, also folded into
    `norm`'s moving statistics (once); in inference: its moving statistics.
    """
    if not training:
        return norm.moving_mean, norm.moving_variance
    mean = ops.concatenate([m for m, _ in moments], axis=0)
    variance = ops.concatenate([v for _, v in moments], axis=0)
    update_moving_statistics(norm, mean, variance)
    return mean, variance


def update_moving_statistics(norm, mean, variance):
    """The update a BatchNormalization layer makes in training, made here exactly once."""
    for moving, batch in ((norm.moving_mean, mean), (norm.moving_variance, variance)):
        moving.assign(moving * norm.momentum + ops.stop_gradient(batch) * (1.0 - norm.momentum))


def concat_normalize_convolve(scale, shift, kernel, *maps):
    """ReLU(BN(concat(maps))) convolved with `kernel`, BN given as an affine map."""
    x = ops.concatenate(maps, axis=-1)
    x = ops.relu(x * scale + shift)
    return ops.conv(x, kernel, strides=1, padding="same")


def _scale_and_shift(gamma, beta, mean, variance, epsilon, dtype):
    """BatchNormalization with given moments as an affine map: x * scale + shift."""
    scale = gamma * ops.rsqrt(variance + epsilon)
    shift = beta - mean * scale
    return ops.cast(scale, dtype), ops.cast(shift, dtype)

"""DenseNet, DenseNet-B, DenseNet-C and DenseNet-BC.

Reference: Huang, Liu, van der Maaten, Weinberger. "Densely Connected
Convolutional Networks", CVPR 2017 (arXiv 1608.06993).

- Dense block: each layer's output (k channels, the growth rate) is
  concatenated to its input, so layer l sees k0 + k*(l-1) channels (sec. 3).
- B (bottleneck): BN-ReLU-Conv1x1(4k) before each BN-ReLU-Conv3x3(k).
- C (compression): a transition keeps floor(theta*m) of its m channels.
- CIFAR nets (Table 2): a 3x3 conv (16 channels, 2k for BC), three dense
  blocks at 32/16/8 px, L = 3n+4 layers (6n+4 with bottlenecks).
- ImageNet nets (Table 1): 7x7/2 conv with 2k channels, max-pool, four dense
  blocks; DenseNet-121/169/201 here hold keras.applications' weights in
  keras.applications' order (same layer names, same graph).

Memory: `memory_efficient=True` (Pleiss et al. 2017, "Memory-Efficient
Implementation of DenseNets", arXiv 1707.06990) keeps each dense block's
feature maps as a list, computes each map's batch moments once, and recomputes
every dense layer and transition in the backward pass (with dropout: the
concatenation, first BN-ReLU and first conv only, since a recomputed dropout
would draw new masks), so the stored activations grow linearly with depth
instead of quadratically. Weights, outputs, gradients and BN moving statistics
are those of the plain model.
"""

import keras
from keras import layers, ops

from keras_preact import _builder
from keras_preact.registry import ModelSpec, named_builder, register
from keras_preact.resnet import check_rate, conv, norm_act

# ImageNet depth -> dense layers per block (Table 1; 161 is the k=48 variant
# of the authors' released models).
IMAGENET_BLOCKS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
    161: (6, 12, 36, 24),
}
BOTTLENECK_WIDTH = 4  # the 1x1 conv of DenseNet-B makes 4k feature maps (sec. 3)


def dense_layer(x, growth_rate, *, bottleneck, dropout_rate, name):
    """H_l: [BN-ReLU-Conv1x1(4k)]-BN-ReLU-Conv3x3(k), concatenated to its input.

    Dropout follows each conv when `dropout_rate` > 0 (the paper's rate is
    0.2 for CIFAR/SVHN without augmentation).
    """
    y = norm_act(x, ("bn", "relu"), f"{name}_0")
    if bottleneck:
        y = conv(y, BOTTLENECK_WIDTH * growth_rate, 1, name=f"{name}_1_conv")
        if dropout_rate:
            y = layers.Dropout(dropout_rate, name=f"{name}_1_drop")(y)
        y = norm_act(y, ("bn", "relu"), f"{name}_1")
    y = conv(y, growth_rate, 3, name=f"{name}_2_conv")
    if dropout_rate:
        y = layers.Dropout(dropout_rate, name=f"{name}_2_drop")(y)
    return layers.Concatenate(name=f"{name}_concat")([x, y])


@keras.saving.register_keras_serializable(package="keras_preact")
class MemoryEfficientDenseLayer(layers.Layer):
    """`dense_layer` on a list of feature maps, rematerialized in the backward pass.

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
    """`transition_layer` (BN-ReLU-Conv1x1-AvgPool2x2, sec. 3) on a dense
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


def dense_block(x, num_layers, growth_rate, *, bottleneck, dropout_rate, name):
    """`num_layers` dense layers, named `{name}_block1` ... (keras.applications)."""
    for i in range(1, num_layers + 1):
        x = dense_layer(
            x, growth_rate, bottleneck=bottleneck, dropout_rate=dropout_rate,
            name=f"{name}_block{i}",
        )
    return x


def transition_layer(x, compression, *, dropout_rate, name):
    """BN-ReLU-Conv1x1(floor(theta*m))-AvgPool2x2 between dense blocks."""
    x = norm_act(x, ("bn", "relu"), name)
    x = conv(x, int(x.shape[-1] * compression), 1, name=f"{name}_conv")
    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_drop")(x)
    return layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)


def resolve_blocks(depth, blocks, bottleneck, stem_style):
    """Dense layers per block for a depth, checked against the paper's rules."""
    _builder.check_choice("stem", stem_style, ("cifar", "imagenet"))
    stages = 3 if stem_style == "cifar" else 4
    if blocks is not None:
        blocks = tuple(int(b) for b in blocks)
        if len(blocks) != stages or min(blocks) < 1:
            raise ValueError(
                f"`blocks` must give {stages} positive layer counts for stem={stem_style!r}; "
                f"received blocks={blocks}."
            )
        return blocks
    if depth is None:
        raise ValueError("Pass `depth` (e.g. 40, 100, 121) or `blocks`.")
    if stem_style == "imagenet":
        if depth not in IMAGENET_BLOCKS:
            raise ValueError(
                f"Invalid depth for an ImageNet DenseNet: received depth={depth}; valid "
                f"depths are {', '.join(map(str, IMAGENET_BLOCKS))} (or pass `blocks`)."
            )
        return IMAGENET_BLOCKS[depth]
    # CIFAR: 3 blocks of n layers, each 1 conv (2 with bottleneck), plus the
    # first conv, 2 transitions and the classifier: L = 3n*convs + 4.
    per_block = 3 * (2 if bottleneck else 1)
    if depth < per_block + 4 or (depth - 4) % per_block:
        below = max(per_block + 4, depth - (depth - 4) % per_block)
        raise ValueError(
            f"Invalid depth for a CIFAR DenseNet{'-B' if bottleneck else ''}: received "
            f"depth={depth}; it must be {per_block}n+4 for n >= 1 "
            f"({', '.join(str(per_block * n + 4) for n in range(1, 5))}, ...); the "
            f"nearest valid depths are {below} and {below + per_block}."
        )
    n = (depth - 4) // per_block
    return (n, n, n)


def DenseNet(
    depth=None,
    *,
    blocks=None,
    growth_rate=12,
    bottleneck=False,
    compression=1.0,
    stem="cifar",
    init_features=None,
    dropout_rate=0.0,
    memory_efficient=False,
    include_top=True,
    weights=None,
    input_shape=None,
    input_tensor=None,
    pooling=None,
    classes=None,
    classifier_activation="softmax",
    include_preprocessing=True,
    preprocessing_mode=None,
    name=None,
):
    """A DenseNet (Huang et al., CVPR 2017), any of the paper's variants.

    Args:
        depth: int. Layers as the paper counts them (convs + FC): 3n+4 for
            CIFAR (6n+4 with `bottleneck`), or 121, 169, 201, 264, 161 for
            ImageNet. Defaults to None (then `blocks` is required).
        blocks: tuple of int. Dense layers per block, overriding `depth`.
            Defaults to None.
        growth_rate: int. k, the channels each dense layer adds. Defaults
            to 12.
        bottleneck: bool. DenseNet-B: a 1x1 conv to 4k channels before each
            3x3 conv. Defaults to False.
        compression: float. theta in (0, 1]: the fraction of channels a
            transition keeps (0.5 for DenseNet-C/BC). Defaults to 1.0.
        stem: str. "cifar" (3x3 conv, 3 blocks, 32x32 inputs) or
            "imagenet" (7x7/2 conv + max-pool, 4 blocks, 224x224). Defaults
            to "cifar".
        init_features: int. Channels of the first conv. Defaults to None:
            2k for ImageNet and for CIFAR DenseNet-B/BC, 16 otherwise
            (sec. 4.2).
        dropout_rate: float. Dropout after every conv but the first (the
            paper: 0.2 when training without augmentation). Defaults to 0.
        memory_efficient: bool. Recompute each dense layer and each
            transition in the backward pass, with each feature map's batch
            moments computed once (Pleiss et al. 2017): activation memory
            linear instead of quadratic in depth; same weights (same order),
            outputs, gradients and moving statistics. Defaults to False.
        include_top: bool. Include the classifier. Defaults to True.
        weights: None, a zoo model name, a `.weights.h5` path, or "imagenet"
            (keras.applications' ImageNet weights, downloaded by
            keras.applications; for `densenet121`, `densenet169` and `densenet201`, which are
            keras.applications' networks layer for layer). Defaults to None.
        input_shape: tuple. Defaults to None: (32, 32, 3) for
            CIFAR, (224, 224, 3) for ImageNet.
        input_tensor: Keras tensor to use as input. Defaults to None.
        pooling: None, "avg" or "max" when `include_top=False`. Defaults to
            None.
        classes: int. Defaults to None: 10 for CIFAR, 1000 for ImageNet.
        classifier_activation: str, callable or None. Defaults to "softmax".
        include_preprocessing: bool. Normalize raw 0..255 pixels inside the
            model. Defaults to True.
        preprocessing_mode: str. "cifar", "torch", "tf" or "caffe". Defaults
            to None: "cifar" for CIFAR, "torch" (what keras.applications'
            DenseNet expects) for ImageNet.
        name: str. Model name. Defaults to None: "densenet_{depth}_{k}",
            "densenet_bc_{depth}_{k}" (CIFAR) or "densenet{depth}" (ImageNet).

    Returns:
        A `keras.Model`.
    """
    common = _builder.common_args(locals())
    requested_depth = depth
    blocks = resolve_blocks(depth, blocks, bottleneck, stem)
    if isinstance(growth_rate, bool) or not isinstance(growth_rate, int) or growth_rate < 1:
        raise ValueError(f"`growth_rate` must be an integer >= 1; received growth_rate={growth_rate!r}.")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"`compression` must be in (0, 1]; received compression={compression}.")
    check_rate("dropout_rate", dropout_rate)
    cifar = stem == "cifar"
    if init_features is None:
        init_features = 2 * growth_rate if (bottleneck or not cifar) else 16
    convs_per_layer = 2 if bottleneck else 1
    depth = convs_per_layer * sum(blocks) + len(blocks) + 1
    if cifar:
        variant = "bc" if bottleneck and compression < 1 else "b" if bottleneck else "c" if compression < 1 else ""
        arch_name = "_".join(p for p in ("densenet", variant, str(depth), str(growth_rate)) if p)
    else:
        # The paper's DenseNet-264 has 265 weighted layers by its own count;
        # keep the published name.
        arch_name = f"densenet{requested_depth or depth}"

    def body(x):
        if cifar:
            x = conv(x, init_features, 3, name="conv1_conv")
        else:
            x = conv(x, init_features, 7, strides=2, name="conv1_conv")
            x = norm_act(x, ("bn", "relu"), "conv1")
            x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
            x = layers.MaxPooling2D(3, strides=2, name="pool1")(x)
        for stage, num_layers in enumerate(blocks, start=2):
            last = stage == len(blocks) + 1
            if memory_efficient:
                # The block's maps stay a list; only the last block is concatenated
                # (at the lowest resolution), for the final BN-ReLU.
                x = MemoryEfficientDenseBlock(
                    num_layers, growth_rate, bottleneck, dropout_rate,
                    prefix=f"conv{stage}", name=f"conv{stage}_dense_block")(x)
                if last:
                    x = layers.Concatenate(name=f"conv{stage}_concat")(x)
                else:
                    x = MemoryEfficientTransition(compression, dropout_rate, name=f"pool{stage}")(x)
                continue
            x = dense_block(
                x, num_layers, growth_rate, bottleneck=bottleneck,
                dropout_rate=dropout_rate, name=f"conv{stage}",
            )
            if not last:
                x = transition_layer(x, compression, dropout_rate=dropout_rate, name=f"pool{stage}")
        # keras.applications' names for the final BN-ReLU.
        x = layers.BatchNormalization(epsilon=_builder.BN_EPSILON, name="bn")(x)
        return layers.Activation("relu", name="relu")(x)

    return _builder.build_model(body, arch_name=arch_name, stem=stem, **common)


# --- The paper's networks, by name -----------------------------------------

# CIFAR (Table 2): name -> (depth, k, BC?, parameters, C10+ error %).
CIFAR_TABLE2 = {
    "densenet_40_12": (40, 12, False, 1_000_000, 5.24),
    "densenet_100_12": (100, 12, False, 7_000_000, 4.10),
    "densenet_100_24": (100, 24, False, 27_200_000, 3.74),
    "densenet_bc_100_12": (100, 12, True, 800_000, 4.51),
    "densenet_bc_250_24": (250, 24, True, 15_300_000, 3.62),
    "densenet_bc_190_40": (190, 40, True, 25_600_000, 3.46),
}
# ImageNet (Table 3, single-crop top-1 error): name -> (depth, k, params,
# source, convention, error). 121/169/201 are keras.applications' models.
IMAGENET_NETS = {
    "densenet121": (121, 32, 8_062_504, "keras.applications", "keras", 25.02),
    "densenet169": (169, 32, 14_307_880, "keras.applications", "keras", 23.80),
    "densenet201": (201, 32, 20_242_984, "keras.applications", "keras", 22.58),
    "densenet264": (264, 32, None, "", "trainable", 22.15),
    "densenet161": (161, 48, 28_681_000, "torchvision", "trainable", None),
}

for _name, (_depth, _k, _bc, _params, _error) in CIFAR_TABLE2.items():
    register(ModelSpec(
        name=_name, builder=DenseNet,
        kwargs=dict(depth=_depth, growth_rate=_k,
                    **(dict(bottleneck=True, compression=0.5) if _bc else {})),
        family="densenet", dataset="cifar",
        paper="Huang et al., CVPR 2017, Table 2 (CIFAR-10+)",
        params=_params, params_source="DenseNet paper Table 2", params_precision=100_000,
        error=_error,
    ))
for _name, (_depth, _k, _params, _source, _convention, _error) in IMAGENET_NETS.items():
    register(ModelSpec(
        name=_name, builder=DenseNet,
        kwargs=dict(depth=_depth, growth_rate=_k, bottleneck=True, compression=0.5,
                    stem="imagenet"),
        family="densenet", dataset="imagenet",
        paper="Huang et al., CVPR 2017, Tables 1 and 3 (ImageNet, DenseNet-BC)",
        params=_params, params_source=_source, params_convention=_convention, error=_error,
        imagenet_weights=f"DenseNet{_depth}" if _source == "keras.applications" else None,
    ))


# DenseNet's public builders (see registry.named_builder).
DenseNet_40_12 = named_builder("DenseNet_40_12", "DenseNet (L=40, k=12) for CIFAR.")
DenseNet_100_12 = named_builder("DenseNet_100_12", "DenseNet (L=100, k=12) for CIFAR.")
DenseNet_100_24 = named_builder("DenseNet_100_24", "DenseNet (L=100, k=24) for CIFAR.")
DenseNet_BC_100_12 = named_builder("DenseNet_BC_100_12", "DenseNet-BC (L=100, k=12) for CIFAR.")
DenseNet_BC_250_24 = named_builder("DenseNet_BC_250_24", "DenseNet-BC (L=250, k=24) for CIFAR.")
DenseNet_BC_190_40 = named_builder("DenseNet_BC_190_40", "DenseNet-BC (L=190, k=40) for CIFAR.")
_KERAS = "keras.applications.DenseNet{0}, layer for layer: DenseNet-BC-{0} (k=32) for ImageNet."
DenseNet121 = named_builder("DenseNet121", _KERAS.format(121))
DenseNet169 = named_builder("DenseNet169", _KERAS.format(169))
DenseNet201 = named_builder("DenseNet201", _KERAS.format(201))
DenseNet264 = named_builder(
    "DenseNet264", "DenseNet-BC-264 (k=32) for ImageNet. Its blocks (6, 12, 64, 48) make 265 "
    "weighted layers by the paper's own rule; the paper names it 264.")
DenseNet161 = named_builder(
    "DenseNet161", "DenseNet-BC-161 (k=48, 96 initial features) for ImageNet: the authors' "
    "released variant.")

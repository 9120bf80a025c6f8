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

Memory: `memory_efficient=True` builds the same network from
`keras_preact.models.densenet_memory`'s layers (Pleiss et al. 2017): activation
memory linear instead of quadratic in depth; the same weights (in the same
order), outputs, gradients and BN moving statistics as the plain model.
"""

from keras import layers

from keras_preact.models import _builder
from keras_preact.models.densenet_memory import (
    BOTTLENECK_WIDTH,
    MemoryEfficientDenseBlock,
    MemoryEfficientTransition,
)
from keras_preact.models.registry import ModelSpec, named_builder, register
from keras_preact.models.residual import conv, norm_act

# ImageNet depth -> dense layers per block (Table 1; 161 is the k=48 variant
# of the authors' released models).
IMAGENET_BLOCKS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
    161: (6, 12, 36, 24),
}


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
    return layers.Concatenate(axis=_builder.channel_axis(), name=f"{name}_concat")([x, y])


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
    x = conv(x, int(x.shape[_builder.channel_axis()] * compression), 1, name=f"{name}_conv")
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
            outputs, gradients and moving statistics. channels_last only (a
            ValueError under "channels_first"). Defaults to False.
        include_top: bool. Include the classifier. Defaults to True.
        weights: None, a zoo model name, a `.weights.h5` path, or "imagenet"
            (keras.applications' ImageNet weights, downloaded by
            keras.applications; for `densenet121`, `densenet169` and `densenet201`, which are
            keras.applications' networks layer for layer). Defaults to None.
        input_shape: tuple. (height, width, channels), any channel count;
            (channels, height, width) when `keras.config.image_data_format()`
            is "channels_first", which builds the whole model channels_first
            (same layers and weights, so `set_weights` and weight files move
            between the two). None entries allowed for height/width.
            Defaults to None: (32, 32, 3) for
            CIFAR, (224, 224, 3) for ImageNet.
        input_tensor: Keras tensor to use as input. Defaults to None.
        pooling: None, "avg" or "max" when `include_top=False`. Defaults to
            None.
        classes: int. Defaults to None: 10 for CIFAR, 1000 for ImageNet.
        classifier_activation: str, callable or None. Defaults to "softmax".
        include_preprocessing: bool. Put the input normalization inside the
            model, so it takes raw 0..255 pixels. Only a 3-channel (RGB)
            input is normalized; with any other channel count the model has
            no normalization layer and the input reaches the first conv as
            it is (keras.applications' ConvNeXt and EfficientNetV2 do the
            same). Defaults to True.
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
    _builder.check_rate("dropout_rate", dropout_rate)
    if memory_efficient and not _builder.channels_last():
        raise ValueError(
            "memory_efficient=True builds channels_last models only: its layers "
            "(keras_preact.models.densenet_memory) compute batch moments and concatenations on "
            "the last axis. Build the plain model under channels_first (the same "
            "weights), or set keras.config.set_image_data_format('channels_last')."
        )
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
        x = layers.BatchNormalization(
            axis=_builder.channel_axis(), epsilon=_builder.BN_EPSILON, name="bn")(x)
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

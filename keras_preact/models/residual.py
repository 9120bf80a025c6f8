"""The residual machinery of ResNet v1 and the pre-activation ResNet (v2).

References:
- He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition",
  CVPR 2016 (arXiv 1512.03385): residual units `y = relu(F(x) + x)`; CIFAR
  nets of 6n+2 layers with option-A (zero-padding) shortcuts (sec. 4.2,
  Table 6); ImageNet nets of 18-152 layers (Table 1).
- He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks",
  ECCV 2016 (arXiv 1603.05027): where BN and ReLU sit in a unit (Figure 4)
  and what the shortcut does (Figure 2).

One unit function, `residual_unit`, builds every unit of both papers: the
unit kind (where BN/ReLU go), the shortcut kind and the block (basic or
bottleneck) are data (`UNIT_LAYOUTS`, `SHORTCUTS`, `UnitConfig`), not copies
of the unit body; `residual_stages`, `stem`, `resolve_depth` and
`build_residual_network` assemble units into a network. Layer names follow
keras.applications (`conv2_block1_1_conv`, `conv2_block1_preact_bn`,
`post_bn`, ...), so keras.applications' ResNet50/101/152 (V2) weights load
into ours with `set_weights`. `resnet.py` (ResNet v1) and `resnet_v2.py`
(ResNetV2 and the v2 paper's ablations) are thin builders on this module;
`densenet.py` reuses its `conv` and `norm_act` (the same padding and names).
"""

import dataclasses

import keras
from keras import layers

from keras_preact.models import _builder
from keras_preact.models.layers import ChannelZeroPad

# Stage widths. CIFAR: three stages of 16/32/64 filters (v1 paper sec. 4.2).
# ImageNet: four stages of 64/128/256/512 (v1 paper Table 1). Bottleneck
# units output 4x the stage width.
CIFAR_WIDTHS = (16, 32, 64)
IMAGENET_WIDTHS = (64, 128, 256, 512)
BOTTLENECK_EXPANSION = 4

# ImageNet depth -> (block, units per stage): v1 paper Table 1; 200 from the
# v2 paper (sec. 5, Table 5), as in the authors' fb.resnet.torch code.
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),
}

# Weighted layers in one unit (the papers count convolutions and the final FC,
# not projection shortcuts).
CONVS_PER_UNIT = {"basic": 2, "bottleneck": 3}


@dataclasses.dataclass(frozen=True)
class UnitLayout:
    """Where a residual unit puts BN and ReLU (v2 paper, Figure 4).

    Every conv of the residual branch except the last is followed by BN-ReLU;
    the layouts differ only in these three places.

    Attributes:
        pre: ops applied to the unit input before the first conv.
        last: ops after the last conv of the residual branch.
        post: ops after the addition.
    """

    pre: tuple
    last: tuple
    post: tuple


UNIT_LAYOUTS = {
    # (a) He et al. 2015: conv-BN-ReLU-conv-BN, add, ReLU.
    "original": UnitLayout(pre=(), last=("bn",), post=("relu",)),
    # (b) conv-BN-ReLU-conv, add, BN-ReLU.
    "bn_after_addition": UnitLayout(pre=(), last=(), post=("bn", "relu")),
    # (c) conv-BN-ReLU-conv-BN-ReLU, add.
    "relu_before_addition": UnitLayout(pre=(), last=("bn", "relu"), post=()),
    # (d) ReLU-conv-BN-ReLU-conv-BN, add.
    "relu_only_preactivation": UnitLayout(pre=("relu",), last=("bn",), post=()),
    # (e) BN-ReLU-conv-BN-ReLU-conv, add: the pre-activation unit.
    "full_preactivation": UnitLayout(pre=("bn", "relu"), last=(), post=()),
}

# The v2 paper's shortcut variants (Figure 2, Table 1).
SHORTCUTS = (
    "identity",  # (a) x + F(x)
    "constant_scaling",  # (b) lambda*x + mu*F(x)
    "exclusive_gating",  # (c) (1 - g(x))*x + g(x)*F(x), g = sigmoid(1x1 conv)
    "shortcut_only_gating",  # (d) (1 - g(x))*x + F(x)
    "conv1x1",  # (e) conv1x1(x) + F(x)
    "dropout",  # (f) dropout(x) + F(x)
)
# How a shortcut changes shape where the residual branch does (v1 sec. 3.3):
# "zero_pad" is option A (subsample, append zero channels, no parameters);
# "projection" is option B (strided 1x1 conv, plus BN in post-activation units).
DOWNSAMPLES = ("zero_pad", "projection")
STRIDE_AT = ("1x1", "3x3")
CONV_BIASES = ("none", "all", "unless_bn")


@dataclasses.dataclass(frozen=True)
class UnitConfig:
    """What every residual unit of one network shares.

    Attributes:
        block: "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1 with
            4x expansion).
        unit: a key of UNIT_LAYOUTS.
        shortcut: one of SHORTCUTS.
        downsample: one of DOWNSAMPLES.
        stride_at: in a bottleneck, which conv strides: "1x1" (the original
            Caffe ResNet-50 and keras.applications ResNet50) or "3x3" (the
            authors' Torch code for the pre-activation nets).
        conv_bias: "none", "all" (keras.applications ResNet50/101/152), or
            "unless_bn" (bias only on convs not followed by BN:
            keras.applications ResNet50V2).
        shortcut_scale: lambda of constant scaling.
        residual_scale: mu of constant scaling.
        gate_bias_init: initial bias b_g of the gates' 1x1 conv.
        shortcut_dropout_rate: drop ratio of the dropout shortcut.
        dropout_rate: dropout between the convs of the residual branch.
        zero_init_residual: start each residual branch at zero output.
    """

    block: str = "basic"
    unit: str = "full_preactivation"
    shortcut: str = "identity"
    downsample: str = "projection"
    stride_at: str = "3x3"
    conv_bias: str = "none"
    shortcut_scale: float = 0.5
    residual_scale: float = 0.5
    gate_bias_init: float = -6.0
    shortcut_dropout_rate: float = 0.5
    dropout_rate: float = 0.0
    zero_init_residual: bool = False

    def __post_init__(self):
        _builder.check_choice("block", self.block, tuple(CONVS_PER_UNIT))
        _builder.check_choice("unit", self.unit, tuple(UNIT_LAYOUTS))
        _builder.check_choice("shortcut", self.shortcut, SHORTCUTS)
        _builder.check_choice("downsample", self.downsample, DOWNSAMPLES)
        _builder.check_choice("stride_at", self.stride_at, STRIDE_AT)
        _builder.check_choice("conv_bias", self.conv_bias, CONV_BIASES)
        _builder.check_rate("shortcut_dropout_rate", self.shortcut_dropout_rate)
        _builder.check_rate("dropout_rate", self.dropout_rate)

    @property
    def layout(self):
        return UNIT_LAYOUTS[self.unit]

    def bias(self, followed_by_bn):
        """Whether a conv gets a bias under this config's `conv_bias` policy."""
        return self.conv_bias == "all" or (self.conv_bias == "unless_bn" and not followed_by_bn)


def norm_act(x, ops, prefix, *, zero_gamma=False):
    """Apply "bn"/"relu" ops in order, named `{prefix}_bn` / `{prefix}_relu`."""
    for op in ops:
        if op == "bn":
            x = layers.BatchNormalization(
                axis=_builder.channel_axis(),
                epsilon=_builder.BN_EPSILON,
                gamma_initializer="zeros" if zero_gamma else "ones",
                name=f"{prefix}_bn",
            )(x)
        else:
            x = layers.Activation("relu", name=f"{prefix}_relu")(x)
    return x


def conv(x, filters, kernel_size, *, strides=1, use_bias=False, name,
         kernel_initializer="he_normal"):
    """A conv with symmetric padding, named `name`.

    A strided "same" conv in TensorFlow pads only bottom/right, unlike Torch,
    Caffe and JAX; an explicit ZeroPadding2D (named like keras.applications'
    `conv1_pad`) makes every backend compute the same thing.
    """
    if kernel_size > 1 and strides > 1:
        pad = kernel_size // 2
        x = layers.ZeroPadding2D(pad, name=name.replace("_conv", "_pad"))(x)
        padding = "valid"
    else:
        padding = "same"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=use_bias,
        kernel_initializer=kernel_initializer,
        name=name,
    )(x)


def shortcut_branch(x, preactivated, *, out_channels, stride, cfg, name):
    """The shortcut path of a unit, before any gating or scaling.

    Identity where the shape stays; where it changes, option A or a
    projection. A projection in a pre-activation unit reads the pre-activated
    input (v2 paper sec. 4.1 / authors' code); elsewhere the raw input.
    """
    in_channels = x.shape[_builder.channel_axis()]
    project = cfg.shortcut == "conv1x1" or (
        in_channels != out_channels and cfg.downsample == "projection"
    )
    if project:
        has_bn = not cfg.layout.pre
        s = conv(
            preactivated,
            out_channels,
            1,
            strides=stride,
            use_bias=cfg.bias(followed_by_bn=has_bn),
            name=f"{name}_0_conv",
        )
        return norm_act(s, ("bn",), f"{name}_0") if has_bn else s
    if stride > 1:
        # A 1x1 max-pool with stride is plain subsampling: x[:, ::s, ::s, :].
        x = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
    if in_channels != out_channels:
        x = ChannelZeroPad(
            out_channels - in_channels,
            data_format=keras.config.image_data_format(),
            name=f"{name}_0_pad",
        )(x)
    return x


def residual_branch(x, filters, *, stride, cfg, name):
    """F(x): the unit's convolutions with BN-ReLU between them."""
    if cfg.block == "basic":
        kernels, widths, stride_index = (3, 3), (filters, filters), 0
    else:
        kernels = (1, 3, 1)
        widths = (filters, filters, filters * BOTTLENECK_EXPANSION)
        stride_index = 1 if cfg.stride_at == "3x3" else 0
    last = len(kernels)
    for i, (kernel_size, width) in enumerate(zip(kernels, widths), start=1):
        ops = cfg.layout.last if i == last else ("bn", "relu")
        zero_last = cfg.zero_init_residual and i == last
        x = conv(
            x,
            width,
            kernel_size,
            strides=stride if i - 1 == stride_index else 1,
            use_bias=cfg.bias(followed_by_bn="bn" in ops),
            # With no BN after the last conv (pre-activation), zeroing its
            # kernel is what makes the branch start at zero.
            kernel_initializer="zeros" if zero_last and "bn" not in ops else "he_normal",
            name=f"{name}_{i}_conv",
        )
        x = norm_act(x, ops, f"{name}_{i}", zero_gamma=zero_last)
        if i != last and cfg.dropout_rate:
            x = layers.Dropout(cfg.dropout_rate, name=f"{name}_{i}_drop")(x)
    return x


def gate(x, *, out_channels, stride, cfg, name):
    """g(x) = sigmoid(W_g x + b_g), a strided 1x1 conv (v2 paper sec. 3.1)."""
    return layers.Conv2D(
        out_channels,
        1,
        strides=stride,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(cfg.gate_bias_init),
        name=f"{name}_gate_conv",
    )(x)


def residual_unit(x, filters, *, stride, cfg, name, drop_path_rate=0.0):
    """One residual unit, any layout and shortcut of the two papers.

    Args:
        x: input tensor.
        filters: int. Stage width (bottleneck units output 4x this).
        stride: int. Stride of the unit.
        cfg: UnitConfig. What all units of the network share.
        name: str. Layer-name prefix, e.g. "conv2_block1".
        drop_path_rate: float. Probability of dropping the residual branch
            for a sample (stochastic depth). Defaults to 0.

    Returns:
        The unit's output tensor.
    """
    layout = cfg.layout
    out_channels = filters * (BOTTLENECK_EXPANSION if cfg.block == "bottleneck" else 1)
    preactivated = norm_act(x, layout.pre, f"{name}_preact")
    shortcut = shortcut_branch(
        x, preactivated, out_channels=out_channels, stride=stride, cfg=cfg, name=name
    )
    residual = residual_branch(preactivated, filters, stride=stride, cfg=cfg, name=name)
    if drop_path_rate:
        # Per-sample dropout of the whole branch, rescaled by 1/(1-rate).
        residual = layers.Dropout(
            drop_path_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop_path"
        )(residual)

    if cfg.shortcut == "constant_scaling":
        shortcut = layers.Rescaling(cfg.shortcut_scale, name=f"{name}_shortcut_scale")(shortcut)
        residual = layers.Rescaling(cfg.residual_scale, name=f"{name}_residual_scale")(residual)
    elif cfg.shortcut == "dropout":
        # Keras dropout rescales kept values by 1/(1-p); scaling back by (1-p)
        # gives the paper's shortcut: x * Bernoulli(1-p) while training,
        # x * (1-p) in inference (expected scale 0.5 for p=0.5).
        rate = cfg.shortcut_dropout_rate
        shortcut = layers.Dropout(rate, name=f"{name}_shortcut_drop")(shortcut)
        shortcut = layers.Rescaling(1.0 - rate, name=f"{name}_shortcut_scale")(shortcut)
    elif cfg.shortcut in ("exclusive_gating", "shortcut_only_gating"):
        g = gate(x, out_channels=out_channels, stride=stride, cfg=cfg, name=name)
        if cfg.shortcut == "exclusive_gating":
            # (1-g)*s + g*F == s + g*(F - s)
            difference = layers.Subtract(name=f"{name}_gate_diff")([residual, shortcut])
            residual = layers.Multiply(name=f"{name}_gate_mul")([g, difference])
        else:
            # (1-g)*s == s - g*s
            gated = layers.Multiply(name=f"{name}_gate_mul")([g, shortcut])
            shortcut = layers.Subtract(name=f"{name}_gate_sub")([shortcut, gated])

    # keras.applications names the addition `_out` when nothing follows it.
    x = layers.Add(name=f"{name}_add" if layout.post else f"{name}_out")([shortcut, residual])
    if layout.post == ("relu",):
        return layers.Activation("relu", name=f"{name}_out")(x)
    if layout.post:
        x = norm_act(x, ("bn",), f"{name}_post")
        return layers.Activation("relu", name=f"{name}_out")(x)
    return x


def residual_stages(x, *, cfg, widths, units, strides, stride_in_last_unit=False,
                    drop_path_rate=0.0):
    """Stages `conv2`, `conv3`, ... of residual units.

    Args:
        widths / units / strides: per-stage width, unit count and stride.
        stride_in_last_unit: put the stage's stride in its last unit
            (keras.applications ResNetV2) instead of its first (the papers).
        drop_path_rate: stochastic depth of the last unit; earlier units get
            linearly less (Huang et al. 2016's linear decay rule).
    """
    total = sum(units)
    index = 0
    for stage, (width, count, stage_stride) in enumerate(zip(widths, units, strides), start=2):
        for i in range(1, count + 1):
            strided_unit = count if stride_in_last_unit else 1
            index += 1
            x = residual_unit(
                x,
                width,
                stride=stage_stride if i == strided_unit else 1,
                cfg=cfg,
                name=f"conv{stage}_block{i}",
                drop_path_rate=drop_path_rate * index / total,
            )
    return x


def stem(x, *, style, width, cfg):
    """`conv1`: 3x3 conv (CIFAR) or 7x7/2 conv + 3x3/2 max-pool (ImageNet).

    The stem ends with whatever BN/ReLU the first unit does not start with,
    so every unit's input is normalized exactly once.
    """
    stem_ops = tuple(op for op in ("bn", "relu") if op not in cfg.layout.pre)
    use_bias = cfg.bias(followed_by_bn="bn" in stem_ops)
    if style == "cifar":
        x = conv(x, width, 3, use_bias=use_bias, name="conv1_conv")
        return norm_act(x, stem_ops, "conv1")
    x = conv(x, width, 7, strides=2, use_bias=use_bias, name="conv1_conv")
    x = norm_act(x, stem_ops, "conv1")
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def resolve_depth(depth, blocks, block, stem_style):
    """(block, units per stage) for a depth, checked against the papers' rules.

    CIFAR nets have 3 stages of n units: 6n+2 layers with basic units, 9n+2
    with bottleneck units (v1 sec. 4.2, v2 sec. 4). ImageNet depths come from
    IMAGENET_DEPTHS unless `blocks` gives the units per stage.
    """
    _builder.check_choice("stem", stem_style, ("cifar", "imagenet"))
    if block is not None:
        _builder.check_choice("block", block, tuple(CONVS_PER_UNIT))
    if blocks is not None:
        blocks = tuple(int(b) for b in blocks)
        stages = 3 if stem_style == "cifar" else 4
        if len(blocks) != stages or min(blocks) < 1:
            raise ValueError(
                f"`blocks` must give {stages} positive unit counts for stem={stem_style!r}; "
                f"received blocks={blocks}."
            )
        block = block or ("basic" if stem_style == "cifar" else "bottleneck")
        implied = CONVS_PER_UNIT[block] * sum(blocks) + 2
        if depth is not None and depth != implied:
            raise ValueError(
                f"depth={depth} contradicts blocks={blocks} with {block} units, "
                f"which make {implied} layers; pass one of them."
            )
        return block, blocks
    if depth is None:
        raise ValueError("Pass `depth` (e.g. 20, 110, 164, 50) or `blocks`.")
    if stem_style == "imagenet":
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(
                f"Invalid depth for an ImageNet ResNet: received depth={depth}; valid "
                f"depths are {', '.join(map(str, IMAGENET_DEPTHS))} (or pass `blocks`)."
            )
        default_block, units = IMAGENET_DEPTHS[depth]
        if block not in (None, default_block):
            raise ValueError(
                f"ResNet-{depth} uses {default_block} units; received block={block!r}. "
                "Pass `blocks` to build other combinations."
            )
        return default_block, units
    block = block or "basic"
    per_unit = CONVS_PER_UNIT[block]
    per_depth = 3 * per_unit  # three stages of n units
    if depth < per_depth + 2 or (depth - 2) % per_depth:
        below = max(per_depth + 2, depth - (depth - 2) % per_depth)
        raise ValueError(
            f"Invalid depth for a CIFAR ResNet with {block} units: received "
            f"depth={depth}; it must be {per_depth}n+2 for n >= 1 "
            f"({', '.join(str(per_depth * n + 2) for n in range(1, 5))}, ...); "
            f"the nearest valid depths are {below} and {below + per_depth}."
        )
    n = (depth - 2) // per_depth
    return block, (n, n, n)


def stage_plan(stem_style, block, units, stride_in_last_unit):
    """Per-stage widths and strides for a stem style."""
    if stem_style == "cifar":
        widths, strides = CIFAR_WIDTHS, (1, 2, 2)
    else:
        widths, strides = IMAGENET_WIDTHS, (1, 2, 2, 2)
    if stride_in_last_unit:
        # keras.applications ResNetV2 strides at the end of each stage but the last.
        strides = strides[1:] + (1,)
    return widths, strides


def build_residual_network(*, arch_name, units, stem_style, cfg, stride_in_last_unit,
                           drop_path_rate, common):
    """Shared builder of ResNet and ResNetV2: validate, then assemble the network."""
    _builder.check_rate("drop_path_rate", drop_path_rate)
    widths, strides = stage_plan(stem_style, cfg.block, units, stride_in_last_unit)

    def body(x):
        x = stem(x, style=stem_style, width=widths[0], cfg=cfg)
        x = residual_stages(
            x,
            cfg=cfg,
            widths=widths,
            units=units,
            strides=strides,
            stride_in_last_unit=stride_in_last_unit,
            drop_path_rate=drop_path_rate,
        )
        if cfg.layout.pre:
            # Pre-activation nets end with BN-ReLU after the last addition
            # (v2 paper sec. 4.1), named as keras.applications ResNetV2.
            x = norm_act(x, ("bn", "relu"), "post")
        return x

    return _builder.build_model(body, arch_name=arch_name, stem=stem_style, **common)

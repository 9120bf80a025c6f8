"""ResNet v1: its builder and the v1 paper's networks.

Reference: He, Zhang, Ren, Sun. "Deep Residual Learning for Image
Recognition", CVPR 2016 (arXiv 1512.03385): residual units
`y = relu(F(x) + x)`; CIFAR nets of 6n+2 layers with option-A (zero-padding)
shortcuts (sec. 4.2, Table 6); ImageNet nets of 18-152 layers (Table 1).

The units, shortcuts, stages and stem are `keras_preact.models.residual`'s, shared
with the pre-activation ResNet (`resnet_v2.py`); `ResNet` picks the v1
paper's "original" unit and its shortcut options A/B/C. Layer names follow
keras.applications, so keras.applications' ResNet50/101/152 weights load
into ours with `set_weights`.
"""

from keras_preact.models import _builder
from keras_preact.models.registry import ModelSpec, named_builder, register
from keras_preact.models.residual import CONVS_PER_UNIT, UnitConfig, build_residual_network, resolve_depth


def ResNet(
    depth=None,
    *,
    blocks=None,
    block=None,
    stem="cifar",
    shortcut_type=None,
    conv_bias=False,
    drop_path_rate=0.0,
    zero_init_residual=False,
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
    """A ResNet v1 (He et al., CVPR 2016): post-activation units `relu(F(x) + x)`.

    CIFAR nets (`stem="cifar"`): a 3x3 conv, three stages of n units with 16,
    32 and 64 filters, 6n+2 layers (sec. 4.2, Table 6). ImageNet nets
    (`stem="imagenet"`): 7x7/2 conv, max-pool, four stages (Table 1).

    Args:
        depth: int. Layers as the paper counts them (convs + FC): 6n+2 for
            CIFAR basic units, 9n+2 for CIFAR bottleneck units, or one of
            18, 34, 50, 101, 152, 200 for ImageNet. Defaults to None (then
            `blocks` is required).
        blocks: tuple of int. Units per stage, overriding the depth table.
            Defaults to None.
        block: str. "basic" or "bottleneck"; CIFAR defaults to "basic",
            ImageNet to the Table 1 choice for `depth`. Defaults to None.
        stem: str. "cifar" (32x32 inputs, 10 classes by default) or
            "imagenet" (224x224, 1000 classes). Defaults to "cifar".
        shortcut_type: str. The paper's sec. 3.3 options: "A" (zero-padding
            where dimensions increase; no parameters), "B" (projection where
            dimensions increase) or "C" (projection everywhere). Defaults to
            None: "A" for CIFAR, "B" for ImageNet, as in the paper.
        conv_bias: bool. Give every conv a bias, as keras.applications'
            ResNet50/101/152 do (needed to load their weights). Defaults to
            False.
        drop_path_rate: float. Stochastic depth of the last unit, decaying
            linearly to 0 at the first (not in the paper). Defaults to 0.
        zero_init_residual: bool. Zero-initialise the last BN gamma of each
            residual branch (Goyal et al. 2017; not in the paper). Defaults
            to False. Why it matters before training: in inference mode an
            untrained net's BN layers use their initial moving statistics
            (mean 0, variance 1), so each residual unit roughly doubles the
            signal; ResNet-110 gives logits near 1e9 and ResNet-1202 overflows
            float32 to NaN. Training mode (batch statistics) is finite at any
            depth, and so is inference once trained or with this flag on.
        include_top: bool. Include the global-average-pool + Dense
            classifier. Defaults to True.
        weights: None, a zoo model name (see `keras_preact.list_zoo()`), the
            path of a `.weights.h5` file, or "imagenet" (keras.applications'
            ImageNet weights, downloaded by keras.applications; for `resnet50`,
            `resnet101` and `resnet152`, which are keras.applications' networks
            layer for layer). Defaults to None.
        input_shape: tuple. (height, width, channels), any channel count;
            (channels, height, width) when `keras.config.image_data_format()`
            is "channels_first", which builds the whole model channels_first
            (same layers and weights, so `set_weights` and weight files move
            between the two). None entries allowed for height/width.
            Defaults to None: (32, 32, 3) for
            CIFAR, (224, 224, 3) for ImageNet.
        input_tensor: Keras tensor to use as the model input. Defaults to None.
        pooling: None, "avg" or "max": pooling of the last feature map when
            `include_top=False`. Defaults to None.
        classes: int. Number of classes. Defaults to None: 10 for CIFAR,
            1000 for ImageNet.
        classifier_activation: str, callable or None (logits). Defaults to
            "softmax".
        include_preprocessing: bool. Put the input normalization inside the
            model, so it takes raw 0..255 pixels. Only a 3-channel (RGB)
            input is normalized; with any other channel count the model has
            no normalization layer and the input reaches the first conv as
            it is (keras.applications' ConvNeXt and EfficientNetV2 do the
            same). Defaults to True.
        preprocessing_mode: str. Normalization constants: "cifar", "torch",
            "tf" or "caffe" (the keras.applications modes). Defaults to None:
            "cifar" for CIFAR nets, "torch" for ImageNet nets.
        name: str. Model name. Defaults to None: "resnet_{depth}" (CIFAR) or
            "resnet{depth}" (ImageNet).

    Returns:
        A `keras.Model`.
    """
    common = _builder.common_args(locals())
    block, units = resolve_depth(depth, blocks, block, stem)
    if shortcut_type is None:
        shortcut_type = "A" if stem == "cifar" else "B"
    _builder.check_choice("shortcut_type", shortcut_type, ("A", "B", "C"))
    depth = CONVS_PER_UNIT[block] * sum(units) + 2
    return build_residual_network(
        arch_name=f"resnet_{depth}" if stem == "cifar" else f"resnet{depth}",
        units=units,
        stem_style=stem,
        cfg=UnitConfig(
            block=block,
            unit="original",
            shortcut="conv1x1" if shortcut_type == "C" else "identity",
            downsample="zero_pad" if shortcut_type == "A" else "projection",
            # The original Caffe ResNet-50 strides in the first 1x1 conv.
            stride_at="1x1",
            conv_bias="all" if conv_bias else "none",
            zero_init_residual=zero_init_residual,
        ),
        stride_in_last_unit=False,
        drop_path_rate=drop_path_rate,
        common=common,
    )


# --- The v1 paper's networks, by name --------------------------------------

# CIFAR-10 (Table 6): depth -> (parameters, test error % with augmentation).
CIFAR_TABLE6 = {
    20: (270_000, 8.75),
    32: (460_000, 7.51),
    44: (660_000, 7.17),
    56: (850_000, 6.97),
    110: (1_700_000, 6.43),
    1202: (19_400_000, 7.93),
}
# ImageNet parameter counts as torchvision publishes them (trainable only).
IMAGENET_PARAMS = {
    18: 11_689_512,
    34: 21_797_672,
    50: 25_557_032,
    101: 44_549_160,
    152: 60_192_808,
}
# Depths whose layout (conv biases, stride in the first 1x1, "caffe" input)
# is keras.applications' ResNet50/101/152, so their weights load as they are.
KERAS_APPLICATIONS_DEPTHS = (50, 101, 152)

for _depth, (_params, _error) in CIFAR_TABLE6.items():
    register(ModelSpec(
        name=f"resnet_{_depth}", builder=ResNet, kwargs={"depth": _depth},
        family="resnet", dataset="cifar",
        paper="He et al., CVPR 2016, sec. 4.2 and Table 6 (CIFAR-10, option-A shortcuts)",
        params=_params, params_source="v1 paper Table 6",
        params_precision=10_000 if _params < 1_000_000 else 100_000, error=_error,
    ))
for _depth, _params in IMAGENET_PARAMS.items():
    _keras = _depth in KERAS_APPLICATIONS_DEPTHS
    register(ModelSpec(
        name=f"resnet{_depth}", builder=ResNet,
        kwargs=dict(depth=_depth, stem="imagenet",
                    **(dict(conv_bias=True, preprocessing_mode="caffe") if _keras else {})),
        family="resnet", dataset="imagenet",
        paper="He et al., CVPR 2016, Table 1 (ImageNet)"
        + ("; layout and weights of keras.applications ResNet" + str(_depth) if _keras else ""),
        params=_params, params_source="torchvision",
        imagenet_weights=f"ResNet{_depth}" if _keras else None,
    ))


# ResNet v1's public builders (see registry.named_builder).
ResNet_20 = named_builder("ResNet_20", "ResNet-20 for CIFAR: basic units, option-A shortcuts.")
ResNet_32 = named_builder("ResNet_32", "ResNet-32 for CIFAR: basic units, option-A shortcuts.")
ResNet_44 = named_builder("ResNet_44", "ResNet-44 for CIFAR: basic units, option-A shortcuts.")
ResNet_56 = named_builder("ResNet_56", "ResNet-56 for CIFAR: basic units, option-A shortcuts.")
ResNet_110 = named_builder(
    "ResNet_110", "ResNet-110 for CIFAR: basic units, option-A shortcuts (Table 6: 6.61 +- 0.16% "
    "mean of 5 runs, 6.43% best).")
ResNet_1202 = named_builder(
    "ResNet_1202", "ResNet-1202 for CIFAR: basic units, option-A shortcuts; it overfits (Table 6).")
ResNet18 = named_builder("ResNet18", "ResNet-18 for ImageNet: basic units, option-B shortcuts.")
ResNet34 = named_builder("ResNet34", "ResNet-34 for ImageNet: basic units, option-B shortcuts.")
_KERAS_V1 = ("keras.applications.ResNet{0}'s layout: every conv has a bias, a stage's stride sits "
             "in its first unit's first 1x1 conv (the original Caffe model), and the model "
             "normalizes raw pixels as keras.applications' \"caffe\" mode (BGR, mean subtracted).")
ResNet50 = named_builder(
    "ResNet50", "ResNet-50 for ImageNet: bottleneck units, keras.applications.ResNet50 layer "
    "for layer.", _KERAS_V1.format(50))
ResNet101 = named_builder(
    "ResNet101", "ResNet-101 for ImageNet: bottleneck units, keras.applications.ResNet101 layer "
    "for layer.", _KERAS_V1.format(101))
ResNet152 = named_builder(
    "ResNet152", "ResNet-152 for ImageNet: bottleneck units, keras.applications.ResNet152 layer "
    "for layer.", _KERAS_V1.format(152))

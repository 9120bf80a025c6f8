"""Pre-activation ResNet (ResNet v2) and the ablations of its paper.

Reference: He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks",
ECCV 2016 (arXiv 1603.05027).

- Full pre-activation units (BN-ReLU-conv, Figure 4e), identity shortcuts,
  and a final BN-ReLU after the last addition (sec. 4.1).
- As in the authors' code (KaimingHe/resnet-1k-layers, fb.resnet.torch
  preresnet): the stride sits in the first unit of a stage (in the 3x3 conv of
  a bottleneck), and a 1x1 projection, reading the pre-activated input, is
  used only where the shape changes.
- `unit=` builds the five layouts of Figure 4 / Table 2 and `shortcut=` the
  six shortcuts of Figure 2 / Table 1, on any depth.
- `stride_in_last_unit=True, conv_bias="unless_bn", stem_style="imagenet"`
  is keras.applications' ResNet50V2 exactly (weights and outputs), which the
  registry exposes as `ResNet50V2`, `ResNet101V2`, `ResNet152V2`.

The unit itself lives in `keras_preact.models.residual.residual_unit`, shared with v1.
"""

from keras_preact.models import _builder
from keras_preact.models.registry import ModelSpec, named_builder, register
from keras_preact.models.residual import (
    CONVS_PER_UNIT,
    IMAGENET_DEPTHS,
    UnitConfig,
    build_residual_network,
    resolve_depth,
)
# The v1 paper's CIFAR table: the basic-unit v2 nets have its parameter counts.
from keras_preact.models.resnet import CIFAR_TABLE6


def ResNetV2(
    depth=None,
    *,
    blocks=None,
    block=None,
    stem="cifar",
    unit="full_preactivation",
    shortcut="identity",
    shortcut_scale=0.5,
    residual_scale=0.5,
    gate_bias_init=-6.0,
    shortcut_dropout_rate=0.5,
    stride_in_last_unit=False,
    conv_bias="none",
    dropout_rate=0.0,
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
    """A pre-activation ResNet, or any unit/shortcut variant of the v2 paper.

    CIFAR nets (`stem="cifar"`) have three stages of n units with 16/32/64
    filters: 6n+2 layers with basic units (ResNet-110: Tables 1-3), 9n+2 with
    bottleneck units (ResNet-164, ResNet-1001: Tables 2-3). ImageNet nets
    (`stem="imagenet"`) follow the v1 paper's Table 1 depths plus 200
    (Table 5).

    Args:
        depth: int. Layers as the papers count them (convs + FC): 6n+2
            (basic) or 9n+2 (bottleneck) for CIFAR; 18, 34, 50, 101, 152 or
            200 for ImageNet. Defaults to None (then `blocks` is required).
        blocks: tuple of int. Units per stage, overriding `depth`. Defaults
            to None.
        block: str. "basic" or "bottleneck". Defaults to None: "basic" for
            CIFAR, the Table 1 choice for ImageNet; pass "bottleneck" for the
            CIFAR ResNet-164/1001.
        stem: str. "cifar" or "imagenet". Defaults to "cifar".
        unit: str. Where BN and ReLU sit (Figure 4, Table 2): "original",
            "bn_after_addition", "relu_before_addition",
            "relu_only_preactivation" or "full_preactivation". Defaults to
            "full_preactivation".
        shortcut: str. The shortcut (Figure 2, Table 1): "identity",
            "constant_scaling", "exclusive_gating", "shortcut_only_gating",
            "conv1x1" or "dropout". Defaults to "identity".
        shortcut_scale: float. lambda of "constant_scaling": the shortcut is
            multiplied by it. Defaults to 0.5.
        residual_scale: float. The residual branch's factor under
            "constant_scaling" (1 - lambda, or 1). Defaults to 0.5.
        gate_bias_init: float. Initial bias b_g of the gate conv in
            "exclusive_gating" / "shortcut_only_gating" (Table 1 tries 0 to
            -7; -6 is best for both). Defaults to -6.0.
        shortcut_dropout_rate: float. Drop ratio of the "dropout" shortcut.
            Defaults to 0.5.
        stride_in_last_unit: bool. Stride in the last unit of each stage
            (keras.applications ResNetV2) instead of the first (the paper's
            code). Defaults to False.
        conv_bias: str. "none", "all", or "unless_bn" (bias only on convs not
            followed by BN, as keras.applications ResNetV2). Defaults to
            "none".
        dropout_rate: float. Dropout between the convs of each residual
            branch (not in the paper). Defaults to 0.
        drop_path_rate: float. Stochastic depth of the last unit, decaying
            linearly (not in the paper). Defaults to 0.
        zero_init_residual: bool. Start every residual branch at zero: the
            last conv's kernel is zero-initialised in pre-activation units, the
            last BN's gamma otherwise (not in the paper). Defaults to False.
            Untrained and in inference mode (BN at its initial moving
            statistics) every unit roughly doubles the signal, so ResNet-1001
            overflows float32 to NaN; training mode is finite at any depth, and
            so is inference once trained or with this flag on.
        include_top: bool. Include the classifier. Defaults to True.
        weights: None, a zoo model name, a `.weights.h5` path, or "imagenet"
            (keras.applications' ImageNet weights, downloaded by
            keras.applications; for `resnet50v2`, `resnet101v2` and `resnet152v2`, which are
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
            to None: "cifar" for CIFAR, "torch" for ImageNet.
        name: str. Model name. Defaults to None: "resnetv2_{depth}", or
            "resnet{depth}v2" for keras.applications' layout.

    Returns:
        A `keras.Model`.
    """
    common = _builder.common_args(locals())
    block, units = resolve_depth(depth, blocks, block, stem)
    depth = CONVS_PER_UNIT[block] * sum(units) + 2
    keras_layout = stem == "imagenet" and stride_in_last_unit and conv_bias == "unless_bn"
    return build_residual_network(
        # keras.applications' layout keeps keras.applications' name.
        arch_name=f"resnet{depth}v2" if keras_layout else f"resnetv2_{depth}",
        units=units,
        stem_style=stem,
        cfg=UnitConfig(
            block=block,
            unit=unit,
            shortcut=shortcut,
            downsample="projection",
            stride_at="3x3",
            conv_bias=conv_bias,
            shortcut_scale=float(shortcut_scale),
            residual_scale=float(residual_scale),
            gate_bias_init=float(gate_bias_init),
            shortcut_dropout_rate=float(shortcut_dropout_rate),
            dropout_rate=float(dropout_rate),
            zero_init_residual=zero_init_residual,
        ),
        stride_in_last_unit=stride_in_last_unit,
        drop_path_rate=drop_path_rate,
        common=common,
    )


# --- The v2 paper's networks, by name --------------------------------------

# CIFAR: name -> (builder kwargs, parameters, source, test error %, table).
# The basic-unit nets have the layers of their v1 namesakes (v1 Table 6) plus
# two projection shortcuts; ResNet-110 is Table 2's full pre-activation row.
CIFAR_NETS = {
    **{
        f"resnetv2_{d}": (dict(depth=d), CIFAR_TABLE6[d][0], "v1 paper Table 6 (same layers)",
                          6.37 if d == 110 else None,
                          "Table 2" if d == 110 else "layers of He et al., CVPR 2016, Table 6")
        for d in (20, 32, 44, 56, 110)
    },
    "resnetv2_164": (dict(depth=164, block="bottleneck"), 1_700_000, "v2 paper Table 3", 5.46,
                     "Table 3"),
    "resnetv2_1001": (dict(depth=1001, block="bottleneck"), 10_200_000, "v2 paper Table 3", 4.92,
                      "Table 3"),
}
# ImageNet top-1 error, single 224 crop (v2 paper Table 5).
IMAGENET_TOP1_ERROR = {152: 21.1, 200: 20.7}
# keras.applications ResNet50V2/101V2/152V2: stride in the last unit, biases
# on convs not followed by BN, inputs scaled to [-1, 1] ("tf" mode).
KERAS_V2 = {
    "resnet50v2": (50, 25_613_800),
    "resnet101v2": (101, 44_675_560),
    "resnet152v2": (152, 60_380_648),
}

for _name, (_kwargs, _params, _source, _error, _table) in CIFAR_NETS.items():
    register(ModelSpec(
        name=_name, builder=ResNetV2, kwargs=_kwargs, family="resnetv2", dataset="cifar",
        paper=f"He et al., ECCV 2016 (CIFAR-10, full pre-activation), {_table}",
        params=_params, params_source=_source,
        params_precision=10_000 if _params < 1_000_000 else 100_000, error=_error,
    ))
for _depth in IMAGENET_DEPTHS:
    register(ModelSpec(
        name=f"resnetv2_{_depth}", builder=ResNetV2, kwargs=dict(depth=_depth, stem="imagenet"),
        family="resnetv2", dataset="imagenet",
        paper="He et al., ECCV 2016, sec. 5 and Table 5 (ImageNet, pre-activation)",
        error=IMAGENET_TOP1_ERROR.get(_depth),
    ))
for _name, (_depth, _params) in KERAS_V2.items():
    register(ModelSpec(
        name=_name, builder=ResNetV2,
        kwargs=dict(depth=_depth, stem="imagenet", stride_in_last_unit=True,
                    conv_bias="unless_bn", preprocessing_mode="tf"),
        family="resnetv2", dataset="imagenet",
        paper="He et al., ECCV 2016; layout and weights of keras.applications " + _name,
        params=_params, params_source="keras.applications", params_convention="keras",
        imagenet_weights=f"ResNet{_depth}V2",
    ))


# What tells the paper's ImageNet pre-activation nets (resnetv2_50/101/152) from
# keras.applications' (resnet50v2/101v2/152v2), in both docstrings: same units, same widths.
_PAPER_LAYOUT = (
    "Not `resnet{0}v2` (keras.applications.ResNet{0}V2), which has the same units and widths "
    "but: here a stage's stride sits in its first unit (in the bottleneck's 3x3 conv, next to "
    "the projection shortcut), as in the authors' code (fb.resnet.torch preresnet), where "
    "resnet{0}v2 strides in the last unit of stages conv2-conv4 (subsampling that unit's "
    "identity shortcut with a 1x1 max-pool); here no conv has a bias, where resnet{0}v2 gives "
    "one to every conv not followed by BN (the stem, each unit's last 1x1 conv, the "
    "projections); and here raw pixels are normalized with the ImageNet mean and standard "
    "deviation (\"torch\" mode), where resnet{0}v2 scales them to [-1, 1] (\"tf\" mode). "
    "keras.applications' ImageNet weights do not fit it; they fit resnet{0}v2.")
_KERAS_LAYOUT = (
    "Not `resnetv2_{0}` (the v2 paper's layout), which has the same units and widths but: "
    "here the stride of stages conv2-conv4 sits in their last unit (in the bottleneck's 3x3 "
    "conv; that unit's identity shortcut is subsampled by a 1x1 max-pool), where resnetv2_{0} "
    "strides in a stage's first unit as the authors' code does; here every conv not followed "
    "by BN has a bias (the stem, each unit's last 1x1 conv, the projections), where "
    "resnetv2_{0} has none; and here raw pixels are scaled to [-1, 1] (\"tf\" mode), where "
    "resnetv2_{0} normalizes with the ImageNet mean and standard deviation (\"torch\" mode). "
    "The model is named \"resnet{0}v2\", as keras.applications names it.")

# The pre-activation ResNets' public builders (see registry.named_builder).
ResNetV2_20 = named_builder("ResNetV2_20", "Pre-activation ResNet-20 for CIFAR, basic units.")
ResNetV2_32 = named_builder("ResNetV2_32", "Pre-activation ResNet-32 for CIFAR, basic units.")
ResNetV2_44 = named_builder("ResNetV2_44", "Pre-activation ResNet-44 for CIFAR, basic units.")
ResNetV2_56 = named_builder("ResNetV2_56", "Pre-activation ResNet-56 for CIFAR, basic units.")
ResNetV2_110 = named_builder(
    "ResNetV2_110", "Pre-activation ResNet-110 for CIFAR, basic units (Table 2's full "
    "pre-activation row).")
ResNetV2_164 = named_builder(
    "ResNetV2_164", "Pre-activation ResNet-164 for CIFAR, bottleneck units.")
ResNetV2_1001 = named_builder(
    "ResNetV2_1001", "Pre-activation ResNet-1001 for CIFAR, bottleneck units.")
ResNetV2_18 = named_builder("ResNetV2_18", "Pre-activation ResNet-18 for ImageNet, basic units.")
ResNetV2_34 = named_builder("ResNetV2_34", "Pre-activation ResNet-34 for ImageNet, basic units.")
ResNetV2_50 = named_builder(
    "ResNetV2_50", "Pre-activation ResNet-50 for ImageNet, the v2 paper's layout.",
    _PAPER_LAYOUT.format(50))
ResNetV2_101 = named_builder(
    "ResNetV2_101", "Pre-activation ResNet-101 for ImageNet, the v2 paper's layout.",
    _PAPER_LAYOUT.format(101))
ResNetV2_152 = named_builder(
    "ResNetV2_152", "Pre-activation ResNet-152 for ImageNet, the v2 paper's layout.",
    _PAPER_LAYOUT.format(152))
ResNetV2_200 = named_builder(
    "ResNetV2_200", "Pre-activation ResNet-200 for ImageNet, the v2 paper's layout.")
ResNet50V2 = named_builder(
    "ResNet50V2", "keras.applications.ResNet50V2, layer for layer: a pre-activation ResNet-50.",
    _KERAS_LAYOUT.format(50))
ResNet101V2 = named_builder(
    "ResNet101V2", "keras.applications.ResNet101V2, layer for layer: a pre-activation "
    "ResNet-101.", _KERAS_LAYOUT.format(101))
ResNet152V2 = named_builder(
    "ResNet152V2", "keras.applications.ResNet152V2, layer for layer: a pre-activation "
    "ResNet-152.", _KERAS_LAYOUT.format(152))

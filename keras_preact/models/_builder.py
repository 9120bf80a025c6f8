"""What every keras-preact builder does around its own body.

keras.applications' calling convention (`include_top`, `weights`,
`input_shape`, `input_tensor`, `pooling`, `classes`, `classifier_activation`,
plus `include_preprocessing` and `name`) is handled here once, for every
family: argument checks that run before any layer is built, the input and
preprocessing layers, the classification head, and the model itself.
Weights (where `weights=` points, and how a file is checked and loaded) are
`keras_preact.models.weights`' concern.
"""

import os
import sys

import keras
from keras import layers

from keras_preact.models.layers import ImageNormalization
from keras_preact.models.weights import KerasApplicationsWeights, load_weights, resolve_weights

# Normalization constants, keyed by the name a spec uses.
#   cifar: CIFAR-10 training-set channel statistics (what the papers' Torch
#          code subtracts and divides by).
#   torch / tf / caffe: exactly `keras.applications.*.preprocess_input` in
#          that mode, so ImageNet weights ported from keras.applications give
#          the same outputs from raw pixels.
PREPROCESSING = {
    "cifar": dict(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
    "torch": dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "tf": dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    "caffe": dict(
        mean=(103.939, 116.779, 123.68),
        std=(1.0, 1.0, 1.0),
        scale=1.0,
        reverse_channels=True,
    ),
}

POOLINGS = (None, "avg", "max")
# What a network's stem implies when the caller does not say: CIFAR nets take
# 32x32 images and downsample 4x; ImageNet nets take 224x224 and downsample 32x.
STEM_DEFAULTS = {
    "cifar": dict(input_shape=(32, 32, 3), classes=10, min_size=4, preprocessing="cifar"),
    "imagenet": dict(input_shape=(224, 224, 3), classes=1000, min_size=32, preprocessing="torch"),
}
# The keras.applications arguments every builder takes and passes through.
COMMON_ARGS = ("include_top", "weights", "input_shape", "input_tensor", "pooling", "classes",
               "classifier_activation", "include_preprocessing", "preprocessing_mode", "name")
# The recursion limit `functional_model` raises to when a graph needs more than the one set.
DEEP_GRAPH_RECURSION_LIMIT = 20_000
BN_EPSILON = 1.001e-5  # keras.applications' value, so ported weights match exactly.


def check_choice(param, value, valid):
    """Raise ValueError unless `value` is one of `valid`, naming all three."""
    if value not in valid:
        raise ValueError(
            f"Invalid `{param}`: received {param}={value!r}; valid values are "
            f"{', '.join(repr(v) for v in valid)}."
        )


def check_rate(param, value):
    """Raise ValueError unless `value` is a rate in [0, 1) (a dropout or drop-path rate)."""
    if not 0.0 <= value < 1.0:
        raise ValueError(f"`{param}` must be in [0, 1); received {param}={value}.")


def check_common_args(
    *,
    include_top,
    weights,
    input_shape,
    input_tensor,
    pooling,
    classes,
    classifier_activation,
    include_preprocessing,
    default_input_shape,
    min_size,
):
    """Validate the keras.applications keywords; return the resolved input shape.

    Runs before any layer exists, so a bad argument never leaves half a model.
    """
    if not isinstance(include_top, bool):
        raise ValueError(f"`include_top` must be True or False; received {include_top!r}.")
    if not isinstance(include_preprocessing, bool):
        raise ValueError(
            f"`include_preprocessing` must be True or False; received {include_preprocessing!r}."
        )
    check_choice("pooling", pooling, POOLINGS)
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"`classes` must be an integer >= 1; received classes={classes!r}.")
    if classifier_activation is not None and not (
        isinstance(classifier_activation, str) or callable(classifier_activation)
    ):
        raise ValueError(
            "`classifier_activation` must be None, an activation name such as "
            f"'softmax', or a callable; received {classifier_activation!r}."
        )
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            "`weights` must be None, 'imagenet', a zoo model name or a path to a "
            f".weights.h5 file; received {weights!r}."
        )
    return resolve_input_shape(input_shape, input_tensor, default_input_shape, min_size)


def channels_last():
    """Whether models are built channels_last (`keras.config.image_data_format()`).

    Builders read Keras' global setting, as keras.applications does: every
    layer of a model built under "channels_first" takes and gives
    (batch, channels, height, width) tensors. The weights do not depend on
    it (a Conv2D kernel is (kh, kw, in, out) either way), so `set_weights`
    moves them between the two layouts unchanged.
    """
    return keras.config.image_data_format() == "channels_last"


def channel_axis():
    """The channel axis of the models being built: -1 (channels_last) or 1 (channels_first)."""
    return -1 if channels_last() else 1


def to_data_format(shape_hwc):
    """A (height, width, channels) shape in the order of the current data format."""
    height, width, channels = shape_hwc
    return shape_hwc if channels_last() else (channels, height, width)


def resolve_input_shape(input_shape, input_tensor, default_input_shape, min_size):
    """The input shape the model is built for, checked: (height, width, channels)
    under channels_last, (channels, height, width) under channels_first."""
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = to_data_format(default_input_shape)
    order = "(height, width, channels)" if channels_last() else "(channels, height, width)"
    try:
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
    except TypeError:
        raise ValueError(
            f"`input_shape` must be a tuple {order}; received {input_shape!r}."
        ) from None
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must have 3 entries {order} "
            f"(keras.config.image_data_format() is {keras.config.image_data_format()!r}); "
            f"received input_shape={input_shape}."
        )
    if channels_last():
        height, width, channels = input_shape
    else:
        channels, height, width = input_shape
    if channels is None or channels < 1:
        raise ValueError(
            f"The channel count must be known and >= 1; received input_shape={input_shape} "
            f"{order}."
        )
    for side in (height, width):
        if side is not None and side < min_size:
            raise ValueError(
                f"Input too small: received input_shape={input_shape} {order}, but this "
                f"network downsamples by {min_size} in total, so height and width "
                f"must be at least {min_size} (or None)."
            )
    return input_shape


def input_channels(input_shape):
    """The channel count of a shape from `resolve_input_shape`."""
    return input_shape[-1] if channels_last() else input_shape[0]


def model_inputs(input_shape, input_tensor):
    """(model inputs, first tensor): what keras.applications does with input_tensor."""
    if input_tensor is None:
        image = layers.Input(shape=input_shape, name="image")
        return image, image
    if not keras.backend.is_keras_tensor(input_tensor):
        image = layers.Input(tensor=input_tensor, shape=input_shape, name="image")
        return image, image
    # Keep any layers that produced `input_tensor` inside the model.
    return keras.utils.get_source_inputs(input_tensor), input_tensor


def preprocessing(x, mode):
    """The in-model normalization named by `mode` (a key of PREPROCESSING), on the
    channel axis of the current data format."""
    return ImageNormalization(
        **PREPROCESSING[mode], data_format=keras.config.image_data_format(), name="preprocessing"
    )(x)


def classification_head(x, *, include_top, pooling, classes, classifier_activation):
    """keras.applications' top: GAP + Dense `predictions`, or optional pooling."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        # Under a mixed policy keep the classifier in float32: a softmax in
        # float16/bfloat16 loses the small probabilities the loss needs.
        policy = keras.config.dtype_policy().name
        dtype = "float32" if policy.startswith("mixed") else None
        return layers.Dense(
            classes, activation=classifier_activation, name="predictions", dtype=dtype
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def functional_model(inputs, outputs, *, name):
    """`keras.Model(inputs, outputs)`, raising the recursion limit only for a graph that needs it.

    Keras maps a functional graph recursively (`ops.function._build_map`), one
    Python frame per layer on the path it walks back from the output, which
    follows each Add/Concatenate's first input: the shortcuts. Measured with
    Keras 3.15, frames needed beyond the caller's: ResNet v1 two per unit (the
    ReLU after each addition), about its depth (ResNet-110 126, ResNet-1202
    1,218); pre-activation units one (ResNetV2-164 79, ResNetV2-1001 358);
    DenseNet one per dense layer (DenseNet-264 161). Under Python's default
    limit of 1,000, from a plain script, the CIFAR ResNet v1 of depth 974
    builds and that of depth 986 does not; of the registered networks only
    ResNet-1202 needs more.

    What a graph needs depends on its unit layout and on how deep the
    caller's stack already is, not on the depth alone. So the model is built
    under the limit as it is, and only if that overflows is the limit raised
    to DEEP_GRAPH_RECURSION_LIMIT (never lowered: a higher limit the user set
    stays) and the model built again. The limit stays raised: cloning the
    model or rebuilding it from its config walks the same graph.
    """
    try:
        return keras.Model(inputs, outputs, name=name)
    except RecursionError:
        if sys.getrecursionlimit() >= DEEP_GRAPH_RECURSION_LIMIT:
            raise
    sys.setrecursionlimit(DEEP_GRAPH_RECURSION_LIMIT)
    return keras.Model(inputs, outputs, name=name)


def common_args(arguments):
    """The COMMON_ARGS entries of a builder's `locals()`, to pass to build_model."""
    return {key: arguments[key] for key in COMMON_ARGS}


def build_model(body, *, arch_name, stem, include_top, weights, input_shape, input_tensor,
                pooling, classes, classifier_activation, include_preprocessing,
                preprocessing_mode, name):
    """The shared frame of every builder: checks, input, preprocessing, head, weights.

    Args:
        body: callable(tensor) -> tensor. The family's stem and stages.
        arch_name: str. The registry name of the network (its default
            model name, and what zoo weights are checked against).
        stem: str. "cifar" or "imagenet": picks the defaults of
            STEM_DEFAULTS for `input_shape`, `classes` and preprocessing.
        The rest: the builder's own arguments (COMMON_ARGS), passed through.
    """
    defaults = STEM_DEFAULTS[stem]
    classes = defaults["classes"] if classes is None else classes
    if preprocessing_mode is None:
        preprocessing_mode = defaults["preprocessing"]
    check_choice("preprocessing_mode", preprocessing_mode, tuple(PREPROCESSING))
    input_shape = check_common_args(
        include_top=include_top,
        weights=weights,
        input_shape=input_shape,
        input_tensor=input_tensor,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        default_input_shape=defaults["input_shape"],
        min_size=defaults["min_size"],
    )
    weights_source = resolve_weights(
        weights, architecture=arch_name, classes=classes, include_top=include_top
    )
    inputs, x = model_inputs(input_shape, input_tensor)
    # As keras.applications' ConvNeXt and EfficientNetV2: the RGB normalization applies
    # to 3-channel inputs; any other channel count reaches the network as it is.
    if include_preprocessing and input_channels(input_shape) == 3:
        x = preprocessing(x, preprocessing_mode)
    x = body(x)
    x = classification_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    model = functional_model(inputs, x, name=name or arch_name)
    if isinstance(weights_source, KerasApplicationsWeights):
        return weights_source.load_into(model, architecture=arch_name, include_top=include_top)
    return load_weights(model, weights_source, include_top=include_top)

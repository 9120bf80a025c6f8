"""What every keras-preact builder does around its own body.

keras.applications' calling convention (`include_top`, `weights`,
`input_shape`, `input_tensor`, `pooling`, `classes`, `classifier_activation`,
plus `include_preprocessing` and `name`) is handled here once, for every
family: argument checks that run before any layer is built, the input and
preprocessing layers, the classification head, and weight loading.
"""

import os
import sys

import keras
from keras import layers

from keras_preact.layers import ImageNormalization

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
DEEP_GRAPH_RECURSION_LIMIT = 20_000
BN_EPSILON = 1.001e-5  # keras.applications' value, so ported weights match exactly.


def check_choice(param, value, valid):
    """Raise ValueError unless `value` is one of `valid`, naming all three."""
    if value not in valid:
        raise ValueError(
            f"Invalid `{param}`: received {param}={value!r}; valid values are "
            f"{', '.join(repr(v) for v in valid)}."
        )


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
    return resolve_input_shape(
        input_shape, input_tensor, default_input_shape, min_size, include_preprocessing
    )


def resolve_input_shape(input_shape, input_tensor, default_input_shape, min_size,
                        include_preprocessing):
    """The (height, width, channels) the model is built for, checked."""
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = default_input_shape
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "keras-preact builds channels_last models only (the fast layout on CPU "
            "and what its exported SavedModels take); set "
            "keras.config.set_image_data_format('channels_last')."
        )
    try:
        input_shape = tuple(None if d is None else int(d) for d in input_shape)
    except TypeError:
        raise ValueError(
            f"`input_shape` must be a tuple (height, width, channels); received {input_shape!r}."
        ) from None
    if len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must have 3 entries (height, width, channels), channels "
            f"last; received input_shape={input_shape}."
        )
    height, width, channels = input_shape
    if channels is None or channels < 1:
        raise ValueError(
            f"The channel count must be known and >= 1; received input_shape={input_shape}."
        )
    if include_preprocessing and channels != 3:
        raise ValueError(
            "`include_preprocessing=True` normalizes RGB images and needs 3 channels; "
            f"received input_shape={input_shape}. Pass include_preprocessing=False "
            "and normalize the input yourself."
        )
    for side in (height, width):
        if side is not None and side < min_size:
            raise ValueError(
                f"Input too small: received input_shape={input_shape}, but this "
                f"network downsamples by {min_size} in total, so height and width "
                f"must be at least {min_size} (or None)."
            )
    return input_shape


def model_inputs(input_shape, input_tensor):
    """(model inputs, first tensor): what keras.applications does with input_tensor."""
    if input_tensor is None:
        image = layers.Input(shape=input_shape, name="image")
        return image, image
    if not keras.backend.is_keras_tensor(input_tensor):
        image = layers.Input(tensor=input_tensor, shape=input_shape, name="image")
        return image, image
    # Keep any layers that produced `input_tensor` inside the model.
    return keras.src.ops.operation_utils.get_source_inputs(input_tensor), input_tensor


def preprocessing(x, mode):
    """The in-model normalization named by `mode` (a key of PREPROCESSING)."""
    return ImageNormalization(**PREPROCESSING[mode], name="preprocessing")(x)


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


IMAGENET = "imagenet"


class KerasApplicationsWeights:
    """`weights="imagenet"`: keras.applications' ImageNet weights of the same network.

    keras.applications downloads them once into ~/.keras/models; they are copied with
    `set_weights`, which works because the networks with a `ModelSpec.imagenet_weights`
    hold their weights in keras.applications' order (tests/test_keras_applications.py).
    """

    def __init__(self, application):
        self.application = application

    def load_into(self, model, *, architecture, include_top):
        try:
            reference = getattr(keras.applications, self.application)(
                weights=IMAGENET, include_top=include_top)
        except Exception as error:
            raise RuntimeError(
                f"Could not get the ImageNet weights of keras.applications.{self.application}: "
                "keras.applications downloads them once from the internet into "
                f"~/.keras/models and reads them from there afterwards. Underlying error: {error}"
            ) from error
        theirs = reference.get_weights()
        del reference
        ours = [tuple(w.shape) for w in model.weights]
        mismatch = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != tuple(b.shape)]
        if len(ours) != len(theirs) or mismatch:
            first = mismatch[0] if mismatch else min(len(ours), len(theirs))
            where = model.weights[first].path if first < len(ours) else "past the model's last"
            raise ValueError(
                f"keras.applications.{self.application}'s ImageNet weights do not fit model "
                f"{model.name!r}: {len(theirs)} arrays against the model's {len(ours)}, first "
                f"difference at array {first} ({where}). "
                f"Build the network as registered, get_model({architecture!r}, weights='imagenet'), "
                "without arguments that change its layers."
            )
        model.set_weights(theirs)
        return model


def imagenet_weights(architecture, *, classes, include_top):
    """The KerasApplicationsWeights for `weights="imagenet"`, after checking the request."""
    from keras_preact import registry

    sources = registry.imagenet_weight_sources()
    if architecture not in sources:
        raise ValueError(
            "weights='imagenet' loads keras.applications' ImageNet weights, so it exists for "
            f"the networks that are keras.applications' own: {', '.join(sources)}. "
            f"{architecture!r} is not one of them; pass weights=None (random initialization), "
            "a zoo model name (keras_preact.list_zoo()) or the path of a .weights.h5 file."
        )
    if include_top and classes != 1000:
        raise ValueError(
            f"weights='imagenet' with include_top=True needs classes=1000 (ImageNet's); "
            f"received classes={classes}. Pass include_top=False to put your own head on "
            "the ImageNet features."
        )
    return KerasApplicationsWeights(sources[architecture])


def resolve_weights(weights, *, architecture, classes, include_top):
    """Where the weights for `weights` (None, "imagenet", zoo name, or file path) come from.

    Checked before the model is built, so a typo costs no build time.
    `architecture` is the registry name of the network being built; zoo
    weights of another architecture are refused by name. Returns None, a
    file path, or a KerasApplicationsWeights.
    """
    if weights is None:
        return None
    weights = os.fspath(weights)
    if weights == IMAGENET:
        return imagenet_weights(architecture, classes=classes, include_top=include_top)
    from keras_preact import zoo  # Local import: zoo reads model cards lazily.

    known = zoo.list_zoo()
    if weights in known:
        return zoo.resolve_weights(
            weights, architecture=architecture, classes=classes, include_top=include_top
        )
    if os.path.isfile(weights):
        return weights
    raise ValueError(
        f"Unknown `weights`: received weights={weights!r}, which is neither a zoo "
        f"model nor an existing file. Valid zoo models: "
        f"{', '.join(known) if known else '(none installed)'}; or pass None, 'imagenet' "
        "(keras.applications' networks only), or the path of a .weights.h5 file."
    )


def _variable_shapes(h5_group, prefix=""):
    """{"layers/conv2d": [shape, ...], ...} for every weight-bearing object in a Keras 3 file."""
    import h5py

    shapes = {}
    for key, item in h5_group.items():
        path = f"{prefix}/{key}" if prefix else key
        # A compiled model's file also holds optimizer state: not model weights.
        if not isinstance(item, h5py.Group) or (not prefix and key == "optimizer"):
            continue
        if key == "vars":
            if len(item):
                shapes[prefix] = [item[str(i)].shape for i in range(len(item))]
        else:
            shapes.update(_variable_shapes(item, path))
    return shapes


def _shapes_in_file(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _variable_shapes(f)
    except Exception as error:
        raise ValueError(
            f"Could not read weights from {path!r}: it is not a readable Keras "
            f".weights.h5 file (damaged or truncated?). Underlying error: {error}"
        ) from error


def _shapes_in_model(model):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        reference = os.path.join(tmp, "reference.weights.h5")
        model.save_weights(reference)
        return _shapes_in_file(reference)


def load_weights(model, path, *, include_top=True):
    """Load `path` into `model` after checking the file matches it exactly.

    Keras 3 matches a `.weights.h5` file to a model by layer type and order, so
    the weights of a deeper network load silently into a shallower one. Here
    every weight tensor of the model must be in the file with the same shape,
    and the file may hold nothing else except (when `include_top=False`) the
    classifier head. Nothing is assigned unless the whole file fits, so a bad
    file leaves the model untouched.
    """
    if path is None:
        return model
    in_file = _shapes_in_file(path)
    in_model = _shapes_in_model(model)
    problems = [
        f"{key}: file {in_file.get(key, 'missing')} vs model {shapes}"
        for key, shapes in in_model.items()
        if in_file.get(key) != shapes
    ]
    extra = sorted(set(in_file) - set(in_model))
    if include_top and extra:
        problems.append(f"file has weights the model lacks: {', '.join(extra[:5])}")
    elif not include_top and len(extra) > 1:
        problems.append(f"file has more than a classifier head extra: {', '.join(extra[:5])}")
    if problems:
        raise ValueError(
            f"The weights in {path!r} do not fit model {model.name!r}: they were saved "
            f"from a different architecture or class count ({len(problems)} mismatches; "
            f"first: {problems[0]}). Build the architecture the file was saved from, "
            "or pass `classes` equal to its class count."
        )
    try:
        model.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"Could not load weights from {path!r} into model {model.name!r}: {error}"
        ) from error
    return model


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
    if include_preprocessing:
        x = preprocessing(x, preprocessing_mode)
    x = body(x)
    x = classification_head(
        x,
        include_top=include_top,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
    )
    # Keras walks the functional graph recursively, one Python frame per
    # layer: ResNet-1202 (~4,000 layers) needs more than the default 1,000.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), DEEP_GRAPH_RECURSION_LIMIT))
    model = keras.Model(inputs, x, name=name or arch_name)
    if isinstance(weights_source, KerasApplicationsWeights):
        return weights_source.load_into(model, architecture=arch_name, include_top=include_top)
    return load_weights(model, weights_source, include_top=include_top)

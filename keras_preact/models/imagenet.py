"""keras.applications' `preprocess_input` and `decode_predictions`, for every keras-preact model.

    >>> model = keras_preact.ResNet50(weights="imagenet", include_preprocessing=False)
    >>> probabilities = model.predict(keras_preact.preprocess_input(images, "resnet50"))
    >>> keras_preact.decode_predictions(probabilities, top=3)
    [[('n02123045', 'tabby', 0.73), ('n02124075', 'Egyptian_cat', 0.11), ...]]

`preprocess_input(x, name)` is keras.applications' own function of the module whose network
the name is (resnet50/101/152: `keras.applications.resnet`, "caffe"; resnet50v2/101v2/152v2:
`keras.applications.resnet_v2`, "tf"; densenet121/169/201: `keras.applications.densenet`,
"torch"), and for every other registry or zoo name the scaling the network's first layer
expects. keras-preact models normalize raw pixels themselves by default
(`include_preprocessing=True`); given such a model, `preprocess_input` returns `x` unchanged, as
keras.applications' does for its models with the preprocessing inside (EfficientNet, ConvNeXt).

`decode_predictions` reads ImageNet's class index from `imagenet_class_index.json` in this
package, so it works offline: the file is byte for byte keras.applications' class index (its md5,
c2c37ea517e94d9795004a39431a14cb, is the hash keras.applications checks after downloading it),
taken from keras-hub 0.32.0's `IMAGENET_NAMES` (Apache-2.0, as this package); the names are
WordNet synset words.
"""

import functools
import json
from pathlib import Path

import keras
import numpy as np

from keras_preact import store
from keras_preact.models import registry
from keras_preact.models._builder import PREPROCESSING, STEM_DEFAULTS
from keras_preact.models.layers import ImageNormalization

IMAGENET_CLASS_INDEX = Path(__file__).with_name("imagenet_class_index.json")
IMAGENET_CLASSES = 1000
# keras.applications.imagenet_utils.preprocess_input's modes; "cifar" is keras-preact's own.
KERAS_MODES = ("caffe", "tf", "torch")


@functools.lru_cache(maxsize=1)
def imagenet_class_index():
    """[(WordNet id, class name)] of ImageNet's 1000 classes, in the models' output order."""
    index = json.loads(IMAGENET_CLASS_INDEX.read_text())
    return tuple(tuple(index[str(i)]) for i in range(IMAGENET_CLASSES))


def _spec_mode(spec, overrides=None):
    """The preprocessing mode a registered network (with builder `overrides`) expects."""
    mode = dict(overrides or {}).get("preprocessing_mode") or spec.kwargs.get("preprocessing_mode")
    return mode or STEM_DEFAULTS[spec.dataset]["preprocessing"]


def _name_mode(name):
    """The mode of a registry name or a zoo name (its card's architecture)."""
    if str(name).lower() in registry.list_models():
        return _spec_mode(registry.get_model_spec(name))
    if name in store.list_zoo():
        card = store.get_card(name)
        return _spec_mode(registry.get_model_spec(card["architecture"]), card.get("model_kwargs"))
    raise ValueError(
        f"Unknown model {name!r}: preprocess_input takes a registry name "
        "(keras_preact.list_models()), a zoo name (keras_preact.list_zoo()) or a keras-preact "
        "Keras model."
    )


def _normalizes_inside(model):
    """Whether `model` (or a model nested in it) has keras-preact's input normalization layer."""
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if isinstance(layer, ImageNormalization):
            return True
        stack.extend(getattr(layer, "layers", ()))
    return False


def _model_mode(model):
    if str(model.name).lower() not in registry.list_models():
        raise ValueError(
            f"Model {model.name!r} takes preprocessed inputs (include_preprocessing=False) and "
            "its name is not a registry name, so which scaling it expects is unknown: pass "
            "the registry name of its network instead, e.g. preprocess_input(x, 'resnet50')."
        )
    return _spec_mode(registry.get_model_spec(model.name))


def _cifar(x, data_format):
    """"cifar" mode: keras.applications' "torch" steps with CIFAR-10's channel statistics."""
    mean, std = PREPROCESSING["cifar"]["mean"], PREPROCESSING["cifar"]["std"]
    axis = -1 if data_format == "channels_last" else (0 if len(x.shape) == 3 else 1)
    shape = [1] * len(x.shape)
    shape[axis] = len(mean)
    if isinstance(x, np.ndarray):
        dtype = x.dtype
        mean, std = np.reshape(mean, shape).astype(dtype), np.reshape(std, shape).astype(dtype)
        return (x / dtype.type(255.0) - mean) / std
    mean = keras.ops.reshape(keras.ops.convert_to_tensor(mean, x.dtype), shape)
    std = keras.ops.reshape(keras.ops.convert_to_tensor(std, x.dtype), shape)
    return (x / 255.0 - mean) / std


def preprocess_input(x, model_or_name, data_format=None):
    """Scale raw 0..255 RGB pixels as the network `model_or_name` expects.

    For the nine networks that are keras.applications' own, the result is that of
    keras.applications' `preprocess_input` of the same network (`keras.applications.resnet`,
    `.resnet_v2`, `.densenet`): what `include_preprocessing=False` models with its ImageNet
    weights take.

    Args:
        x: array or tensor of pixels, 3D (one image) or 4D (a batch), 0..255 RGB.
        model_or_name: a registry name ("resnet50"), a zoo name ("resnetv2_20_cifar10") or a
            keras-preact Keras model. A model that normalizes its inputs itself
            (`include_preprocessing=True`, the default) gets `x` back unchanged.
        data_format: "channels_last", "channels_first" or None
            (`keras.config.image_data_format()`).

    Returns:
        The scaled pixels: a new float array for a NumPy input (keras.applications' function
        scales a float array in place; this one leaves `x` as it was), a tensor otherwise.
    """
    if data_format is None:
        data_format = keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` must be 'channels_last', 'channels_first' or None; received "
            f"data_format={data_format!r}."
        )
    if isinstance(model_or_name, keras.Model):
        if _normalizes_inside(model_or_name):
            return x
        mode = _model_mode(model_or_name)
    elif isinstance(model_or_name, str):
        mode = _name_mode(model_or_name)
    else:
        raise ValueError(
            "`model_or_name` must be a registry name, a zoo name or a keras-preact Keras model; "
            f"received {model_or_name!r}."
        )
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        # keras.applications casts non-float input to floatx and scales float input in place.
        x = np.array(x, dtype=x.dtype if np.issubdtype(x.dtype, np.floating) else keras.config.floatx())
    elif not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
        # keras.applications' function fails on an integer tensor; uint8 images are common.
        x = keras.ops.cast(x, keras.config.floatx())
    if mode == "cifar":
        return _cifar(x, data_format)
    return keras.applications.imagenet_utils.preprocess_input(x, data_format=data_format, mode=mode)


def _class_names(probabilities_width, model):
    """[(class id, class name)] for decode_predictions' `model` argument."""
    if isinstance(model, keras.Model):
        raise ValueError(
            "decode_predictions needs class names, which a Keras model does not carry: pass "
            "model=ZOO_NAME for a zoo model, None for ImageNet, or a list of class names."
        )
    if model is not None and not isinstance(model, str):
        names = [str(name) for name in model]
        return [(i, name) for i, name in enumerate(names)]
    if model is not None and model in store.list_zoo():
        return list(enumerate(store.get_card(model)["class_names"]))
    if model is not None and str(model).lower() not in registry.list_models():
        raise ValueError(
            f"Unknown model {model!r}: decode_predictions takes None (ImageNet), a zoo name "
            "(keras_preact.list_zoo()), a registry name of an ImageNet network, or a list of "
            "class names."
        )
    if model is not None and registry.get_model_spec(model).dataset != "imagenet":
        raise ValueError(
            f"{model!r} is a CIFAR network: its classes have no names until it is trained. Pass "
            "the zoo name of its trained model (keras_preact.list_zoo()) or your class names."
        )
    if probabilities_width != IMAGENET_CLASSES:
        raise ValueError(
            "`decode_predictions` expects a batch of ImageNet predictions (i.e. a 2D array of "
            f"shape (samples, 1000)); received {probabilities_width} columns. For a zoo model, "
            "pass model=ZOO_NAME; for your own classes, model=[class names]."
        )
    return imagenet_class_index()


def decode_predictions(probabilities, top=5, model=None):
    """The `top` classes of each row of `probabilities`, best first.

    With `model=None` this is keras.applications' `decode_predictions` (same tuples, same order)
    without its download: ImageNet's class index ships with keras-preact.

    Args:
        probabilities: array or tensor of shape (samples, classes).
        top: int. How many classes per row. Defaults to 5.
        model: None (ImageNet's 1000 classes), a zoo name (its card's class names), a registry
            name of an ImageNet network, or a sequence of class names.

    Returns:
        A list with one list per row of `(class_id, class_name, score)` tuples: class_id is the
        WordNet id (e.g. 'n02123045') for ImageNet, the class index for a zoo model or a list
        of names; score is the row's value, as keras.applications returns it.
    """
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"`top` must be an integer >= 1; received top={top!r}.")
    probabilities = keras.ops.convert_to_numpy(probabilities)
    if probabilities.ndim != 2:
        raise ValueError(
            "`decode_predictions` expects a 2D array of shape (samples, classes); received an "
            f"array of shape {probabilities.shape}."
        )
    classes = _class_names(probabilities.shape[1], model)
    if len(classes) != probabilities.shape[1]:
        raise ValueError(
            f"{model!r} has {len(classes)} classes, but the predictions have "
            f"{probabilities.shape[1]} columns."
        )
    results = []
    for row in probabilities:
        best = row.argsort()[-top:][::-1]
        result = [tuple(classes[i]) + (row[i],) for i in best]
        result.sort(key=lambda entry: entry[2], reverse=True)
        results.append(result)
    return results

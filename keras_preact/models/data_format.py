"""A model's data format, and the channels_last twin of a channels_first model.

Builders follow `keras.config.image_data_format()`, as keras.applications does, and
build the same layers and weights in either format. What leaves the package
(exported SavedModels, ONNX, OpenVINO, LiteRT) always takes NHWC pixels: a
channels_first model is exported as its channels_last twin, the same function
on transposed inputs (`channels_last_twin`).
"""

import keras
import numpy as np

DATA_FORMATS = ("channels_last", "channels_first")


def model_data_format(model):
    """"channels_last" or "channels_first": the format of `model`'s layers.

    Read from its first layer that has a `data_format` (a conv, a pooling, the
    preprocessing); a model without one is "channels_last".
    """
    for layer in model.layers:
        data_format = getattr(layer, "data_format", None)
        if data_format in DATA_FORMATS:
            return data_format
    return "channels_last"


def _to_channels_last(layer_config):
    """One layer's config (class_name, config), rewritten for NHWC tensors."""
    config = dict(layer_config["config"])
    if config.get("data_format") == "channels_first":
        config["data_format"] = "channels_last"
    if layer_config["class_name"] == "InputLayer":
        batch, channels, height, width = config["batch_shape"]
        config["batch_shape"] = [batch, height, width, channels]
    if layer_config["class_name"] in ("BatchNormalization", "Concatenate"):
        axis = config["axis"]
        if axis in (1, [1], (1,)):
            config["axis"] = -1
        elif axis not in (-1, 3, [-1], [3]):
            raise ValueError(f"Layer {config['name']!r} works on axis {axis}; "
                             "only channel-axis layers can be moved to channels_last.")
    # Built from the rewritten graph, not from the recorded (NCHW) input shapes.
    layer_config = {k: v for k, v in layer_config.items() if k != "build_config"}
    return {**layer_config, "config": config}


def channels_last_twin(model, *, check=True):
    """`model` if it is channels_last, else a channels_last model with its weights.

    The twin is rebuilt from `model`'s config with every data format, input
    shape and channel axis (BatchNormalization, Concatenate) moved to the
    last axis; its weights are `model`'s unchanged (Keras kernels are
    (kh, kw, in, out) in either format). With `check`, both run on two random
    images and must agree to 1e-5 of the largest output, or ValueError: a
    layer this function does not know to move (a Reshape, a Lambda on an
    axis) fails loudly instead of giving a wrong model.

    Args:
        model: keras.Model. A functional keras-preact model of one input.
        check: bool. Compare the two models' outputs. Defaults to True.
    """
    if model_data_format(model) == "channels_last":
        return model
    config = model.get_config()
    config["layers"] = [_to_channels_last(layer) for layer in config["layers"]]
    twin = model.__class__.from_config(config)
    twin.set_weights(model.get_weights())
    if check:
        shape = tuple(8 if d is None else int(d) for d in model.inputs[0].shape[1:])
        x = np.random.RandomState(0).uniform(0, 255, (2, *shape)).astype("float32")
        ours = np.asarray(twin(np.transpose(x, (0, 2, 3, 1)), training=False))
        theirs = np.asarray(model(x, training=False))
        if theirs.ndim == 4:  # a feature map, NCHW
            theirs = np.transpose(theirs, (0, 2, 3, 1))
        if not np.abs(ours - theirs).max() <= 1e-5 * max(1.0, np.abs(theirs).max()):
            raise ValueError(f"Model {model.name!r} could not be moved to channels_last: its "
                             "channels_last twin computes another function.")
    return twin

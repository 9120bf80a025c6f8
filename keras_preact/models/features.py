"""Stage outputs for detection and segmentation (timm's `features_only`)."""

import re

import keras

_STAGE = re.compile(r"^(conv\d+)_")


def feature_extractor(model):
    """A model returning the output of every stage of `model`, by stage name.

    The stages are the keras.applications ones: `conv1` (the stem) and
    `conv2`, `conv3`, ... (one per group of residual units or dense block),
    each taken at its last layer, at strides 1/2/4 for CIFAR nets and
    2/4/8/16/32 for ImageNet nets. The weights are shared with `model`.

    Args:
        model: a keras-preact model (any `include_top`).

    Returns:
        A `keras.Model` with the same inputs and a dict of outputs,
        e.g. {"conv1": ..., "conv2": ..., "conv3": ..., "conv4": ...}.
    """
    last_layer = {}
    for layer in model.layers:
        match = _STAGE.match(layer.name)
        if match:
            last_layer[match.group(1)] = layer
    if not last_layer:
        raise ValueError(
            f"Model {model.name!r} has no stage layers named conv<N>_...; "
            "feature_extractor works on keras-preact and keras.applications models."
        )
    outputs = {stage: _as_tensor(layer.output, stage) for stage, layer in sorted(last_layer.items())}
    return keras.Model(model.input, outputs, name=f"{model.name}_features")


def _as_tensor(output, stage):
    """A stage output; a memory-efficient dense block's list of maps is concatenated."""
    if isinstance(output, (list, tuple)):
        return keras.layers.Concatenate(name=f"{stage}_features_concat")(list(output))
    return output

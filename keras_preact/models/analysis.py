"""Counting what the papers count: parameters, multiply-adds, depth; and what the
v2 paper's gates do after training."""

import keras
import numpy as np
from keras import layers

GATE_SUFFIX = "_gate_conv"
# Convs the papers leave out of a network's depth: projection shortcuts
# (`*_0_conv`) and the gates of the v2 paper's gating ablations.
_NOT_COUNTED_SUFFIXES = ("_0_conv", GATE_SUFFIX)


def count_params(model, trainable_only=False):
    """Number of parameters; `trainable_only` drops BN moving statistics.

    keras.applications publishes `model.count_params()` (all weights);
    torchvision and the papers publish learnable parameters only.
    """
    weights = model.trainable_weights if trainable_only else model.weights
    total = 0
    for w in weights:
        size = 1
        for d in w.shape:
            size *= int(d)
        total += size
    return total


def count_flops(model):
    """Multiply-adds of one forward pass on one image (the papers' "FLOPs").

    Counts Conv2D and Dense layers, which is what the ResNet paper's Table 1
    counts (3.8e9 for ResNet-50); BN, ReLU, pooling and additions are left
    out. The model's input height and width must be fixed.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            if layer.data_format == "channels_last":
                _, height, width, out_channels = layer.output.shape
            else:
                _, out_channels, height, width = layer.output.shape
            if height is None or width is None:
                raise ValueError(
                    f"count_flops needs a fixed input size; layer {layer.name!r} has "
                    f"output shape {layer.output.shape}. Build the model with an "
                    "input_shape such as (224, 224, 3)."
                )
            kh, kw, in_channels, _ = layer.kernel.shape
            total += height * width * out_channels * kh * kw * in_channels
        elif isinstance(layer, layers.Dense):
            total += int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return int(total)


def paper_depth(model):
    """Weighted layers as the papers count them: convs and FC layers, without
    projection shortcuts or gates (ResNet-110, DenseNet-121, ...)."""
    return sum(
        1
        for layer in model.layers
        if isinstance(layer, (layers.Conv2D, layers.Dense))
        and not layer.name.endswith(_NOT_COUNTED_SUFFIXES)
    )


def gate_means(model, images, batch_size=250):
    """Mean gate value g per residual unit over `images` (v2 paper sec. 3.1).

    The gating ablations compute g = sigmoid(W_g x + b_g) in every unit:
    exclusive gating outputs (1-g)*x + g*F(x), shortcut-only gating
    (1-g)*x + F(x). A bias init of -6 starts every g at sigmoid(-6) = 0.0025;
    these means show where training has left each gate.

    Args:
        model: a model built with shortcut="exclusive_gating" or
            "shortcut_only_gating".
        images: array [N, H, W, 3] in whatever the model's input takes.
        batch_size: int.

    Returns:
        dict, unit name (e.g. "conv3_block2") -> mean of g over images,
        channels and positions, in the order of the network.

    Raises:
        ValueError: the model has no gate layers.
    """
    gates = [layer for layer in model.layers if layer.name.endswith(GATE_SUFFIX)]
    if not gates:
        raise ValueError(
            f"Model {model.name!r} has no gate layers (*{GATE_SUFFIX}); gates exist only "
            "with shortcut='exclusive_gating' or shortcut='shortcut_only_gating'."
        )
    probe = keras.Model(model.inputs, [layer.output for layer in gates])
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    return {
        layer.name[: -len(GATE_SUFFIX)]: float(np.mean(keras.ops.convert_to_numpy(out)))
        for layer, out in zip(gates, outputs)
    }

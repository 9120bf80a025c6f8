"""The two layers keras-preact needs that Keras core does not have.

Everything else in the builders is a stock `keras.layers` layer, so saved
`.keras` files stay portable and the model code runs on every Keras backend.
Both layers hold no weights: they never change the order of `get_weights()`.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_preact")
class ImageNormalization(keras.layers.Layer):
    """Maps raw 0..255 pixels to the network's input scale: `(x * scale - mean) / std`.

    Putting the normalization inside the model (`include_preprocessing=True`)
    means training, evaluation, export and serving all feed the same raw
    pixels, so the preprocessing can never drift apart between them.

    Args:
        mean: sequence of float. Per-channel mean, in units of `x * scale`.
        std: sequence of float. Per-channel standard deviation, same units.
        scale: float. Multiplies the raw pixels first. Defaults to `1/255`.
        reverse_channels: bool. Flip RGB to BGR first (the "caffe" mode of
            `keras.applications.resnet.preprocess_input`). Defaults to `False`.
    """

    def __init__(self, mean, std, scale=1.0 / 255.0, reverse_channels=False, **kwargs):
        super().__init__(**kwargs)
        if len(mean) != len(std):
            raise ValueError(
                f"`mean` and `std` need one value per channel; received "
                f"{len(mean)} means and {len(std)} stds."
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"`std` must be positive; received std={list(std)}.")
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.scale = float(scale)
        self.reverse_channels = bool(reverse_channels)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.reverse_channels:
            x = ops.flip(x, axis=-1)
        # One multiply-add instead of three ops: (x*scale - mean)/std == x*a + b.
        a = ops.convert_to_tensor([self.scale / s for s in self.std], self.compute_dtype)
        b = ops.convert_to_tensor(
            [-m / s for m, s in zip(self.mean, self.std)], self.compute_dtype
        )
        return x * a + b

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "mean": self.mean,
            "std": self.std,
            "scale": self.scale,
            "reverse_channels": self.reverse_channels,
        }


@keras.saving.register_keras_serializable(package="keras_preact")
class ChannelZeroPad(keras.layers.Layer):
    """Appends `channels` all-zero feature maps: the ResNet paper's option-A shortcut.

    He et al. 2015, sec. 4.2 (CIFAR): "when the dimensions increase ... the
    shortcut still performs identity mapping, with extra zero entries padded
    for increasing dimensions", which adds no parameters. The zeros go after
    the existing channels, as in the authors' Torch code (fb.resnet.torch,
    shortcut type A).

    Args:
        channels: int. Number of zero channels to append.
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        if int(channels) < 0:
            raise ValueError(f"`channels` must be >= 0; received channels={channels}.")
        self.channels = int(channels)

    def call(self, inputs):
        return ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.channels]])

    def compute_output_shape(self, input_shape):
        *rest, c = input_shape
        return (*rest, None if c is None else c + self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}

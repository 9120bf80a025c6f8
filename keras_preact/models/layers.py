"""The two layers keras-preact needs that Keras core does not have.

Everything else in the builders is a stock `keras.layers` layer, so saved
`.keras` files stay portable and the model code runs on every Keras backend.
Both layers hold no weights: they never change the order of `get_weights()`.
Both take a `data_format` as Keras' own layers do (None: Keras' global
`image_data_format`); a config saved before they had one loads as
"channels_last", the only layout keras-preact built then.
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
        data_format: "channels_last" or "channels_first": which axis holds
            the channels. Defaults to None: `keras.config.image_data_format()`.
    """

    def __init__(self, mean, std, scale=1.0 / 255.0, reverse_channels=False, data_format=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
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
        channels_last = self.data_format == "channels_last"
        if self.reverse_channels:
            x = ops.flip(x, axis=-1 if channels_last else 1)
        # One multiply-add instead of three ops: (x*scale - mean)/std == x*a + b.
        a = ops.convert_to_tensor([self.scale / s for s in self.std], self.compute_dtype)
        b = ops.convert_to_tensor(
            [-m / s for m, s in zip(self.mean, self.std)], self.compute_dtype
        )
        if not channels_last:  # (C,) against (N, C, H, W)
            a, b = ops.reshape(a, (-1, 1, 1)), ops.reshape(b, (-1, 1, 1))
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
            "data_format": self.data_format,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**_with_data_format(config))


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
        data_format: "channels_last" or "channels_first": which axis holds
            the channels. Defaults to None: `keras.config.image_data_format()`.
    """

    def __init__(self, channels, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = _data_format(data_format)
        if int(channels) < 0:
            raise ValueError(f"`channels` must be >= 0; received channels={channels}.")
        self.channels = int(channels)

    def call(self, inputs):
        if self.data_format == "channels_last":
            return ops.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, self.channels]])
        return ops.pad(inputs, [[0, 0], [0, self.channels], [0, 0], [0, 0]])

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        axis = -1 if self.data_format == "channels_last" else 1
        shape[axis] = None if shape[axis] is None else shape[axis] + self.channels
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "data_format": self.data_format}

    @classmethod
    def from_config(cls, config):
        return cls(**_with_data_format(config))


def _data_format(data_format):
    """`data_format`, None meaning Keras' global setting; anything else raises ValueError."""
    if data_format is None:
        return keras.config.image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "`data_format` must be 'channels_last' or 'channels_first'; received "
            f"data_format={data_format!r}."
        )
    return data_format


def _with_data_format(config):
    """A saved config; one from before `data_format` existed was channels_last."""
    return {"data_format": "channels_last", **config}

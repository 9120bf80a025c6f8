"""keras-preact's custom layers, where users and the zoo's model cards name them.

    from keras_preact.layers import ImageNormalization

They are defined with the networks, in keras_preact/models/layers.py, and registered with
Keras as `keras_preact>ImageNormalization` and `keras_preact>ChannelZeroPad`, the names saved
`.keras` files record.
"""

from keras_preact.models.layers import ChannelZeroPad, ImageNormalization

__all__ = ["ChannelZeroPad", "ImageNormalization"]

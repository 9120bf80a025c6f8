"""keras-preact: paper-faithful ResNet v1, pre-activation ResNet v2 and DenseNet for Keras 3.

    >>> import keras_preact
    >>> model = keras_preact.ResNetV2_164()            # CIFAR, 10 classes
    >>> model = keras_preact.get_model("densenet_bc_100_12", classes=100)
    >>> keras_preact.list_models()
    >>> model = keras_preact.build_variant("resnetv2_20", unit="original")  # an ablation

Papers: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016);
He et al., "Identity Mappings in Deep Residual Networks" (ECCV 2016);
Huang et al., "Densely Connected Convolutional Networks" (CVPR 2017).
"""

import os

from keras_preact import _startup

# The `keras-preact` command imports Keras and TensorFlow without their start-up log lines
# (keras_preact/_startup.py; its --verbose shows them). A library import is unchanged.
_startup.before_tensorflow()
# TensorFlow prints INFO notices (CPU feature flags) at import; keep them out
# of users' output. Warnings and errors still show; an explicit setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from keras_preact import layers  # noqa: E402
from keras_preact.models.analysis import count_flops, count_params, paper_depth
from keras_preact.models.densenet import (
    DenseNet,
    DenseNet121,
    DenseNet161,
    DenseNet169,
    DenseNet201,
    DenseNet264,
    DenseNet_40_12,
    DenseNet_100_12,
    DenseNet_100_24,
    DenseNet_BC_100_12,
    DenseNet_BC_190_40,
    DenseNet_BC_250_24,
)
from keras_preact.models.features import feature_extractor
from keras_preact.models.imagenet import decode_predictions, preprocess_input
from keras_preact.models.registry import (
    ModelSpec,
    build_variant,
    describe_models,
    get_model,
    get_model_spec,
    list_models,
)
from keras_preact.models.resnet import (
    ResNet,
    ResNet18,
    ResNet34,
    ResNet50,
    ResNet101,
    ResNet152,
    ResNet_20,
    ResNet_32,
    ResNet_44,
    ResNet_56,
    ResNet_110,
    ResNet_1202,
)
from keras_preact.models.resnet_v2 import (
    ResNet50V2,
    ResNet101V2,
    ResNet152V2,
    ResNetV2,
    ResNetV2_18,
    ResNetV2_20,
    ResNetV2_32,
    ResNetV2_34,
    ResNetV2_44,
    ResNetV2_50,
    ResNetV2_56,
    ResNetV2_101,
    ResNetV2_110,
    ResNetV2_152,
    ResNetV2_164,
    ResNetV2_200,
    ResNetV2_1001,
)
from keras_preact.store import list_zoo

# `keras_preact.zoo.get_card(...)` after `import keras_preact`: the zoo's names (the store's).
from keras_preact import zoo  # noqa: F401

__version__ = "0.1.0"

"""Every named configuration of keras-preact, as timm's registry does it.

A `ModelSpec` is a generic builder plus the keyword arguments that make it
one network of a paper, plus the published numbers it should reproduce.
`get_model(name, **kwargs)` calls `builder(**dict(spec.kwargs, **kwargs))`,
so a caller can override anything (`classes=100`, `drop_path_rate=0.1`).
The family modules register their tables at import time.
"""

import dataclasses
import difflib
from typing import Callable, Mapping, Optional

_REGISTRY = {}

# How a published parameter count was counted: keras.applications' count
# includes BN moving statistics (`model.count_params()`); torchvision and the
# papers count learnable parameters only (trainable weights).
PARAM_CONVENTIONS = ("keras", "trainable")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One named network.

    Attributes:
        name: registry name, lower case (e.g. "resnetv2_164").
        builder: the generic builder (`ResNet`, `ResNetV2`, `DenseNet`).
        kwargs: the builder arguments that define this network.
        family: "resnet", "resnetv2" or "densenet".
        dataset: "cifar" (32x32x3, 10 classes by default) or "imagenet"
            (224x224x3, 1000 classes).
        paper: citation of the paper table the configuration reproduces.
        params: published parameter count, or None.
        params_source: where `params` comes from.
        params_convention: "keras" or "trainable" (see PARAM_CONVENTIONS).
        params_precision: the unit of the published figure's last digit
            (100_000 for "0.8M"; 0 when exact), so a check can allow for
            the paper's rounding.
        error: published test error in % (CIFAR-10 with augmentation, or
            ImageNet top-1 single crop), or None.
        imagenet_weights: the keras.applications model this network is,
            layer for layer (e.g. "ResNet50V2"), whose ImageNet weights
            `weights="imagenet"` loads; None for networks keras.applications
            has no weights of.
    """

    name: str
    builder: Callable
    kwargs: Mapping
    family: str
    dataset: str
    paper: str
    params: Optional[int] = None
    params_source: str = ""
    params_convention: str = "trainable"
    params_precision: int = 0
    error: Optional[float] = None
    imagenet_weights: Optional[str] = None

    @property
    def input_shape(self):
        return (32, 32, 3) if self.dataset == "cifar" else (224, 224, 3)

    @property
    def classes(self):
        return 10 if self.dataset == "cifar" else 1000


def register(spec):
    """Add `spec` to the registry; names must be unique."""
    if spec.name in _REGISTRY:
        raise ValueError(f"Model {spec.name!r} is registered twice.")
    if spec.params_convention not in PARAM_CONVENTIONS:
        raise ValueError(f"Unknown params_convention {spec.params_convention!r}.")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(family=None):
    """Sorted registry names, optionally of one family ("resnet", "resnetv2", "densenet")."""
    return sorted(n for n, s in _REGISTRY.items() if family in (None, s.family))


def get_model_spec(name):
    """The ModelSpec registered as `name` (case-insensitive)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} Valid names: {', '.join(list_models())}."
        )
    return _REGISTRY[key]


def imagenet_weight_sources():
    """{registry name: keras.applications model name} of every network whose
    ImageNet weights `weights="imagenet"` loads from keras.applications."""
    return {name: spec.imagenet_weights for name, spec in sorted(_REGISTRY.items())
            if spec.imagenet_weights}


def get_model(name, **kwargs):
    """Build registered model `name`; `kwargs` override its configuration.

    Example:
        >>> model = keras_preact.get_model("resnetv2_164", classes=100)
    """
    spec = get_model_spec(name)
    arguments = dict(spec.kwargs, **kwargs)
    arguments.setdefault("name", spec.name)
    return spec.builder(**arguments)

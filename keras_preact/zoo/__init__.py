"""The model zoo: trained models, each described by a model card.

    >>> keras_preact.zoo.list_zoo()
    >>> keras_preact.zoo.get_card("resnetv2_20_cifar10")["class_names"]
    >>> model = keras_preact.zoo.load_model("resnetv2_20_cifar10")

Where cards and weight files are found, downloaded and checked is the zoo store's
(keras_preact/store.py), whose names this package re-exports; `load_model` builds a zoo model
(`keras_preact.models.registry.load_zoo_model`). What builds on them lives in the modules:
`zoo.evaluation` (measuring a model against its card), `zoo.publish` (a training run into a
zoo folder) and `zoo.cards` (the cards' README.md files and the zoo table).
"""

from keras_preact.models.registry import load_zoo_model as load_model  # noqa: F401
from keras_preact.store import (  # noqa: F401 (the zoo's names are the store's)
    CARD_FILE, PACKAGED_ZOO, SOURCE_LOCAL, SOURCE_PACKAGE, SOURCE_URL, ZOO_ENV, ZooError, cache_dir,
    explicit_zoo_dir, get_card, list_zoo, model_dir, resolve_weights, sha256_of, weights_path, zoo_dirs,
)

CI_SLICE = 500
# Card numbers are fractions measured on a fixed file set: a re-run must agree
# to rounding (4 decimals), not merely "be close".
DECIMALS = 4
CARD_VERSION = 1


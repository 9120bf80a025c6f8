"""The package's layout: public paths that stay where users find them."""

import importlib
import json

import keras
import pytest

import keras_preact
from keras_preact.models import densenet_memory
from keras_preact.models import layers as model_layers
from keras_preact.zoo import PACKAGED_ZOO

CUSTOM_LAYERS = (
    model_layers.ImageNormalization,
    model_layers.ChannelZeroPad,
    densenet_memory.MemoryEfficientDenseLayer,
    densenet_memory.MemoryEfficientDenseBlock,
    densenet_memory.MemoryEfficientTransition,
)


@pytest.mark.parametrize("layer", CUSTOM_LAYERS, ids=lambda layer: layer.__name__)
def test_custom_layers_keep_the_names_saved_files_record(layer):
    # A .keras file finds a custom layer by this name, not by the module it was defined in, so
    # files saved before the networks moved into keras_preact/models/ load the same.
    assert keras.saving.get_registered_name(layer) == f"keras_preact>{layer.__name__}"
    assert keras.saving.get_registered_object(f"keras_preact>{layer.__name__}") is layer


def test_the_layer_the_zoo_cards_name_is_importable_there():
    cards = sorted(PACKAGED_ZOO.glob("*/model_card.json"))
    assert cards
    for card in cards:
        module, _, name = json.loads(card.read_text())["preprocessing"]["layer"].rpartition(".")
        assert getattr(importlib.import_module(module), name) is model_layers.ImageNormalization
    assert keras_preact.layers.ChannelZeroPad is model_layers.ChannelZeroPad

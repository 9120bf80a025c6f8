"""Every zoo card reports ONNX, OpenVINO and LiteRT numbers; tests/test_runtimes.py exports one
zoo model (resnetv2_20_cifar10). Here the other architectures the cards cover, a DenseNet
(densenet_bc_100_12_cifar10: concatenations, transitions) and the deeper ResNetV2-56, are exported
to each of the three runtimes from their shipped weights and run on the card's CIFAR-10 CI slice:
every image gets Keras' top-1 class, every probability is within runtimes.AGREEMENT_TOLERANCE
(1e-4) of Keras', and the slice's top-1 is the card's."""

import functools

import numpy as np
import pytest

from keras_preact import runtimes, zoo
from keras_preact.formats import load_predictor
from keras_preact.zoo.evaluation import load_eval_split
from test_zoo_support import CIFAR_MISSING, cifar_folder

MODELS = ("densenet_bc_100_12_cifar10", "resnetv2_56_cifar10")
FORMATS = ("onnx", "openvino", "litert")


@functools.lru_cache(maxsize=None)
def _slice_and_keras(name):
    """(uint8 images, labels, Keras probabilities) of zoo model `name` on its card's CI slice."""
    card = zoo.get_card(name)
    root = cifar_folder()
    if root is None:
        pytest.skip(CIFAR_MISSING)
    data, _ = load_eval_split(f"folder:{root}", class_names=card["class_names"],
                              limit=card["evaluation"]["ci_slice"]["num_examples"])
    images, labels = (np.stack(a) for a in zip(*data.as_numpy_iterator()))
    return images, labels, runtimes.keras_probabilities(zoo.load_model(name), images)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", MODELS)
def test_zoo_model_exports_give_the_keras_answers_on_the_ci_slice(name, fmt, tmp_path):
    images, labels, expected = _slice_and_keras(name)
    card = zoo.get_card(name)
    assert fmt in card["runtimes"], f"{name}'s card reports no {fmt} numbers"
    out = tmp_path / fmt
    runtimes.export_model(zoo.load_model(name), out, fmt, class_names=card["class_names"], check=False)
    probabilities = np.asarray(load_predictor(out, fmt)(images))
    assert probabilities.shape == expected.shape
    np.testing.assert_array_equal(probabilities.argmax(-1), expected.argmax(-1))
    difference = float(np.abs(probabilities - expected).max())
    assert difference <= runtimes.AGREEMENT_TOLERANCE, difference
    print(f"{name} {fmt}: max |probability difference| from Keras {difference:.1e}")
    top1 = round(float((probabilities.argmax(-1) == labels).mean()), zoo.DECIMALS)
    assert top1 == card["evaluation"]["ci_slice"]["top1"]

"""keras_preact.preprocess_input and keras_preact.decode_predictions against keras.applications'."""

import hashlib
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.models import imagenet

REPO = Path(__file__).resolve().parent.parent
# keras.applications' ImageNet networks: registry name -> the keras.applications module whose
# preprocess_input their ImageNet weights expect.
KERAS_MODULES = {
    "resnet50": keras.applications.resnet, "resnet101": keras.applications.resnet,
    "resnet152": keras.applications.resnet, "resnet50v2": keras.applications.resnet_v2,
    "resnet101v2": keras.applications.resnet_v2, "resnet152v2": keras.applications.resnet_v2,
    "densenet121": keras.applications.densenet, "densenet169": keras.applications.densenet,
    "densenet201": keras.applications.densenet,
}
# The md5 keras.applications.imagenet_utils.decode_predictions checks its downloaded
# imagenet_class_index.json against.
KERAS_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"


def pixels(shape, seed=0):
    return np.random.RandomState(seed).randint(0, 256, shape).astype("uint8")


def test_the_nine_keras_applications_networks_are_the_ones_with_imagenet_weights():
    assert set(KERAS_MODULES) == set(keras_preact.models.registry.imagenet_weight_sources())


@pytest.mark.parametrize("name", sorted(KERAS_MODULES))
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_preprocess_input_is_keras_applications_own(name, data_format):
    batch = pixels((2, 3, 5, 3))
    if data_format == "channels_first":
        batch = np.ascontiguousarray(np.moveaxis(batch, -1, 1))
    theirs = KERAS_MODULES[name].preprocess_input
    for x in (batch, batch[0], batch.astype("float32"), batch.astype("float64")):
        before = x.copy()
        ours = keras_preact.preprocess_input(x, name, data_format=data_format)
        np.testing.assert_array_equal(x, before)  # ours leaves the input as it was
        expected = theirs(x.copy(), data_format=data_format)
        assert ours.dtype == expected.dtype and ours.shape == x.shape
        np.testing.assert_array_equal(ours, expected)
    tensor = keras_preact.preprocess_input(keras.ops.convert_to_tensor(batch), name,
                                           data_format=data_format)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor),
                               theirs(batch.astype("float32"), data_format=data_format),
                               rtol=1e-6, atol=1e-5)


def test_the_three_imagenet_scalings_differ():
    """caffe (BGR, mean subtracted), tf ([-1, 1]) and torch (mean/std): a wrong mapping shows."""
    x = pixels((1, 4, 4, 3))
    outputs = [keras_preact.preprocess_input(x, name) for name in ("resnet50", "resnet50v2", "densenet121")]
    assert outputs[1].min() >= -1 and outputs[1].max() <= 1
    for a in range(3):
        for b in range(a + 1, 3):
            assert np.abs(outputs[a] - outputs[b]).max() > 0.5


def twins(name, input_shape=None, **kwargs):
    """The same network with and without its preprocessing layer, same weights."""
    shape = dict(input_shape=input_shape) if input_shape else {}
    inside = keras_preact.get_model(name, **shape, **kwargs)
    outside = keras_preact.get_model(name, **shape, include_preprocessing=False)
    outside.set_weights(inside.get_weights())  # the preprocessing layer holds no weights
    return inside, outside


@pytest.mark.parametrize("name, input_shape", [
    ("resnetv2_20", None),           # cifar: keras-preact's own scaling
    ("resnet18", (32, 32, 3)),       # torch
    ("resnet50v2", (32, 32, 3)),     # tf
])
def test_preprocessed_inputs_through_a_model_without_preprocessing_give_the_same_outputs(
        name, input_shape):
    inside, outside = twins(name, input_shape)
    x = pixels((2, *(input_shape or (32, 32, 3))))
    expected = keras.ops.convert_to_numpy(inside(x))
    for how in (name, outside):
        got = keras.ops.convert_to_numpy(outside(keras_preact.preprocess_input(x, how)))
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # Without the scaling the model answers differently: the test above can fail.
    unscaled = keras.ops.convert_to_numpy(outside(x.astype("float32")))
    assert np.abs(unscaled - expected).max() > 1e-3


def test_a_zoo_name_gets_its_architectures_scaling():
    inside = keras_preact.get_model("resnetv2_20", weights="resnetv2_20_cifar10")
    outside = keras_preact.get_model("resnetv2_20", weights="resnetv2_20_cifar10",
                                     include_preprocessing=False)
    x = pixels((3, 32, 32, 3))
    got = outside(keras_preact.preprocess_input(x, "resnetv2_20_cifar10"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(got),
                               keras.ops.convert_to_numpy(inside(x)), rtol=1e-4, atol=1e-5)


def test_a_model_that_normalizes_itself_gets_its_input_back():
    model = keras_preact.ResNetV2_20()
    x = pixels((1, 32, 32, 3))
    assert keras_preact.preprocess_input(x, model) is x


def test_preprocess_input_errors_name_what_it_takes():
    x = pixels((1, 32, 32, 3))
    with pytest.raises(ValueError, match="registry name"):
        keras_preact.preprocess_input(x, "resnet_51")
    with pytest.raises(ValueError, match="registry name"):
        keras_preact.preprocess_input(x, 50)
    renamed = keras_preact.ResNetV2_20(include_preprocessing=False, name="mine")
    with pytest.raises(ValueError, match="'mine'"):
        keras_preact.preprocess_input(x, renamed)
    with pytest.raises(ValueError, match="data_format"):
        keras_preact.preprocess_input(x, "resnet50", data_format="nhwc")


def test_the_shipped_class_index_is_keras_applications_file_byte_for_byte():
    data = imagenet.IMAGENET_CLASS_INDEX.read_bytes()
    assert hashlib.md5(data).hexdigest() == KERAS_CLASS_INDEX_MD5
    index = imagenet.imagenet_class_index()
    assert len(index) == 1000 and index[281] == ("n02123045", "tabby")


@pytest.fixture
def keras_class_index():
    """keras.applications' class index where its decode_predictions looks first (no download).

    conftest.py points KERAS_HOME at a temporary folder; keras' get_file uses a cached file only
    when its md5 is the expected one, so a different file would mean a download, which fails
    offline.
    """
    models = Path(os.environ["KERAS_HOME"]) / "models"
    models.mkdir(parents=True, exist_ok=True)
    shutil.copy(imagenet.IMAGENET_CLASS_INDEX, models / "imagenet_class_index.json")
    return keras.applications.imagenet_utils.decode_predictions


def test_decode_predictions_is_keras_applications_own(keras_class_index):
    rng = np.random.RandomState(0)
    probabilities = rng.dirichlet(np.ones(1000) * 0.1, size=4).astype("float32")
    probabilities[3, [7, 8]] = probabilities[3].max() + 0.1  # a tie at the top
    for top in (1, 5, 20):
        assert keras_preact.decode_predictions(probabilities, top=top) == \
            keras_class_index(probabilities, top=top)
    assert keras_preact.decode_predictions(keras.ops.convert_to_tensor(probabilities)) == \
        keras_class_index(probabilities)
    assert keras_preact.decode_predictions(probabilities, model="densenet121") == \
        keras_class_index(probabilities)


def test_decode_predictions_names_a_zoo_models_classes():
    model = keras_preact.get_model("resnetv2_20", weights="resnetv2_20_cifar10")
    image = np.array(keras.utils.load_img(REPO / "docs" / "samples" / "cat.jpg",
                                          target_size=(32, 32)))
    probabilities = model.predict(image[None], verbose=0)
    (decoded,) = keras_preact.decode_predictions(probabilities, top=10, model="resnetv2_20_cifar10")
    names = keras_preact.zoo.get_card("resnetv2_20_cifar10")["class_names"]
    assert decoded[0][:2] == (3, "cat") and names[3] == "cat"
    assert decoded[0][2] == probabilities[0].max()
    assert [entry[2] for entry in decoded] == sorted(probabilities[0], reverse=True)
    assert sorted(entry[:2] for entry in decoded) == list(enumerate(names))
    (own,) = keras_preact.decode_predictions(probabilities, top=1, model=[n.upper() for n in names])
    assert own[0][:2] == (3, "CAT")


def test_decode_predictions_errors():
    with pytest.raises(ValueError, match="1000"):
        keras_preact.decode_predictions(np.zeros((1, 10)))
    with pytest.raises(ValueError, match="2D"):
        keras_preact.decode_predictions(np.zeros(1000))
    with pytest.raises(ValueError, match="CIFAR network"):
        keras_preact.decode_predictions(np.zeros((1, 10)), model="resnetv2_20")
    with pytest.raises(ValueError, match="Unknown model"):
        keras_preact.decode_predictions(np.zeros((1, 10)), model="resnetv2_21_cifar10")
    with pytest.raises(ValueError, match="10 classes"):
        keras_preact.decode_predictions(np.zeros((1, 1000)), model="resnetv2_20_cifar10")
    with pytest.raises(ValueError, match="class names"):
        keras_preact.decode_predictions(np.zeros((1, 10)), model=keras_preact.ResNetV2_20())
    with pytest.raises(ValueError, match="top"):
        keras_preact.decode_predictions(np.zeros((1, 1000)), top=0)

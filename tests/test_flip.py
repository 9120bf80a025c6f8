"""Test-time flip: off by default, labelled apart in the cards, the same in Keras and the SavedModel."""

import json

import numpy as np
import tensorflow as tf

from keras_preact import cli, zoo
from keras_preact.zoo import evaluation
from test_zoo_support import (  # noqa: F401 (fixtures)
    ZOO_NAME,
    image_folder,
    random_pixels,
    tiny_zoo,
    trained_model,
    zoo_copy,
)


def images():
    return np.stack([random_pixels(seed) for seed in range(4)]).astype("float32")


def mirror(batch):
    return batch[:, :, ::-1, :]


def test_flip_is_the_mean_of_the_two_crops_and_mirror_invariant():
    predict = trained_model().predict_on_batch
    flipped = evaluation.with_flip(predict)
    x = images()
    single, mirrored = np.asarray(predict(x)), np.asarray(predict(mirror(x)))
    assert np.abs(single - mirrored).max() > 1e-4, "the test images must not be symmetric"
    np.testing.assert_allclose(flipped(x), 0.5 * (single + mirrored), atol=1e-6)
    np.testing.assert_allclose(flipped(x), flipped(mirror(x)), atol=1e-6)
    # A symmetric image is its own mirror: flip changes nothing.
    symmetric = np.concatenate([x[:, :, :16], mirror(x[:, :, :16])], axis=2)
    np.testing.assert_allclose(flipped(symmetric), predict(symmetric), atol=1e-6)


def test_saved_model_with_flip_serves_the_flip_average(tiny_zoo, tmp_path, capsys):
    path = tmp_path / "flip"
    assert cli.main(["export", "--model", ZOO_NAME, "--out", str(path), "--flip"]) == 0
    assert cli.main(["export", "--model", ZOO_NAME, "--out", str(tmp_path / "x"), "--flip",
                     "--format", "onnx"]) == cli.EXIT_USAGE
    assert "--flip is available for --format saved_model only" in capsys.readouterr().err
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = images()
    served = serve(images=tf.constant(x.astype("uint8")))["probabilities"].numpy()
    predict = trained_model().predict_on_batch
    expected = 0.5 * (np.asarray(predict(x)) + np.asarray(predict(mirror(x))))
    np.testing.assert_allclose(served, expected, atol=1e-5)
    served_mirror = serve(images=tf.constant(mirror(x).astype("uint8")))["probabilities"].numpy()
    np.testing.assert_allclose(served, served_mirror, atol=1e-5)


def _flip_top1_by_hand():
    """The tiny run's flip-averaged top-1 on image_folder()'s test split, without the evaluation
    code: each JPEG decoded, the model's probabilities on it and its mirror averaged, arg-max."""
    images, labels = [], []
    for label, class_name in enumerate(zoo.get_card(ZOO_NAME)["class_names"]):
        for path in sorted((image_folder() / "test" / class_name).glob("*.jpg")):
            images.append(tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy())
            labels.append(label)
    batch = np.stack(images).astype("float32")
    probabilities = 0.5 * (trained_model().predict(batch, verbose=0) + trained_model().predict(mirror(batch), verbose=0))
    return float(np.mean(probabilities.argmax(-1) == np.array(labels)))


def test_cards_keep_single_crop_top1_and_flip_apart(tiny_zoo, capsys):
    card = zoo.get_card(ZOO_NAME)
    single = evaluation.evaluate(ZOO_NAME, f"folder:{image_folder()}", progress=False).summary()
    flipped = evaluation.evaluate(ZOO_NAME, f"folder:{image_folder()}", progress=False,
                                  flip=True).summary()
    assert (card["top1"], card["top5"]) == (single["top1"], single["top5"])
    assert (card["flip"]["top1"], card["flip"]["top5"]) == (flipped["top1"], flipped["top5"])
    # The card's flip figure recomputed without the code that wrote it (3 classes: top-5 is 1.0).
    assert card["flip"]["top1"] == round(_flip_top1_by_hand(), zoo.DECIMALS)
    assert card["flip"]["top5"] == 1.0
    assert evaluation.check_against_card(ZOO_NAME, flipped, flip=True) == []
    status = cli.main(["evaluate", "--model", ZOO_NAME, "--dataset", f"folder:{image_folder()}",
                       "--flip", "--check", "--quiet"])
    output = capsys.readouterr().out
    assert status == 0 and json.loads(output.splitlines()[0])["flip"] is True


def test_record_writes_flip_numbers_into_an_older_card(zoo_copy, capsys):
    card_path = zoo_copy / ZOO_NAME / "model_card.json"
    card = json.loads(card_path.read_text())
    expected = card.pop("flip")
    card_path.write_text(json.dumps(card))
    problems = evaluation.check_against_card(ZOO_NAME, {"num_examples": 1, "top1": 1, "top5": 1},
                                             flip=True)
    assert problems and "no test-time-flip numbers" in problems[0]
    assert cli.main(["evaluate", "--model", ZOO_NAME, "--dataset", f"folder:{image_folder()}",
                     "--record", "--quiet"]) == cli.EXIT_USAGE
    assert "pass it with --flip" in capsys.readouterr().err
    assert cli.main(["evaluate", "--model", ZOO_NAME, "--dataset", f"folder:{image_folder()}",
                     "--flip", "--record", "--quiet"]) == 0
    assert json.loads(card_path.read_text())["flip"] == expected
    assert "With test-time flip" in (zoo_copy / ZOO_NAME / "README.md").read_text()

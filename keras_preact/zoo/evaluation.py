"""Measuring a zoo model: top-1 / top-5 on a dataset split, and the check against its card.

`keras-preact evaluate --model NAME --dataset SOURCE [--check]` runs `evaluate` and
`check_against_card`. A card keeps its numbers on the full test split and on the first
`CI_SLICE` test images, which CI reproduces in seconds.
"""

from dataclasses import dataclass

import numpy as np

from keras_preact.export import zoo_saved_model
from keras_preact.zoo import DECIMALS, get_card, load_model


@dataclass(frozen=True)
class Evaluation:
    """Per-example hits of one evaluation, in the dataset's order.

    Attributes:
        top1_hits: bool array [num_examples].
        top5_hits: bool array [num_examples] (label among the min(5, classes) best).
    """

    top1_hits: np.ndarray
    top5_hits: np.ndarray

    def summary(self, limit=None):
        """{"num_examples", "top1", "top5"} over the first `limit` examples (all if None)."""
        top1, top5 = self.top1_hits[:limit], self.top5_hits[:limit]
        return {
            "num_examples": int(top1.size),
            "top1": round(float(top1.mean()), DECIMALS) if top1.size else float("nan"),
            "top5": round(float(top5.mean()), DECIMALS) if top5.size else float("nan"),
        }


def load_eval_split(dataset, *, class_names, split="test", data_dir=None, limit=None):
    """(tf.data of (uint8 image, label), number of examples) from keras_preact.data's loader.

    Raises ValueError unless the dataset's classes are `class_names`, in the
    same order (labels are indices into them).
    """
    from keras_preact.data import load_split

    data, info = load_split(dataset, split, data_dir=data_dir)
    if list(info.class_names) != list(class_names):
        raise ValueError(
            f"The classes of {dataset} ({', '.join(info.class_names)}) are not the model's "
            f"({', '.join(class_names)}), so its labels cannot be compared with the model's "
            "predictions."
        )
    total = int(info.num_examples)
    if limit is not None:
        data, total = data.take(limit), min(total, int(limit))
    return data, total


def evaluate_predictions(predict, data, *, height, width, total, batch_size=256,
                         progress=True):
    """Run `predict` over a dataset and record top-1 / top-5 hits per example.

    Args:
        predict: callable(float32 numpy [N, height, width, 3] raw 0..255
            pixels) -> numpy probabilities [N, classes].
        data: tf.data.Dataset of unbatched (uint8 [h, w, 3] image, int label).
            Images of another size than (height, width) are resized like the
            SavedModel resizes them.
        total: int. Number of examples, for the progress bar.
        progress: bool. Show a progress bar.
    """
    import keras
    import tensorflow as tf

    from keras_preact.serving import resize_images

    def to_model_size(image, label):
        return resize_images(image[tf.newaxis], height, width)[0], label

    batches = data.map(to_model_size).batch(batch_size).prefetch(2)
    bar = keras.utils.Progbar(total, unit_name="image") if progress else None
    top1, top5 = [], []
    for images, labels in batches:
        probabilities = np.asarray(predict(images.numpy()))
        labels = labels.numpy().astype(np.int64)
        k = min(5, probabilities.shape[-1])
        best = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
        top1.append(best[:, 0] == labels)
        top5.append((best == labels[:, None]).any(axis=-1))
        if bar is not None:
            bar.add(len(labels))
    empty = np.zeros(0, dtype=bool)
    return Evaluation(
        top1_hits=np.concatenate(top1) if top1 else empty,
        top5_hits=np.concatenate(top5) if top5 else empty,
    )


def keras_predictor(name):
    """Predict function of zoo model `name`, built with `get_model(arch, weights=name)`."""
    return load_model(name).predict_on_batch


def saved_model_predictor(path):
    """Predict function serving a SavedModel's `serving_default` signature.

    The signature takes uint8, so float pixels are rounded (a no-op for
    images that needed no resizing).
    """
    import tensorflow as tf

    serve = tf.saved_model.load(str(path)).signatures["serving_default"]

    def predict(images):
        pixels = tf.cast(tf.clip_by_value(tf.round(images), 0, 255), tf.uint8)
        return serve(images=pixels)["probabilities"].numpy()

    return predict


def with_flip(predict):
    """Test-time flip: the mean of `predict` on the images and on their horizontal mirrors.

    Off by default everywhere: a card's `top1` is single-crop, and a flip-averaged number
    is kept apart, under the card's "flip" key.
    """

    def predict_flip_averaged(images):
        images = np.asarray(images)
        return 0.5 * (np.asarray(predict(images)) + np.asarray(predict(images[:, :, ::-1, :])))

    return predict_flip_averaged


def evaluate(name, dataset, *, runtime="keras", split="test", data_dir=None, limit=None,
             batch_size=256, progress=True, flip=False):
    """Evaluate zoo model `name` on a dataset split; return an `Evaluation`.

    Args:
        name: str. A zoo model.
        dataset: str. A tfds name or `folder:PATH` (see keras_preact/data.py).
        runtime: "keras" (get_model with weights=name) or "saved_model" (the
            serving_default signature of its SavedModel, exported on demand
            and cached; TensorFlow only).
        split: str. Defaults to "test".
        limit: int or None. Evaluate the first `limit` examples only.
        flip: bool. Average each image's prediction with its mirror's
            (`with_flip`). Defaults to False (single-crop, the cards' `top1`).
    """
    if runtime == "keras":
        predict = keras_predictor(name)
    elif runtime == "saved_model":
        predict = saved_model_predictor(zoo_saved_model(name))
    else:
        raise ValueError(f"Unknown runtime {runtime!r}; valid values are 'keras', 'saved_model'.")
    if flip:
        predict = with_flip(predict)
    card = get_card(name)
    height, width, _ = card["input"]["shape"]
    data, total = load_eval_split(dataset, class_names=card["class_names"], split=split,
                                  data_dir=data_dir, limit=limit)
    return evaluate_predictions(
        predict, data, height=height, width=width, total=total, batch_size=batch_size,
        progress=progress,
    )


def check_against_card(name, measured, *, flip=False):
    """Differences between a `summary()` and zoo model `name`'s card, as strings.

    A summary over the full split is compared with the card's top1/top5; one
    over the CI slice with the card's `evaluation.ci_slice`. With `flip`, the
    card's test-time-flip numbers (its "flip" key) instead. Empty when all match.
    """
    card = get_card(name)
    numbers = card["evaluation"]
    if flip:
        if "flip" not in card:
            return [f"the card of {name} has no test-time-flip numbers (its 'flip' key); "
                    "record them with `keras-preact evaluate --flip --record` on the full split"]
        numbers = {**card["flip"], "num_examples": numbers["num_examples"]}
    expected = numbers["ci_slice"]
    if measured["num_examples"] == numbers["num_examples"]:
        full = card["flip"] if flip else card
        expected = {"num_examples": measured["num_examples"], "top1": full["top1"],
                    "top5": full["top5"]}
    elif measured["num_examples"] != expected["num_examples"]:
        return [
            f"measured {measured['num_examples']} examples; the card has numbers for "
            f"{numbers['num_examples']} (full split) and "
            f"{expected['num_examples']} (CI slice) only"
        ]
    return [
        f"{key}: measured {measured[key]}, card says {expected[key]}"
        for key in ("top1", "top5")
        if abs(measured[key] - expected[key]) > 0.5 * 10 ** -DECIMALS
    ]

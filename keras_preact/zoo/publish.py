"""Publishing a training run into a zoo directory: weights, model card and README.

    keras-preact publish --model_dir RUN_DIR --name NAME --dataset folder:PATH --zoo_dir DIR

The card records what the model is, how it was trained (from the run's run.json), its
numbers measured on the full test split and on the CI slice, the SavedModel's agreement
with the Keras model, and its weight file's sha256 and source.
"""

import json
import os
import platform
import shlex
import shutil
from pathlib import Path

import numpy as np

from keras_preact import export
from keras_preact.data import portable_dataset, portable_path
from keras_preact.models.analysis import count_flops, count_params
from keras_preact.models.layers import ImageNormalization
from keras_preact.models.registry import build_variant, get_model_spec
from keras_preact.serving import DEFAULT_MAX_PIXELS
from keras_preact.store import (
    CARD_FILE,
    PACKAGED_ZOO,
    SOURCE_LOCAL,
    SOURCE_PACKAGE,
    SOURCE_URL,
    ZOO_ENV,
    ZooError,
    explicit_zoo_dir,
    get_card,
    model_dir,
    sha256_of,
)
from keras_preact.training.run_dir import build_trained_model, read_run
from keras_preact.zoo import CARD_VERSION, CI_SLICE
from keras_preact.zoo.cards import render_model_readme, write_zoo_readme
from keras_preact.zoo.evaluation import (
    evaluate,
    evaluate_predictions,
    load_eval_split,
    saved_model_predictor,
    with_flip,
)


def publish(run_dir, name, dataset, *, zoo_dir=None, weights_url=None, dataset_label=None,
            data_dir=None, split="test", overwrite=False, limit=None, progress=True):
    """Turn a training run directory into a complete `<zoo_dir>/<name>/` folder.

    Saves the weights (without optimizer state) and checks they load with
    `build_variant(arch, weights=...)`, exports a SavedModel to a temporary folder and
    checks it agrees with the Keras model on the CI slice, evaluates on the full
    test split, writes the card and README, and regenerates the zoo directory's
    README.md. Everything is written to a staging folder first, so a failure leaves
    no half model. SavedModels are not kept: `keras-preact export --model NAME`
    builds one on demand.

    Args:
        run_dir: str or Path. A training run directory (run.json, final.weights.h5).
        name: str. Zoo name, e.g. "resnetv2_20_cifar10". Letters, digits, "_", "-".
        dataset: str. Evaluation data: tfds name or `folder:PATH`.
        zoo_dir: str or Path. The zoo directory to publish into. Defaults to
            `$KERAS_PREACT_ZOO`; in a checkout, `keras_preact/zoo/models` is the zoo
            that ships in the wheel.
        weights_url: str or None. Where users will download the weight file from
            (for models too large to ship in the wheel); the card records it and
            the file stays beside the card for you to upload.
        dataset_label: str. What the card calls the data, e.g.
            "cifar10-jpeg-q75". Defaults to `dataset`.
        limit: int or None. Evaluate on the first `limit` examples only (for
            tests; a real zoo card is measured on the full split).

    Returns:
        Path of the new zoo model folder.
    """
    _check_zoo_name(name)
    root = Path(zoo_dir) if zoo_dir is not None else explicit_zoo_dir()
    if root is None:
        raise ZooError(
            f"Where should {name!r} be published? Pass --zoo_dir DIR (zoo_dir=) or set "
            f"{ZOO_ENV}; in a checkout, keras_preact/zoo/models is the zoo the wheel ships."
        )
    destination = root / name
    if destination.exists() and not overwrite:
        raise ZooError(f"{destination} already exists; pass overwrite=True (--overwrite).")
    run = read_run(run_dir)
    status = run.record.get("status", "finished")
    if status != "finished":
        raise ZooError(
            f"The training run in {run_dir} has status {status!r}, not 'finished'; only "
            "finished runs are published. Resume it first."
        )
    model = build_trained_model(run)
    staging = root / f".{name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        # Saved from the rebuilt model, not copied: no optimizer state.
        weights_file = staging / f"{name}.weights.h5"
        model.save_weights(weights_file)
        build_variant(run.architecture, weights=str(weights_file), **run.model_kwargs)
        export.export_model(model, staging / "saved_model", class_names=run.class_names)
        evaluation, agreement = _measure(model, staging / "saved_model", dataset,
                                         class_names=run.class_names, split=split,
                                         data_dir=data_dir, limit=limit, progress=progress)
        shutil.rmtree(staging / "saved_model")
        flipped = _evaluate_model(with_flip(model.predict_on_batch), model, dataset,
                                  class_names=run.class_names, split=split, data_dir=data_dir,
                                  limit=limit, progress=progress)
        weights_source = (SOURCE_URL if weights_url else
                          SOURCE_PACKAGE if root.resolve() == PACKAGED_ZOO else SOURCE_LOCAL)
        card = build_card(name, run, model, weights_file, evaluation,
                          dataset=dataset, dataset_label=dataset_label or dataset,
                          split=split, agreement=agreement, limit=limit,
                          weights_source=weights_source, url=weights_url)
        card["flip"] = flip_entry(flipped, name=name, dataset_source=card["evaluation"]["dataset"],
                                  split=split, limit=limit)
        (staging / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
        (staging / "README.md").write_text(render_model_readme(card))
        shutil.rmtree(destination, ignore_errors=True)
        staging.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    write_zoo_readme(root)
    return destination


def _check_zoo_name(name):
    if not name or not all(c.isalnum() or c in "_-" for c in name) or name[0] in "._-":
        raise ValueError(
            f"Invalid zoo name {name!r}: use letters, digits, '_' and '-', starting with "
            "a letter or digit (e.g. 'resnetv2_20_cifar10')."
        )


def flip_entry(flip_evaluation, *, name, dataset_source, split, limit=None):
    """The card's "flip" key: test-time-flip numbers, kept apart from the single-crop `top1`."""
    full = flip_evaluation.summary()
    limited = "" if limit is None else f" --limit {int(limit)}"
    return {
        "top1": full["top1"],
        "top5": full["top5"],
        "method": "mean of the probabilities of the image and of its horizontal mirror",
        "ci_slice": flip_evaluation.summary(CI_SLICE),
        "command": f"keras-preact evaluate --model {name} --dataset {dataset_source} "
                   f"--split {split}{limited} --flip --check",
    }


def record_flip(name, dataset, *, data_dir=None, progress=True):
    """Measure zoo model `name` with test-time flip on its card's split and write the "flip" key.

    For cards published before `publish` measured it. The card's folder (a zoo directory, or
    keras_preact/zoo/models in a checkout) gets the new card and README, and its zoo README is
    regenerated. Returns the new "flip" entry.
    """
    card, folder = get_card(name), model_dir(name)
    split, limit = card["evaluation"]["split"], card["evaluation"].get("limit")
    flipped = evaluate(name, dataset, split=split, data_dir=data_dir, limit=limit,
                       progress=progress, flip=True)
    if flipped.summary()["num_examples"] != card["evaluation"]["num_examples"]:
        raise ZooError(
            f"{dataset} has {flipped.summary()['num_examples']} {split} examples, but the card of "
            f"{name} was measured on {card['evaluation']['num_examples']}: not the same data."
        )
    card["flip"] = flip_entry(flipped, name=name, dataset_source=card["evaluation"]["dataset"],
                              split=split, limit=limit)
    (folder / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (folder / "README.md").write_text(render_model_readme(card))
    write_zoo_readme(folder.parent)
    return card["flip"]


def _evaluate_model(predict, model, dataset, *, class_names, split, data_dir, limit, progress):
    _, height, width, _ = model.inputs[0].shape
    data, total = load_eval_split(dataset, class_names=class_names, split=split,
                                  data_dir=data_dir, limit=limit)
    return evaluate_predictions(predict, data, height=height, width=width, total=total,
                                progress=progress)


def _measure(model, saved_model, dataset, *, class_names, split, data_dir, limit, progress):
    """(Evaluation of the Keras model, SavedModel-vs-Keras agreement on the CI slice).

    Raises ValueError when the SavedModel's probabilities differ from the
    Keras model's by more than 1e-5 on the CI slice.
    """
    _, height, width, _ = model.inputs[0].shape
    data, total = load_eval_split(dataset, class_names=class_names, split=split,
                                  data_dir=data_dir, limit=limit)
    keras_batches = []

    def predict_keeping_the_slice(images):
        probabilities = np.asarray(model.predict_on_batch(images))
        if sum(map(len, keras_batches)) < CI_SLICE:
            keras_batches.append(probabilities)
        return probabilities

    evaluation = evaluate_predictions(
        predict_keeping_the_slice, data, height=height, width=width, total=total,
        progress=progress,
    )
    serve, served_batches = saved_model_predictor(saved_model), []
    evaluate_predictions(
        lambda images: served_batches.append(serve(images)) or served_batches[-1],
        data.take(CI_SLICE), height=height, width=width, total=min(total, CI_SLICE),
        progress=False,
    )
    served = np.concatenate(served_batches)
    by_keras = np.concatenate(keras_batches)[: len(served)]
    difference = float(np.max(np.abs(by_keras - served))) if served.size else 0.0
    if difference > 1e-5:
        raise ValueError(
            f"The exported SavedModel disagrees with the Keras model by {difference:.2e} "
            "(max abs probability difference on the CI slice; the limit is 1e-5)."
        )
    return evaluation, {"num_examples": len(served), "max_abs_probability_difference": difference}


def _versions():
    import keras
    import tensorflow as tf

    import keras_preact

    return {
        "keras_preact": getattr(keras_preact, "__version__", "unknown"),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _preprocessing_of(model):
    """The config of the model's ImageNormalization layer, which normalizes in-model."""
    layer = next(layer for layer in model.layers if isinstance(layer, ImageNormalization))
    config = layer.get_config()
    return {
        "inside_model": True,
        "layer": "keras_preact.layers.ImageNormalization",
        "formula": "(x * scale - mean) / std, per channel, on RGB pixels x in 0..255",
        **{key: config[key] for key in ("mean", "std", "scale", "reverse_channels")},
    }


def _portable_argument(argument):
    """One command-line word with an absolute path in it (`--flag=/x`, `folder:/x`, `/x`) made portable."""
    flag, equals, value = argument.partition("=") if argument.startswith("--") else ("", "", argument)
    if value.startswith("folder:"):
        value = portable_dataset(value)
    elif os.path.isabs(value):
        value = portable_path(value)
    return f"{flag}{equals}{value}"


def portable_command(command):
    """A run's recorded training command as a user types it anywhere: `keras-preact train FLAGS`.

    run.json records the command as it was started, and every route into the trainer
    (`keras-preact train`, `python -m keras_preact.training.train`, the checkout's
    `training/train.py`) starts with an absolute path of the machine that trained; those
    routes take the same flags, so the card names the installed one, with the paths in
    the flags made relative as `keras_preact.data.portable_path` does.
    """
    if not command:
        return command
    words = shlex.split(command)
    program = words.pop(0)
    if Path(program).name == "keras-preact" and words[:1] == ["train"]:
        words.pop(0)
    elif Path(program).name != "train.py":
        return shlex.join([_portable_argument(program), *map(_portable_argument, words)])
    return shlex.join(["keras-preact", "train", *map(_portable_argument, words)])


def portable_recipe(recipe):
    """A card's `recipe` (or one of the earlier cycles it names in `init_from`) with the training
    machine's paths made portable, in every cycle."""
    recipe = dict(recipe)
    if "training_dataset" in recipe:
        recipe["training_dataset"] = portable_dataset(recipe["training_dataset"])
    if recipe.get("model_dir"):
        recipe["model_dir"] = _portable_argument(recipe["model_dir"])
    recipe["command"] = portable_command(recipe.get("command"))
    if recipe.get("init_from"):
        recipe["init_from"] = portable_recipe(recipe["init_from"])
    return recipe


def build_card(name, run, model, weights_file, evaluation, *, dataset, dataset_label, split,
               agreement, limit=None, weights_source=SOURCE_LOCAL, url=None):
    """The model card dict of a model about to be published."""
    spec = get_model_spec(run.architecture)
    _, height, width, channels = model.inputs[0].shape
    full = evaluation.summary()
    source = portable_dataset(dataset)
    record = run.record
    classes = len(run.class_names)
    return {
        "card_version": CARD_VERSION,
        "name": name,
        "architecture": run.architecture,
        "family": spec.family,
        "paper": spec.paper,
        "model_kwargs": run.model_kwargs,
        "classes": classes,
        "class_names": run.class_names,
        "dataset": dataset_label,
        "top1": full["top1"],
        "top5": full["top5"],
        "evaluation": {
            "dataset": source,
            "split": split,
            "num_examples": full["num_examples"],
            "runtime": "keras",
            "command": f"keras-preact evaluate --model {name} --dataset {source} "
                       f"--split {split}{'' if limit is None else f' --limit {int(limit)}'} --check",
            "ci_slice": evaluation.summary(CI_SLICE),
            "saved_model_agreement": agreement,
            # only when published with --limit (tests): the numbers are not the full split's
            **({} if limit is None else {"limit": int(limit)}),
        },
        "params": int(count_params(model)),
        "flops": int(count_flops(model)),
        "flops_unit": "multiply-adds per image",
        "input": {
            "shape": [int(height), int(width), int(channels)],
            "keras": "float32 [N, H, W, 3] RGB pixels 0..255 (normalized inside the model)",
            "saved_model": {
                export.SERVING_DEFAULT: f"{export.IMAGES_INPUT}: uint8 [N, h, w, 3] RGB 0..255",
                export.SERVING_BYTES: f"{export.BYTES_INPUT}: string [N], JPEG or PNG files",
                "resize": f"other sizes are resized to {height}x{width} in-graph "
                          "(bilinear, antialiased)",
                "max_pixels": DEFAULT_MAX_PIXELS,
                "outputs": list(export.OUTPUT_NAMES),
                "top_k": min(export.TOP_K, classes),
            },
        },
        "preprocessing": _preprocessing_of(model),
        "recipe": portable_recipe({
            "training_dataset": record.get("dataset"),
            "command": record.get("command"),
            "seed": record.get("seed"),
            "config": record.get("config"),
            "epochs": record.get("epochs"),
            "final": record.get("final"),
            "replicas": record.get("replicas"),
            "hardware": record.get("hardware"),
            "wall_time_s": record.get("wall_time_s"),
            # A warm-started run (training.train --init_from) names the run it continued,
            # and the totals over every cycle.
            "init_from": record.get("init_from"),
            "epochs_total": record.get("epochs_total"),
            "wall_time_total_s": record.get("wall_time_total_s"),
        }),
        "weights": {
            "file": f"{name}.weights.h5",
            "sha256": sha256_of(weights_file),
            "bytes": Path(weights_file).stat().st_size,
            # "package": beside the card in the wheel; "local": beside the card in a zoo
            # directory; "url": downloaded from `url` into the cache (keras_preact.store).
            "source": weights_source,
            **({"url": url} if url else {}),
        },
        "versions": {"training": record.get("versions"), "publish": _versions()},
    }

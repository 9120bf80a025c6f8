"""Measure each packaged zoo model in every export format on a full test split; record it in its card.

    python -m bench.runtime_cards --dataset folder:../shared/datasets/cifar10-jpeg.tar.gz
    python -m bench.runtime_cards --dataset folder:... --models resnet_20_cifar10 --formats onnx,litert
    python -m bench.runtime_cards --dataset folder:... --limit 500 --dry_run   # check, write nothing

For each model (default: every model of the packaged zoo, keras_preact/zoo/models/) the
split is decoded once, the Keras model's probabilities are computed, and each format is
exported (`keras_preact.runtimes.export_model`; the SavedModel with `export.export_model`),
loaded with `runtimes.load_predictor` and run over the same uint8 images in batches of 256.
The card gets

    "runtimes": {FORMAT: {"top1", "top5", "num_examples", "max_abs_diff", "top1_differs", ...}}

where `max_abs_diff` is the largest |probability difference| from Keras over every image
and class, and `top1_differs` the number of images whose top-1 class differs from Keras'.
OpenVINO runs at float32 (`INFERENCE_PRECISION_HINT=f32`, as `load_predictor` compiles it);
on a CPU where its default is bfloat16 the default is measured too (`default_precision`).
Then the model's README.md is rendered again from the card (`zoo.cards.render_model_readme`)
with a table of these numbers appended. Keras' own top-1 must equal the card's, or nothing is
written: a different number means different data.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from keras_preact import runtimes, zoo  # noqa: E402

BATCH = 256
DATASET_NAMES = {"cifar10-jpeg-q75": "CIFAR-10 (JPEG q75 copy)"}


def dataset_label(card):
    return DATASET_NAMES.get(card["dataset"], card["dataset"])


def load_split(dataset, class_names, split, limit):
    """(uint8 images [N, H, W, 3], int labels [N]) of a split, decoded once."""
    from keras_preact.zoo.evaluation import load_eval_split

    data, total = load_eval_split(dataset, class_names=class_names, split=split, limit=limit)
    images, labels = [], []
    for batch_images, batch_labels in data.batch(1024):
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels).astype(np.int64)


def run_batches(predict, images):
    return np.concatenate([np.asarray(predict(images[i:i + BATCH]), np.float32)
                           for i in range(0, len(images), BATCH)])


def scores(probabilities, labels, reference):
    """The numbers a card records for one runtime's probabilities."""
    from keras_preact.zoo import DECIMALS

    k = min(5, probabilities.shape[-1])
    best = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return {
        "top1": round(float((best[:, 0] == labels).mean()), DECIMALS),
        "top5": round(float((best == labels[:, None]).any(-1).mean()), DECIMALS),
        "num_examples": int(len(labels)),
        "max_abs_diff": float(np.abs(probabilities - reference).max()),
        "top1_differs": int((probabilities.argmax(-1) != reference.argmax(-1)).sum()),
    }


def measure_model(name, images, labels, formats, work, *, command, label, split):
    """{format: entry} for zoo model `name`; ValueError if Keras does not reproduce the card's top-1."""
    from keras_preact import export

    card = zoo.get_card(name)
    model = zoo.load_model(name)
    start = time.perf_counter()
    reference = run_batches(lambda x: runtimes.keras_probabilities(model, x), images)
    keras_scores = scores(reference, labels, reference)
    print(f"{name}: keras top-1 {keras_scores['top1']} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    if len(labels) == card["evaluation"]["num_examples"] and keras_scores["top1"] != card["top1"]:
        raise ValueError(f"{name}: Keras measures top-1 {keras_scores['top1']} on this data, the card says "
                         f"{card['top1']}: not the card's data; nothing written.")
    entries = {}
    for fmt in formats:
        folder = Path(work) / name / fmt
        start = time.perf_counter()
        if fmt == "saved_model":
            export.export_model(model, folder, class_names=card["class_names"])
        else:
            runtimes.export_model(model, folder, fmt, class_names=card["class_names"], source=f"zoo:{name}")
        exported = time.perf_counter() - start
        predictor = runtimes.load_predictor(folder)
        entry = scores(run_batches(predictor, images), labels, reference)
        entry.update({
            "dataset": f"{label}, {split} split",
            "runtime": predictor.runtime,
            "input": "uint8 [N, H, W, 3], any H, W (resized in-graph)" if fmt == "saved_model" else
                     f"uint8 [N, {predictor.height}, {predictor.width}, 3]",
            "command": command,
        })
        if fmt == "openvino":
            entry["config"] = dict(runtimes.OPENVINO_CONFIG)
            default = runtimes.load_predictor(folder, openvino_config={})
            precision = default.settings["INFERENCE_PRECISION_HINT"]
            if precision != "f32" and precision != "float32":
                measured = scores(run_batches(default, images), labels, reference)
                from bench import common

                entry["default_precision"] = {
                    "INFERENCE_PRECISION_HINT": precision,
                    "cpu": common.machine_line(common.machine()),
                    **{k: measured[k] for k in ("top1", "top5", "max_abs_diff", "top1_differs")},
                }
        entries[fmt] = entry
        print(f"{name} {fmt}: top-1 {entry['top1']}, max |diff| {entry['max_abs_diff']:.1e}, top-1 differs on "
              f"{entry['top1_differs']} (export {exported:.0f} s, total {time.perf_counter() - start:.0f} s)",
              file=sys.stderr, flush=True)
    return entries


def write_card(name, entries):
    """Re-read the card, set its "runtimes" key, write it and its README.md (others may edit other keys)."""
    from keras_preact.zoo.cards import render_model_readme

    folder = zoo.model_dir(name)
    card = json.loads((folder / zoo.CARD_FILE).read_text())
    card["runtimes"] = entries
    (folder / zoo.CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (folder / "README.md").write_text(render_model_readme(card))
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="folder:PATH (a folder or .tar.gz) or a tfds name")
    parser.add_argument("--split", default="test")
    parser.add_argument("--models", default=None, help="comma-separated zoo names (default: the packaged zoo)")
    parser.add_argument("--formats", default=",".join(runtimes.FORMATS))
    parser.add_argument("--limit", type=int, default=None, help="first N images only (implies --dry_run)")
    parser.add_argument("--dry_run", action="store_true", help="measure and print; write no card")
    args = parser.parse_args(argv)
    if args.models:
        names = args.models.split(",")
    else:
        names = sorted(card.parent.name for card in zoo.PACKAGED_ZOO.glob(f"*/{zoo.CARD_FILE}"))
        os.environ.pop(zoo.ZOO_ENV, None)  # the packaged cards, not a user's zoo of the same names
    formats = [f for f in args.formats.split(",") if f]
    for fmt in formats:
        runtimes.require(fmt)
    dry_run = args.dry_run or args.limit is not None
    from keras_preact.zoo.publish import _portable_dataset

    command = f"python -m bench.runtime_cards --dataset {_portable_dataset(args.dataset)}"
    splits = {}
    results = {}
    with tempfile.TemporaryDirectory(prefix="runtime_cards_") as work:
        for name in names:
            card = zoo.get_card(name)
            key = (tuple(card["class_names"]),)
            if key not in splits:
                start = time.perf_counter()
                splits[key] = load_split(args.dataset, card["class_names"], args.split, args.limit)
                print(f"decoded {len(splits[key][1])} {args.split} images in {time.perf_counter() - start:.0f} s",
                      file=sys.stderr)
            images, labels = splits[key]
            entries = measure_model(name, images, labels, formats, work, command=command,
                                    label=dataset_label(card), split=args.split)
            results[name] = entries
            if not dry_run:
                print(f"wrote {write_card(name, entries)}", file=sys.stderr)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

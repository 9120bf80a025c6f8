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

int8 (issue 37):

    python -m bench.runtime_cards --int8 --dataset folder:../shared/datasets/cifar10-jpeg.tar.gz
    python -m bench.runtime_cards --int8 --dataset folder:... --models resnetv2_20_cifar10 --limit 500 \
        --calibration_count 64 --iters1 20 --iters32 5 --out /tmp/int8.json          # a quick check

exports each model in each of onnx, openvino and litert twice, float32 and `--int8`
(`runtimes.export_model(..., int8=True)`, calibrated on `--calibration_count` seeded images of
the same dataset's train split), runs both over the split and records for the int8 model top-1,
top-5, the agreement of its top-1 with the float export of the same runtime and with Keras, and
both file sizes; then times both, batch 1 and 32, requests interleaved between all six models
of the model (median and p90). The JSON goes to `--out` (bench/results/int8.json, whose
latency table `python -m bench.report` puts in BENCHMARKS.md); on the full split the cards get
`"runtimes": {"onnx_int8": ..., ...}` beside the float entries, and their READMEs an int8 row
per runtime. Each entry of the JSON (not of the card) also keeps `per_image` (issue 38): the
sorted indices of the images behind its accuracy figures, from which `derive_int8` recomputes
them (`int8_accuracy`): a top-1 changed in the JSON and BENCHMARKS.md fails
tests/test_bench_tables.py unless these lists are changed to match, one changed in a card alone
fails tests/test_zoo_misses.py. A run with `--limit`, or fewer latency requests than the
defaults, is marked `quick` and writes no card.
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


def misses(probabilities, labels):
    """{"top1": [...], "top5": [...]}: sorted indices of the images whose label is not the top-1 class /
    not among the top-5, counted exactly as `scores` counts them (tests/zoo_misses.py's format)."""
    k = min(5, probabilities.shape[-1])
    best = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return {"top1": np.flatnonzero(best[:, 0] != labels).tolist(),
            "top5": np.flatnonzero(~(best == labels[:, None]).any(-1)).tolist()}


def top1_differences(probabilities, other):
    """Sorted indices of the images whose top-1 class (argmax, as `scores`) differs between the two."""
    return np.flatnonzero(probabilities.argmax(-1) != other.argmax(-1)).tolist()


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


def write_card(name, entries, merge=False):
    """Re-read the card, set its "runtimes" key, write it, its README.md and the zoo's README.md,
    whose int8 table is rendered from every card (others may edit other keys).

    merge: keep the entries already there that `entries` does not replace (the int8 run adds its own).
    """
    from keras_preact.zoo.cards import render_model_readme, write_zoo_readme

    folder = zoo.model_dir(name)
    card = json.loads((folder / zoo.CARD_FILE).read_text())
    card["runtimes"] = {**card.get("runtimes", {}), **entries} if merge else entries
    (folder / zoo.CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    (folder / "README.md").write_text(render_model_readme(card))
    write_zoo_readme(folder.parent)
    return folder


# --- int8 (issue 37) ---------------------------------------------------------------------------

MODULE = "bench.runtime_cards"
INT8_FORMATS = ("onnx", "openvino", "litert")
INT8_OUT = "bench/results/int8.json"
LATENCY_ITERS = {1: 300, 32: 60}  # requests per model and batch size in a full run
WARMUP = {1: 10, 32: 3}


def artifact_files(folder):
    """{file name: bytes} of an export's model files (model.onnx; model.xml + model.bin; model.tflite)."""
    return {f.name: f.stat().st_size for f in sorted(Path(folder).iterdir())
            if f.name.startswith("model.") and f.suffix != ".json"}


def int8_instructions():
    """The CPU's int8 dot-product / matrix flags (VNNI, AMX), which decide int8 speed."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return sorted(f for f in flags if "vnni" in f or f.startswith("amx"))


LATENCY_BLOCK = 3  # timed requests in a row per model, after one untimed request
LATENCY_METHOD = ("each runtime's float32 and int8 models alternate in blocks (first model rotating), each block "
                  f"one untimed request then {LATENCY_BLOCK} timed ones")
OLD_LATENCY_METHOD = "requests rotate between the float32 and int8 models of all runtimes"


def time_interleaved(predictors, images, batches, block=LATENCY_BLOCK):
    """{batch: {key: {"p50_ms", "p90_ms", "requests", "request_seconds"}}}, keys `(format, precision)`.

    Only the float32 and int8 models of one runtime alternate (the ratio compares those two),
    in blocks: one untimed request, then `block` timed ones. The untimed request is there
    because the runtimes' worker threads keep spinning for a while after a request (ONNX
    Runtime's intra-op pool, OpenVINO's, XNNPACK's): on 2 cores, when every request switched
    model and runtime, the previous model's spinning threads took a core from the timed one.
    Measured on 2026-12-03 (Intel Xeon, training paused, ResNetV2-56, batch 32): rotating over
    all six models gave ONNX Runtime's int8 model about twice its time in blocks beside its
    own float32 model, whose time did not change; the first bench/results/int8.json (rotating)
    has ONNX Runtime 1.21x and LiteRT 1.17x there.
    """
    runtimes_in_order = list(dict.fromkeys(fmt for fmt, _ in predictors))
    out = {}
    for batch, iters in batches:
        pixels = images[:batch] if len(images) >= batch else np.resize(images, (batch,) + images.shape[1:])
        times = {key: [] for key in predictors}
        for fmt in runtimes_in_order:
            keys = [key for key in predictors if key[0] == fmt]
            for key in keys:
                for _ in range(WARMUP.get(batch, 2)):
                    predictors[key](pixels)
            for i in range(-(-iters // block)):
                for key in keys[i % len(keys):] + keys[:i % len(keys)]:
                    predictors[key](pixels)  # untimed: the other model's threads wind down
                    for _ in range(min(block, iters - i * block)):
                        start = time.perf_counter()
                        predictors[key](pixels)
                        times[key].append(time.perf_counter() - start)
        out[batch] = {"|".join(key): latency_stats(t) for key, t in times.items()}
    return out


def measure_int8(name, images, labels, formats, work, *, dataset, calibration_count, batches, command, label,
                 split):
    """({FORMAT_int8: card entry}, latency) of zoo model `name`, float32 and int8 side by side."""
    from keras_preact import quantization

    card = zoo.get_card(name)
    model = zoo.load_model(name)
    reference = run_batches(lambda x: runtimes.keras_probabilities(model, x), images)
    height, width, _ = card["input"]["shape"]
    calibration = quantization.calibration_set(dataset, height=height, width=width, count=calibration_count)
    entries, predictors = {}, {}
    for fmt in formats:
        folders = {precision: Path(work) / name / f"{fmt}_{precision}" for precision in ("float32", "int8")}
        start = time.perf_counter()
        runtimes.export_model(model, folders["float32"], fmt, class_names=card["class_names"],
                              source=f"zoo:{name}", check=False)
        runtimes.export_model(model, folders["int8"], fmt, class_names=card["class_names"], source=f"zoo:{name}",
                              check=False, int8=True, calibration=calibration)
        exported = time.perf_counter() - start
        for precision, folder in folders.items():
            predictors[(fmt, precision)] = runtimes.load_predictor(folder)
        float_probabilities = run_batches(predictors[(fmt, "float32")], images)
        int8_probabilities = run_batches(predictors[(fmt, "int8")], images)
        record = json.loads((folders["int8"] / quantization.RECORD_FILE).read_text())
        entry = scores(int8_probabilities, labels, reference)
        float_scores = scores(float_probabilities, labels, reference)
        float_files, int8_files = artifact_files(folders["float32"]), artifact_files(folders["int8"])
        float_bytes, int8_bytes = sum(float_files.values()), sum(int8_files.values())
        int8_misses, float_misses = misses(int8_probabilities, labels), misses(float_probabilities, labels)
        entry.update({
            "precision": "int8",
            "float32_top1": float_scores["top1"],
            "float32_top5": float_scores["top5"],
            "top1_agreement_with_float32": round(float((int8_probabilities.argmax(-1) ==
                                                        float_probabilities.argmax(-1)).mean()), 4),
            "file_bytes": int8_bytes,
            "float32_file_bytes": float_bytes,
            "size_ratio": size_ratio(int8_bytes, float_bytes),
            # Per file as well: OpenVINO's int8 model.xml grows (FakeQuantize and weight-decompression
            # nodes) while model.bin shrinks, which the total alone hides.
            "file_bytes_per_file": int8_files,
            "float32_file_bytes_per_file": float_files,
            "dataset": f"{label}, {split} split",
            "runtime": predictors[(fmt, "int8")].runtime,
            "quantizer": record["quantizer"],
            "method": record["method"],
            "calibration": record["calibration"],
            "input": f"uint8 [N, {height}, {width}, 3]",
            "command": command,
            PER_IMAGE: {
                "top1_misses": int8_misses["top1"], "top5_misses": int8_misses["top5"],
                "float32_top1_misses": float_misses["top1"], "float32_top5_misses": float_misses["top5"],
                "top1_differs_from_float32": top1_differences(int8_probabilities, float_probabilities),
                "top1_differs_from_keras": top1_differences(int8_probabilities, reference),
            },
        })
        recomputed = int8_accuracy(entry)
        if recomputed != {key: entry[key] for key in recomputed}:  # the lists must say what the summaries say
            raise RuntimeError(f"{name} {fmt} int8: per-image lists give {recomputed}, the summaries "
                               f"{ {key: entry[key] for key in recomputed} }")
        entries[f"{fmt}_int8"] = entry
        print(f"{name} {fmt} int8: top-1 {entry['top1']} (float32 {entry['float32_top1']}), agreement with float32 "
              f"{entry['top1_agreement_with_float32']}, size {int8_bytes} / {float_bytes} bytes (export "
              f"{exported:.0f} s)", file=sys.stderr, flush=True)
    start = time.perf_counter()
    latency = time_interleaved(predictors, images, batches)
    print(f"{name}: latency measured in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return entries, latency


def latency_stats(seconds):
    """p50/p90 ms of one model's requests, and the requests' times (so the JSON can recompute them;
    results before 2026-12 kept only the percentiles)."""
    from bench import common

    return {"p50_ms": 1000 * common.percentile(seconds, 50), "p90_ms": 1000 * common.percentile(seconds, 90),
            "requests": len(seconds), "request_seconds": list(seconds)}


def size_ratio(int8_bytes, float_bytes):
    """A card's int8 size over float32 (3 decimals, as cards record it)."""
    return round(int8_bytes / float_bytes, 3)


PER_IMAGE = "per_image"  # an int8.json entry's per-image outcome (not copied into the card: `card_entry`)


def int8_accuracy(entry):
    """An int8 entry's accuracy figures recomputed from its per-image lists (`PER_IMAGE`), rounded as
    `measure_int8` rounds them: top1, top5, float32_top1, float32_top5 (`scores`: DECIMALS),
    top1_agreement_with_float32 (4 decimals) and, where its list is kept, top1_differs (a count).
    {} for an entry without the lists (results before 2026-12-03 12:00 UTC)."""
    from keras_preact.zoo import DECIMALS

    lists = entry.get(PER_IMAGE)
    if lists is None:
        return {}
    total = entry["num_examples"]

    def rate(indices, decimals=DECIMALS):  # as scores: the mean of the hits over `total` images
        return round((total - len(indices)) / total, decimals)

    out = {"top1": rate(lists["top1_misses"]), "top5": rate(lists["top5_misses"]),
           "float32_top1": rate(lists["float32_top1_misses"]), "float32_top5": rate(lists["float32_top5_misses"]),
           "top1_agreement_with_float32": rate(lists["top1_differs_from_float32"], 4)}
    if "top1_differs_from_keras" in lists:
        out["top1_differs"] = len(lists["top1_differs_from_keras"])
    return out


def card_entry(entry):
    """The card's copy of an int8.json entry: without the per-image lists (cards stay small)."""
    return {key: value for key, value in entry.items() if key != PER_IMAGE}


def per_file_ratios(entry):
    """"; model.bin 0.25x, model.xml 2.30x" for an export of several files whose sizes were kept, else ""."""
    int8, float32 = entry.get("file_bytes_per_file", {}), entry.get("float32_file_bytes_per_file", {})
    if len(int8) < 2 or set(int8) != set(float32):
        return ""
    return "; " + ", ".join(f"{name} {int8[name] / float32[name]:.2f}x" for name in sorted(int8))


def derive_int8(result):
    """An --int8 result's derived figures recomputed in place: each entry's file bytes from its
    per-file bytes where kept (from 2026-12-03 on), its size ratio from its file bytes, its
    accuracy figures from its per-image lists where kept (`int8_accuracy`), each latency
    percentile from request_seconds where kept."""
    for res in result["models"].values():
        for e in res["entries"].values():
            for key in ("file_bytes", "float32_file_bytes"):
                if f"{key}_per_file" in e:  # kept from 2026-12-03 on
                    e[key] = sum(e[f"{key}_per_file"].values())
            e["size_ratio"] = size_ratio(e["file_bytes"], e["float32_file_bytes"])
            e.update(int8_accuracy(e))
        for stats in res["latency"].values():
            for key, st in stats.items():
                if st.get("request_seconds"):
                    stats[key] = latency_stats(st["request_seconds"])
    return result


def int8_markdown(result):
    """BENCHMARKS.md's int8 tables: accuracy and size, then latency, float32 beside int8 per runtime.
    Recomputed from the raw fields: the size ratio from the file bytes, the top-1s and the agreement
    from the per-image lists where kept, the change from the two top-1s, the latency ratios and
    images/s from the percentiles (themselves from request_seconds where kept). Not recomputable
    from a JSON without the per-image lists (before 2026-12-03 12:00 UTC): the top-1s and the
    agreement; before 2026-12, the percentiles."""
    import copy

    from bench import common

    result = derive_int8(copy.deepcopy(result))
    accuracy, latency = [], []
    for name, res in result["models"].items():
        for key, e in res["entries"].items():
            fmt = key[:-len("_int8")]
            accuracy.append([name, runtimes.RUNTIME_NAMES[fmt], f"{100 * e['float32_top1']:.2f}%",
                             f"{100 * e['top1']:.2f}%", f"{100 * (e['top1'] - e['float32_top1']):+.2f}",
                             f"{100 * e['top1_agreement_with_float32']:.2f}%",
                             f"{e['float32_file_bytes'] / 1e6:.2f} MB -> {e['file_bytes'] / 1e6:.2f} MB "
                             f"({e['size_ratio']:.2f}x{per_file_ratios(e)})"])
        for batch, stats in res["latency"].items():
            for fmt in res["formats"]:
                f32, i8 = stats[f"{fmt}|float32"], stats[f"{fmt}|int8"]
                latency.append([name, batch, runtimes.RUNTIME_NAMES[fmt],
                                f"{common.fmt(f32['p50_ms'], 2)} / {common.fmt(f32['p90_ms'], 2)}",
                                f"{common.fmt(i8['p50_ms'], 2)} / {common.fmt(i8['p90_ms'], 2)}",
                                f"{f32['p50_ms'] / i8['p50_ms']:.2f}x / {f32['p90_ms'] / i8['p90_ms']:.2f}x",
                                common.fmt(1000 * int(batch) / i8["p50_ms"], 0)])
    flags = ", ".join(result["int8_instructions"]) or "none"
    first = next(iter(result["models"].values()))["entries"]
    calibration = next(iter(first.values()))["calibration"] if first else {}
    lines = [f"int8 (`--int8`) beside float32 in each runtime, {result['num_examples']} {result['split']} images of "
             f"{result['dataset_label']}; calibrated on {calibration.get('count')} {calibration.get('split')} images "
             f"(seed {calibration.get('seed')}). CPU int8 instructions: {flags}.", "",
             common.markdown_table(["zoo model", "runtime", "float32 top-1", "int8 top-1", "change (points)",
                                    "int8 top-1 = float32 top-1", "file size"], accuracy), "",
             f"Latency, ms per request (median / p90); {result.get('latency_method', OLD_LATENCY_METHOD)}; "
             "ratio > 1: int8 is faster.", "",
             common.markdown_table(["zoo model", "batch", "runtime", "float32 ms", "int8 ms",
                                    "float32 ÷ int8, p50 / p90", "int8 images/s at median"], latency)]
    return "\n".join(lines)


def int8_main(args, names):
    from bench import common
    from keras_preact.data import portable_dataset

    formats = [f for f in (args.formats or ",".join(INT8_FORMATS)).split(",") if f]
    for fmt in formats:
        runtimes.require(fmt, int8=True)
    batches = [(1, args.iters1), (32, args.iters32)]
    quick = (args.limit is not None or args.iters1 < LATENCY_ITERS[1] or args.iters32 < LATENCY_ITERS[32])
    dry_run = args.dry_run or quick
    command = f"python -m bench.runtime_cards --int8 --dataset {portable_dataset(args.dataset)}"
    result = common.result_header(MODULE, quick)
    result.update({"int8_instructions": int8_instructions(), "split": args.split, "models": {},
                   "latency_method": LATENCY_METHOD})
    splits = {}
    with tempfile.TemporaryDirectory(prefix="runtime_cards_int8_") as work:
        for name in names:
            card = zoo.get_card(name)
            key = tuple(card["class_names"])
            if key not in splits:
                splits[key] = load_split(args.dataset, card["class_names"], args.split, args.limit)
            images, labels = splits[key]
            result["num_examples"], result["dataset_label"] = int(len(labels)), dataset_label(card)
            entries, latency = measure_int8(
                name, images, labels, formats, work, dataset=args.dataset, calibration_count=args.calibration_count,
                batches=batches, command=command, label=dataset_label(card), split=args.split)
            result["models"][name] = {"entries": entries, "latency": latency, "formats": formats}
            if not dry_run:
                print(f"wrote {write_card(name, {k: card_entry(e) for k, e in entries.items()}, merge=True)}",
                      file=sys.stderr)
    result.setdefault("loadavg_end", common.loadavg())  # common.finish, with the index lists on one line each
    result["markdown"] = int8_markdown(result)
    print(result["markdown"])
    write_int8_result(args.out, result)
    return result


def write_int8_result(path, result):
    """common.write_result's JSON (indent 1), each list of integers (the per-image indices) on one line."""
    import re

    text = json.dumps(result, indent=1)
    text = re.sub(r"\[(?:\s*-?\d+,)*\s*-?\d+\s*\]", lambda m: json.dumps(json.loads(m.group(0))), text)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    Path(path).write_text(text)
    assert json.loads(text) == json.loads(json.dumps(result))
    print(f"wrote {path}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="folder:PATH (a folder or .tar.gz) or a tfds name")
    parser.add_argument("--split", default="test")
    parser.add_argument("--models", default=None, help="comma-separated zoo names (default: the packaged zoo)")
    parser.add_argument("--formats", default=None,
                        help=f"default: {','.join(runtimes.EXPORT_FORMATS)}; with --int8 {','.join(INT8_FORMATS)}")
    parser.add_argument("--limit", type=int, default=None, help="first N images only (implies --dry_run)")
    parser.add_argument("--dry_run", action="store_true", help="measure and print; write no card")
    parser.add_argument("--int8", action="store_true", help="int8 beside float32: accuracy, size and latency")
    parser.add_argument("--calibration_count", type=int, default=512, help="with --int8: training images")
    parser.add_argument("--iters1", type=int, default=LATENCY_ITERS[1], help="with --int8: batch-1 requests")
    parser.add_argument("--iters32", type=int, default=LATENCY_ITERS[32], help="with --int8: batch-32 requests")
    parser.add_argument("--out", default=INT8_OUT, help="with --int8: the result JSON")
    args = parser.parse_args(argv)
    if args.models:
        names = args.models.split(",")
    else:
        names = sorted(card.parent.name for card in zoo.PACKAGED_ZOO.glob(f"*/{zoo.CARD_FILE}"))
        os.environ.pop(zoo.ZOO_ENV, None)  # the packaged cards, not a user's zoo of the same names
    if args.int8:
        return int8_main(args, names)
    formats = [f for f in (args.formats or ",".join(runtimes.EXPORT_FORMATS)).split(",") if f]
    for fmt in formats:
        runtimes.require(fmt)
    dry_run = args.dry_run or args.limit is not None
    from keras_preact.data import portable_dataset

    command = f"python -m bench.runtime_cards --dataset {portable_dataset(args.dataset)}"
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

"""Serving latency (p50/p99, batch 1 and 32) of keras-preact's exported SavedModel
vs the keras.applications model plus its Python ``preprocess_input``.

    python -m bench.serving_latency                          # ResNet50V2 and DenseNet121, 224x224
    python -m bench.serving_latency --models resnet50v2 --iters1 500 --iters32 50
    python -m bench.serving_latency --quick                  # ResNet50V2 at 32x32, batches 1 and 2

Per model, in a fresh process: ``keras_preact.get_model(name)`` gets keras.applications'
weights (``set_weights``: the same function, checked: max |difference| of the
probabilities is reported), is exported with ``keras_preact.export.export_model`` and
loaded back with ``tf.saved_model.load`` as a server would; the keras.applications model
is exported with Keras' own ``model.export()`` and loaded the same way. Requests (random
smooth 224x224 images, and the same images as JPEG files, quality 90) go through:

- ours, ``serving_default``: uint8 pixels in; resizing and normalization in the graph.
- ours, ``serving_bytes``: JPEG files in; decoding, resizing, normalization in the graph.
- theirs, SavedModel + ``preprocess_input``: the float32 batch through the application's
  Python ``preprocess_input``, then its exported ``serve`` endpoint.
- theirs, JPEG + PIL decode + ``preprocess_input`` + SavedModel: the Python decode path
  (``PIL.Image.open``, as ``keras.utils.load_img``) for the same JPEG files.
- theirs, ``model.predict(preprocess_input(x))``: in-process Keras, as the
  keras.applications documentation shows.

Latency is wall time per request including the conversion of the request to tensors and
of the answer to NumPy. The variants take turns request by request (rotating which goes
first), so machine noise hits them alike; the ratio is theirs' p50 over ours' p50
(> 1: ours is faster). p99 of fewer than 100 requests is close to the maximum.
"""

import argparse
import io
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common  # noqa: E402

MODULE = "bench.serving_latency"
MODELS = {
    "resnet50v2": ("ResNet50V2", "resnet_v2"),
    "densenet121": ("DenseNet121", "densenet"),
}


def images(batch, size, seed):
    """Smooth random RGB images (low-resolution noise, upsampled), uint8 and as JPEG bytes."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(seed)
    low = rng.uniform(0, 255, (batch, 8, 8, 3)).astype("float32")
    big = tf.image.resize(low, [size, size], method="bicubic").numpy()
    pixels = np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype("uint8")
    jpegs = [tf.io.encode_jpeg(p, quality=90).numpy() for p in pixels]
    return pixels, jpegs


def worker(payload):
    import keras
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    import keras_preact
    from keras_preact.export import export_model

    name, size, classes = payload["model"], payload["size"], payload["classes"]
    app_name, module_name = MODELS[name]
    import importlib

    preprocess_input = importlib.import_module(f"keras.applications.{module_name}").preprocess_input
    theirs = getattr(keras.applications, app_name)(weights=None, input_shape=(size, size, 3), classes=classes)
    ours = keras_preact.get_model(name, input_shape=(size, size, 3), classes=classes)
    ours.set_weights(theirs.get_weights())
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        export_model(ours, os.path.join(tmp, "ours"), class_names=[f"class_{i}" for i in range(classes)])
        ours_export_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs.export(os.path.join(tmp, "theirs"), format="tf_saved_model", verbose=False)
        theirs_export_s = time.perf_counter() - t0
        ours_sm = tf.saved_model.load(os.path.join(tmp, "ours"))
        theirs_sm = tf.saved_model.load(os.path.join(tmp, "theirs"))
    sig_u8 = ours_sm.signatures["serving_default"]
    sig_bytes = ours_sm.signatures["serving_bytes"]
    serve = theirs_sm.serve

    variants = {
        "ours_uint8": lambda px, jp: sig_u8(images=tf.constant(px))["probabilities"].numpy(),
        "ours_bytes": lambda px, jp: sig_bytes(image_bytes=tf.constant(jp))["probabilities"].numpy(),
        "theirs_savedmodel": lambda px, jp: serve(
            tf.constant(preprocess_input(px.astype("float32")))).numpy(),
        "theirs_pil_savedmodel": lambda px, jp: serve(tf.constant(preprocess_input(np.stack(
            [np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype="float32") for b in jp])))).numpy(),
        "theirs_predict": lambda px, jp: theirs.predict(preprocess_input(px.astype("float32")), verbose=0),
    }
    px, jp = images(2, size, seed=1)
    reference = variants["theirs_savedmodel"](px, jp)
    agreement = {k: float(np.max(np.abs(v(px, jp) - reference))) for k, v in variants.items()}
    out = {"model": name, "size": size, "classes": classes, "ours_export_seconds": ours_export_s,
           "theirs_export_seconds": theirs_export_s, "max_abs_diff_vs_theirs_savedmodel": agreement,
           "batches": []}
    for batch, iters, warmup in payload["batches"]:
        px, jp = images(batch, size, seed=batch)
        names = list(variants)
        for k in names:
            for _ in range(warmup):
                variants[k](px, jp)
        times = {k: [] for k in names}
        for i in range(iters):
            order = names[i % len(names):] + names[:i % len(names)]
            for k in order:
                start = time.perf_counter()
                variants[k](px, jp)
                times[k].append(time.perf_counter() - start)
        stats = {k: {"p50_ms": 1000 * common.percentile(t, 50), "p99_ms": 1000 * common.percentile(t, 99),
                     "mean_ms": 1000 * sum(t) / len(t), "requests": len(t)} for k, t in times.items()}
        out["batches"].append({"batch": batch, "iters": iters, "stats": stats,
                               "jpeg_bytes_mean": sum(len(b) for b in jp) / len(jp)})
    out["loadavg"] = common.loadavg()
    return out


LABELS = {
    "ours_uint8": "ours: SavedModel `serving_default` (uint8 pixels)",
    "ours_bytes": "ours: SavedModel `serving_bytes` (JPEG bytes)",
    "theirs_savedmodel": "keras.applications: `preprocess_input` + SavedModel (`model.export`)",
    "theirs_pil_savedmodel": "keras.applications: PIL decode + `preprocess_input` + SavedModel",
    "theirs_predict": "keras.applications: `model.predict(preprocess_input(x))`",
}
# Which of ours each of theirs is compared with.
COUNTERPART = {"theirs_savedmodel": "ours_uint8", "theirs_pil_savedmodel": "ours_bytes",
               "theirs_predict": "ours_uint8"}


def add_ratios(res):
    for b in res.get("batches", []):
        stats = b["stats"]
        for theirs, ours in COUNTERPART.items():
            stats[theirs]["theirs_p50_over_ours_p50"] = stats[theirs]["p50_ms"] / stats[ours]["p50_ms"]
            stats[theirs]["theirs_p99_over_ours_p99"] = stats[theirs]["p99_ms"] / stats[ours]["p99_ms"]
            stats[theirs]["compared_with"] = ours


def markdown(results, result, args):
    lines = [f"Serving latency, {common.machine_line(result['machine'])}; requests alternate between the "
             f"variants; load average {result['loadavg_start'][0]:.1f}; {result['date'][:10]}."
             + (" QUICK smoke run, not a measurement." if args.quick else ""), ""]
    rows = []
    for res in results:
        if "error" in res:
            rows.append([res.get("model"), "–", f"failed: {res['error']}", "–", "–", "–", "–"])
            continue
        for b in res["batches"]:
            for key, s in b["stats"].items():
                ratio_text = "–"
                if "theirs_p50_over_ours_p50" in s:
                    ratio_text = (f"{s['theirs_p50_over_ours_p50']:.2f}x / {s['theirs_p99_over_ours_p99']:.2f}x "
                                  f"(vs {s['compared_with'].replace('ours_', '')})")
                rows.append([f"{res['model']} {res['size']}x{res['size']}", b["batch"], LABELS[key],
                             common.fmt(s["p50_ms"], 1), common.fmt(s["p99_ms"], 1),
                             common.fmt(1000 * b["batch"] / s["p50_ms"], 1), ratio_text])
    lines.append(common.markdown_table(
        ["model", "batch", "path", "p50 ms", "p99 ms", "images/s at p50", "theirs ÷ ours, p50 / p99"], rows))
    for res in results:
        if "error" not in res:
            diffs = res["max_abs_diff_vs_theirs_savedmodel"]
            lines.append("")
            lines.append(f"{res['model']}: same function: max |probability difference| vs keras.applications "
                         f"SavedModel: uint8 {diffs['ours_uint8']:.1e}, bytes {diffs['ours_bytes']:.1e} (JPEG "
                         f"decoders differ slightly), PIL path {diffs['theirs_pil_savedmodel']:.1e}; export "
                         f"{res['ours_export_seconds']:.0f} s (ours, 2 signatures) / "
                         f"{res['theirs_export_seconds']:.0f} s (theirs).")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--iters1", type=int, default=200, help="batch-1 requests per path")
    parser.add_argument("--iters32", type=int, default=30, help="batch-32 requests per path")
    parser.add_argument("--quick", action="store_true", help="ResNet50V2 at 32x32, batches 1 and 2, 3 requests")
    parser.add_argument("--out", default="bench/results/serving_latency.json")
    args = parser.parse_args(argv)
    if args.worker:
        import json

        print(json.dumps(worker(json.loads(args.worker))))
        return
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; valid: {', '.join(MODELS)}")
    if args.quick:
        if args.models == parser.get_default("models"):
            names = ["resnet50v2"]
        size, classes, batches = 32, 10, [[1, 3, 1], [2, 3, 1]]
    else:
        size, classes, batches = 224, 1000, [[1, args.iters1, 5], [32, args.iters32, 2]]
    result = common.result_header(MODULE, args.quick)
    results = []
    for name in names:
        print(f"measuring {name}...", file=sys.stderr, flush=True)
        res = common.run_worker(MODULE, {"model": name, "size": size, "classes": classes, "batches": batches})
        res.setdefault("model", name)
        if "error" not in res:
            add_ratios(res)
        results.append(res)
    result["models"] = results
    common.finish(result, markdown(results, result, args), args.out)


if __name__ == "__main__":
    main()

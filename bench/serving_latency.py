"""Serving latency (p50/p99, batch 1 and 32) of keras-preact's exported SavedModel
vs the keras.applications model plus its Python ``preprocess_input``; and each packaged zoo
model in TF SavedModel, ONNX Runtime, OpenVINO and LiteRT side by side (median and p90).

    python -m bench.serving_latency                          # ResNet50V2 and DenseNet121, 224x224; zoo runtimes
    python -m bench.serving_latency --models resnet50v2 --iters1 500 --iters32 50
    python -m bench.serving_latency --quick                  # ResNet50V2 at 32x32, batches 1 and 2;
                                                             # resnet_20_cifar10 in each runtime

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

Runtimes (``--zoo_models``, default every packaged zoo model): per model, in a fresh
process, the model is exported in each format (``keras_preact.runtimes.export_model``; the
SavedModel with ``export.export_model``) and loaded with ``runtimes.load_predictor``, which
is what a server would run: the same uint8 ``[N, 32, 32, 3]`` batch goes to the SavedModel's
``serving_default``, an ONNX Runtime session (its default threads), an OpenVINO CPU compiled
model (float32: ``INFERENCE_PRECISION_HINT=f32``; default threads) and a LiteRT interpreter
(``num_threads`` = the CPUs; its own default is 1). Requests alternate between the runtimes
as above; the ratio is the SavedModel's p50 (p90) over the runtime's (> 1: the runtime is
faster). A runtime whose package is missing is a row saying which extra to install.
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
        stats = {k: request_stats(t, (50, 99)) for k, t in times.items()}
        out["batches"].append({"batch": batch, "iters": iters, "stats": stats,
                               "jpeg_bytes_mean": sum(len(b) for b in jp) / len(jp)})
    out["loadavg"] = common.loadavg()
    return out


def zoo_worker(payload):
    """Latency of one zoo model in each runtime; runs in a fresh process."""
    import numpy as np

    from keras_preact import export, runtimes, zoo

    name = payload["zoo_model"]
    card = zoo.get_card(name)
    model = zoo.load_model(name)
    height, width, _ = card["input"]["shape"]
    predictors, export_seconds, skipped = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in payload["formats"]:
            missing = runtimes.missing_modules(fmt)
            if missing:
                skipped[fmt] = f'{", ".join(missing)} not installed: pip install "keras-preact[{fmt}]"'
                continue
            folder = os.path.join(tmp, fmt)
            t0 = time.perf_counter()
            if fmt == "saved_model":
                export.export_model(model, folder, class_names=card["class_names"])
            else:
                runtimes.export_model(model, folder, fmt, class_names=card["class_names"], check=False)
            export_seconds[fmt] = time.perf_counter() - t0
            predictors[fmt] = runtimes.load_predictor(folder)
    rng = np.random.default_rng(0)
    check = rng.integers(0, 256, (32, height, width, 3), dtype=np.uint8)
    reference = runtimes.keras_probabilities(model, check)
    out = {"zoo_model": name, "size": height, "export_seconds": export_seconds, "skipped": skipped,
           "runtime_versions": {f: p.runtime for f, p in predictors.items()},
           "settings": {f: p.settings for f, p in predictors.items()},
           "max_abs_diff_vs_keras": {f: float(np.abs(p(check) - reference).max()) for f, p in predictors.items()},
           "batches": []}
    names = list(predictors)
    for batch, iters, warmup in payload["batches"]:
        pixels = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
        for key in names:
            for _ in range(warmup):
                predictors[key](pixels)
        times = {key: [] for key in names}
        for i in range(iters):
            for key in names[i % len(names):] + names[:i % len(names)]:
                start = time.perf_counter()
                predictors[key](pixels)
                times[key].append(time.perf_counter() - start)
        stats = {key: request_stats(t, (50, 90)) for key, t in times.items()}
        out["batches"].append({"batch": batch, "iters": iters, "stats": stats})
    add_runtime_ratios(out)
    out["loadavg"] = common.loadavg()
    return out


def cpu_detail():
    """'AMD EPYC, family 26 model 2 stepping 1 (Zen 5), 2 CPUs, under a hypervisor' from /proc/cpuinfo."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
                if not line.strip():
                    break
    except OSError:
        return {}
    detail = {"model_name": fields.get("model name"), "vendor": fields.get("vendor_id"),
              "family": int(fields["cpu family"]) if fields.get("cpu family", "").isdigit() else None,
              "model": int(fields["model"]) if fields.get("model", "").isdigit() else None,
              "stepping": int(fields["stepping"]) if fields.get("stepping", "").isdigit() else None,
              "hypervisor": "hypervisor" in fields.get("flags", "").split(),
              "cpus": os.cpu_count()}
    # AMD's family numbers (family 0x17, 0x19, 0x1A); Intel reports family 6 for everything recent.
    generation = {23: "Zen/Zen 2", 25: "Zen 3/Zen 4", 26: "Zen 5"}.get(detail["family"]) \
        if detail["vendor"] == "AuthenticAMD" else None
    detail["text"] = (f"{detail['model_name']}, family {detail['family']} model {detail['model']} stepping "
                      f"{detail['stepping']}{f' ({generation})' if generation else ''}, {detail['cpus']} CPUs"
                      f"{', under a hypervisor' if detail['hypervisor'] else ''}")
    return detail


RUNTIME_LABELS = {"saved_model": "TF SavedModel `serving_default`", "onnx": "ONNX Runtime",
                  "openvino": "OpenVINO (f32)", "litert": "LiteRT"}


def request_stats(seconds, percentiles):
    """A path's latency figures from its requests' times (kept as request_seconds, so the figures
    can be recomputed from the JSON)."""
    stats = {f"p{q}_ms": 1000 * common.percentile(seconds, q) for q in percentiles}
    stats.update({"mean_ms": 1000 * sum(seconds) / len(seconds), "requests": len(seconds),
                  "request_seconds": list(seconds)})
    return stats


def add_runtime_ratios(res):
    """Each runtime's SavedModel p50 / p90 over its own (the zoo rows' ratio column)."""
    for b in res.get("batches", []):
        base = b["stats"].get("saved_model")
        for value in b["stats"].values():
            if base is not None:
                value["savedmodel_p50_over_this"] = base["p50_ms"] / value["p50_ms"]
                value["savedmodel_p90_over_this"] = base["p90_ms"] / value["p90_ms"]


def derive(result):
    """Recompute, in place, a result's percentiles from its requests' times where it kept them
    (request_seconds; results before 2026-12 kept only p50/p90/p99 and the mean), then its ratios."""
    for res in result.get("models", []) + result.get("runtimes", []):
        for b in res.get("batches", []):
            for key, st in b["stats"].items():
                if st.get("request_seconds"):
                    b["stats"][key] = dict(st, **request_stats(
                        st["request_seconds"], [int(k[1:-3]) for k in st if k.endswith("_ms") and k[1:-3].isdigit()]))
    for res in result.get("models", []):
        if "error" not in res:
            add_ratios(res)
    for res in result.get("runtimes", []):
        if "error" not in res:
            add_runtime_ratios(res)
    return result


def runtimes_markdown(zoo_results, result):
    loads = [r["loadavg"][0] for r in zoo_results if "loadavg" in r]
    load_text = (f"; 1-minute load average after each model {', '.join(f'{x:.1f}' for x in loads)} "
                 f"on {result.get('cpu_detail', {}).get('cpus', '?')} CPUs" if loads else "")
    lines = [f"Zoo models in each runtime, {result.get('cpu_detail', {}).get('text', 'unknown CPU')}{load_text}; "
             "uint8 32x32 pixels in, probabilities out, through `keras_preact.runtimes.load_predictor`; requests "
             "alternate between the runtimes. Ratio: the SavedModel's p50 / p90 over this runtime's "
             "(> 1: faster than TF). A load average above the CPU count means other processes competed for "
             "the CPUs: the multi-threaded runtimes' batch-32 numbers suffer most.", ""]
    rows = []
    for res in zoo_results:
        if "error" in res:
            rows.append([res.get("zoo_model"), "–", f"failed: {res['error']}", "–", "–", "–", "–"])
            continue
        for b in res["batches"]:
            for key, st in b["stats"].items():
                ratio = (f"{st['savedmodel_p50_over_this']:.2f}x / {st['savedmodel_p90_over_this']:.2f}x"
                         if "savedmodel_p50_over_this" in st else "–")
                label = f"{RUNTIME_LABELS[key]} ({res['runtime_versions'][key]})"
                rows.append([res["zoo_model"], b["batch"], label, common.fmt(st["p50_ms"], 2),
                             common.fmt(st["p90_ms"], 2), common.fmt(1000 * b["batch"] / st["p50_ms"], 0), ratio])
        for key, why in res.get("skipped", {}).items():
            rows.append([res["zoo_model"], "–", f"{RUNTIME_LABELS[key]}: skipped, {why}", "–", "–", "–", "–"])
    lines.append(common.markdown_table(
        ["zoo model", "batch", "runtime", "median ms", "p90 ms", "images/s at median",
         "SavedModel ÷ this, p50 / p90"], rows))
    done = [r for r in zoo_results if "error" not in r]
    if done:
        lines.append("")
        lines.append("Max |probability difference| from Keras on 32 random images: " + "; ".join(
            f"{r['zoo_model']}: " + ", ".join(f"{k} {v:.1e}" for k, v in r["max_abs_diff_vs_keras"].items())
            for r in done) + ".")
        settings = done[0]["settings"]
        lines.append("")
        lines.append("Runtime settings: " + "; ".join(
            f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items()) for k, v in settings.items() if v)
            + "; TensorFlow: its defaults.")
    return "\n".join(lines)


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


def markdown(result):
    """The tables of a result: its ratios recomputed from the stored percentiles (see derive)."""
    import copy

    result = derive(copy.deepcopy(result))
    results, zoo_results = result["models"], result.get("runtimes") or []
    lines = [f"Serving latency, {common.machine_line(result['machine'])}; requests alternate between the "
             f"variants; load average {result['loadavg_start'][0]:.1f}; {result['date'][:10]}."
             + (" QUICK smoke run, not a measurement." if result.get("quick") else ""), ""]
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
    text = "\n".join(lines)
    if zoo_results:
        text += "\n\n" + runtimes_markdown(zoo_results, result)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--iters1", type=int, default=200, help="batch-1 requests per path")
    parser.add_argument("--iters32", type=int, default=30, help="batch-32 requests per path")
    parser.add_argument("--zoo_models", "--zoo-models", default=None,
                        help="comma-separated packaged zoo models for the runtime rows (default: all; "
                             "'none' skips them)")
    parser.add_argument("--formats", default="saved_model,onnx,openvino,litert",
                        help="runtimes for the zoo rows (saved_model first: the ratios' reference)")
    parser.add_argument("--rt_iters1", type=int, default=300, help="batch-1 requests per runtime (zoo rows)")
    parser.add_argument("--rt_iters32", type=int, default=60, help="batch-32 requests per runtime (zoo rows)")
    parser.add_argument("--quick", action="store_true",
                        help="ResNet50V2 at 32x32, batches 1 and 2, 3 requests; resnet_20_cifar10 in each runtime")
    parser.add_argument("--out", default="bench/results/serving_latency.json")
    args = parser.parse_args(argv)
    if args.worker:
        import json

        payload = json.loads(args.worker)
        print(json.dumps(zoo_worker(payload) if "zoo_model" in payload else worker(payload)))
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
    result["cpu_detail"] = cpu_detail()
    zoo_results = []
    for name in zoo_names(args):
        print(f"measuring {name} in each runtime...", file=sys.stderr, flush=True)
        rt_batches = [[1, 3, 1], [2, 3, 1]] if args.quick else [[1, args.rt_iters1, 10], [32, args.rt_iters32, 3]]
        res = common.run_worker(MODULE, {"zoo_model": name, "formats": args.formats.split(","),
                                         "batches": rt_batches})
        res.setdefault("zoo_model", name)
        zoo_results.append(res)
    result["runtimes"] = zoo_results
    common.finish(result, markdown(result), args.out)


def zoo_names(args):
    """The packaged zoo models the runtime rows measure."""
    from keras_preact import zoo

    if args.zoo_models == "none":
        return []
    if args.zoo_models:
        return args.zoo_models.split(",")
    if args.quick:
        return ["resnet_20_cifar10"]
    return sorted(card.parent.name for card in zoo.PACKAGED_ZOO.glob(f"*/{zoo.CARD_FILE}"))


if __name__ == "__main__":
    main()

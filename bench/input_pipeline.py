"""Is the input pipeline ever the bottleneck? Images/s of the CIFAR-10 JPEG
pipeline alone vs the training step it feeds, side by side in one process.

    python -m bench.input_pipeline                                # data/cifar10-jpeg, resnetv2_20, batch 128
    python -m bench.input_pipeline --model densenet_bc_100_12 --recipe densenet_cifar_cpu_short
    python -m bench.input_pipeline --quick                        # tiny generated JPEG folder

Two measurements, both with the training package's own code (keras_preact/data.py,
keras_preact/training/pipeline.py, the recipe's augmentation, shuffle buffer and batch size):

1. The pipeline alone, drained as fast as it goes (images/s), for each way the trainer
   can read the data: ``stream`` (decode every JPEG every epoch: ``--cache=none``),
   ``stream + cache`` (tf.data ``cache()`` after decoding, timed from the second epoch:
   ``--cache=memory`` on data too big for the in-memory path) and ``in memory`` (the
   default ``--cache=auto`` for CIFAR: the split decoded once into a NumPy array,
   then sliced, augmented, batched and prefetched). Compared with (2)'s synthetic step
   rate, this is the headroom: how many times faster the pipeline is than the step.
2. The training step (the trainer's step on one replica: ``next(iterator)`` inside the
   ``tf.function``) fed from each pipeline, against the same step on one constant batch
   already in memory (no pipeline at all). The feeds alternate round by round in one
   process; "÷ synthetic" near 1.00x means the pipeline costs the step nothing.
   ``in memory, no prefetch`` shows what ``prefetch`` buys.

On a 2-core CPU the pipeline and the step share the cores, so (2) is the figure that
decides; (1) says how much CPU the pipeline needs (step rate / pipeline rate).
"""

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common  # noqa: E402

MODULE = "bench.input_pipeline"
DEFAULT_DATA = "data/cifar10-jpeg"


def make_tiny_folder(root, per_class=24, classes=2, size=32):
    """A folder:PATH tree of random JPEGs (quality 75, as the CIFAR-10 copy) for --quick."""
    import numpy as np
    from PIL import Image

    rng = np.random.RandomState(0)
    for split, count in (("train", per_class), ("test", max(2, per_class // 4))):
        for c in range(classes):
            folder = os.path.join(root, split, f"class{c}")
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                pixels = rng.randint(0, 256, (size, size, 3)).astype("uint8")
                Image.fromarray(pixels).save(os.path.join(folder, f"{i:04d}.jpg"), quality=75)
    return root


def _without_prefetch(ds):
    """The same dataset minus its final prefetch (keras_preact/training/pipeline.py always adds one)."""
    inner = getattr(ds, "_input_dataset", None)
    if inner is None or type(ds).__name__ != "_PrefetchDataset":
        raise RuntimeError(f"expected a prefetch dataset at the end of the pipeline, got {type(ds).__name__}")
    return inner


def run(args):
    import keras
    import tensorflow as tf

    import keras_preact
    from keras_preact.training import configs, pipeline
    from keras_preact import data as data_lib

    recipe = configs.get_config(args.recipe)
    batch = args.batch or recipe.batch_size
    dataset = f"folder:{os.path.abspath(args.data)}"
    spec = keras_preact.get_model_spec(args.model)
    size = spec.input_shape[0]
    ctx = tf.distribute.InputContext()

    t0 = time.perf_counter()
    x, y, info = data_lib.materialize(dataset, "train", max_bytes=64 << 30)
    materialize_seconds = time.perf_counter() - t0
    shuffle = min(recipe.shuffle_buffer, info.num_examples)
    steps_per_epoch = max(1, info.num_examples // batch)

    def memory_source():
        return tf.data.Dataset.from_tensor_slices((x, y))

    def stream_source():
        return data_lib.load_split(dataset, "train")[0]

    def make(source, cache=False):
        return pipeline.train_dataset_fn(source, batch, recipe.augment, size, shuffle, cache=cache, seed=0)(ctx)

    # 1. The pipeline alone.
    alone = []
    variants = [("stream (decode every epoch), prefetch", stream_source, False, 0),
                ("stream + tf.data cache (from epoch 2), prefetch", stream_source, True, steps_per_epoch),
                ("in memory (default cache=auto), prefetch", memory_source, False, 0)]
    for label, source, cache, fill in variants:
        it = iter(make(source, cache))
        for _ in range(args.warmup + fill):
            next(it)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(it)
        elapsed = time.perf_counter() - start
        alone.append({"variant": label, "batches": args.batches, "seconds": elapsed,
                      "images_per_second": args.batches * batch / elapsed})
        print(f"  pipeline alone: {label}: {alone[-1]['images_per_second']:.0f} images/s", file=sys.stderr)
        del it

    # 2. The training step fed by each pipeline vs a constant in-memory batch.
    model = keras_preact.get_model(args.model, classes=info.num_classes, classifier_activation=None)
    opt = keras.optimizers.SGD(0.01, momentum=0.9)
    opt.build(model.trainable_variables)
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]

    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(tf.cast(images, tf.float32), training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
            loss += 1e-4 * tf.add_n([tf.nn.l2_loss(v) for v in kernels])
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def fed_step(iterator):
        images, labels = next(iterator)
        return replica_step(images, labels)

    @tf.function
    def constant_step(images, labels):
        return replica_step(images, labels)

    first = next(iter(make(memory_source)))
    const_images, const_labels = tf.constant(first[0]), tf.constant(first[1])
    feeds = [
        ("synthetic: one constant batch, no pipeline", None),
        ("in memory (default cache=auto), prefetch", make(memory_source)),
        ("in memory, no prefetch", _without_prefetch(make(memory_source))),
        ("stream (decode every epoch), prefetch", make(stream_source)),
    ]
    runners = []
    for label, ds in feeds:
        if ds is None:
            call = lambda: constant_step(const_images, const_labels).numpy()  # noqa: E731
        else:
            it = iter(ds)
            call = (lambda it=it: fed_step(it).numpy())
        runners.append({"feed": label, "call": call, "times": [], "round_medians": []})
    for r in runners:
        for _ in range(args.warmup):
            r["call"]()
    for k in range(args.rounds):
        order = runners[k % len(runners):] + runners[:k % len(runners)]
        for r in order:
            times = []
            for _ in range(args.steps):
                start = time.perf_counter()
                r["call"]()
                times.append(time.perf_counter() - start)
            r["times"] += times
            r["round_medians"].append(common.median(times))
    base = runners[0]
    fed = []
    for r in runners:
        med = common.median(r["times"])
        per_round = [b / a for a, b in zip(r["round_medians"], base["round_medians"])]
        fed.append({"feed": r["feed"], "median_step_seconds": med, "images_per_second": batch / med,
                    "step_seconds": r["times"], "round_medians": r["round_medians"],
                    "over_synthetic": (batch / med) / (batch / common.median(base["times"])),
                    "over_synthetic_round_range": [min(per_round), max(per_round)]})
    step_ips = fed[0]["images_per_second"]
    for a in alone:
        a["over_training_step"] = a["images_per_second"] / step_ips
    return {"dataset": "CIFAR-10 (JPEG q75 copy)" if not args.quick else "generated tiny JPEG folder",
            "data": args.data, "train_images": int(info.num_examples), "model": args.model,
            "recipe": args.recipe, "batch": batch, "augment": recipe.augment, "shuffle_buffer": shuffle,
            "materialize_seconds": materialize_seconds, "pipeline_alone": alone, "training_step": fed,
            "bottleneck": any(f["over_synthetic"] < 0.95 for f in fed[1:2])}


def derive(result):
    """Recompute, in place, every figure of a result that is not a raw measurement: each pipeline's
    images/s (batches x batch / seconds) and its ratio to the synthetic step; each fed step's round
    medians, median step, images/s and ratio to the synthetic step (and per round); the verdict."""
    batch = result["batch"]
    rounds = result.get("rounds") or common.command_option(result, "--rounds", 5)
    steps = result.get("steps") or common.command_option(result, "--steps", 3)
    fed = result["training_step"]
    for f in fed:
        f["round_medians"] = common.round_medians(f["step_seconds"], rounds, steps)
        f["median_step_seconds"] = common.median(f["step_seconds"])
        f["images_per_second"] = batch / f["median_step_seconds"]
    base = fed[0]
    for f in fed:
        per_round = [b / a for a, b in zip(f["round_medians"], base["round_medians"])]
        f["over_synthetic"] = f["images_per_second"] / base["images_per_second"]
        f["over_synthetic_round_range"] = [min(per_round), max(per_round)]
    for a in result["pipeline_alone"]:
        a["images_per_second"] = a["batches"] * batch / a["seconds"]
        a["over_training_step"] = a["images_per_second"] / base["images_per_second"]
    result["bottleneck"] = any(f["over_synthetic"] < 0.95 for f in fed[1:2])
    return result


def markdown(result):
    """The table of a result, recomputed from its raw times (see derive)."""
    import copy

    res = derive(copy.deepcopy(result))
    head = (f"Input pipeline vs training step: {res['dataset']} ({res['train_images']:,} training images), "
            f"`{res['model']}` batch {res['batch']}, recipe `{res['recipe']}` (augment {res['augment']}, "
            f"shuffle buffer {res['shuffle_buffer']:,}); {common.machine_line(res['machine'])}; "
            f"load average {res['loadavg_start'][0]:.1f}; {res['date'][:10]}."
            + (" QUICK smoke run, not a measurement." if res.get("quick") else ""))
    t1 = common.markdown_table(
        ["pipeline alone", "images/s", "÷ training step (synthetic)"],
        [[a["variant"], common.fmt(a["images_per_second"], 0), common.ratio(a["over_training_step"], 1)]
         for a in res["pipeline_alone"]]
        + [["one-off decode of the split into memory (cache=auto)",
            f"{res['train_images'] / res['materialize_seconds']:,.0f} ({res['materialize_seconds']:.1f} s)", "–"]])
    t2 = common.markdown_table(
        ["training step fed by", "ms/step", "images/s", "÷ synthetic (per-round range)"],
        [[f["feed"], common.fmt(f["median_step_seconds"] * 1000, 0), common.fmt(f["images_per_second"], 1),
          common.ratio(f["over_synthetic"]) + f" ({f['over_synthetic_round_range'][0]:.2f}–"
          f"{f['over_synthetic_round_range'][1]:.2f})"] for f in res["training_step"]])
    verdict = ("The default pipeline (in memory + prefetch) is NOT the bottleneck: the fed step runs at "
               f"{res['training_step'][1]['over_synthetic']:.2f}x the synthetic step."
               if not res["bottleneck"] else
               "WARNING: the default pipeline slows the step by more than 5% "
               f"({res['training_step'][1]['over_synthetic']:.2f}x of the synthetic step).")
    return "\n".join([head, "", t1, "", t2, "", verdict])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help=f"image folder (default {DEFAULT_DATA})")
    parser.add_argument("--model", default="resnetv2_20")
    parser.add_argument("--recipe", default="cifar_cpu_short", help="training recipe (augment, batch, shuffle)")
    parser.add_argument("--batch", type=int, default=None, help="default: the recipe's")
    parser.add_argument("--batches", type=int, default=100, help="batches timed per pipeline-alone variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per feed per round")
    parser.add_argument("--quick", action="store_true", help="tiny generated folder, resnet_20, batch 8")
    parser.add_argument("--out", default="bench/results/input_pipeline.json")
    args = parser.parse_args(argv)
    result = common.result_header(MODULE, args.quick)
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:
            if args.data is None:
                args.data = make_tiny_folder(os.path.join(tmp, "tiny"))
            args.model = "resnet_20" if args.model == parser.get_default("model") else args.model
            args.batch = args.batch or 8
            args.batches, args.warmup, args.rounds, args.steps = 4, 1, 1, 1
        args.data = args.data or DEFAULT_DATA
        res = run(args)
    result.update(res)
    result.update({"rounds": args.rounds, "steps": args.steps})
    derive(result)
    common.finish(result, markdown(result), args.out)


if __name__ == "__main__":
    main()

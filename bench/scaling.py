"""Data-parallel scaling: training images/s with MirroredStrategy over 1 and 2
logical CPU devices (and 1 GPU under JAX when one is visible), with the efficiency.

    python -m bench.scaling                                   # resnetv2_20, global batch 128
    python -m bench.scaling --model densenet_bc_100_12 --batch 64 --recipe densenet_cifar_cpu_short
    python -m bench.scaling --jax on                          # also Keras-on-JAX on whatever JAX finds
    python -m bench.scaling --quick

Every configuration runs in a fresh process (logical CPU devices must be configured
before TensorFlow starts), using the training package's own strategy code
(``training.distribute.make_strategy``, i.e. ``--strategy=mirrored --cpu_devices=N``) and
its step (``strategy.run`` of forward, cross-entropy averaged over the global batch, L2,
backward, all-reduced SGD momentum update; ``jit_compile`` and dtype policy from the
recipe), fed by ``distribute_datasets_from_function`` with one constant batch (no input
pipeline: bench/input_pipeline.py measures that). The configurations alternate process by
process (``--repeats`` times) and each figure is the median.

Efficiency is images/s(N devices) / (N x images/s(1 device)). On a CPU, "devices" are
logical: one device already runs its ops on every core, so 2 logical CPU devices can at
best match 1 (ideal speed-up 1.0, efficiency 0.5); what they show is the cost of the
replication and all-reduce machinery that multi-GPU and multi-worker runs use. The
``default`` strategy row (no MirroredStrategy) is the single-device baseline.

``--jax auto`` (the default) adds one row for Keras on the JAX backend
(``model.compile(jit_compile=True)`` + ``train_on_batch``) only when JAX sees a GPU, and
says so when it does not; ``--jax on`` measures it on whatever device JAX has (the CPU
here), ``--jax off`` skips it.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common  # noqa: E402

MODULE = "bench.scaling"


def tf_worker(p):
    import numpy as np

    from keras_preact.training import distribute

    strategy = distribute.make_strategy(p["strategy"], cpu_devices=p["devices"])
    import keras
    import tensorflow as tf

    import keras_preact
    from keras_preact.training import configs

    recipe = configs.get_config(p["recipe"])
    policy = "float32" if recipe.mixed_precision == "none" else recipe.mixed_precision
    keras.mixed_precision.set_global_policy(policy)
    batch, replicas = p["batch"], strategy.num_replicas_in_sync
    with strategy.scope():
        model = keras_preact.get_model(p["model"], classifier_activation=None)
        opt = keras.optimizers.SGD(0.01, momentum=0.9)
        opt.build(model.trainable_variables)
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    size = model.input_shape[1]
    classes = model.output_shape[-1]
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (batch, size, size, 3)).astype("uint8")
    y = rng.randint(0, classes, (batch,)).astype("int64")

    def dataset_fn(ctx):
        per_replica = ctx.get_per_replica_batch_size(batch)
        return tf.data.Dataset.from_tensors((x[:per_replica], y[:per_replica])).repeat()

    def grads_fn(images, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(tf.cast(images, tf.float32), training=True), tf.float32)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
            loss = tf.nn.compute_average_loss(ce, global_batch_size=batch)
            penalty = 1e-4 * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])
            loss += tf.nn.scale_regularization_loss(penalty)
        return tape.gradient(loss, model.trainable_variables), loss

    if recipe.jit_compile:
        grads_fn = tf.function(grads_fn, jit_compile=True)

    def replica_step(images, labels):
        grads, loss = grads_fn(images, labels)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @tf.function
    def train_step(iterator):
        images, labels = next(iterator)
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(images, labels)),
                               axis=None)

    it = iter(strategy.distribute_datasets_from_function(dataset_fn))
    return _time(lambda: train_step(it).numpy(), p, batch) | {
        "replicas": int(replicas), "devices_seen": [d.name for d in tf.config.list_logical_devices("CPU")],
        "policy": policy, "jit_compile": bool(recipe.jit_compile)}


def jax_worker(p):
    import jax

    platform = jax.default_backend()
    if p["jax"] == "auto" and platform != "gpu":
        return {"skipped": f"no GPU visible to JAX (default backend: {platform})"}
    import keras
    import numpy as np

    import keras_preact

    model = keras_preact.get_model(p["model"], classifier_activation=None)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=True)
    size, classes = model.input_shape[1], model.output_shape[-1]
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (p["batch"], size, size, 3)).astype("float32")
    y = rng.randint(0, classes, (p["batch"],)).astype("int64")
    device = jax.devices()[0]
    return _time(lambda: model.train_on_batch(x, y), p, p["batch"]) | {
        "replicas": 1, "device": f"{device.platform}: {getattr(device, 'device_kind', device)}"}


def _time(step, p, batch):
    for _ in range(p["warmup"]):
        step()
    times = []
    for _ in range(p["steps"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    med = common.median(times)
    return {"step_seconds": times, "median_step_seconds": med, "images_per_second": batch / med,
            "loadavg": common.loadavg()}


def worker(p):
    return jax_worker(p) if p["backend"] == "jax" else tf_worker(p)


def label(cfg):
    if cfg["backend"] == "jax":
        return "Keras on JAX, 1 device (XLA)"
    if cfg["strategy"] == "default":
        return "TensorFlow, default strategy (no MirroredStrategy)"
    return f"TensorFlow, MirroredStrategy over {cfg['devices']} logical CPU device(s)"


def derive(result):
    """Recompute, in place, every figure of a result from its raw step times: each run's median
    step and images/s, each row's median over its runs, the mirrored rows' speed-up over one
    device and efficiency, the JAX row's median."""
    batch = result["global_batch"]
    rows = result["rows"]
    for r in rows:
        for run in [r] if r.get("backend") == "jax" else r.get("runs", []):
            if run.get("step_seconds"):
                run["median_step_seconds"] = common.median(run["step_seconds"])
                run["images_per_second"] = batch / run["median_step_seconds"]
        ok = [run for run in r.get("runs", []) if "images_per_second" in run]
        if ok:
            r["images_per_second"] = common.median([run["images_per_second"] for run in ok])
            r["median_step_seconds"] = batch / r["images_per_second"]
        r.pop("speedup", None)
        r.pop("efficiency", None)
    one = next((r for r in rows if r.get("strategy") == "mirrored" and r["devices"] == 1
                and r.get("images_per_second")), None)
    for r in rows:
        if one and r.get("images_per_second") and r.get("strategy") == "mirrored":
            r["speedup"] = r["images_per_second"] / one["images_per_second"]
            r["efficiency"] = r["speedup"] / r["devices"]
    return result


def markdown(result):
    """The table of a result, recomputed from its raw step times (see derive)."""
    import copy

    result = derive(copy.deepcopy(result))
    rows = result["rows"]
    repeats = max((len(r.get("runs", [])) for r in rows), default=0)
    steps = rows[0]["steps"]
    lines = [f"Data-parallel scaling, `{result['model']}`, global batch {result['global_batch']}, recipe "
             f"`{result['recipe']}`; {common.machine_line(result['machine'])}; median of {repeats} fresh "
             f"process(es) x {steps} steps each; load average {result['loadavg_start'][0]:.1f}; "
             f"{result['date'][:10]}." + (" QUICK smoke run, not a measurement." if result.get("quick") else ""), ""]
    table = []
    for r in rows:
        if r.get("skipped"):
            table.append([r["label"], "–", "–", "–", "–", f"not measured: {r['skipped']}"])
        elif r.get("error"):
            table.append([r["label"], "–", "–", "–", "–", f"failed: {r['error'][:150]}"])
        else:
            table.append([r["label"], r.get("replicas", "–"), common.fmt(r["median_step_seconds"] * 1000, 0),
                          common.fmt(r["images_per_second"], 1),
                          common.ratio(r.get("speedup")) if r.get("speedup") else "–",
                          f"{r['efficiency']:.2f}" if r.get("efficiency") else "–"])
    lines.append(common.markdown_table(
        ["configuration", "replicas", "ms/step", "images/s", "speed-up vs 1 device", "efficiency"], table))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="resnetv2_20")
    parser.add_argument("--recipe", default="cifar_cpu_short", help="dtype policy and jit_compile come from it")
    parser.add_argument("--batch", type=int, default=128, help="global batch")
    parser.add_argument("--devices", default="1,2", help="logical CPU device counts")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--jax", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--quick", action="store_true", help="resnet_20, batch 8, 2 steps")
    parser.add_argument("--out", default="bench/results/scaling.json")
    args = parser.parse_args(argv)
    if args.worker:
        import json

        print(json.dumps(worker(json.loads(args.worker))))
        return
    if args.quick:
        if args.model == parser.get_default("model"):
            args.model = "resnet_20"
        args.batch, args.steps, args.warmup, args.repeats = 8, 2, 1, 1
    counts = [int(n) for n in args.devices.split(",") if n]
    if any(args.batch % n for n in counts):
        parser.error(f"--batch {args.batch} must divide evenly over {counts} devices")
    base = {"model": args.model, "recipe": args.recipe, "batch": args.batch, "steps": args.steps,
            "warmup": args.warmup, "jax": args.jax}
    configs = [dict(base, backend="tensorflow", strategy="default", devices=1)]
    configs += [dict(base, backend="tensorflow", strategy="mirrored", devices=n) for n in counts]
    result = common.result_header(MODULE, args.quick)
    runs = {i: [] for i in range(len(configs))}
    for _ in range(args.repeats):
        for i, cfg in enumerate(configs):
            print(f"measuring {label(cfg)}...", file=sys.stderr, flush=True)
            runs[i].append(common.run_worker(MODULE, cfg))
    rows = []
    for i, cfg in enumerate(configs):
        ok = [r for r in runs[i] if "images_per_second" in r]
        row = {"label": label(cfg), **cfg, "runs": runs[i]}
        if ok:
            row["replicas"] = ok[0]["replicas"]
        else:
            row["error"] = runs[i][-1].get("error", "failed")
        rows.append(row)
    if args.jax != "off":
        cfg = dict(base, backend="jax")
        print(f"measuring {label(cfg)}...", file=sys.stderr, flush=True)
        jax_run = common.run_worker(MODULE, cfg, env={"KERAS_BACKEND": "jax"})
        rows.append({"label": label(cfg) + (f" [{jax_run['device']}]" if "device" in jax_run else ""),
                     **cfg, **{k: v for k, v in jax_run.items() if k != "backend"}})
    result.update({"model": args.model, "recipe": args.recipe, "global_batch": args.batch, "rows": rows})
    derive(result)
    common.finish(result, markdown(result), args.out)


if __name__ == "__main__":
    main()

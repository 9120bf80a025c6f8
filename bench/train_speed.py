"""Training-step throughput (images/s) of keras-preact vs the implementations
users would pick instead, side by side in one process, as ratios.

    python -m bench.train_speed                     # the four pairs below, defaults vs defaults
    python -m bench.train_speed --sweep             # + float32/bfloat16 x XLA on/off, channels_first
    python -m bench.train_speed --pairs cifar_resnetv2 --rounds 7
    python -m bench.train_speed --quick             # tiny smoke run (32x32, batch 2, 1 step)

Pairs (ours vs theirs, same architecture):

- ``resnet50v2``: ``keras_preact.ResNet50V2`` vs ``keras.applications.ResNet50V2``, 224x224, batch 32.
- ``densenet121``: ``keras_preact.DenseNet121`` vs ``keras.applications.DenseNet121``, 224x224, batch 32.
- ``cifar_resnetv2``: ``resnetv2_164`` vs the Keras example cifar10_resnet.py's ``resnet_v2(164)``
  (reconstructed in bench/reference_models.py), batch 128. The example's widths are not the
  paper's (2.3x the multiply-adds), so its paper-width variant is the equal-architecture control.
- ``cifar_densenet``: ``densenet_bc_100_12`` vs titu1994/DenseNet's DenseNet-BC-100 (k=12)
  (reconstructed in bench/reference_models.py), batch 64.

Each pair runs in its own fresh process (memory and XLA caches do not leak between
pairs); inside it every configuration is built, warmed up (the first steps trace and
compile and are not timed), then timed in rounds: each round runs `--steps` steps of
every configuration, rotating which goes first (ABAB...), so machine noise hits all of
them alike. A configuration's figure is the median step time over all its timed steps;
the ratio column also shows the range of the per-round ratios, which is the noise.

Configurations per pair:

- **theirs, as users run it**: the other implementation, inputs through its own
  ``preprocess_input`` (done outside the step, as a data pipeline would), trained with
  ``model.compile(SGD momentum 0.9, sparse cross-entropy)`` + ``train_on_batch``, all Keras
  defaults (float32; ``jit_compile="auto"``, which Keras 3 resolves to no XLA when TensorFlow
  sees no GPU, and to XLA on a GPU machine; the table shows what it resolved to).
- **ours, keras-preact defaults**: uint8 pixels in (the model normalizes inside), the
  training package's step (keras_preact/training/loop.py: forward, softmax cross-entropy, coupled L2 on
  kernels, backward, SGD momentum; ``jit_compile`` wraps the gradient computation), with
  the dtype policy and ``jit_compile`` of the pair's CPU training recipe in keras_preact/training/configs.py.
- **control**: theirs in our step at our settings. Ours and theirs compute the same
  function here, so this ratio is the implementation's own overhead; 1.00x +- noise is
  the expected, honest answer for the keras.applications pairs.

``--sweep`` adds ours under every dtype policy x jit_compile combination (float32,
mixed_bfloat16; XLA off/on) and theirs with XLA forced on and in channels_first layout (XLA off
and on: TensorFlow's CPU kernels train NHWC only, XLA may lay NCHW out itself), and prints
the setting it recommends per model (the fastest one that beats float32 without XLA by more
than ``--margin`` in every round; otherwise float32 without XLA).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common  # noqa: E402

MODULE = "bench.train_speed"

PAIRS = {
    "resnet50v2": {
        "title": "ResNet50V2 224x224", "size": 224, "batch": 32, "classes": 1000,
        "recipe": "resnet_imagenet",
        "ours": {"kind": "keras_preact", "name": "resnet50v2"},
        "theirs": {"kind": "applications", "name": "ResNet50V2", "preprocess": "resnet_v2"},
        "control": {"kind": "applications", "name": "ResNet50V2", "preprocess": "resnet_v2"},
        "quick": {"size": 32, "batch": 2, "title": "ResNet50V2 at 32x32 (quick)"},
    },
    "densenet121": {
        "title": "DenseNet121 224x224", "size": 224, "batch": 32, "classes": 1000,
        "recipe": "densenet_imagenet",
        "ours": {"kind": "keras_preact", "name": "densenet121"},
        "theirs": {"kind": "applications", "name": "DenseNet121", "preprocess": "densenet"},
        "control": {"kind": "applications", "name": "DenseNet121", "preprocess": "densenet"},
        "quick": {"size": 32, "batch": 2, "title": "DenseNet121 at 32x32 (quick)"},
    },
    "cifar_resnetv2": {
        "title": "pre-act ResNet-164 CIFAR 32x32", "size": 32, "batch": 128, "classes": 10,
        "recipe": "cifar_cpu_short",
        "ours": {"kind": "keras_preact", "name": "resnetv2_164"},
        "theirs": {"kind": "keras_example_resnet_v2", "depth": 164, "widths": "example"},
        "control": {"kind": "keras_example_resnet_v2", "depth": 164, "widths": "paper"},
        "quick": {"batch": 2, "title": "pre-act ResNet-11 CIFAR (quick)",
                  "ours": {"kind": "keras_preact", "builder": "ResNetV2",
                                       "kwargs": {"depth": 11, "block": "bottleneck"}},
                  "theirs": {"kind": "keras_example_resnet_v2", "depth": 11, "widths": "example"},
                  "control": {"kind": "keras_example_resnet_v2", "depth": 11, "widths": "paper"}},
    },
    "cifar_densenet": {
        "title": "DenseNet-BC-100 (k=12) CIFAR 32x32", "size": 32, "batch": 64, "classes": 10,
        "recipe": "densenet_cifar_cpu_short",
        "ours": {"kind": "keras_preact", "name": "densenet_bc_100_12"},
        "theirs": {"kind": "titu1994_densenet", "depth": 100},
        "control": {"kind": "titu1994_densenet", "depth": 100},
        "quick": {"batch": 2, "title": "DenseNet-BC-16 (k=12) CIFAR (quick)",
                  "ours": {"kind": "keras_preact", "builder": "DenseNet",
                                       "kwargs": {"depth": 16, "bottleneck": True, "compression": 0.5}},
                  "theirs": {"kind": "titu1994_densenet", "depth": 16},
                  "control": {"kind": "titu1994_densenet", "depth": 16}},
    },
}
# --quick covers the two reconstructed references; `--quick --pairs resnet50v2,densenet121`
# smoke-tests the keras.applications pairs (their graphs take longer to trace).
QUICK_PAIRS = ("cifar_resnetv2", "cifar_densenet")
SWEEP_OPTIONS = (("float32", False), ("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True))

# Per-channel mean/std of CIFAR-10 training images (0..1 scale), for the references'
# normalization (the Keras example subtracts the mean image; the cost is the same).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


# ----------------------------------------------------------------------------- worker side


def error_text(error):
    """The informative line of an exception: TensorFlow's runtime errors put the op's
    complaint (e.g. "Conv2DCustomBackpropFilterOp only supports NHWC.") after a trace."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("File ", "[[", "Detected at node", "Graph execution error"))]
    return f"{type(error).__name__}: {(useful or lines or [''])[-1][:300]}"


def build(impl, size, classes):
    """(model, preprocess) for an implementation spec; preprocess maps a float32 0..255
    batch to what the model takes."""
    import keras
    import tensorflow as tf

    shape = (size, size, 3) if keras.config.image_data_format() == "channels_last" else (3, size, size)
    kind = impl["kind"]
    if kind == "keras_preact":
        import keras_preact

        kwargs = dict(impl.get("kwargs", {}), classifier_activation=None, classes=classes, input_shape=shape)
        if "builder" in impl:
            model = getattr(keras_preact, impl["builder"])(**kwargs)
        else:
            model = keras_preact.get_model(impl["name"], **kwargs)
        return model, lambda x: x  # normalizes inside (include_preprocessing=True)
    if kind == "applications":
        import importlib

        model = getattr(keras.applications, impl["name"])(
            weights=None, input_shape=shape, classes=classes, classifier_activation=None)
        module = importlib.import_module(f"keras.applications.{impl['preprocess']}")
        layout = keras.config.image_data_format()
        return model, lambda x: module.preprocess_input(x, data_format=layout)
    from bench import reference_models

    mean = tf.constant([255.0 * m for m in CIFAR_MEAN])
    std = tf.constant([255.0 * s for s in CIFAR_STD])
    normalize = lambda x: (x - mean) / std  # noqa: E731
    if kind == "keras_example_resnet_v2":
        return reference_models.keras_example_resnet_v2(
            impl["depth"], input_shape=shape, classes=classes, widths=impl["widths"],
            classifier_activation=None), normalize
    if kind == "titu1994_densenet":
        return reference_models.titu1994_densenet(
            impl["depth"], input_shape=shape, classes=classes, classifier_activation=None), normalize
    raise ValueError(f"unknown implementation {impl!r}")


class Runner:
    """One configuration: a model, its step function and its timings."""

    def __init__(self, cfg, pixels, labels, size, classes):
        import keras
        import tensorflow as tf

        from keras_preact.models.analysis import count_flops

        self.cfg, self.times, self.error, self.first = cfg, [], None, None
        layout = cfg.get("layout", "channels_last")
        keras.mixed_precision.set_global_policy(cfg["policy"])
        keras.config.set_image_data_format(layout)
        try:
            model, preprocess = build(cfg["impl"], size, classes)
        finally:
            keras.mixed_precision.set_global_policy("float32")
            keras.config.set_image_data_format("channels_last")
        self.model = model
        self.params = int(sum(int(tf.size(v)) for v in model.trainable_variables))
        self.multiply_adds = count_flops(model) if layout == "channels_last" else None
        images = tf.constant(pixels)
        if layout == "channels_first":
            images = tf.transpose(images, [0, 3, 1, 2])
        y = tf.constant(labels)
        if cfg["harness"] == "keras_fit":
            # As a keras.applications user trains: preprocess_input in the input pipeline
            # (so not timed here), then compile() with Keras' defaults and fit/train_on_batch.
            x = tf.constant(preprocess(tf.cast(images, tf.float32)))
            model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          jit_compile=cfg["jit"])
            self.resolved_jit = bool(model.jit_compile)
            self._step = lambda: model.train_on_batch(x, y)
            return
        # The training package's step (keras_preact/training/loop.py, one replica): uint8 pixels in.
        opt = keras.optimizers.SGD(0.01, momentum=0.9)
        opt.build(model.trainable_variables)
        kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]

        def grads_fn(images, labels):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(preprocess(tf.cast(images, tf.float32)), training=True), tf.float32)
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
                loss += 1e-4 * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])
            return tape.gradient(loss, model.trainable_variables), loss

        if cfg["jit"]:
            grads_fn = tf.function(grads_fn, jit_compile=True)

        @tf.function
        def step(images, labels):
            grads, loss = grads_fn(images, labels)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        self.resolved_jit = bool(cfg["jit"])
        self._step = lambda: step(images, y).numpy()

    def run(self, timed):
        if self.error:
            return
        start = time.perf_counter()
        try:
            self._step()
        except Exception as error:  # noqa: BLE001 - e.g. channels_first has no CPU kernel
            self.error = error_text(error)
            return
        elapsed = time.perf_counter() - start
        if timed:
            self.times.append(elapsed)
        elif self.first is None:
            self.first = elapsed


def worker(payload):
    import numpy as np

    size, batch, classes = payload["size"], payload["batch"], payload["classes"]
    rng = np.random.RandomState(0)
    pixels = rng.randint(0, 256, (batch, size, size, 3)).astype("uint8")
    labels = rng.randint(0, classes, (batch,)).astype("int64")
    runners = []
    for cfg in payload["configs"]:
        try:
            runners.append(Runner(cfg, pixels, labels, size, classes))
        except Exception as error:  # noqa: BLE001 - report it in the table, go on
            bad = Runner.__new__(Runner)
            bad.cfg, bad.times, bad.first, bad.model = cfg, [], None, None
            bad.error = error_text(error)
            bad.params = bad.multiply_adds = bad.resolved_jit = None
            runners.append(bad)
    for runner in runners:
        for _ in range(payload["warmup"]):
            runner.run(timed=False)
    for r in range(payload["rounds"]):
        k = r % len(runners)
        for runner in runners[k:] + runners[:k]:
            before = len(runner.times)
            for _ in range(payload["steps"]):
                runner.run(timed=True)
            runner.round_slices = getattr(runner, "round_slices", []) + [(before, len(runner.times))]
    out = []
    for runner in runners:
        row = {**runner.cfg, "params": runner.params, "multiply_adds": runner.multiply_adds,
               "resolved_jit": runner.resolved_jit, "first_step_seconds": runner.first,
               "step_seconds": runner.times, "error": runner.error}
        row["round_medians"] = [common.median(runner.times[a:b]) if b > a else None
                                for a, b in getattr(runner, "round_slices", [])]
        if runner.times and not runner.error:
            row["median_step_seconds"] = common.median(runner.times)
            row["images_per_second"] = batch / row["median_step_seconds"]
        out.append(row)
    return {"pair": payload["pair"], "title": payload["title"], "size": size, "batch": batch, "configs": out,
            "loadavg": common.loadavg()}


# ----------------------------------------------------------------------------- parent side


def our_settings(recipe):
    """(dtype policy, jit_compile) of a training recipe: what keras-preact trains with."""
    from keras_preact.training import configs

    cfg = configs.get_config(recipe)
    return ("float32" if cfg.mixed_precision == "none" else cfg.mixed_precision), bool(cfg.jit_compile)


def short_policy(policy):
    return {"float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}.get(policy, policy)


def plan(name, pair, quick, sweep):
    """The configurations measured for one pair."""
    spec = dict(pair, **pair["quick"]) if quick else dict(pair)
    policy, jit = our_settings(pair["recipe"])
    configs = [
        {"role": "theirs", "impl": spec["theirs"], "harness": "keras_fit", "policy": "float32", "jit": "auto"},
        {"role": "ours", "impl": spec["ours"], "harness": "trainer", "policy": policy, "jit": jit},
        {"role": "control", "impl": spec["control"], "harness": "trainer", "policy": policy, "jit": jit},
    ]
    if quick:
        configs[0]["jit"] = False  # "auto" is XLA on a GPU machine: too slow a compile for a smoke test
    if sweep:
        for p, j in SWEEP_OPTIONS:
            if (p, j) != (policy, jit):
                configs.append({"role": "ours_option", "impl": spec["ours"], "harness": "trainer",
                                "policy": p, "jit": j})
        configs.append({"role": "theirs_option", "impl": spec["theirs"], "harness": "keras_fit",
                        "policy": "float32", "jit": True})
        if spec["theirs"]["kind"] == "applications":
            for jit_option in ("auto", True):
                configs.append({"role": "theirs_option", "impl": spec["theirs"], "harness": "keras_fit",
                                "policy": "float32", "jit": jit_option, "layout": "channels_first"})
    return spec, configs


def describe(cfg):
    impl = cfg["impl"]
    if impl["kind"] == "keras_preact":
        who = f"keras_preact {impl.get('name') or impl['builder'] + str(impl['kwargs'])}"
    elif impl["kind"] == "applications":
        who = f"keras.applications.{impl['name']}"
    elif impl["kind"] == "keras_example_resnet_v2":
        who = f"Keras example resnet_v2({impl['depth']})" + (" paper widths" if impl["widths"] == "paper" else "")
    else:
        who = f"titu1994 DenseNet-BC-{impl['depth']}"
    jit = cfg.get("resolved_jit", cfg["jit"])
    how = ("compile()+train_on_batch" if cfg["harness"] == "keras_fit" else "keras-preact step")
    how += f", {short_policy(cfg['policy'])}" + (", XLA" if jit else ", no XLA")
    if cfg["jit"] == "auto":
        how += " (Keras default)"
    if cfg.get("layout") == "channels_first":
        how += ", channels_first"
    return who, how


def round_ratios(ours, other):
    """ours' speed over other's per round (other's time / ours' time)."""
    pairs = zip(ours.get("round_medians", []), other.get("round_medians", []))
    return [b / a for a, b in pairs if a and b]


def summarize(result):
    """Add ratios to every configuration of a pair result; return the pair summary."""
    rows = result["configs"]
    ours = next(r for r in rows if r["role"] == "ours")
    for r in rows:
        if r.get("images_per_second") and ours.get("images_per_second"):
            r["ours_over_this"] = ours["images_per_second"] / r["images_per_second"]
            rr = round_ratios(ours, r)
            r["ours_over_this_round_range"] = [min(rr), max(rr)] if rr else None
    theirs = next(r for r in rows if r["role"] == "theirs")
    control = next(r for r in rows if r["role"] == "control")
    summary = {"pair": result["pair"], "title": result["title"], "ours_over_theirs": theirs.get("ours_over_this"),
               "ours_over_theirs_range": theirs.get("ours_over_this_round_range"),
               "ours_over_control": control.get("ours_over_this"),
               "ours_over_control_range": control.get("ours_over_this_round_range")}
    return summary


def recommend(result, margin):
    """The fastest of our settings that beats float32-without-XLA by > margin in every round."""
    rows = [r for r in result["configs"] if r["role"] in ("ours", "ours_option") and r.get("images_per_second")]
    base = next((r for r in rows if r["policy"] == "float32" and not r["jit"]), None)
    if base is None:
        return None
    best = base
    for r in rows:
        per_round = round_ratios(r, base)  # base time / r time, per round
        if per_round and min(per_round) > 1 + margin and r["images_per_second"] > best["images_per_second"]:
            best = r
    return {"policy": best["policy"], "jit_compile": bool(best["jit"]),
            "speedup_over_float32": best["images_per_second"] / base["images_per_second"]}


def cell_ratio(r):
    if r.get("error"):
        return "–"
    if r["role"] == "ours":
        return "1.00x (ours)"
    value = r.get("ours_over_this")
    rng = r.get("ours_over_this_round_range")
    text = common.ratio(value)
    return text + (f" ({rng[0]:.2f}–{rng[1]:.2f})" if rng else "")


def derive(result, margin=None):
    """Recompute, in place, every figure of a result that is not a raw measurement, from its raw
    step times: each configuration's round medians, median step and images/s, its ratio to ours and
    the per-round range of that ratio, the pair summaries and (with --sweep) the recommendation."""
    margin = command_margin(result) if margin is None else margin
    steps = result["steps"]
    summaries = []
    for res in result["pairs"]:
        if "configs" not in res:
            continue
        for r in res["configs"]:
            times = r.get("step_seconds") or []
            r["round_medians"] = common.round_medians(times, result["rounds"], steps)
            for key in ("median_step_seconds", "images_per_second", "ours_over_this",
                        "ours_over_this_round_range"):
                r.pop(key, None)
            if times and not r.get("error"):
                r["median_step_seconds"] = common.median(times)
                r["images_per_second"] = res["batch"] / r["median_step_seconds"]
        summaries.append(summarize(res))
        if result.get("sweep"):
            res["recommended"] = recommend(res, margin)
    result["summary"] = summaries
    return result


def command_margin(result):
    """--margin of the command that wrote a result (0.05 when not given)."""
    return common.command_option(result, "--margin", 0.05)


def markdown(result, margin=None):
    """The table of a result, recomputed from its raw step times (see derive); the caption's end load
    is loadavg_end's 1-minute figure."""
    import copy

    result = derive(copy.deepcopy(result), margin)
    results, summaries = result["pairs"], result["summary"]
    margin = command_margin(result) if margin is None else margin
    load = f"{result['loadavg_start'][0]:.1f} -> {result['loadavg_end'][0]:.1f}"
    lines = [f"Training-step throughput, {common.machine_line(result['machine'])}; median step of "
             f"{result['rounds']} rounds x {result['steps']} step(s) after {result['warmup']} warm-up step(s), "
             f"configurations alternating in one process per model; load average {load}; {result['date'][:10]}."
             + (" QUICK smoke run: tiny inputs and models, not a measurement." if result.get("quick") else ""), ""]
    table = []
    for res in results:
        if "error" in res and "configs" not in res:
            table.append([res["title"], "–", f"failed: {res['error']}", "–", "–", "–", "–"])
            continue
        for r in res["configs"]:
            who, how = describe(r)
            if r.get("error"):
                table.append([res["title"], who, how, "–", "–", f"error: {r['error'][:120]}", "–"])
                continue
            macs = f"{r['multiply_adds'] / 1e6:,.0f}M" if r.get("multiply_adds") else "–"
            table.append([f"{res['title']}, batch {res['batch']}", who, how, macs,
                          common.fmt(r["median_step_seconds"] * 1000, 0), common.fmt(r["images_per_second"], 1),
                          cell_ratio(r)])
    lines.append(common.markdown_table(
        ["model", "implementation", "how it runs", "multiply-adds/img", "ms/step", "images/s",
         "ours ÷ this (per-round range)"], table))
    lines += ["", common.markdown_table(
        ["model", "ours ÷ theirs (each with its defaults)", "ours ÷ control (same step, same settings)",
         "ours >= 1.0x?"],
        [[s["title"], _ratio_text(s["ours_over_theirs"], s["ours_over_theirs_range"]),
          _ratio_text(s["ours_over_control"], s["ours_over_control_range"]), _verdict(s)] for s in summaries])]
    recs = [(res["title"], res.get("recommended")) for res in results if res.get("recommended")]
    if recs:
        lines += ["", "Recommended CPU training settings (fastest setting that beats float32 without XLA by "
                  f"more than {margin:.0%} in every round):", ""]
        lines.append(common.markdown_table(
            ["model", "mixed_precision", "jit_compile", "speed-up over float32, no XLA"],
            [[p, "none" if r["policy"] == "float32" else r["policy"], r["jit_compile"],
              common.ratio(r["speedup_over_float32"])] for p, r in recs]))
    return "\n".join(lines)


def _ratio_text(value, rng):
    if value is None:
        return "–"
    return common.ratio(value) + (f" ({rng[0]:.2f}–{rng[1]:.2f})" if rng else "")


def _verdict(s):
    value, rng = s["ours_over_theirs"], s["ours_over_theirs_range"]
    if value is None:
        return "not measured"
    if rng and rng[0] >= 1.0:
        return "yes, in every round"
    if value >= 1.0:
        return "yes (median); within noise in some rounds"
    if rng and rng[1] >= 1.0:
        return "no (median), within noise"
    return f"NO: {1 - value:.0%} slower"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--pairs", default=",".join(PAIRS), help=f"comma-separated, from {', '.join(PAIRS)}")
    parser.add_argument("--sweep", action="store_true", help="also every dtype policy x XLA setting")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5; 3 with --sweep)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per configuration per round (2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per configuration first (2)")
    parser.add_argument("--batch", type=int, default=None, help="override every pair's batch size")
    parser.add_argument("--margin", type=float, default=0.05, help="--sweep: required speed-up to recommend")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny models and inputs, 1 step")
    parser.add_argument("--out", default="bench/results/train_speed.json")
    args = parser.parse_args(argv)
    if args.worker:
        import json

        print(json.dumps(worker(json.loads(args.worker))))
        return
    names = [n for n in args.pairs.split(",") if n]
    if args.quick and args.pairs == parser.get_default("pairs"):
        names = list(QUICK_PAIRS)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3 if args.sweep else 5
    if args.steps is None:
        args.steps = 1 if args.quick else 2
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    unknown = [n for n in names if n not in PAIRS]
    if unknown:
        parser.error(f"unknown pairs {unknown}; valid: {', '.join(PAIRS)}")
    result = common.result_header(MODULE, args.quick)
    result.update({"rounds": args.rounds, "steps": args.steps, "warmup": args.warmup, "sweep": args.sweep})
    results = []
    for name in names:
        spec, configs = plan(name, PAIRS[name], args.quick, args.sweep)
        batch = args.batch or spec["batch"]
        payload = {"pair": name, "title": spec["title"], "size": spec["size"], "batch": batch,
                   "classes": spec["classes"],
                   "configs": configs, "rounds": args.rounds, "steps": args.steps, "warmup": args.warmup}
        print(f"measuring {name} ({len(configs)} configurations)...", file=sys.stderr, flush=True)
        res = common.run_worker(MODULE, payload)
        res.setdefault("pair", name)
        res.setdefault("title", spec["title"])
        results.append(res)
    result["pairs"] = results
    derive(result, args.margin)
    result["loadavg_end"] = common.loadavg()
    common.finish(result, markdown(result, args.margin), args.out)


if __name__ == "__main__":
    main()

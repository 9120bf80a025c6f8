r"""Where keras-preact's CPU training step spends its time: a TensorFlow profiler trace of
the trainer's step, parsed into a breakdown table, beside the same table for the plain
PyTorch reference (torch.profiler).

    python -m bench.profile_step                          # resnetv2_20 and resnetv2_56, batch 128
    python -m bench.profile_step --variant before         # profile one of bench.cpu_training's options
    python -m bench.profile_step --quick                  # smoke run: pre-act ResNet-8, batch 8

How: in a fresh process per model and framework, the step is built as bench/cpu_training.py
builds it (ours: keras_preact.training.loop.Trainer's own step), warmed up, timed without
the profiler (``--timed`` steps: the wall time per step), then ``--profiled`` steps run under
``tf.profiler.experimental`` (host tracer level 3). The trace (``*.xplane.pb``) is read with
TensorFlow's own XPlane protobuf: every executed kernel is an event ``scope/op:OpType`` on
an executor thread, with its duration. Kernels are put in categories by op type and by the
Keras layer their scope names (a conv's output width, kernel size and feature-map size,
batch norm forward / backward, the optimizer's ``sgd/`` ops, the L2 penalty, ...). Two
executor threads run kernels concurrently (inter-op parallelism), so the summed kernel
time exceeds the wall time; the table gives each category's kernel ms per step, its share
of all kernel time, and that share of the measured (unprofiled) step time. The step time
not covered by any kernel (no kernel running on any executor thread) is the framework's
own overhead: Python, tf.function dispatch, executor scheduling and host synchronization.
The input pipeline (``IteratorGetNext``) is its own row.

PyTorch (``--no-torch`` to skip; with ``OMP_WAIT_POLICY=PASSIVE`` as bench.cpu_training's
PyTorch rows): ``torch.profiler`` over the same number of steps, each
ATen operator's *self* CPU time put in the same categories (PyTorch's mkldnn convolution
backward computes the input and weight gradients in one kernel, so its two TensorFlow
rows are compared with one).
"""

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common  # noqa: E402

MODULE = "bench.profile_step"
DEFAULT_MODELS = ("resnetv2_20", "resnetv2_56")

# The rows of the comparison table, in order; the TensorFlow conv rows are split further by width.
CATEGORIES = (
    "conv forward", "conv backprop-input", "conv backprop-filter", "conv backward (input + filter)",
    "batch norm forward", "batch norm backward", "relu forward", "relu backward", "residual add / concat",
    "gradient accumulation (AddN)", "optimizer update (SGD momentum)", "weight decay (L2 penalty)",
    "loss, metrics", "input normalization (in the model)", "head (pooling + dense)",
    "casts, copies, pads, layout", "input pipeline (IteratorGetNext)", "other kernels",
)


# ============================================================================ TensorFlow


def layer_table(model):
    """{layer name: (kind, description)} for the layers whose scope a kernel may name."""
    import keras

    table = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2D):
            shape = layer.output.shape
            k = layer.kernel_size[0]
            table[layer.name] = ("conv", f"{k}x{k} conv, {layer.filters} ch out, {shape[1]}x{shape[2]}")
        elif isinstance(layer, keras.layers.BatchNormalization):
            table[layer.name] = ("bn", None)
        elif isinstance(layer, (keras.layers.Add, keras.layers.Concatenate)):
            table[layer.name] = ("merge", None)
        elif isinstance(layer, (keras.layers.GlobalAveragePooling2D, keras.layers.AveragePooling2D,
                                keras.layers.Dense)):
            table[layer.name] = ("head", None)
        elif layer.name == "preprocessing":
            table[layer.name] = ("preprocessing", None)
        elif isinstance(layer, keras.layers.Activation):
            table[layer.name] = ("relu", None)
    return table


_SUFFIX = re.compile(r"_\d+$")


def scope_layer(scope, layers):
    """The Keras layer a kernel's scope names ('resnetv2_20_1/conv2_block1_1_conv_1/convolution')."""
    for part in scope.split("/"):
        for candidate in (part, _SUFFIX.sub("", part)):
            if candidate in layers:
                return candidate
    return None


def classify_tf(name, op_type, layers):
    """(category, detail) of one executed TensorFlow kernel."""
    scope = name
    backward = scope.startswith("gradient_tape/")
    if scope.startswith(("sgd/", "SGD/")) or op_type.startswith("ResourceApply") or "/sgd/" in scope:
        return "optimizer update (SGD momentum)", None
    if "L2Loss" in scope or op_type == "L2Loss":
        return "weight decay (L2 penalty)", None
    if op_type == "IteratorGetNext":
        return "input pipeline (IteratorGetNext)", None
    layer = scope_layer(scope, layers)
    kind, detail = layers.get(layer, (None, None))
    if "Conv2DBackpropInput" in op_type:
        return "conv backprop-input", detail
    if "Conv2DBackpropFilter" in op_type:
        return "conv backprop-filter", detail
    if "Conv2D" in op_type:
        return "conv forward", detail
    if "FusedBatchNorm" in op_type:
        return ("batch norm backward" if "Grad" in op_type else "batch norm forward"), None
    if kind == "bn":
        if op_type in ("AssignVariableOp", "ReadVariableOp"):
            return "batch norm forward", None  # moving statistics
        return ("batch norm backward" if backward else "batch norm forward"), None
    if op_type == "ReluGrad":
        return "relu backward", None
    if op_type == "Relu":
        return "relu forward", None
    if kind == "merge" or op_type in ("ConcatV2", "_MklConcatV2"):
        return "residual add / concat", None
    if kind == "preprocessing":
        return "input normalization (in the model)", None
    if kind == "head" or "MatMul" in op_type:
        return "head (pooling + dense)", None
    if op_type == "AddN":
        return "gradient accumulation (AddN)", None
    if op_type in ("Cast", "Transpose", "_MklTranspose", "Pad", "Slice", "Identity", "_MklToTf",
                   "_MklInputConversion", "Reshape", "Tile", "ZerosLike", "Fill", "StridedSlice", "Pack"):
        return "casts, copies, pads, layout", None
    if "softmax" in scope.lower() or "cross_entropy" in scope.lower() or op_type in (
            "SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits", "OneHot", "ArgMax", "Equal"):
        return "loss, metrics", None
    return "other kernels", None


def parse_xplane(path, layers, steps):
    """Per-category kernel ms per step, busy fraction and the raw per-op-type totals."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    plane = next(p for p in space.planes if p.name.startswith("/host:CPU"))
    meta = plane.event_metadata
    categories = collections.Counter()
    conv_detail = collections.Counter()
    op_types = collections.Counter()
    intervals = []
    first, last = None, None
    for line in plane.lines:
        compute = line.name.startswith("tf_Compute") or line.name.startswith("tf_data_iterator_get_next")
        if not compute:
            continue
        base = line.timestamp_ns * 1000
        for event in line.events:
            name = meta[event.metadata_id].name
            if line.name.startswith("tf_data_iterator_get_next"):
                if name == "IteratorGetNextOp::DoCompute":
                    ms = event.duration_ps / 1e9
                    categories["input pipeline (IteratorGetNext)"] += ms
                continue
            if ":" not in name or name.startswith(("Threadpool", "ExecutorState", "MemoryAllocation",
                                                     "MemoryDeallocation")):
                continue
            scope, op_type = name.rsplit(":", 1)
            ms = event.duration_ps / 1e9
            category, detail = classify_tf(scope, op_type, layers)
            categories[category] += ms
            op_types[op_type] += ms
            if detail and category.startswith("conv"):
                conv_detail[(category, detail)] += ms
            start = base + event.offset_ps
            intervals.append((start, start + event.duration_ps))
            first = start if first is None else min(first, start)
            last = start + event.duration_ps if last is None else max(last, start + event.duration_ps)
    intervals.sort()
    busy, end = 0, None
    for a, b in intervals:
        if end is None or a > end:
            busy += b - a
            end = b
        elif b > end:
            busy += b - end
            end = b
    return {"kernel_ms_per_step": {k: v / steps for k, v in categories.items()},
            "conv_ms_per_step": {f"{c}|{d}": v / steps for (c, d), v in conv_detail.items()},
            "op_type_ms_per_step": {k: v / steps for k, v in op_types.most_common(40)},
            "busy_ms_per_step": busy / 1e9 / steps,
            "span_ms_per_step": ((last - first) / 1e9 / steps) if intervals else None}


def tf_worker(payload):
    import tensorflow as tf

    from bench import cpu_training

    model = payload["model"]
    data = cpu_training.Data(payload["batch"], 32, 10)
    runner = cpu_training.runner_class(payload["variant"])(payload["variant"], model, data, tempfile.mkdtemp())
    runner.run(payload["warmup"])
    times = runner.run(payload["timed"])
    layers = layer_table(runner.model)
    logdir = tempfile.mkdtemp(prefix="profile_step_")
    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=3, python_tracer_level=0,
                                                       device_tracer_level=0)
    tf.profiler.experimental.start(logdir, options=options)
    t0 = time.perf_counter()
    runner.run(payload["profiled"])
    profiled_wall = (time.perf_counter() - t0) / payload["profiled"]
    tf.profiler.experimental.stop()
    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise RuntimeError(f"the profiler wrote no .xplane.pb under {logdir}")
    parsed = parse_xplane(paths[0], layers, payload["profiled"])
    return {"framework": "tensorflow", "variant": payload["variant"], "source": getattr(runner, "source", None),
            "step_ms": 1000 * common.median(times), "step_ms_all": [1000 * t for t in times],
            "profiled_step_ms": 1000 * profiled_wall, **parsed}


# ============================================================================ PyTorch


def classify_torch(op):
    o = op.lower()
    if "convolution_backward" in o or "convolution_backward" in o.replace("mkldnn_", ""):
        return "conv backward (input + filter)"
    if "conv" in o and "backward" not in o:
        return "conv forward"
    if "batch_norm" in o:
        return "batch norm backward" if "backward" in o else "batch norm forward"
    if "threshold_backward" in o:
        return "relu backward"
    if "relu" in o:
        return "relu forward"
    if "_foreach" in o or "optimizer" in o or o.startswith("optimizer.step"):
        return "optimizer update (SGD momentum)"
    if o in ("aten::cat", "aten::_cat"):
        return "residual add / concat"
    if "nll_loss" in o or "log_softmax" in o or "cross_entropy" in o or o in ("aten::item", "aten::_local_scalar_dense"):
        return "loss, metrics"
    if o in ("aten::addmm", "aten::mm", "aten::mean", "aten::sum", "aten::linear", "aten::t"):
        return "head (pooling + dense)"
    if o in ("aten::sub", "aten::div"):
        return "input normalization (in the model)"
    if o in ("aten::add", "aten::add_"):
        return "residual add / concat"
    if any(k in o for k in ("copy", "contiguous", "clone", "_to_copy", "aten::to", "empty", "zero", "fill", "view",
                            "permute", "as_strided", "expand", "transpose", "reshape")):
        return "casts, copies, pads, layout"
    return "other kernels"


def torch_worker(payload):
    import torch

    from bench import cpu_training

    model = payload["model"]
    data = cpu_training.Data(payload["batch"], 32, 10)
    runner = cpu_training.TorchRunner("torch", model, data, None)
    runner.run(payload["warmup"])
    times = runner.run(payload["timed"])
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        runner.run(payload["profiled"])
        profiled_wall = (time.perf_counter() - t0) / payload["profiled"]
    categories = collections.Counter()
    ops = collections.Counter()
    for evt in prof.key_averages():
        ms = evt.self_cpu_time_total / 1000.0
        categories[classify_torch(evt.key)] += ms
        ops[evt.key] += ms
    steps = payload["profiled"]
    return {"framework": "torch", "variant": "torch", "step_ms": 1000 * common.median(times),
            "step_ms_all": [1000 * t for t in times], "profiled_step_ms": 1000 * profiled_wall,
            "kernel_ms_per_step": {k: v / steps for k, v in categories.items()},
            "op_type_ms_per_step": {k: v / steps for k, v in ops.most_common(40)}}


def worker(payload):
    if payload["framework"] == "torch":
        return torch_worker(payload)
    return tf_worker(payload)


# ============================================================================ parent


def summarize(res):
    """Add each category's share of kernel time and of the step, and the overhead row."""
    kernel = res["kernel_ms_per_step"]
    total = sum(v for k, v in kernel.items() if k != "input pipeline (IteratorGetNext)")
    res["kernel_total_ms_per_step"] = total
    if res["framework"] == "tensorflow" and res.get("busy_ms_per_step"):
        # The unprofiled step, split in proportion: busy time by kernel shares, the rest overhead.
        busy_fraction = min(1.0, res["busy_ms_per_step"] / res["profiled_step_ms"])
        res["busy_fraction"] = busy_fraction
        res["concurrency"] = total / res["busy_ms_per_step"]
    else:
        # torch.profiler's self times are on the calling thread; intra-op threads are inside them.
        busy_fraction = min(1.0, total / res["profiled_step_ms"]) if res.get("profiled_step_ms") else 1.0
        res["busy_fraction"] = busy_fraction
    step = res["step_ms"]
    res["share_of_step_ms"] = {k: (v / total) * busy_fraction * step for k, v in kernel.items() if total}
    res["overhead_ms"] = (1.0 - busy_fraction) * step
    return res


def fmt_ms(v):
    return "–" if v is None else f"{v:,.1f}"


def derive(result):
    """Recompute, in place, every figure of a result from its raw measurements: each profile's step
    (the median of its unprofiled steps, step_ms_all) and, from the profiler's kernel times per
    category, busy time and profiled step, the shares, concurrency and overhead (summarize)."""
    for m in result["models"]:
        for framework in ("tensorflow", "torch"):
            res = m.get(framework)
            if res and not res.get("error") and res.get("step_ms_all"):
                res["step_ms"] = common.median(res["step_ms_all"])
                summarize(res)
    return result


def markdown(result):
    """The tables of a result, recomputed from its raw measurements (see derive); the caption's end
    load is loadavg_end's."""
    import copy

    result = derive(copy.deepcopy(result))
    lines = [f"Where the CPU training step's time goes, {common.machine_line(result['machine'])}; batch "
             f"{result['batch']}, float32; {result['profiled']} profiled step(s) after {result['warmup']} warm-up and "
             f"{result['timed']} timed step(s); 1-minute load average {result['loadavg_start'][0]:.2f} at start, "
             f"{result['loadavg_end'][0]:.2f} at end; {result['date'][:10]}. TF kernel ms: kernel time per step summed "
             f"over TensorFlow's two executor threads, which run kernels concurrently (so the sum exceeds the "
             f"step, and each kernel is slower than alone); '≈ ms of step': the category's share of kernel time "
             f"times the busy part of the unprofiled step, the figure to compare with PyTorch's self time "
             f"(one op at a time, each using both cores)."
             + (" QUICK smoke run: tiny model and batch, not a measurement." if result.get("quick") else ""), ""]
    for m in result["models"]:
        tf_res = m.get("tensorflow") or {}
        pt = m.get("torch") or {}
        if tf_res.get("error"):
            lines += [f"{m['label']}: TensorFlow profile failed: {tf_res['error']}", ""]
            continue
        lines.append(f"**{m['label']}** ({tf_res.get('variant')}): step {tf_res['step_ms']:,.0f} ms unprofiled "
                     f"({tf_res['profiled_step_ms']:,.0f} ms profiled); kernels busy "
                     f"{100 * tf_res['busy_fraction']:.0f}% of the step, concurrency "
                     f"{tf_res.get('concurrency', 0):.2f}"
                     + (f"; PyTorch step {pt['step_ms']:,.0f} ms" if pt.get("step_ms") else
                        (f"; PyTorch: {pt['error']}" if pt.get("error") else "")) + ".")
        lines.append("")
        rows = []
        tk, pk = tf_res["kernel_ms_per_step"], pt.get("kernel_ms_per_step", {})
        ttotal = tf_res["kernel_total_ms_per_step"]
        shares = tf_res["share_of_step_ms"]
        for cat in CATEGORIES:
            t, p, share = tk.get(cat), pk.get(cat), shares.get(cat)
            if cat == "conv backward (input + filter)":
                t = (tk.get("conv backprop-input") or 0) + (tk.get("conv backprop-filter") or 0) or None
                share = (shares.get("conv backprop-input") or 0) + (shares.get("conv backprop-filter") or 0) or None
            if t is None and p is None:
                continue
            combined = cat == "conv backward (input + filter)"
            rows.append([cat, fmt_ms(t), "–" if t is None or combined else f"{100 * t / ttotal:.1f}%",
                         fmt_ms(share), fmt_ms(p), "–" if not (share and p) else f"{share / p:.2f}x"])
        rows.append(["framework overhead (no kernel running)", "–", "–", fmt_ms(tf_res["overhead_ms"]),
                     fmt_ms(pt.get("overhead_ms")) if pt else "–", "–"])
        rows.append(["**step (unprofiled)**", fmt_ms(ttotal), "100%", fmt_ms(tf_res["step_ms"]),
                     fmt_ms(pt.get("step_ms")), "–" if not pt.get("step_ms") else
                     f"{tf_res['step_ms'] / pt['step_ms']:.2f}x"])
        lines.append(common.markdown_table(
            ["category", "TF kernel ms/step", "% of TF kernel time", "TF ≈ ms of step", "PyTorch self ms/step",
             "TF ≈ ms of step ÷ PyTorch"], rows))
        conv = tf_res.get("conv_ms_per_step") or {}
        if conv:
            details = collections.OrderedDict()
            for key, v in conv.items():
                cat, detail = key.split("|", 1)
                details.setdefault(detail, {})[cat] = v
            crow = []
            for detail, d in sorted(details.items(), key=lambda kv: -sum(kv[1].values())):
                crow.append([detail, fmt_ms(d.get("conv forward")), fmt_ms(d.get("conv backprop-input")),
                             fmt_ms(d.get("conv backprop-filter")), fmt_ms(sum(d.values()))])
            lines += ["", common.markdown_table(
                ["TensorFlow convolutions by layer shape", "forward ms", "backprop-input ms", "backprop-filter ms",
                 "total ms/step"], crow)]
        lines.append("")
    return "\n".join(lines).rstrip()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--variant", default="ours", help="a bench.cpu_training TensorFlow variant (default ours)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (128; 8 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (3; 1 with --quick)")
    parser.add_argument("--timed", type=int, default=None, help="unprofiled timed steps (5; 1 with --quick)")
    parser.add_argument("--profiled", type=int, default=None, help="profiled steps (3; 1 with --quick)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch profile")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from bench import cpu_training

    args.batch = args.batch or (8 if args.quick else 128)
    args.warmup = args.warmup or (1 if args.quick else 3)
    args.timed = args.timed or (1 if args.quick else 5)
    args.profiled = args.profiled or (1 if args.quick else 3)
    if args.out is None:
        suffix = "" if args.variant == "ours" else f"_{args.variant}"
        args.out = f"bench/results/profile_step{suffix}.json"
    if args.quick:
        models = [cpu_training.QUICK_MODEL]
    else:
        models = [dict(cpu_training.MODELS[n], name=n) for n in args.models.split(",")]
    result = common.result_header(MODULE, args.quick)
    result.update({"batch": args.batch, "warmup": args.warmup, "timed": args.timed, "profiled": args.profiled,
                   "variant": args.variant, "models": []})
    use_torch = not args.no_torch and cpu_training.torch_installed()
    for model in models:
        params, macs = cpu_training.model_facts(model)
        model = dict(model, keras_params=params, multiply_adds=macs)
        entry = {"model": model["name"], "label": model.get("label", model["name"])}
        for framework in ("tensorflow", "torch") if use_torch else ("tensorflow",):
            print(f"profiling {entry['label']} ({framework})...", file=sys.stderr, flush=True)
            payload = {"framework": framework, "model": model, "variant": args.variant, "batch": args.batch,
                       "warmup": args.warmup, "timed": args.timed, "profiled": args.profiled}
            env = {"KERAS_BACKEND": "tensorflow"}
            if framework == "torch":
                env["OMP_WAIT_POLICY"] = "PASSIVE"  # as bench.cpu_training's PyTorch rows (see its docstring)
            res = common.run_worker(MODULE, payload, env=env)
            entry[framework] = res if res.get("error") else summarize(res)
        if not use_torch:
            entry["torch"] = {"error": "skipped (--no-torch)" if args.no_torch else "torch not installed"}
        result["models"].append(entry)
    derive(result)
    result["loadavg_end"] = common.loadavg()
    common.finish(result, markdown(result), args.out)


if __name__ == "__main__":
    main()

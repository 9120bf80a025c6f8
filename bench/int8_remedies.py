"""Issue 37, item 4: the documented int8 remedies for ONNX Runtime and OpenVINO, measured side by side.

    python -m bench.int8_remedies --dataset folder:data/cifar10-jpeg                    # ResNetV2-56
    python -m bench.int8_remedies --dataset folder:... --model resnetv2_20_cifar10 --skip_openvino

One zoo model (default resnetv2_56_cifar10) is exported once in float32 (ONNX through
tf2onnx and `quant_pre_process`, as keras_preact/quantization.py does; the OpenVINO IR), and
quantized in several ways on the same `--calibration_count` seeded training-split images
(`quantization.calibration_set`):

ONNX Runtime (`quantize_static`; all: MinMax calibration, Softmax excluded):
- base: what `--int8` did first: QDQ, per-channel int8 weights, uint8 activations (U8S8).
- base_short_names: base with `quantization.shorten_names` (file size only: the same graph).
- conv_gemm_only: `op_types_to_quantize=["Conv", "Gemm"]`: the batch norms' Mul/Add and the
  residual Adds stay float, with Q/DQ only around the convolutions.
- qoperator: `QuantFormat.QOperator` (QLinearConv etc. written out) instead of QDQ.
- s8s8_symmetric: int8 activations, `extra_options={"ActivationSymmetric": True}` (S8S8).
- per_tensor: `per_channel=False` (the docs' fastest CPU setting).
- depthwise: `quantization.affine_to_depthwise_conv` first (each pre-activation batch norm,
  a per-channel Mul + Add ONNX Runtime cannot fold, becomes a depthwise 1x1 Conv), then base.
- depthwise_short_names: depthwise + `shorten_names`: what `--int8` does now.

OpenVINO (`nncf.quantize`): base (default preset "performance", as `--int8`), preset mixed,
ignored_scope types Add and Multiply (no int8 residual adds or batch-norm multiplies), and
base with its XML written without indentation (size only; the IR reads back identically).

For each: the artifact size over the float export's (ONNX: model.onnx; OpenVINO: .xml +
.bin), top-1 on the first `--test_count` test-split images, top-1 agreement with the float
export, and latency ratios float32 / int8 (> 1: int8 faster) at batch 32 and 1, in two
modes, each with the requests of all variants of the runtime interleaved (rotating order)
in this one process and medians taken: wall time with the runtime's default threads (what
a server sees; on a loaded machine very noisy), and CPU time (`time.process_time`) with one
thread, which the other processes on a shared machine disturb far less. The JSON
(bench/results/int8_remedies.json by default) keeps every number, the machine and its
int8 instructions (VNNI, AMX) and the load averages.
"""

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

MODULE = "bench.int8_remedies"
OUT = "bench/results/int8_remedies.json"
NOTE = ("Measured on a shared, loaded 2-core machine (a training run kept most of the CPU; this bench ran under "
        "nice -n 15): absolute times are meaningless, only the ratios of requests interleaved in one process are; "
        "the one-thread CPU-time ratios are the steadier ones (the wall-time ratios of two identical graphs, base and "
        "base_short_names, came out 3.97x and 1.37x at batch 1).")

ONNX_VARIANTS = {
    "base": ({}, False, False, "QDQ, per-channel int8 weights, uint8 activations (U8S8), MinMax: --int8 before"),
    "base_short_names": ({}, False, True, "base, tensor and node names shortened"),
    "conv_gemm_only": ({"op_types_to_quantize": ["Conv", "Gemm"]}, False, False,
                       "op_types_to_quantize Conv, Gemm: batch-norm Mul/Add and residual Add stay float"),
    "qoperator": ({"quant_format": "QOperator"}, False, False, "QuantFormat.QOperator instead of QDQ"),
    "s8s8_symmetric": ({"activation_type": "QInt8", "extra_options": {"ActivationSymmetric": True}}, False, False,
                       "int8 symmetric activations (S8S8)"),
    "per_tensor": ({"per_channel": False}, False, False, "per-tensor weights"),
    "depthwise": ({}, True, False, "pre-activation batch norms (Mul + Add) as depthwise 1x1 Conv, then base"),
    "depthwise_short_names": ({}, True, True, "depthwise + names shortened: --int8 now"),
}
OPENVINO_VARIANTS = {
    "base": "nncf.quantize, preset performance (default): --int8",
    "mixed": "preset mixed (asymmetric activations)",
    "ignore_add_multiply": "ignored_scope types Add, Multiply",
    "base_minified_xml": "base, IR XML written without indentation (size only)",
}


def onnx_kwargs(overrides, softmax):
    from onnxruntime.quantization import QuantFormat, QuantType

    from keras_preact import quantization

    kwargs = {**quantization.onnx_settings(), "nodes_to_exclude": softmax}
    for key, value in overrides.items():
        kwargs[key] = {"quant_format": lambda v: getattr(QuantFormat, v),
                       "activation_type": lambda v: getattr(QuantType, v)}.get(key, lambda v: v)(value)
    return kwargs


def onnx_variants(model, calibration, work):
    """{name: path} of the float ONNX ("float32") and every ONNX_VARIANTS entry."""
    import logging

    import onnx
    from onnxruntime.quantization import CalibrationDataReader, quant_pre_process, quantize_static

    from keras_preact import formats, quantization, runtimes

    logging.getLogger("root").setLevel(logging.ERROR)
    images = calibration.images

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([images[i:i + 32] for i in range(0, len(images), 32)])

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {formats.INPUT_NAME: batch}

    paths = {"float32": formats.export_onnx(runtimes.pixel_model(model), work / "float32.onnx")}
    prepared = work / "prepared.onnx"
    quant_pre_process(str(paths["float32"]), str(prepared), skip_symbolic_shape=True)
    depthwise = work / "prepared_depthwise.onnx"
    graph = onnx.load(str(prepared))
    rewritten = quantization.affine_to_depthwise_conv(graph)
    onnx.save(graph, str(depthwise))
    softmax = [n.name for n in graph.graph.node if n.op_type == "Softmax"]
    for name, (overrides, rewrite, short, _) in ONNX_VARIANTS.items():
        path = work / f"{name}.onnx"
        quantize_static(str(depthwise if rewrite else prepared), str(path), Reader(),
                        **onnx_kwargs(overrides, softmax))
        if short:
            quantized = onnx.load(str(path))
            quantization.shorten_names(quantized)
            onnx.save(quantized, str(path))
        paths[name] = path
        print(f"onnx {name}: quantized", file=sys.stderr, flush=True)
    return paths, rewritten


def onnx_sessions(paths, threads):
    import onnxruntime

    def session(path):
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    from keras_preact import formats

    return {name: (lambda s: lambda x: s.run(None, {formats.INPUT_NAME: x})[0])(session(path))
            for name, path in paths.items()}


def openvino_variants(model, calibration, work):
    """{name: xml path} of the float IR ("float32") and every OPENVINO_VARIANTS entry."""
    import logging

    import nncf
    import openvino

    from keras_preact import formats, runtimes

    logging.getLogger("nncf").setLevel(logging.ERROR)
    paths = {"float32": formats.export_openvino(runtimes.pixel_model(model), work / "float32.xml")}
    images = calibration.images
    dataset = nncf.Dataset([images[i:i + 1] for i in range(len(images))])
    options = {"base": {}, "mixed": {"preset": nncf.QuantizationPreset.MIXED},
               "ignore_add_multiply": {"ignored_scope": nncf.IgnoredScope(types=["Add", "Multiply"])}}
    for name, kwargs in options.items():
        quantized = nncf.quantize(openvino.Core().read_model(str(paths["float32"])), dataset,
                                  subset_size=len(images), **kwargs)
        paths[name] = work / f"{name}.xml"
        openvino.save_model(quantized, str(paths[name]), compress_to_fp16=False)
        print(f"openvino {name}: quantized", file=sys.stderr, flush=True)
    paths["base_minified_xml"] = work / "base_minified_xml.xml"
    paths["base_minified_xml"].write_text(re.sub(r">\s+<", "><", paths["base"].read_text()))
    shutil.copy(paths["base"].with_suffix(".bin"), paths["base_minified_xml"].with_suffix(".bin"))
    return paths


def openvino_sessions(paths, threads):
    import openvino

    core = openvino.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = {name: core.compile_model(str(path), "CPU", config) for name, path in paths.items()}
    return {name: (lambda c: lambda x: c(x)[0])(c) for name, c in compiled.items()}


def openvino_bytes(path):
    return path.stat().st_size + path.with_suffix(".bin").stat().st_size


def latency(predictors, images, batches, clock):
    """{batch: {name: median seconds}}: requests rotate between the predictors, `clock` times them."""
    keys = list(predictors)
    out = {}
    for batch, iters in batches:
        pixels = images[:batch]
        for key in keys:
            for _ in range(3):
                predictors[key](pixels)
        times = {key: [] for key in keys}
        for i in range(iters):
            for key in keys[i % len(keys):] + keys[:i % len(keys)]:
                start = clock()
                predictors[key](pixels)
                times[key].append(clock() - start)
        out[batch] = {key: common.median(t) for key, t in times.items()}
    return out


def measure(runtime, paths, size, sessions, images, labels, batches):
    """{variant: record} of one runtime: size, accuracy, latency ratios (float32 / variant)."""
    predictors = sessions(paths, 0)
    probabilities = {name: np.concatenate([np.asarray(p(images[i:i + 250]), np.float32)
                                           for i in range(0, len(images), 250)])
                     for name, p in predictors.items()}
    reference = probabilities["float32"].argmax(-1)
    records = {}
    for name in paths:
        top1 = probabilities[name].argmax(-1)
        records[name] = {"bytes": size(paths[name]), "size_ratio": round(size(paths[name]) / size(paths["float32"]), 3),
                         "top1": round(float((top1 == labels).mean()), 4),
                         "top1_agreement_with_float32": round(float((top1 == reference).mean()), 4)}
    modes = {"wall_default_threads": (predictors, time.perf_counter),
             "cpu_time_one_thread": (sessions(paths, 1), time.process_time)}
    for mode, (runners, clock) in modes.items():
        start = time.perf_counter()
        medians = latency(runners, images, batches, clock)
        for batch, by_name in medians.items():
            for name, seconds in by_name.items():
                records[name].setdefault(mode, {})[f"batch{batch}"] = {
                    "median_ms": round(1000 * seconds, 3),
                    "float32_over_int8": round(by_name["float32"] / seconds, 3)}
        print(f"{runtime} {mode}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return records


def markdown(result):
    rows = []
    for runtime, variants in result["runtimes"].items():
        for name, r in variants.items():
            if name == "float32":
                continue
            speed = [r.get(mode, {}).get(f"batch{b}", {}).get("float32_over_int8")
                     for mode in ("cpu_time_one_thread", "wall_default_threads") for b in (32, 1)]
            rows.append([runtime, name, f"{r['size_ratio']:.3f}", f"{100 * r['top1']:.2f}",
                         f"{100 * r['top1_agreement_with_float32']:.2f}", *(common.ratio(s) for s in speed),
                         result["descriptions"][runtime][name]])
        f32 = variants["float32"]
        rows.append([runtime, "float32", "1.000", f"{100 * f32['top1']:.2f}", "100.00", "1.00x", "1.00x", "1.00x",
                     "1.00x", f"{f32['bytes']} bytes"])
    flags = ", ".join(result["int8_instructions"]) or "none"
    return "\n".join([
        f"int8 remedies on {result['model']}: {result['test_count']} {result['split']} images of {result['dataset']}, "
        f"{result['calibration']['count']} calibration images (train split, seed {result['calibration']['seed']}). "
        f"{common.machine_line(result['machine'])}; int8 instructions: {flags}. {NOTE}", "",
        common.markdown_table(["runtime", "variant", "size / float32", "top-1 %", "agrees with float32 %",
                               "b32 CPU 1 thr", "b1 CPU 1 thr", "b32 wall", "b1 wall", "what"], rows)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnetv2_56_cifar10")
    parser.add_argument("--dataset", required=True, help="folder:PATH with train/ and test/ (CIFAR-10 JPEG copy)")
    parser.add_argument("--calibration_count", type=int, default=256)
    parser.add_argument("--test_count", type=int, default=2000)
    parser.add_argument("--iters32", type=int, default=20)
    parser.add_argument("--iters1", type=int, default=60)
    parser.add_argument("--skip_openvino", action="store_true")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args(argv)

    from bench.runtime_cards import int8_instructions, load_split
    from keras_preact import data, quantization, zoo

    result = common.result_header(MODULE, quick=False)
    card = zoo.get_card(args.model)
    model = zoo.load_model(args.model)
    height, width, _ = card["input"]["shape"]
    calibration = quantization.calibration_set(args.dataset, height=height, width=width,
                                               count=args.calibration_count)
    images, labels = load_split(args.dataset, card["class_names"], "test", args.test_count)
    batches = ((32, args.iters32), (1, args.iters1))
    result.update({"model": args.model, "dataset": data.portable_dataset(args.dataset), "split": "test",
                   "test_count": int(len(labels)), "calibration": calibration.record,
                   "int8_instructions": int8_instructions(), "note": NOTE,
                   "batches": {f"batch{b}": {"requests_per_variant": n} for b, n in batches},
                   "descriptions": {"onnx": {k: v[3] for k, v in ONNX_VARIANTS.items()},
                                    "openvino": dict(OPENVINO_VARIANTS)},
                   "runtimes": {}})
    with tempfile.TemporaryDirectory(prefix="int8_remedies_") as work:
        work = Path(work)
        (work / "onnx").mkdir()
        paths, rewritten = onnx_variants(model, calibration, work / "onnx")
        result["onnx_depthwise_rewrites"] = rewritten
        result["runtimes"]["onnx"] = measure("onnx", paths, lambda p: Path(p).stat().st_size, onnx_sessions,
                                             images, labels, batches)
        if not args.skip_openvino:
            (work / "openvino").mkdir()
            paths = openvino_variants(model, calibration, work / "openvino")
            result["runtimes"]["openvino"] = measure("openvino", paths, openvino_bytes, openvino_sessions,
                                                     images, labels, batches)
    versions = {name: common._version(name) for name in ("onnxruntime", "onnx", "openvino", "nncf")}
    result["machine"]["versions"].update({k: v for k, v in versions.items() if v})
    common.finish(result, markdown(result), args.out)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())

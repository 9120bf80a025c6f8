"""BENCHMARKS.md's prose: every measured figure outside the result blocks, recomputed.

The result blocks are re-rendered from bench/results/*.json by tests/test_bench.py
(`python -m bench.report --check`). The text around them quotes figures too: ratios, spans
of ratios across models, step times, shares of a step, loads. Each check below recomputes the
sentences that quote them from the raw measurements in the committed JSON files (the step
times of every round, the profiler's kernel times, the run lists; not the ratios the benches
stored beside them), from the registry's parameter counts, or from the source that defines a
rule or a threshold. test_every_prose_figure_is_checked then takes every figure with a unit
(x, %, ms, s, min, GiB, MB, GFLOP/s, images/s, points, params, ...) and every decimal number
out of the prose, removes those the checks produced and those the allow-lists below name as
not measurements (targets, rules, estimates, quotes of an issue), and fails on any that is left:
a figure added or changed in the prose without a check fails the default test run.
"""

import json
import pathlib
import re
import statistics

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# --- reading BENCHMARKS.md -------------------------------------------------------------------------

def _doc():
    return (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")


def _prose():
    """BENCHMARKS.md without its result blocks and without the 'about' column of the commands
    table (how long each command runs: an estimate to plan by, not a result), whitespace collapsed."""
    from bench.report import BLOCK

    text = BLOCK.sub("\n\n", _doc())
    head, rest = text.split("\n## Commands\n", 1)
    commands, tail = rest.split("\n## ", 1)
    commands = re.sub(r"^(\| [^|]+ \| [^|]+ \|) [^|]+ \|$", r"\1 (estimate) |", commands, flags=re.M)
    return " ".join(f"{head}\n## Commands\n{commands}\n## {tail}".split())


def _json(name):
    return json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))


# --- formatting, as the prose writes figures --------------------------------------------------------

def _f(value, digits=2):
    return f"{value:.{digits}f}"


def _span(values, digits=2):
    values = list(values)
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def _median(values):
    return statistics.median(values)


# --- the benches' measurements, recomputed from their raw step times --------------------------------

def _pairs(bench):
    return {p["pair"]: p for p in bench["pairs"]}


def _config(pair, role, **fields):
    found = [c for c in pair["configs"] if c["role"] == role and all(c.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (pair["pair"], role, fields, len(found))
    return found[0]


def _speed(base, other):
    """How fast `base` runs relative to `other` (other's median step over base's, in images/s
    where a row of cpu_training runs another batch), with the per-round range of that ratio: the
    convention of every 'ours ÷ this' column."""
    scale = base.get("batch", 1) / other.get("batch", 1)
    ratio = _median(other["step_seconds"]) / _median(base["step_seconds"]) * scale
    rounds = [o / b * scale for b, o in zip(base["round_medians"], other["round_medians"])]
    return ratio, rounds


def _option(pair, policy, jit):
    """Ours under (policy, jit): its step over ours' default step, and per round."""
    ratio, rounds = _speed(_config(pair, "ours"), _config(pair, "ours_option", policy=policy, jit=jit))
    return ratio, rounds


def _rows(bench, model):
    found = [m for m in bench["models"] if m["model"] == model]
    assert len(found) == 1, model
    return {r["name"]: r for r in found[0]["rows"]}


def _over(bench, model, name, base="ours"):
    """cpu_training: row `name`'s speed relative to row `base` (base's median step over name's);
    base "torch" is the faster of the PyTorch rows (OpenMP threads passive or spinning), as the
    bench's ÷ PyTorch column takes it."""
    rows = _rows(bench, model)
    if base == "torch":
        base = min((n for n in ("torch", "torch_active") if rows.get(n, {}).get("step_seconds")),
                   key=lambda n: _median(rows[n]["step_seconds"]))
    ratio, rounds = _speed(rows[name], rows[base])
    return ratio, rounds


def _load_span(bench, model):
    """The 1-minute load averages read during a model's rounds."""
    found = next(m for m in bench["models"] if m["model"] == model)
    return [load[0] for load in found["loadavg_rounds"]]


def _profile(bench, model):
    return next(m for m in bench["models"] if m["model"] == model)


def _of_step(framework):
    """TensorFlow: each category's share of the summed kernel time, times the busy part of the
    unprofiled step ('≈ ms of step'); PyTorch: its self time per step."""
    kernel = framework["kernel_ms_per_step"]
    if framework["framework"] == "torch":
        return dict(kernel)
    total = sum(kernel.values())
    busy = _median(framework["step_ms_all"]) * framework["busy_fraction"]
    return {category: ms / total * busy for category, ms in kernel.items()}


CONV = ("conv forward", "conv backprop-input", "conv backprop-filter")
BATCH_NORM = ("batch norm forward", "batch norm backward")


def _conv_ms(framework):
    ms = _of_step(framework)
    if framework["framework"] == "torch":
        return ms["conv forward"] + ms["conv backward (input + filter)"]
    return sum(ms[c] for c in CONV)


def _bn_ms(framework):
    ms = _of_step(framework)
    return sum(ms[c] for c in BATCH_NORM)


def _step_ms(framework):
    return _median(framework["step_ms_all"])


# --- the checks: each returns the prose's sentences (fragments) with their figures recomputed -------

def _sweep_margin():
    """The sweep's rule: recommend a setting only if it beats float32 without XLA by this margin."""
    return float(re.search(r'"--margin", type=float, default=([\d.]+)',
                           (ROOT / "bench" / "train_speed.py").read_text(encoding="utf-8"))[1])


def _train_speed_section():
    """Section 1: the Keras example's size, the sweep's rule and what it measured."""
    from keras_preact.models.registry import MEASURED

    main, sweep = _pairs(_json("train_speed")), _pairs(_json("train_speed_sweep"))
    example = _config(main["cifar_resnetv2"], "theirs")
    ours = _config(main["cifar_resnetv2"], "ours")
    assert example["impl"] == {"kind": "keras_example_resnet_v2", "depth": 164, "widths": "example"}
    # The bench counts trainable parameters (MEASURED: total, trainable, multiply-adds).
    assert (ours["params"], ours["multiply_adds"]) == MEASURED["resnetv2_164"][1:]
    titu, dense = _config(main["cifar_densenet"], "theirs"), _config(main["cifar_densenet"], "ours")
    assert (titu["params"], titu["multiply_adds"]) == (dense["params"], dense["multiply_adds"])  # "exactly"
    macs = example["multiply_adds"] / ours["multiply_adds"]
    margin = _sweep_margin()
    options = {key: [_option(p, *key)[0] for p in sweep.values()]
               for key in (("float32", True), ("mixed_bfloat16", False), ("mixed_bfloat16", True))}
    first = _config(sweep["resnet50v2"], "theirs_option", jit=True, layout="channels_first")
    nchw, nchw_rounds = _speed(_config(sweep["resnet50v2"], "ours"), first)
    prefetch = _json("input_pipeline")
    synthetic = next(s for s in prefetch["training_step"] if s["feed"].startswith("synthetic"))
    fed = {s["feed"]: _median(synthetic["step_seconds"]) / _median(s["step_seconds"]) for s in prefetch["training_step"]}
    equal = ("resnet50v2", "densenet121", "cifar_densenet")
    own = [_speed(_config(sweep[p], "ours"), _config(sweep[p], "theirs")) for p in equal]
    # "within this machine's ±10% noise of 1.0x for the equal-architecture pairs": every
    # equal-architecture ratio of both runs (theirs where it is the same network, else the control).
    same = [_speed(_config(b[p], "ours"), _config(b[p], "theirs"))[0] for b in (main, sweep) for p in equal]
    same += [_speed(_config(b["cifar_resnetv2"], "ours"), _config(b["cifar_resnetv2"], "control"))[0]
             for b in (main, sweep)]
    assert all(abs(r - 1) <= 0.10 for r in same), same
    return [
        f"`resnetv2_164` (He et al. 2016, {MEASURED['resnetv2_164'][0] / 1e6:.1f}M params)",
        f"its \"ResNet164 v2\" has {example['params'] / 1e6:.2f}M trainable parameters and {macs:.1f}x the multiply-adds",
        f"the fastest that beats float32-without-XLA by more than {margin:.0%} in every round",
        f"XLA (`jit_compile=True`), float32: {_span(options['float32', True])}x slower",
        f"`mixed_bfloat16` without XLA: {_span(options['mixed_bfloat16', False], 1)}x slower",
        f"`mixed_bfloat16` with XLA: {_span(options['mixed_bfloat16', True])}x slower",
        f"with XLA ResNet50V2 runs, at {1 / nchw:.2f}x of ours (ours ÷ it {nchw:.2f}x, per-round "
        f"{_span(nchw_rounds)})",
        f"without prefetch the fed step ran at {fed['in memory, no prefetch']:.2f}x of the synthetic step, "
        f"streaming JPEG decode at {fed['stream (decode every epoch), prefetch']:.2f}x (section 2)",
        f"land at {_span(r for r, _ in own)}x for the keras.applications and titu1994 pairs, inside their "
        f"per-round ranges ({_span(x for _, rounds in own for x in rounds)})",
        "Both are within this machine's ±10% noise of 1.0x for the equal-architecture pairs.",
    ]


def _avx512_sweep_section():
    """Section 1, 'The sweep again on an AVX512_BF16 CPU'."""
    first, again = _pairs(_json("train_speed_sweep")), _pairs(_json("train_speed_sweep_avx512"))
    assert list(again) == ["cifar_resnetv2", "cifar_densenet"]
    before = [_option(first[p], "mixed_bfloat16", False)[0] for p in again]
    r164, r164_rounds = _option(again["cifar_resnetv2"], "mixed_bfloat16", False)
    dense = _option(again["cifar_densenet"], "mixed_bfloat16", False)[0]
    xla = [_option(p, "float32", True)[0] for p in again.values()]
    xla_bf16 = [_option(p, "mixed_bfloat16", True)[0] for p in again.values()]
    theirs = {p: _speed(_config(again[p], "ours"), _config(again[p], "theirs")) for p in again}
    control = {p: _speed(_config(again[p], "ours"), _config(again[p], "control")) for p in again}
    example, ours = _config(again["cifar_resnetv2"], "theirs"), _config(again["cifar_resnetv2"], "ours")
    step = {p: (_median(_config(first[p], "ours")["step_seconds"]), _median(_config(again[p], "ours")["step_seconds"]))
            for p in again}
    return [
        f"`mixed_bfloat16` without XLA is no longer {min(before):.0f}x slower: pre-act ResNet-164 ran at "
        f"{r164:.2f}x of the float32 step time (per round {_span(r164_rounds)}, so not faster in every round) "
        f"and DenseNet-BC-100 at {dense:.2f}x",
        f"The sweep's rule (faster by more than {_sweep_margin():.0%} in every round) recommends neither.",
        f"XLA still costs {_span(xla)}x in float32 and {_span(xla_bf16)}x in bfloat16",
        f"{theirs['cifar_resnetv2'][0]:.2f}x against the Keras example's ResNet-164 "
        f"({example['multiply_adds'] / ours['multiply_adds']:.1f}x its multiply-adds) and "
        f"{theirs['cifar_densenet'][0]:.2f}x against titu1994's DenseNet-BC-100; against the equal-architecture "
        f"controls {control['cifar_resnetv2'][0]:.2f}x and {control['cifar_densenet'][0]:.2f}x (per round "
        f"{_span(control['cifar_resnetv2'][1])} and {_span(control['cifar_densenet'][1])})",
        f"The float32 step is {_span((a / b for a, b in step.values()), 1)}x faster than on the first machine "
        f"(ResNet-164 {step['cifar_resnetv2'][1]:.2f} s vs {step['cifar_resnetv2'][0]:.2f} s, DenseNet-BC-100 "
        f"{step['cifar_densenet'][1]:.2f} s vs {step['cifar_densenet'][0]:.2f} s per step in the two sweeps)",
    ]


def _input_pipeline_section():
    bench = _json("input_pipeline")
    synthetic = next(s for s in bench["training_step"] if s["feed"].startswith("synthetic"))
    default = next(s for s in bench["training_step"] if s["feed"] == "in memory (default cache=auto), prefetch")
    step = _median(synthetic["step_seconds"])
    alone = {a["variant"]: a["batches"] * bench["batch"] / a["seconds"] for a in bench["pipeline_alone"]
             if "batches" in a}
    memory = alone["in memory (default cache=auto), prefetch"]
    rounds = [s / d for s, d in zip(synthetic["round_medians"], default["round_medians"])]
    batch_ms = 1000 * bench["batch"] / memory
    return [
        f"the pipeline alone delivers {_span((a * step / bench['batch'] for a in alone.values()), 0)}x the "
        f"images/s the step consumes",
        f"the fed step's per-round range, {_span(rounds)}, straddles 1.00x",
        f"{bench['batch']} images / {round(memory, -3):,.0f} images/s = {batch_ms:.0f} ms against "
        f"{round(1000 * step, -1):.0f} ms, about {100 * batch_ms / (1000 * step):.0f}%",
    ]


def _scaling_section():
    bench = _json("scaling")

    def step(strategy, devices):
        """Global batch over the median images/s of the fresh processes (each: batch / its median step)."""
        row = next(r for r in bench["rows"] if r.get("strategy") == strategy and r.get("devices") == devices)
        return bench["global_batch"] / _median([bench["global_batch"] / run["median_step_seconds"] for run in row["runs"]])

    one, two, default = step("mirrored", 1), step("mirrored", 2), step("default", 1)
    speedup = one / two
    return [
        f"2 logical CPU devices run at {speedup:.2f}x of 1 (efficiency {speedup / 2:.2f} of the ideal 0.5 on "
        f"shared cores), so the replication and all-reduce of a 2-replica step cost about {100 * (1 - speedup):.0f}%",
        f"ran the same step at {default / one:.2f}x of the default strategy ({one:.2f} s vs {default:.2f} s)",
    ]


def _densenet_memory_section():
    bench = _json("densenet_memory")
    report = (ROOT / "bench" / "report.py").read_text(encoding="utf-8")
    assert "ok = mem <= 0.35 and sec <= 1.2" in report  # the target the targets table applies
    budget = f"{bench['bc190_budget_gib']:g}"
    assert f"--budget_gib {budget}" in bench["command"]
    return [
        "**Target: step memory <= 0.35x of plain at <= 1.2x the step time.**",
        f"`--budget_gib {budget}` also finds the largest DenseNet-BC-190 (k=40) batch whose peak RSS fits in "
        f"{budget} GiB",
    ]


def _jpeg_copy_section():
    from keras_preact.models.registry import get_model_spec

    splits = _json("jpeg_copy")["splits"].values()
    files = sum(s["files"] for s in splits)
    assert all(s["quality"] == {"75": s["files"]} and s["subsampling"] == {"4:2:0": s["files"]} for s in splits)
    bits = {f"{s['bits_per_pixel']:.1f}" for s in splits}
    assert len(bits) == 1
    return [
        f"all {files:,} files carry libjpeg's quality-75 tables",
        f"in about {bits.pop()} bits per pixel instead of 24",  # 24: 8 bits for each of R, G and B
        f"end below the v1 paper's {100 - get_model_spec('resnet_20').error:.2f}%",
    ]


def _cpu_training_section():
    """Section 7: the loads of the runs, PyTorch's spinning threads, the profile's reading."""
    main, sweep = _json("cpu_training"), _json("cpu_training_sweep")
    loads = {m: _load_span(main, m) for m in ("resnetv2_20", "resnetv2_56", "resnetv2_164", "densenet_bc_100_12")}
    quiet = loads["resnetv2_20"] + loads["resnetv2_56"]
    spinning = _speed(_rows(sweep, "resnetv2_20")["torch_active"], _rows(sweep, "resnetv2_20")["torch"])[0]
    sweep_loads = _load_span(sweep, "resnetv2_20") + _load_span(sweep, "resnetv2_56")
    return [
        f"(1-minute load {_span(quiet, 1)}, which the three worker processes account for)",
        f"resnetv2_164 comes from the first run on 2026-12-01, while other sessions ran tests (load "
        f"{_span(loads['resnetv2_164'], 1)})",
        f"densenet_bc_100_12 from a second run on 2026-12-02 beside a training run (load "
        f"{_span(loads['densenet_bc_100_12'], 1)})",
        f"(in the sweep resnetv2_20's spinning row ran at {spinning:.2f}x of the passive one)",
        f"while a ResNetV2-56 training run shared the two cores (load {_span(loads['densenet_bc_100_12'], 1)}:",
        f"measured side by side with ours and PyTorch (load {_span(sweep_loads, 1)})",
        f"that run's matmul peak was measured under load ({sweep['peak_gflops']['tensorflow']:.0f} GFLOP/s; the "
        f"main table's {main['peak_gflops']['tensorflow']:.0f} is the machine's)",
    ]


def _profile_section():
    before, after = _json("profile_step_before"), _json("profile_step")
    b20, b56 = (_profile(before, m) for m in ("resnetv2_20", "resnetv2_56"))
    a20, a56 = (_profile(after, m) for m in ("resnetv2_20", "resnetv2_56"))
    concurrency = {f"{_profile(before, m)['tensorflow']['concurrency']:.2f}" for m in ("resnetv2_20", "resnetv2_56")}
    assert len(concurrency) == 1
    bn = {m: _bn_ms(p["tensorflow"]) / _step_ms(p["tensorflow"]) for m, p in (("20", b20), ("56", b56))}
    overhead = [100 * (1 - p["tensorflow"]["busy_fraction"]) for p in (b20, b56)]
    fused_bn = [100 * _bn_ms(p["tensorflow"]) / _step_ms(p["tensorflow"]) for p in (a20, a56)]
    assert len({f"{x:.0f}" for x in fused_bn}) == 1
    load = after["loadavg_start"][0], after["loadavg_end"][0]
    iterator = _of_step(b20["tensorflow"])["input pipeline (IteratorGetNext)"]
    # TensorFlow's convolutions over PyTorch's, before and after the fused batch norm (resnetv2_20).
    forward = [_of_step(p["tensorflow"])["conv forward"] / p["torch"]["kernel_ms_per_step"]["conv forward"]
               for p in (b20, a20)]
    backward = {sum(_of_step(p["tensorflow"])[c] for c in CONV[1:])
                / p["torch"]["kernel_ms_per_step"]["conv backward (input + filter)"] for p in (b20, a20)}
    backward = {f"{ratio:.1f}" for ratio in backward}
    assert len(backward) == 1
    return [
        f"the machine's one quiet stretch, load {before['loadavg_start'][0]:.2f}, so its unprofiled step times "
        f"are the best absolute figures: resnetv2_20 {_step_ms(b20['tensorflow']):.0f} ms per step vs "
        f"{_step_ms(b20['torch']):.0f} ms for PyTorch, resnetv2_56 {_step_ms(b56['tensorflow']):.0f} vs "
        f"{_step_ms(b56['torch']):.0f} ms",
        f"(conv forward + backward ≈ {_conv_ms(b20['tensorflow']):.0f} ms of the resnetv2_20 step vs PyTorch's "
        f"{_conv_ms(b20['torch']):.0f} ms self time; {_conv_ms(b56['tensorflow']):.0f} vs "
        f"{_conv_ms(b56['torch']):.0f} ms for resnetv2_56)",
        f"({concurrency.pop()} kernels at a time on average)",
        f"{100 * bn['20']:.0f}% of the resnetv2_20 step ({_bn_ms(b20['tensorflow']):.0f} ms, vs "
        f"{_bn_ms(b20['torch']):.0f} ms for PyTorch's fused `native_batch_norm` and its backward), "
        f"{100 * bn['56']:.0f}% of resnetv2_56",
        f"the input pipeline (`IteratorGetNext`, {iterator:.1f} ms)",
        f"({_span(overhead, 0)}% of the step with no kernel running",
        f"batch norm falls to {fused_bn[0]:.0f}% of the step",
        f"(Measured at load {_span(load, 1)}, so",
        # 'Why resnetv2_20 stays under 1.5x' (section 7's end).
        f"batch norm was {100 * bn['20']:.0f}% of its step, and fused it is "
        f"{100 * _bn_ms(a20['tensorflow']) / _step_ms(a20['tensorflow']):.0f}%; what remains is "
        f"{100 * _conv_ms(a20['tensorflow']) / _step_ms(a20['tensorflow']):.0f}% convolutions",
        f"(conv forward {_span(forward, 1)}x of PyTorch's time, backward {backward.pop()}x)",
    ]


def _what_was_tried_section():
    """Section 7's bullets: each option's speed over ours, in the sweep and in the main table."""
    main, sweep = _json("cpu_training"), _json("cpu_training_sweep")
    both = ("resnetv2_20", "resnetv2_56")

    def s(name, model, base="ours"):
        return _over(sweep, model, name, base)[0]

    def m(name, model, base="ours"):
        return _over(main, model, name, base)[0]

    over_before = {model: _over(main, model, "before")[0] for model in
                   ("resnetv2_20", "resnetv2_56", "resnetv2_164", "densenet_bc_100_12")}
    over_before = {k: 1 / v for k, v in over_before.items()}
    models = [mm["model"] for mm in main["models"]]
    jax = [r(n, model) for r, bench in ((s, sweep), (m, main)) for model in
           [mm["model"] for mm in bench["models"]] for n in ("fit_jax", "jax_step")]
    r164_jax = [m(n, "resnetv2_164") for n in ("fit_jax", "jax_step")]
    torch_backend = [s("fit_torch", model) for model in both] + [
        m("fit_torch", model) for model in models if _rows(main, model)["fit_torch"].get("step_seconds")]
    bf16_56, bf16_56_rounds = _over(sweep, "resnetv2_56", "bf16")
    nchw = [_speed(_rows(sweep, model)["torch_nchw"], _rows(sweep, model)["torch"])[0] for model in both]
    peak = _rows(main, "resnetv2_20")["ours"]
    # FLOP/s as the bench estimates it (multiply-adds x 2 x 3) over the best float32 matmul.
    flops = peak["multiply_adds"] * 6 * main["batch"] / _median(peak["step_seconds"]) / 1e9
    fraction = flops / main["peak_gflops"]["max"]
    return [
        f"{_f(s('fused_bn', 'resnetv2_20'))}x and {_f(s('fused_bn', 'resnetv2_56'))}x over ours on "
        f"resnetv2_20/56 in the sweep; in the main table, where it is ours and Keras' batch norm is `before`, "
        f"{_f(over_before['resnetv2_20'])}x and {_f(over_before['resnetv2_56'])}x, "
        f"{_f(over_before['resnetv2_164'])}x on resnetv2_164 and {_f(over_before['densenet_bc_100_12'])}x on "
        f"DenseNet-BC-100; it is what takes ours past PyTorch ({_f(m('ours', 'resnetv2_20', 'torch'))}x and "
        f"{_f(m('ours', 'resnetv2_56', 'torch'))}x in the main table, {_f(s('fused_bn', 'resnetv2_20', 'torch'))}x "
        f"and {_f(s('fused_bn', 'resnetv2_56', 'torch'))}x in the sweep)",
        f"alone {_span(s('fused_sgd', model) for model in both)}x, within noise; with fused batch norm "
        f"{_f(s('fused_bn_sgd', 'resnetv2_20'))}x/{_f(s('fused_bn_sgd', 'resnetv2_56'))}x in the sweep but "
        f"{_f(m('fused_sgd', 'resnetv2_20'))}x/{_f(m('fused_sgd', 'resnetv2_56'))}x of fused batch norm alone in "
        f"the main table ({_f(m('fused_sgd', 'densenet_bc_100_12'))}x on DenseNet-BC-100)",
        f"{_span(s(n, model) for n in ('xla_grads', 'xla_step') for model in both)}x. XLA's CPU convolutions",
        f"{_f(s('bf16', 'resnetv2_20'))}x (resnetv2_20) and {_f(bf16_56)}x (resnetv2_56, per-round "
        f"{_span(bf16_56_rounds)}); with XLA {_span(s('bf16_xla_grads', model) for model in both)}x",
        f"`inter_op_parallelism_threads=1` {_span(s('inter_op_1', model) for model in both)}x",
        f"`intra_op_parallelism_threads=1` {_f(s('intra_op_1', 'resnetv2_20'))}x and "
        f"{_f(s('intra_op_1', 'resnetv2_56'))}x (noise)",
        f"`TF_ENABLE_ONEDNN_OPTS=0` (Eigen kernels) {_span(s('onednn_off', model) for model in both)}x; "
        f"`TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1` {_span(s('system_allocator', model) for model in both)}x",
        f"64 and 256 give the same images/s as 128 ({_span(s(n, model) for n in ('batch64', 'batch256') for model in both)}x)",
        f"PyTorch in NCHW is {_span(nchw)}x of its channels_last",
        f"{_span(jax)}x of ours ({_span(r164_jax)}x on resnetv2_164); the **torch backend** of Keras "
        f"{_span(torch_backend)}x",
        f"(oneDNN's 3x3 convolutions at 16-64 channels) with the whole step at {100 * fraction:.0f}% of the best "
        f"matmul rate",
    ]


def _issue_27_table():
    main = _json("cpu_training")
    cells = []
    for model in ("resnetv2_20", "resnetv2_56"):
        torch, torch_rounds = _over(main, model, "ours", base="torch")
        before, before_rounds = _over(main, model, "ours", base="before")
        cells.append((torch, torch_rounds, before, before_rounds))
    (t20, tr20, b20, br20), (t56, tr56, b56, br56) = cells
    assert t20 >= 1 and t56 >= 1 and b20 < 1.5 <= b56
    return [
        f"| ours ÷ plain PyTorch >= 1.0x | **{_f(t20)}x** (per round {_span(tr20)}) | **{_f(t56)}x** ({_span(tr56)}) |",
        f"| ours ÷ our trainer before >= 1.5x | {_f(b20)}x ({_span(br20)}): **missed** | **{_f(b56)}x** ({_span(br56)}) |",
    ]


def _same_training_table():
    """The 3-epoch runs of both batch-norm paths (a one-off with no committed record; the table,
    dated, is its record): the sentence below it is the table's arithmetic."""
    section = _prose().split("**Same training, same result.**", 1)[1]
    assert "same CPU, 2026-12-02" in section
    rows = re.findall(r"\| (\d) \| (fused batch norm \(default\)|Keras batch norm \(before\)) \| ([\d.]+) \| "
                      r"([\d.]+)% \| ([\d.]+)% \|", section)
    runs = {(seed, path.split()[0]): tuple(map(float, values)) for seed, path, *values in rows}
    assert len(runs) == 4
    seeds, paths = ("0", "1"), ("fused", "Keras")
    loss = [abs(runs[s, "fused"][0] - runs[s, "Keras"][0]) for s in seeds]
    train = [abs(runs[s, "fused"][1] - runs[s, "Keras"][1]) for s in seeds]
    between_seeds = [abs(runs["0", p][2] - runs["1", p][2]) for p in paths]
    between_paths = [abs(runs[s, "fused"][2] - runs[s, "Keras"][2]) for s in seeds]
    assert max(loss) <= 0.01
    return [
        f"The training curves agree within 0.01 in loss and {max(train):.1f} points in accuracy. The test top-1 "
        f"after 3 epochs moves by {_span(between_seeds, 1)} points between seeds of the same path",
        f"the two paths differ by {_span(between_paths, 1)} points, inside that spread",
    ] + [f"| {s} | {p} | {v[0]:.3f} | {v[1]:.2f}% | {v[2]:.2f}% |" for (s, _), v, p in
         zip(runs, runs.values(), [r[1] for r in rows])]


def _deep_models_section():
    """Section 8: the fused SGD update's two runs and the update's share of the step."""
    first, rerun = _json("cpu_training_sweep_r164"), _json("cpu_training_sweep_r164_rerun")
    fused, fused_rounds = _over(first, "resnetv2_164", "fused_sgd")
    again, again_rounds = _over(rerun, "resnetv2_164", "fused_sgd")
    update = {r["model"]: r for r in _json("optimizer_update")["rows"]}
    share = {m: {k: r["ms"][k] / r["ms"]["step"] for k in ("keras", "keras_ema", "fused")} for m, r in update.items()}
    options = [_over(first, "resnetv2_164", n) for n in ("batch64", "batch256", "bf16", "xla_grads")]
    assert all(min(rounds) <= 1 <= max(rounds) for _, rounds in options[:3]) and max(options[3][1]) < 1
    return [
        f"The fused SGD update's {fused:.2f}x there (per round {_span(fused_rounds)}) did not hold: a second "
        f"run of ours, fused SGD and batch 64 alone, at load {_span(_load_span(rerun, 'resnetv2_164'), 1)}, gave it "
        f"{again:.2f}x ({_span(again_rounds)})",
        f"**The SGD update is {_span((100 * s['keras'] for s in share.values()), 1)}% of the step** (Keras SGD on "
        f"{update['resnetv2_164']['variables']} variables of ResNetV2-164 and "
        f"{update['densenet_bc_100_12']['variables']} of DenseNet-BC-100; "
        f"{100 * max(s['keras_ema'] for s in share.values()):.1f}% with the weight average the flagship recipe keeps)",
        "**Batch 64 / 256, mixed_bfloat16, XLA**: " + " / ".join(f"{r:.2f}x" for r, _ in options),
    ]


def _densenet_step_section():
    """Section 8: DenseNet-BC-100's profile and the sweep of what it points at."""
    tf, torch = (_profile(_json("profile_step_densenet"), "densenet_bc_100_12")[f] for f in ("tensorflow", "torch"))
    step, ms = _step_ms(tf), _of_step(tf)
    sweep = _json("cpu_training_sweep_densenet")
    ratio = {n: _over(sweep, "densenet_bc_100_12", n)[0]
             for n in ("shared_moments", "memory_efficient", "batch64", "batch256", "bf16")}
    assert max(ratio.values()) < 1.1  # "None reaches 1.1x"
    ours = _rows(sweep, "densenet_bc_100_12")["ours"]
    images = ours["batch"] / _median(ours["step_seconds"])
    return [
        f"The convolutions are {100 * _conv_ms(tf) / step:.0f}% of the step, the batch norms "
        f"{100 * _bn_ms(tf) / step:.0f}% (forward and backward,",
        f"the concatenations {100 * ms['residual add / concat'] / step:.0f}% and ReLU's backward "
        f"{100 * ms['relu backward'] / step:.0f}%; the whole step takes {step / _step_ms(torch):.2f}x of plain "
        f"PyTorch's (batch norms {_bn_ms(tf):,.0f} ms against {_bn_ms(torch):,.0f} ms of PyTorch self time, "
        f"concatenations {ms['residual add / concat']:,.0f} ms against "
        f"{torch['kernel_ms_per_step']['residual add / concat']:,.0f} ms)",
        f"runs at {ratio['shared_moments']:.2f}x:",
        f"itself (which also recomputes each layer in the backward pass) {ratio['memory_efficient']:.2f}x; batch "
        f"64 / 256 {ratio['batch64']:.2f}x / {ratio['batch256']:.2f}x; mixed_bfloat16 {ratio['bf16']:.2f}x.",
        f"{images:.1f} images/s here, {50_000 / images / 60:.0f} minutes an epoch",
    ]


def _machine_section():
    """The software every machine shared (as tests/test_readme_numbers.py, which also rebuilds the
    machine table)."""
    benches = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(RESULTS.glob("*.json"))]
    shared = {(m["memory_gib"], m["cores"], m["python"], m["platform"].split("-")[1],
               *(m["versions"][k] for k in ("tensorflow", "keras", "jax", "numpy")))
              for m in (b["machine"] for b in benches if "machine" in b)}
    assert len(shared) == 1, shared
    memory, cores, python, kernel, tensorflow, keras, jax, numpy = shared.pop()
    return [f"Every machine had {cores} cores, {memory} GiB of memory and the same software: Linux "
            f"{'.'.join(kernel.split('.')[:2])} (x86_64), Python {python}, tensorflow-cpu {tensorflow}, "
            f"Keras {keras}, JAX {jax} (CPU), NumPy {numpy}"]


CHECKS = (_machine_section, _train_speed_section, _avx512_sweep_section, _input_pipeline_section,
          _scaling_section, _densenet_memory_section, _jpeg_copy_section, _cpu_training_section,
          _profile_section, _what_was_tried_section, _issue_27_table, _same_training_table,
          _deep_models_section, _densenet_step_section)


# --- what is not a measurement, by kind ---------------------------------------------------------------

# Targets, rules and expectations: what a measurement is judged against, not one.
TARGETS = (
    "At equal settings the expected ratio is **1.00x ± noise**",
    "for the keras.applications pairs it is expected to be 1.00x ± noise",  # the control's hypothesis
    "the ideal for 2 logical devices is a speed-up of 1.0 (efficiency 0.5)",  # 1 device already uses both cores
    '"÷ synthetic" near 1.00x means the pipeline costs the step nothing',
    "Why resnetv2_20 stays under 1.5x",  # issue 27's target (the table above states it)
    "The issue's 1.5x was derived",
    "adopting what is at least 1.1x faster",  # issue 35's threshold
    "No faster update can give 1.1x",
    "with per-round ranges that include 1.0x (XLA excepted, which is slower); none is a settled 1.1x",
    "None reaches 1.1x",  # issue 35's threshold again, for DenseNet-BC-100
)
# Figures quoted from an issue's text or from a docstring's own earlier record, said to be such in
# the sentence: not measured by a bench of this repository, so there is nothing here to recompute.
QUOTES = (
    "the DenseNet121 2x speed-up the issue quotes",  # issue 7
    "the issue's earlier figures (ours 135-138 images/s, PyTorch 262)",  # issue 27
    "where PyTorch measured 1.9x our trainer",  # issue 27
    "Issue 35's own figures on the same kind of CPU (72 images/s float32, 55 with mixed_bfloat16)",
    "(earlier measurement in `keras_preact/training/configs.py`: 7-10x slower than float32 without XLA)",
)
# Hardware facts read from /proc/cpuinfo on the day (the JSONs record flags, not caches).
HARDWARE = ("L2 1 MiB x 2, L3 32 MiB",)
NOT_MEASUREMENTS = TARGETS + QUOTES + HARDWARE

# A figure: a number (with its range, if any) followed by a unit, or any decimal number.
UNIT = (r"(?:x(?![\w])|%|\s?(?:ms|s|min|GiB|MiB|GB|MB|GFLOP/s|M)(?![\w/])|\s?images/s|"
        r"\s(?:minutes|hours|points|params|parameters|files|variables|bits per pixel)\b)")
NUMBER = r"\d[\d,]*(?:\.\d+)?"
DECIMAL = r"\d[\d,]*\.\d+"
FIGURE = re.compile(rf"(?<![\w.\-/=+])(?:{NUMBER}(?:\s?[-–]\s?{NUMBER})?{UNIT}|{DECIMAL}(?:\s?[-–]\s?{NUMBER})?)"
                    r"(?!\d|\.\d)")


def _figures(text):
    """The figures of `text`, code spans (commands, flags, file names), dates and times left out."""
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}(?:T[\d:]+Z)?|\b\d{2}:\d{2}\b", " ", text)
    return [m.group(0) for m in FIGURE.finditer(text)]


def _fragments():
    return [fragment for check in CHECKS for fragment in check()]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.strip("_"))
def test_prose_figures_are_recomputed(check):
    prose = _prose()
    missing = [fragment for fragment in check() if " ".join(fragment.split()) not in prose]
    assert not missing, "BENCHMARKS.md's prose no longer says (recomputed from bench/results):\n" + "\n".join(missing)


def test_not_measurements_are_in_the_prose():
    prose = _prose()
    assert [s for s in NOT_MEASUREMENTS if s not in prose] == []
    configs = (ROOT / "keras_preact" / "training" / "configs.py").read_text(encoding="utf-8")
    assert "So: bf16 without XLA is 7-10x slower" in configs  # the record the quote names


def test_every_prose_figure_is_checked():
    prose = _prose()
    for fragment in _fragments():
        prose = prose.replace(" ".join(fragment.split()), " ¶ ")
    for allowed in NOT_MEASUREMENTS:
        prose = prose.replace(allowed, " ¶ ")
    left = _figures(prose)
    assert not left, f"figures in BENCHMARKS.md's prose that no check recomputes: {left}"


def test_the_figure_pattern_finds_figures():
    found = _figures("ran at 0.93x (per round 0.81-1.01), 2.94 s vs 8.14 s, 35% of it, 9,000 images/s, "
                     "1.7M params, 23.5 GiB, load 1.4-1.9, 124 ms; not 224x224, ResNet-164, `--rounds 3`, "
                     "2026-12-02, 23:03 UTC, Python 3.11.7, 4:2:0")
    assert found == ["0.93x", "0.81-1.01", "2.94 s", "8.14 s", "35%", "9,000 images/s", "1.7M", "23.5 GiB",
                     "1.4-1.9", "124 ms"], found

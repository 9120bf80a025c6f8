"""Memory and step time of DenseNet training, plain vs memory_efficient=True.

    python -m bench.densenet_memory                       # DenseNet-BC-100 (k=12), batch 128
    python -m bench.densenet_memory --budget_gib 6        # + largest BC-190 (k=40) batch in 6 GiB
    python -m bench.densenet_memory --quick               # smoke run: DenseNet-BC-22, batch 8, 1 run each

Each configuration runs in a fresh process: build the model, read RSS, run
training steps, read peak RSS. "Step memory" is peak RSS after the steps
minus RSS before the first step (issue 7's measure); step time is the median
of the steps after the first (which traces the graph). Plain and efficient
alternate in one run so their ratio is robust to machine noise.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

from bench import common


def worker(model_name, efficient, batch, steps):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import psutil

    import keras
    import keras_preact

    if model_name.startswith("densenet_bc_"):
        model = keras_preact.get_model(model_name, memory_efficient=efficient)
    else:  # "bc22": the --quick smoke model, DenseNet-BC (k=12) of depth 22
        model = keras_preact.DenseNet(22, growth_rate=12, bottleneck=True, compression=0.5,
                                      memory_efficient=efficient)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (batch, 32, 32, 3)).astype("float32")
    y = rng.randint(0, 10, (batch,))
    rss_before = psutil.Process().memory_info().rss
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "model": model_name, "memory_efficient": efficient, "batch": batch,
        "rss_before_bytes": rss_before, "peak_rss_bytes": peak,
        "step_memory_bytes": peak - rss_before,
        "step_seconds": statistics.median(times[1:]), "step_times_seconds": times[1:],
        "first_step_seconds": times[0],
    }


def run(model_name, efficient, batch, steps):
    command = [sys.executable, "-m", "bench.densenet_memory", "--worker", model_name,
               str(int(efficient)), str(batch), str(steps)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return {"model": model_name, "memory_efficient": efficient, "batch": batch,
                "error": result.stderr.strip().splitlines()[-1] if result.stderr else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def gib(n):
    return n / 2**30


BUDGET_MODEL = "densenet_bc_190_40"


def derive(result):
    """Recompute, in place, the figures of a result from its runs' RSS readings and step times (each
    run's step memory = peak RSS - RSS before; its step time = the median of step_times_seconds where
    kept, older results kept only that median): the medians
    of the first model and batch's runs, the batch-dependent memory ratio (with small_batch's runs),
    and the largest DenseNet-BC-190 batch under the budget (each implementation's runs in the order
    they ran, up to the first over the budget or failed)."""
    runs = result["runs"]
    model, batch = runs[0]["model"], runs[0]["batch"]
    for r in runs:
        if "error" not in r:
            r["step_memory_bytes"] = r["peak_rss_bytes"] - r["rss_before_bytes"]
            if r.get("step_times_seconds"):  # results before 2026-12 kept only the median
                r["step_seconds"] = statistics.median(r["step_times_seconds"])

    def medians(efficient, at):
        ok = [r for r in runs if r.get("model") == model and r.get("batch") == at
              and r["memory_efficient"] == efficient and "error" not in r]
        return (statistics.median(r["step_memory_bytes"] for r in ok),
                statistics.median(r["step_seconds"] for r in ok))

    (plain_mem, plain_time), (eff_mem, eff_time) = medians(False, batch), medians(True, batch)
    result["memory_ratio"] = eff_mem / plain_mem
    result["time_ratio"] = eff_time / plain_time
    if result.get("small_batch"):
        small = {eff: medians(eff, result["small_batch"])[0] for eff in (False, True)}
        result["batch_dependent_memory_ratio"] = (eff_mem - small[True]) / (plain_mem - small[False])
    if result.get("bc190_budget_gib"):
        fits = {}
        for efficient in (False, True):
            best = 0
            for r in runs:
                if r.get("model") != BUDGET_MODEL or r["memory_efficient"] != efficient:
                    continue
                if "error" in r or r["peak_rss_bytes"] > result["bc190_budget_gib"] * 2**30:
                    break
                best = r["batch"]
            fits["memory_efficient" if efficient else "plain"] = best
        result["bc190_largest_batch"] = fits
    return result


def markdown(result):
    """The table of a result, recomputed from its runs (see derive)."""
    import copy

    result = derive(copy.deepcopy(result))
    runs = result["runs"]
    model, batch = runs[0]["model"], runs[0]["batch"]

    def median_of(efficient, at, key):
        return statistics.median(r[key] for r in runs if r.get("model") == model and r.get("batch") == at
                                 and r["memory_efficient"] == efficient and "error" not in r)

    repeats = sum(1 for r in runs if r.get("model") == model and r.get("batch") == batch
                  and not r["memory_efficient"])
    plain_mem, plain_time = median_of(False, batch, "step_memory_bytes"), median_of(False, batch, "step_seconds")
    eff_mem, eff_time = median_of(True, batch, "step_memory_bytes"), median_of(True, batch, "step_seconds")
    table = "\n".join([
        f"{model}, batch {batch}, 32x32 inputs, {repeats} runs each, {result['cpus']} CPUs",
        "",
        "| implementation | step memory (GiB) | step time (s) |",
        "|---|---|---|",
        f"| plain | {gib(plain_mem):.2f} | {plain_time:.3f} |",
        f"| memory_efficient=True | {gib(eff_mem):.2f} | {eff_time:.3f} |",
        f"| ratio | {result['memory_ratio']:.2f}x | {result['time_ratio']:.2f}x |",
    ])
    small_batch = result.get("small_batch")
    if small_batch:
        small = {eff: median_of(eff, small_batch, "step_memory_bytes") for eff in (False, True)}
        growth_plain, growth_eff = plain_mem - small[False], eff_mem - small[True]
        table += "\n".join([
            "", "",
            f"Step memory at batch {small_batch} (mostly the part that does not grow with the batch): "
            f"plain {gib(small[False]):.2f} GiB, memory_efficient {gib(small[True]):.2f} GiB.",
            f"Memory that grows with the batch (batch {batch} minus batch {small_batch}): "
            f"plain {gib(growth_plain):.2f} GiB, memory_efficient {gib(growth_eff):.2f} GiB, "
            f"ratio {result['batch_dependent_memory_ratio']:.2f}x.",
        ])
    if result.get("bc190_budget_gib"):
        fits = result["bc190_largest_batch"]
        table += (f"\n\nDenseNet-BC-190 (k=40): largest batch with peak RSS <= {result['bc190_budget_gib']} GiB: "
                  f"plain {fits['plain']}, memory_efficient {fits['memory_efficient']}")
    return table


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=4)
    parser.add_argument("--model", default="densenet_bc_100_12")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget_gib", type=float, default=0.0,
                        help="also find the largest DenseNet-BC-190 batch whose step fits")
    parser.add_argument("--budget_batches", default="8,16,32,64")
    parser.add_argument("--small_batch", type=int, default=8,
                        help="also run both at this batch: the step memory that does not grow with the "
                             "batch (graph tracing), so the activations' share can be separated (0: skip)")
    parser.add_argument("--out", default="bench/results/densenet_memory.json")
    parser.add_argument("--quick", action="store_true", help="smoke run: DenseNet-BC-22, batch 8, 3 steps, 1 run")
    args = parser.parse_args()
    if args.worker:
        name, efficient, batch, steps = args.worker
        print(json.dumps(worker(name, bool(int(efficient)), int(batch), int(steps))))
        return

    if args.quick:
        args.model, args.batch, args.steps, args.repeats, args.budget_gib = "bc22", 8, 3, 1, 0.0
    started = common.result_header("bench.densenet_memory", args.quick)
    rows = []
    for _ in range(args.repeats):
        for efficient in (False, True):
            rows.append(run(args.model, efficient, args.batch, args.steps))
            print(rows[-1], file=sys.stderr, flush=True)

    result = dict(started, cpus=os.cpu_count(), runs=rows)
    if args.small_batch and not args.quick:
        # Step memory = a part fixed per model (tracing the training graph: remat adds
        # custom-gradient function graphs) + activations, which grow with the batch.
        # Two batch sizes separate them.
        small = {eff: run(args.model, eff, args.small_batch, 2) for eff in (False, True)}
        rows.extend(small.values())
        if not any("error" in r for r in small.values()):
            result["small_batch"] = args.small_batch
    if args.budget_gib:
        budget = args.budget_gib * 2**30
        for efficient in (False, True):
            for batch in map(int, args.budget_batches.split(",")):
                r = run(BUDGET_MODEL, efficient, batch, 2)
                result["runs"].append(r)
                print(r, file=sys.stderr, flush=True)
                if "error" in r or r["peak_rss_bytes"] > budget:
                    break
        result["bc190_budget_gib"] = args.budget_gib
    derive(result)
    table = markdown(result)
    common.finish(result, table, args.out)


if __name__ == "__main__":
    main()

r"""How much of a CPU training step the SGD update takes, and what fusing it would save (issue 35).

    python -m bench.optimizer_update                                  # resnetv2_164, densenet_bc_100_12
    python -m bench.optimizer_update --models resnetv2_20 --rounds 3
    python -m bench.optimizer_update --quick                          # smoke run: pre-act ResNet-8, batch 8

Issue 35's speed pass asks whether the fused SGD update (one ``ResourceApplyKerasMomentum`` per
variable, ``bench.cpu_training.fused_sgd_apply``) is worth adopting for the deep models: a
164-layer net has about 500 trainable variables, and Keras SGD runs several small ops for each
(more with the weight average, ``use_ema``, that the flagship recipe keeps). The whole-step
comparison (``bench.cpu_training --sweep --variants ours,fused_sgd``) differs by less than a
busy machine's noise, so this bench times the part that differs on its own, beside the whole
step, in one process, round by round:

- ``step``: the trainer's whole training step (``bench.cpu_training``'s "ours": loop.py's
  own step, fused batch norm, batch 128, synthetic data), with Keras SGD and no average;
- ``keras``: ``SGD(momentum=0.9, nesterov=True).apply_gradients`` over the model's variables
  with fixed gradients, in one ``tf.function``;
- ``keras_ema``: the same with ``use_ema=True, ema_momentum=0.999`` (the flagship recipe);
- ``fused``: ``fused_sgd_apply`` (no average).

The update's share of the step bounds what any faster update could save: a share under 10%
cannot give issue 35's 1.1x.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common  # noqa: E402

MODULE = "bench.optimizer_update"
DEFAULT_MODELS = ("resnetv2_164", "densenet_bc_100_12")
UPDATES = ("keras", "keras_ema", "fused")


def update_functions(model):
    """name -> a tf.function applying one SGD update of `model`'s variables with fixed gradients."""
    import keras
    import tensorflow as tf

    from bench.cpu_training import fused_sgd_apply

    variables = model.trainable_variables
    grads = [tf.random.stateless_normal(v.shape, seed=(i, 0)) * 1e-4 for i, v in enumerate(variables)]
    functions = {}
    for name in UPDATES:
        opt = keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True, use_ema=name == "keras_ema", ema_momentum=0.999)
        opt.build(variables)
        if name == "fused":
            functions[name] = tf.function(lambda opt=opt: fused_sgd_apply(opt, grads, variables))
        else:
            functions[name] = tf.function(lambda opt=opt: opt.apply_gradients(zip(grads, variables)))
    return functions


def measure(model, batch, rounds, steps, warmup):
    """`model`: bench.cpu_training's model dict ({"name": registry name, "overrides": {...}})."""
    from bench.cpu_training import Data, TrainerRunner

    with tempfile.TemporaryDirectory() as tmp:
        step = TrainerRunner("ours", model, Data(batch, 32, 10), tmp)
        runners = {"step": step.run}
        for name, fn in update_functions(step.model).items():
            runners[name] = lambda n, fn=fn: _timed(fn, n)
        for run in runners.values():
            run(warmup)
        times = {name: [] for name in runners}
        for r in range(rounds):
            names = list(runners)
            names = names[r % len(names):] + names[:r % len(names)]  # rotate who goes first
            for name in names:
                times[name] += runners[name](steps)
    return derive_row({"model": model.get("label", model["name"]), "batch": batch,
                       "variables": len(step.model.trainable_variables), "steps_per_name": rounds * steps,
                       "seconds": times})


def derive_row(row):
    """A row's median ms per name from its calls' times (`seconds`, in place). Results before 2026-12
    kept only the medians (`ms`): those are read as stored."""
    if row.get("seconds"):
        row["ms"] = {name: common.median(ts) * 1000 for name, ts in row["seconds"].items()}
    return row


def _timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def derive(result):
    """Every row's medians recomputed from its calls' times where kept (derive_row), in place."""
    for row in result["rows"]:
        derive_row(row)
    return result


def markdown(result):
    """The table of a result: medians from the calls' times where kept (derive_row), each update's share
    of the step and the estimated speed-up recomputed from the medians."""
    import copy

    rows = []
    for row in derive(copy.deepcopy(result))["rows"]:
        ms = row["ms"]
        step = ms["step"]
        rows.append([row["model"], row["variables"], common.fmt(step, 0),
                     *(f"{common.fmt(ms[u], 1)} ({100 * ms[u] / step:.1f}%)" for u in UPDATES),
                     common.ratio(step / (step - ms["keras"] + ms["fused"]))])
    m = result["machine"]
    caption = (f"SGD update vs the whole training step, {common.machine_line(m)}; batch {result['batch']}, float32; "
               f"median of {result['rounds']} rounds x {result['steps']} after {result['warmup']} warm-up, "
               f"interleaved; 1-minute load {result['loadavg_start'][0]} at start, {result['loadavg_end'][0]} at end; "
               f"{result['date'][:10]}.")
    table = common.markdown_table(
        ["model", "trainable variables", "training step ms", "Keras SGD ms (share)", "Keras SGD + EMA 0.999 ms (share)",
         "fused update ms (share)", "step with the fused update, estimated"], rows)
    return caption + "\n\n" + table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--batch", type=int, default=None, help="batch size (128; 8 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (5; 1 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed calls per name per round (3; 1 with --quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (2; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: pre-act ResNet-8, batch 8")
    parser.add_argument("--out", default=None, help="JSON path (bench/results/optimizer_update.json)")
    args = parser.parse_args()
    from bench.cpu_training import QUICK_MODEL

    quick = args.quick
    models = [QUICK_MODEL] if quick else [{"name": name} for name in args.models.split(",")]
    result = common.result_header(MODULE, quick)
    result.update(batch=args.batch or (8 if quick else 128), rounds=args.rounds or (1 if quick else 5),
                  steps=args.steps or (1 if quick else 3), warmup=args.warmup or (1 if quick else 2))
    result["rows"] = [measure(m, result["batch"], result["rounds"], result["steps"], result["warmup"]) for m in models]
    result["loadavg_end"] = common.loadavg()
    out = args.out or ("/tmp/optimizer_update_quick.json" if quick else "bench/results/optimizer_update.json")
    common.finish(result, markdown(result), out)


if __name__ == "__main__":
    main()

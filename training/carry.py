"""Carry a long training run from one machine to the next in a few MB of git.

A run longer than a session (issue 28's ResNetV2-56: about four hours of a 2-core CPU) must
survive a change of machine, and the only thing that survives is what is committed. A
resumable checkpoint (``model_dir/checkpoint/ckpt.npz``: float32 weights, batch-norm
statistics and the SGD momentum buffers) of a ResNetV2-56 is about 7 MB, and every epoch's
copy would stay in the history forever. So between sessions we commit only the model's
variables in float16 (1.7 MB for ResNetV2-56) plus the checkpoint's record (finished epochs,
iteration, history, recipe, identity), and remove the file once the model is published.

    python -m training.carry save runs/r56 training/carry/r56.npz      # end of a session
    python -m training.carry restore training/carry/r56.npz runs/r56   # next session
    keras-preact train <the same flags> --model_dir=runs/r56            # resumes at the next epoch

``restore`` writes an ordinary checkpoint that the trainer resumes like any other (same
identity checks). What is lost on the way: the weights' float32 digits below float16's
(relative 5e-4) and the SGD momentum buffers, restarted at zero (a run that averages its
weights, ``ema_momentum``, keeps the average in float16 like the weights); the optimizer's scalars
(its iteration count, so the learning-rate schedule continues where it was) are kept, and so is
run.json (the wall time of the earlier sessions adds up in the published card).
Both losses are small next to one SGD step at the schedule's learning rate; the note of
every carried run says where it was carried.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from keras_preact.training import state


# Keras names the optimizer's copy of a weight's moving average "<weight>_average" (use_ema).
AVERAGE_SUFFIX = "_average"


def save(model_dir: str, out: str) -> dict:
    ckpt = state.load_checkpoint(model_dir)
    if ckpt is None:
        raise SystemExit(f"error: {model_dir} has no checkpoint ({state.CKPT_DIR}/{state.CKPT}) to carry")
    arrays = {f"m{i}": (a.astype(np.float16) if a.dtype == np.float32 else a)
              for i, a in enumerate(ckpt.model_values)}
    # Optimizer scalars (iteration count, loss scale) are kept exactly, the weights' moving average
    # (ema_momentum) in float16 like the weights; the momentum buffers only by shape.
    opt = [{"shape": list(a.shape), "dtype": str(a.dtype)} for a in ckpt.opt_values]
    names = ckpt.meta.get("optimizer_variables") or [""] * len(ckpt.opt_values)
    arrays.update({f"o{i}": a for i, a in enumerate(ckpt.opt_values) if a.ndim == 0})
    arrays.update({f"o{i}": a.astype(np.float16) for i, (a, name) in enumerate(zip(ckpt.opt_values, names))
                   if name.endswith(AVERAGE_SUFFIX) and a.dtype == np.float32})
    carried = dict(ckpt.meta, carry={"opt": opt, "from": os.path.abspath(ckpt.path),
                                     "carries": ckpt.meta.get("carry", {}).get("carries", 0) + 1})
    carried["carry"]["epochs_at_carries"] = ckpt.meta.get("carry", {}).get("epochs_at_carries", []) + [
        int(ckpt.meta["epoch"])]
    # run.json travels too: its wall time of the earlier sessions, command and hardware continue.
    run_json = os.path.join(model_dir, "run.json")
    if os.path.exists(run_json):
        with open(run_json) as f:
            carried["carry"]["run_json"] = json.load(f)
    arrays["meta"] = np.frombuffer(json.dumps(carried).encode(), dtype=np.uint8)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    state.atomic_write(out, lambda p: np.savez_compressed(p, **arrays))
    return carried


def restore(carry_file: str, model_dir: str) -> dict:
    if state.load_checkpoint(model_dir) is not None:
        raise SystemExit(f"error: {model_dir} already holds a checkpoint; restore into an empty model_dir "
                         f"(nothing is replaced)")
    with np.load(carry_file, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        model = [z[f"m{i}"].astype(np.float32) if z[f"m{i}"].dtype == np.float16 else z[f"m{i}"]
                 for i in range(meta["n_model"])]
        opt = [z[f"o{i}"].astype(o["dtype"]) if f"o{i}" in z.files else np.zeros(o["shape"], o["dtype"])
               for i, o in enumerate(meta["carry"]["opt"])]
    meta = {k: v for k, v in meta.items() if k not in ("n_model", "n_opt")}
    run_json = meta["carry"].pop("run_json", None)
    state.save_checkpoint(model_dir, model, opt, meta)
    if run_json is not None:
        state.atomic_write_json(os.path.join(model_dir, "run.json"), run_json)
    return meta


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="model_dir's checkpoint -> a float16 weights-only carry file")
    s.add_argument("model_dir")
    s.add_argument("out")
    r = sub.add_parser("restore", help="a carry file -> a resumable checkpoint in an empty model_dir")
    r.add_argument("carry_file")
    r.add_argument("model_dir")
    args = parser.parse_args(argv)
    if args.command == "save":
        meta = save(args.model_dir, args.out)
        print(f"{args.out}: epoch {meta['epoch']}, iteration {meta['iteration']}, "
              f"{os.path.getsize(args.out) / 2**20:.1f} MiB")
    else:
        meta = restore(args.carry_file, args.model_dir)
        print(f"{args.model_dir}: resumable at epoch {meta['epoch']} (iteration {meta['iteration']}); "
              f"momentum buffers restart at zero")
    return 0


if __name__ == "__main__":
    sys.exit(main())

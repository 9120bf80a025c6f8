r"""Evaluate a trained model_dir on a dataset's test split: top-1 / top-5 accuracy.

    python -m keras_preact.training.evaluate --model_dir=runs/resnetv2_20 [--dataset=folder:data/cifar10-jpeg]

The model is rebuilt from ``run.json`` (``model`` + ``model_kwargs``) and loaded with
``final.weights.h5``, or, for a run that has not finished, with the weights of the last
checkpoint (``--weights=checkpoint`` forces that). ``--dataset`` defaults to the one the
run was trained on; its class names must match the run's. Prints one line and, with
``--output=FILE``, writes the metrics as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags, logging  # noqa: E402

flags.DEFINE_string("model_dir", None, "A training model_dir (holds run.json).")
flags.DEFINE_string("dataset", None, "Dataset to evaluate on (default: the run's).")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir.")
flags.DEFINE_enum("weights", "auto", ["auto", "final", "checkpoint"],
                  "final.weights.h5, the last checkpoint, or auto (final if present).")
flags.DEFINE_integer("batch_size", 250, "Evaluation batch size.")
flags.DEFINE_integer("steps", None, "Cap on evaluation batches (quick checks).")
flags.DEFINE_string("output", None, "Write the metrics as JSON to this file.")
FLAGS = flags.FLAGS


class EvalError(ValueError):
    pass


def load_run(model_dir: str) -> dict:
    path = os.path.join(model_dir, "run.json")
    if not os.path.exists(path):
        raise EvalError(f"{model_dir!r} has no run.json (not a training model_dir)")
    with open(path) as f:
        return json.load(f)


def build_model(model_dir: str, run: dict, weights: str = "auto"):
    import keras_preact

    from keras_preact.training import state

    # A run's model_kwargs may change the registered network (the ablations' unit=, depth=).
    model = keras_preact.build_variant(run["model"], **run["model_kwargs"])
    final = os.path.join(model_dir, "final.weights.h5")
    if weights in ("auto", "final") and os.path.exists(final):
        model.load_weights(final)
        return model, "final.weights.h5"
    if weights == "final":
        raise EvalError(f"{final} does not exist (the run has not finished); use --weights=checkpoint")
    ckpt = state.load_checkpoint(model_dir)
    if ckpt is None:
        raise EvalError(f"{model_dir!r} has neither final.weights.h5 nor a checkpoint")
    state.restore(model.weights, ckpt.model_values, "model")
    return model, f"checkpoint (epoch {ckpt.meta['epoch']})"


def evaluate(model_dir: str, dataset: str = None, data_dir: str = None, weights: str = "auto",
             batch_size: int = 250, steps: int = None) -> dict:
    import numpy as np
    import tensorflow as tf

    from keras_preact import data as data_lib
    from keras_preact.training import pipeline

    run = load_run(model_dir)
    dataset = dataset or run["dataset"]
    model, source = build_model(model_dir, run, weights)
    ds, info = data_lib.load_split(dataset, "test", data_dir=data_dir)
    if list(info.class_names) != list(run["class_names"]):
        raise EvalError(f"{dataset} has classes {info.class_names[:12]}..., the model was trained on "
                        f"{run['class_names'][:12]}...; the label order must match")
    size = int(run["input_shape"][0])
    augment = run.get("config", {}).get("augment", "cifar")
    ds = ds.map(pipeline.eval_transform(augment, size), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    if steps:
        ds = ds.take(steps)
    k = min(5, info.num_classes)

    @tf.function
    def step(x, y):
        p = tf.cast(model(tf.cast(x, tf.float32), training=False), tf.float32)
        top1 = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(p, -1), y), tf.float32))
        topk = tf.reduce_sum(tf.cast(tf.math.in_top_k(y, p, k), tf.float32))
        return top1, topk

    t0 = time.time()
    tot = np.zeros(3)
    for x, y in ds:
        a, b = step(x, y)
        tot += [float(a), float(b), int(y.shape[0])]
    n = max(tot[2], 1)
    return {"model_dir": os.path.abspath(model_dir), "model": run["model"], "dataset": dataset, "split": "test",
            "weights": source, "top1": tot[0] / n, "top5": tot[1] / n, "error": 1 - tot[0] / n,
            "examples": int(tot[2]), "skipped_files": len(info.skipped_files), "seconds": round(time.time() - t0, 1)}


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments: {' '.join(argv[1:])}", file=sys.stderr)
        return 2
    if not FLAGS.model_dir:
        print("error: --model_dir is required", file=sys.stderr)
        return 2
    from keras_preact import data as data_lib
    from keras_preact.training.state import atomic_write_json

    try:
        out = evaluate(FLAGS.model_dir, FLAGS.dataset, FLAGS.data_dir, FLAGS.weights, FLAGS.batch_size, FLAGS.steps)
    except (EvalError, data_lib.DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{out['model']} on {out['dataset']} test split ({out['examples']} images, weights: {out['weights']}): "
          f"top-1 {100 * out['top1']:.2f}%  top-5 {100 * out['top5']:.2f}%  (error {100 * out['error']:.2f}%)",
          flush=True)
    if FLAGS.output:
        atomic_write_json(FLAGS.output, out)
    logging.info("evaluation took %.1fs", out["seconds"])
    return 0


if __name__ == "__main__":
    app.run(main)

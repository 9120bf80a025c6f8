r"""Training-step throughput on this machine (synthetic batch, no input pipeline).

    python -m bench.train_step --models=resnet_20,resnetv2_20 --policies=float32,mixed_bfloat16 \
        --jit=0,1 --batch_size=128 --steps=10

Each combination runs in a fresh subprocess (the mixed-precision policy is global) and
prints ms/step, images/s and the implied seconds per 50k-image CIFAR epoch. The step is
the trainer's: forward, softmax cross-entropy, L2 penalty, backward, SGD momentum update.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("models", "resnet_20,resnetv2_20", "Comma-separated model names.")
flags.DEFINE_string("policies", "float32,mixed_bfloat16", "Comma-separated Keras dtype policies.")
flags.DEFINE_string("jit", "0,1", "Comma-separated jit_compile settings (0/1).")
flags.DEFINE_integer("batch_size", 128, "Batch size.")
flags.DEFINE_integer("steps", 10, "Timed steps (after 3 warm-up steps).")
flags.DEFINE_string("one", None, "Internal: run one combination 'model,policy,jit' and print JSON.")
FLAGS = flags.FLAGS


def _one(model_name: str, policy: str, jit: bool, batch: int, steps: int) -> dict:
    import keras
    import tensorflow as tf

    import keras_preact

    keras.mixed_precision.set_global_policy(policy)
    model = keras_preact.get_model(model_name, classifier_activation=None)
    opt = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
    size = model.input_shape[1]
    x = tf.random.uniform((batch, size, size, 3), 0, 255)
    y = tf.random.uniform((batch,), 0, 10, tf.int64)

    @tf.function(jit_compile=jit)
    def grads(x, y):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            loss += 5e-4 * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])
        return tape.gradient(loss, model.trainable_variables), loss

    @tf.function
    def step(x, y):
        g, loss = grads(x, y)
        opt.apply_gradients(zip(g, model.trainable_variables))
        return loss

    for _ in range(3):
        step(x, y).numpy()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step(x, y)
    loss.numpy()
    dt = (time.perf_counter() - t0) / steps
    return {"model": model_name, "policy": policy, "jit": jit, "batch": batch, "ms_per_step": round(dt * 1000, 1),
            "images_per_s": round(batch / dt, 1), "s_per_50k_epoch": round(50000 / batch * dt, 1),
            "loadavg_1m": os.getloadavg()[0]}


def main(argv):
    del argv
    if FLAGS.one:
        m, p, j = FLAGS.one.split(",")
        print(json.dumps(_one(m, p, j == "1", FLAGS.batch_size, FLAGS.steps)))
        return
    for m in FLAGS.models.split(","):
        for p in FLAGS.policies.split(","):
            for j in FLAGS.jit.split(","):
                out = subprocess.run([sys.executable, "-m", "bench.train_step", f"--one={m},{p},{j}",
                                      f"--batch_size={FLAGS.batch_size}", f"--steps={FLAGS.steps}"],
                                     capture_output=True, text=True)
                lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
                print(lines[-1] if lines else f"{m} {p} jit={j}: failed: {out.stderr.strip()[-500:]}", flush=True)


if __name__ == "__main__":
    app.run(main)

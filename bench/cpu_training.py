r"""CPU training step, side by side: keras-preact's trainer vs ``model.fit`` on every
installed Keras backend, a pure ``jax.jit`` step and a plain PyTorch reference.

    python -m bench.cpu_training                    # resnetv2_20, resnetv2_56, resnetv2_164, densenet_bc_100_12
    python -m bench.cpu_training --sweep            # + the speed options of the trainer's step (issue 27)
    python -m bench.cpu_training --models resnetv2_20 --rounds 7
    python -m bench.cpu_training --quick            # smoke run: a depth-8 pre-act ResNet, batch 8, 1 step

What is timed: one training step (forward, loss, backward, SGD momentum update with
weight decay), batch 128 (``--batch``), float32, synthetic uint8 pixels (the models
normalize inside) and integer labels already in memory, after ``--warmup`` untimed steps
(tracing, XLA/JAX compilation, oneDNN primitive creation). Every implementation lives in a
long-lived worker process (one per Keras backend: ``KERAS_BACKEND`` is fixed at import);
the parent runs ``--rounds`` rounds, and in each round asks every implementation in turn
for ``--steps`` steps, rotating which goes first, so machine drift and other load hit them
alike. Only one worker computes at a time (the others wait on their stdin). A figure is
the median of all its timed steps; ratios come with the range of the per-round ratios.

Implementations (rows):

- ``ours``: keras-preact's training step, built by ``keras_preact.training.loop.Trainer``
  itself (``Trainer._build`` -> ``_make_steps``: ``strategy.run`` of the replica step under
  the default strategy, the recipe ``cifar_cpu_short`` at the bench's batch: Nesterov SGD
  momentum 0.9 with the one-cycle schedule, coupled L2 5e-4 on kernels as a loss penalty,
  label smoothing 0.1, no XLA, float32), fed by a ``tf.data`` iterator over the in-memory
  batch as the trainer's is, and synchronized as its loop is (the step's three sums read
  back with ``.numpy()``). If that API is gone the bench says so and times its own
  replica of the step (``trainer_source`` in the JSON).
- ``model.fit (tensorflow|jax|torch)``: ``compile(SGD(momentum=0.9, nesterov=True,
  weight_decay=5e-4), SparseCategoricalCrossentropy(from_logits=True))`` + ``fit`` on
  the backend, Keras defaults otherwise (``jit_compile="auto"``: no XLA for TensorFlow on
  a CPU, jit for JAX, eager for torch). Each step is timed by a callback
  (``on_train_batch_end`` to the next, the loss read back each time); the first batch of
  every ``fit`` call is not counted.
- ``jax.jit step``: the Keras model (JAX backend) through ``stateless_call``, the same loss
  as ours, SGD Nesterov momentum written out, the whole step one ``jax.jit`` with donated
  buffers.
- ``PyTorch``: ``bench/reference_models.py``'s plain PyTorch network (the same layers;
  trainable parameter counts asserted equal to the Keras model's), ``channels_last``
  memory format, eager, ``torch.optim.SGD(momentum=0.9, nesterov=True)`` with weight decay
  5e-4 on conv/dense weights (coupled, as ours), ``cross_entropy(label_smoothing=0.1)``,
  ``loss.item()`` each step, with ``OMP_WAIT_POLICY=PASSIVE`` (as ``fit`` on the torch
  backend): PyTorch's CPU wheel runs its threads with OpenMP, whose idle threads spin by
  default, and with any other process on the two cores every barrier then waits a
  scheduler time slice for a descheduled thread (resnetv2_20 at load 5: 30 images/s
  spinning, 256 passive). ``--sweep`` also measures the default (``torch_active``) and the
  ratios use the faster of the two. torch is an optional, bench-only dependency
  (``pip install -e .[bench]``); without it the PyTorch rows say "not installed".

Achieved FLOP/s uses the usual estimate: ``keras_preact.count_flops`` multiply-adds per
image x 2 (FLOPs per multiply-add) x 3 (forward + backward, the backward pass costing
twice the forward), times images/s. "Peak" is the best float32 matmul rate measured on
this machine (4096x4096 in numpy, TensorFlow, JAX and torch at the start, TensorFlow again
after every round; the maximum is used), so "% of peak" is the fraction of what a large GEMM
achieves here, not of the datasheet.

``--sweep`` (default models resnetv2_20, resnetv2_56) adds the options of issue 27 to the
TensorFlow worker, each one change from ours: XLA on the gradient function (the recipe's
``jit_compile``), XLA on the whole step, ``mixed_bfloat16`` (with and without XLA),
FusedBatchNormV3 instead of Keras' composite batch norm, the fused
``ResourceApplyKerasMomentum`` update instead of Keras SGD's per-variable ops, both
fused, batch 64 and 256, channels_first; the bench's own replica of ours (a control: it
must run at 1.00x); and in separate TensorFlow processes the thread and oneDNN settings
(``inter_op_parallelism_threads=1``, ``intra_op=1``, ``TF_ENABLE_ONEDNN_OPTS=0``,
``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1``); for PyTorch, NCHW (contiguous) memory format and the
OpenMP defaults (idle threads spinning).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common  # noqa: E402

MODULE = "bench.cpu_training"
RECIPE = "cifar_cpu_short"
MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING, LEARNING_RATE = 0.9, 5e-4, 0.1, 0.1

# model -> the plain PyTorch reference with the same layers (bench/reference_models.py).
MODELS = {
    "resnetv2_20": {"torch": ["torch_preact_resnet", {"depth": 20, "block": "basic"}]},
    "resnetv2_56": {"torch": ["torch_preact_resnet", {"depth": 56, "block": "basic"}]},
    "resnetv2_164": {"torch": ["torch_preact_resnet", {"depth": 164, "block": "bottleneck"}]},
    "densenet_bc_100_12": {"torch": ["torch_densenet_bc", {"depth": 100, "growth_rate": 12}]},
}
SWEEP_MODELS = ("resnetv2_20", "resnetv2_56")
QUICK_MODEL = {"name": "resnetv2_20", "overrides": {"depth": 8}, "label": "pre-act ResNet-8 (quick)",
               "torch": ["torch_preact_resnet", {"depth": 8, "block": "basic"}]}

# (variant name, worker, what it is). The main run: every framework's usual way to train.
MAIN_VARIANTS = [
    ("ours", "tensorflow", "keras-preact trainer step (loop.py), float32, fused batch norm (the default)"),
    ("before", "tensorflow", "the trainer step before issue 27: Keras' composite batch norm (--nofused_batch_norm)"),
    ("fit_tensorflow", "tensorflow", "model.fit, TensorFlow backend (Keras defaults: no XLA on CPU)"),
    ("fit_jax", "jax", "model.fit, JAX backend (jit)"),
    ("jax_step", "jax", "pure jax.jit step on the Keras model (stateless_call)"),
    ("fit_torch", "torch:passive", "model.fit, torch backend (eager), OMP_WAIT_POLICY=PASSIVE"),
    ("torch", "torch:plain", "plain PyTorch, channels_last, eager, OMP_WAIT_POLICY=PASSIVE"),
    ("fused_sgd", "tensorflow", "ours with the fused SGD update (ResourceApplyKerasMomentum)"),
]
SWEEP_VARIANTS = [
    ("bench_step", "tensorflow", "the bench's replica of ours (control: expect 1.00x)"),
    ("xla_grads", "tensorflow", "ours + jit_compile=True on the gradient function (the recipe's option)"),
    ("xla_step", "tensorflow", "ours with the whole step (gradients + SGD update) in one XLA function"),
    ("bf16", "tensorflow", "ours + mixed_bfloat16"),
    ("bf16_xla_grads", "tensorflow", "ours + mixed_bfloat16 + XLA on the gradient function"),
    ("batch64", "tensorflow", "ours at batch 64 (images/s compared)"),
    ("batch256", "tensorflow", "ours at batch 256 (images/s compared)"),
    ("channels_first", "tensorflow", "ours with the model in channels_first (NCHW)"),
    ("memory_efficient", "tensorflow", "ours with DenseNet(memory_efficient=True): each map's batch moments once, "
                                       "every dense layer and transition recomputed in the backward pass"),
    ("shared_moments", "tensorflow", "ours with memory_efficient=True's layers but nothing recomputed (each map's "
                                     "batch moments once, then BN as x * scale + shift; bench-only)"),
    ("inter_op_1", "tensorflow:inter1", "ours, tf.config.threading inter_op_parallelism_threads=1"),
    ("intra_op_1", "tensorflow:intra1", "ours, intra_op_parallelism_threads=1 (one core per op)"),
    ("onednn_off", "tensorflow:onednn_off", "ours, TF_ENABLE_ONEDNN_OPTS=0 (Eigen kernels)"),
    ("system_allocator", "tensorflow:sysalloc", "ours, TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1"),
    ("torch_active", "torch", "plain PyTorch, channels_last, eager, OpenMP defaults (threads spin while idle)"),
    ("torch_nchw", "torch:plain", "plain PyTorch, contiguous NCHW, eager, OMP_WAIT_POLICY=PASSIVE"),
]
# worker name -> (KERAS_BACKEND, extra environment, TensorFlow threading)
WORKERS = {
    "tensorflow": ("tensorflow", {}, {}),
    "tensorflow:inter1": ("tensorflow", {}, {"inter_op": 1}),
    "tensorflow:intra1": ("tensorflow", {}, {"intra_op": 1}),
    "tensorflow:onednn_off": ("tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "0"}, {}),
    "tensorflow:sysalloc": ("tensorflow", {"TF_ONEDNN_USE_SYSTEM_ALLOCATOR": "1"}, {}),
    "jax": ("jax", {}, {}),
    "torch": ("torch", {}, {}),
    "torch:passive": ("torch", {"OMP_WAIT_POLICY": "PASSIVE"}, {}),
    # Plain PyTorch in a process of its own: next to the torch-backend Keras model, DenseNet-BC's
    # worker outgrew the machine's memory (the OOM killer ended it on 2026-12-01).
    "torch:plain": ("torch", {"OMP_WAIT_POLICY": "PASSIVE"}, {}),
}
# Ratios are against ours and against PyTorch: its faster row where --sweep measures both. PyTorch's
# CPU wheel runs its two threads with OpenMP, whose idle threads spin by default; with other processes
# on the two cores every barrier then waits a scheduler time slice for a descheduled thread (measured
# here at load 5: 30 images/s instead of 256 on resnetv2_20), so the main rows set OMP_WAIT_POLICY=PASSIVE
# (idle threads sleep; TensorFlow's and XLA's work-stealing pools need no such setting).
TORCH_ROWS = ("torch", "torch_active")


# ============================================================================ worker side


def reply(obj):
    sys.stdout.write("@@" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def error_text(error):
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("File ", "[[", "Detected at node", "Graph execution error"))]
    return f"{type(error).__name__}: {(useful or lines or [''])[-1][:300]}"


def rss_gib():
    try:
        import psutil

        return round(psutil.Process().memory_info().rss / 2**30, 2)
    except ImportError:
        return None


def matmul_gflops(backend, n=4096, repeats=5):
    """Best float32 n x n matmul rate (GFLOP/s) of one framework in this process."""
    flops = 2.0 * n ** 3
    if backend == "numpy":
        import numpy as np

        a = np.random.RandomState(0).standard_normal((n, n)).astype("float32")
        fn = lambda: a @ a  # noqa: E731
    elif backend == "tensorflow":
        import tensorflow as tf

        a = tf.random.normal((n, n))
        fn = lambda: tf.matmul(a, a).numpy()  # noqa: E731
    elif backend == "jax":
        import jax
        import jax.numpy as jnp

        a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
        mm = jax.jit(lambda x: x @ x)
        fn = lambda: mm(a).block_until_ready()  # noqa: E731
    elif backend == "torch":
        import torch

        a = torch.randn(n, n)
        fn = lambda: torch.mm(a, a)  # noqa: E731
    else:
        raise ValueError(backend)
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return flops / best / 1e9


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Data:
    def __init__(self, batch, size, classes, seed=0):
        import numpy as np

        rng = np.random.RandomState(seed)
        self.batch, self.size, self.classes = batch, size, classes
        self.pixels = rng.randint(0, 256, (batch, size, size, 3)).astype("uint8")
        self.labels = rng.randint(0, classes, (batch,)).astype("int64")


# ---------------------------------------------------------------- TensorFlow: ours and its options


def build_trainer(model, batch, *, cfg_changes=None, tmpdir=None):
    """keras-preact's Trainer for `model` (a MODELS spec), built by loop.Trainer itself:
    (trainer, source). `trainer.train_step(iterator)` is the training step of loop.py."""
    from types import SimpleNamespace

    import keras
    import tensorflow as tf

    from keras_preact.training import configs, loop

    cfg = configs.get_config(RECIPE).replace(batch_size=batch, **(cfg_changes or {}))
    strategy = tf.distribute.get_strategy()
    run = loop.RunSpec(model=model["name"], dataset="cifar10", model_dir=tmpdir or tempfile.mkdtemp(), cfg=cfg,
                       model_overrides=dict(model.get("overrides") or {}))
    trainer = loop.Trainer(run, strategy)
    trainer.train_info = SimpleNamespace(num_examples=50_000, num_classes=10, class_names=[str(i) for i in range(10)])
    try:
        trainer._build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return trainer


def tf_iterator(strategy, data):
    import tensorflow as tf

    pixels, labels = data.pixels, data.labels
    return iter(strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensors((pixels, labels)).repeat()))


def bench_step(trainer, *, jit=None, fused_sgd=False):
    """loop.py's Trainer train_step rebuilt around the trainer's own `grads_fn` (one replica,
    the default strategy), with one change at a time: `jit` None (as the recipe: no XLA),
    "grads" (XLA on the gradient function, as cfg.jit_compile does) or "step" (the whole
    replica step, update included, in one XLA function); `fused_sgd` applies the update with
    one ResourceApplyKerasMomentum per variable instead of Keras SGD's ops."""
    import tensorflow as tf

    strategy, model, opt = trainer.strategy, trainer.model, trainer.optimizer
    grads_fn = trainer.grads_fn  # loop.py's own loss and gradients of one replica
    if jit == "grads":
        grads_fn = tf.function(grads_fn, jit_compile=True)
    variables = model.trainable_variables

    def apply(grads):
        if fused_sgd:
            fused_sgd_apply(opt, grads, variables)
        else:
            opt.apply_gradients(zip(grads, variables))

    def replica_step(images, labels):
        grads, ce_sum, correct = grads_fn(images, labels)
        apply(grads)
        n = tf.cast(tf.shape(labels)[0], tf.float32)
        return ce_sum, correct, n

    if jit == "step":
        replica_step = tf.function(replica_step, jit_compile=True)

    @tf.function
    def train_step(iterator):
        images, labels = next(iterator)
        out = strategy.run(replica_step, args=(images, labels))
        return [strategy.reduce(tf.distribute.ReduceOp.SUM, o, axis=None) for o in out]

    return train_step


def fused_sgd_apply(opt, grads, variables):
    """What ``keras.optimizers.SGD(momentum, nesterov).apply_gradients`` does for one replica,
    with one fused ResourceApplyKerasMomentum kernel per variable (m <- mu m - lr g; v <- v + m,
    or v + mu m - lr g with Nesterov: Keras SGD's update exactly) instead of Keras' ~8 ops
    per variable. No gradient clipping, loss scaling, EMA or decoupled weight decay, and no
    cross-replica reduction: for the default (single-replica) strategy only."""
    import tensorflow as tf

    lr = tf.cast(opt.learning_rate, tf.float32)  # the schedule at opt.iterations, as apply_gradients uses
    for g, v in zip(grads, variables):
        m = opt.momentums[opt._get_variable_index(v)]
        tf.raw_ops.ResourceApplyKerasMomentum(var=v.value.handle, accum=m.value.handle, lr=tf.cast(lr, v.dtype),
                                              grad=tf.cast(g, v.dtype), momentum=tf.cast(opt.momentum, v.dtype),
                                              use_locking=False, use_nesterov=bool(opt.nesterov))
    opt.iterations.assign_add(1)


class StepRunner:
    """A runner whose `_step()` is one synchronous training step: `run` times `steps` of them."""

    def run(self, steps):
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            self._step()
            times.append(time.perf_counter() - t0)
        return times


class TrainerRunner(StepRunner):
    """One TensorFlow configuration of ours: a train_step over a tf.data iterator."""

    def __init__(self, name, model, data, tmpdir):
        import keras
        import tensorflow as tf

        from keras_preact.models.analysis import count_flops

        self.source = "keras_preact.training.loop.Trainer._build/_make_steps"
        cfg_changes, batch, layout = {}, data.batch, "channels_last"
        if name == "before":
            cfg_changes["fused_batch_norm"] = False
        if name in ("xla_grads", "bf16_xla_grads"):
            cfg_changes["jit_compile"] = True
        if name.startswith("bf16"):
            cfg_changes["mixed_precision"] = "mixed_bfloat16"
        if name == "batch64":
            batch = 64
        elif name == "batch256":
            batch = 256
        if name == "channels_first":
            layout = "channels_first"
        if name in ("memory_efficient", "shared_moments"):
            if not model["name"].startswith("densenet"):
                raise ValueError(f"variant {name!r} is for DenseNets (memory_efficient=True); model {model['name']!r}")
            model = dict(model, overrides={**(model.get("overrides") or {}), "memory_efficient": True})
        if batch != data.batch:
            data = Data(batch, data.size, data.classes)
        self.batch = batch
        keras.config.set_image_data_format(layout)
        try:
            trainer = build_trainer(model, batch, cfg_changes=cfg_changes, tmpdir=tmpdir)
        finally:
            keras.config.set_image_data_format("channels_last")
        self.model = trainer.model
        self.params = int(sum(int(tf.size(v)) for v in trainer.model.trainable_variables))
        self.multiply_adds = count_flops(trainer.model) if layout == "channels_last" else None
        self.fused_layers = trainer.fused_batch_norm_layers
        if name in ("bench_step", "fused_sgd", "xla_step"):
            step = bench_step(trainer, jit="step" if name == "xla_step" else None, fused_sgd=name == "fused_sgd")
            self.source = "bench replica of loop.py's step"
        else:
            step = trainer.train_step
        if layout == "channels_first":
            import numpy as np

            data = Data(batch, data.size, data.classes)
            data.pixels = np.ascontiguousarray(data.pixels.transpose(0, 3, 1, 2))
        iterator = tf_iterator(trainer.strategy, data)
        self._step = lambda: [float(t.numpy()) for t in step(iterator)]
        if name == "shared_moments":
            # The memory-efficient layers wrap what they recompute in keras.remat when the
            # step is traced; with keras.remat as the identity during the first (tracing)
            # step, the same functions run once and their activations are stored. That
            # step is extra, so the warm-up's first step is no longer the compile.
            real_remat = keras.remat
            keras.remat = lambda function: function
            try:
                self._step()
            finally:
                keras.remat = real_remat

# ---------------------------------------------------------------- model.fit on any backend


def keras_model(model):
    import keras_preact

    return keras_preact.build_variant(model["name"], classifier_activation=None, **(model.get("overrides") or {}))


class FitRunner:
    """model.fit on this process's Keras backend, each step timed by a callback."""

    def __init__(self, name, model, data, tmpdir):
        import keras
        import numpy as np

        from keras_preact.models.analysis import count_flops

        self.batch = data.batch
        self.model = keras_model(model)
        self.params = int(sum(int(np.prod(v.shape)) for v in self.model.trainable_variables))
        self.multiply_adds = count_flops(self.model)
        self.model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM, nesterov=True,
                                                          weight_decay=WEIGHT_DECAY),
                           loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        self.jit_compile = str(self.model.jit_compile)
        self.data = data
        stamps = self.stamps = []

        class Timer(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                float((logs or {}).get("loss", 0.0))  # the loss read back: a synchronization point
                stamps.append(time.perf_counter())

        self.timer = Timer()

    def run(self, steps):
        import numpy as np

        n = steps + 1  # the first batch of a fit call includes its set-up: not counted
        x = np.concatenate([self.data.pixels] * n)
        y = np.concatenate([self.data.labels] * n)
        del self.stamps[:]
        self.model.fit(x, y, batch_size=self.batch, epochs=1, shuffle=False, verbose=0, callbacks=[self.timer])
        return [b - a for a, b in zip(self.stamps, self.stamps[1:])]


# ---------------------------------------------------------------- pure JAX


class JaxStepRunner(StepRunner):
    """The Keras model (JAX backend) trained by one jax.jit step through stateless_call:
    ours' loss (label-smoothed cross-entropy + coupled L2 on kernels) and Keras SGD's
    Nesterov momentum update, written out."""

    def __init__(self, name, model, data, tmpdir):
        import jax
        import jax.numpy as jnp
        import numpy as np

        from keras_preact.models.analysis import count_flops

        self.batch = data.batch
        m = keras_model(model)
        self.params = int(sum(int(np.prod(v.shape)) for v in m.trainable_variables))
        self.multiply_adds = count_flops(m)
        kernels = [v.path.split("/")[-1] in ("kernel", "depthwise_kernel", "pointwise_kernel")
                   for v in m.trainable_variables]
        classes = data.classes

        def loss_fn(tv, ntv, x, y):
            logits, ntv = m.stateless_call(tv, ntv, x, training=True)
            logits = logits.astype(jnp.float32)
            target = jax.nn.one_hot(y, classes) * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / classes
            ce = -jnp.sum(target * jax.nn.log_softmax(logits), axis=-1)
            penalty = sum(0.5 * jnp.sum(jnp.square(v)) for v, k in zip(tv, kernels) if k)
            return jnp.mean(ce) + WEIGHT_DECAY * penalty, (ntv, jnp.sum(ce))

        def step(tv, ntv, mom, x, y):
            (loss, (ntv, ce_sum)), grads = jax.value_and_grad(loss_fn, has_aux=True)(tv, ntv, x, y)
            lr = LEARNING_RATE
            mom = [MOMENTUM * mo - lr * g for mo, g in zip(mom, grads)]
            tv = [v + MOMENTUM * mo - lr * g for v, mo, g in zip(tv, mom, grads)]
            return tv, ntv, mom, ce_sum

        self._jit = jax.jit(step, donate_argnums=(0, 1, 2))
        self.state = ([v.value for v in m.trainable_variables], [v.value for v in m.non_trainable_variables],
                      [jnp.zeros(v.shape, v.dtype) for v in m.trainable_variables])
        self.x, self.y = jnp.asarray(data.pixels), jnp.asarray(data.labels.astype("int32"))

    def _step(self):
        tv, ntv, mom, ce = self._jit(*self.state, self.x, self.y)
        float(ce)  # wait for the step
        self.state = (tv, ntv, mom)


# ---------------------------------------------------------------- plain PyTorch


class TorchRunner(StepRunner):
    """bench/reference_models.py's PyTorch network, eager, channels_last (or NCHW)."""

    def __init__(self, name, model, data, tmpdir):
        import torch
        import torch.nn.functional as F

        from bench import reference_models

        torch.manual_seed(0)
        builder, kwargs = model["torch"]
        net = getattr(reference_models, builder)(**kwargs, classes=data.classes)
        self.params = int(sum(p.numel() for p in net.parameters()))
        expected = model.get("keras_params")
        if expected is not None and expected != self.params:
            raise AssertionError(f"PyTorch reference has {self.params} trainable parameters, the Keras model "
                                 f"{expected}: not the same network")
        self.multiply_adds = model.get("multiply_adds")
        self.batch = data.batch
        fmt = torch.contiguous_format if name == "torch_nchw" else torch.channels_last
        net = net.to(memory_format=fmt).train()
        x = torch.from_numpy(data.pixels).permute(0, 3, 1, 2).contiguous(memory_format=fmt)
        y = torch.from_numpy(data.labels)
        decay = [p for p in net.parameters() if p.ndim > 1]
        rest = [p for p in net.parameters() if p.ndim <= 1]
        opt = torch.optim.SGD([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": rest, "weight_decay": 0.0}],
                              lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y, label_smoothing=LABEL_SMOOTHING)
            loss.backward()
            opt.step()
            return loss.item()

        self._step = step
        self.net = net

RUNNERS = {"ours": TrainerRunner, "fit_tensorflow": FitRunner, "fit_jax": FitRunner, "fit_torch": FitRunner,
           "jax_step": JaxStepRunner, "torch": TorchRunner, "torch_active": TorchRunner, "torch_nchw": TorchRunner}


def runner_class(name):
    return RUNNERS.get(name, TrainerRunner)


def worker(payload):
    """Long-lived worker: build and warm up every variant, then answer 'run' requests."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    threading = payload.get("threading") or {}
    if backend == "tensorflow" and threading:
        import tensorflow as tf

        if "inter_op" in threading:
            tf.config.threading.set_inter_op_parallelism_threads(threading["inter_op"])
        if "intra_op" in threading:
            tf.config.threading.set_intra_op_parallelism_threads(threading["intra_op"])
    info = {"backend": backend, "pid": os.getpid(), "matmul_gflops": {}}
    peak_backends = [backend] + (["torch"] if backend == "torch" else [])
    for b in dict.fromkeys(peak_backends):
        if payload.get("measure_peak"):
            try:
                info["matmul_gflops"][b] = round(matmul_gflops(b, payload.get("matmul_n", 4096)), 1)
            except Exception as error:  # noqa: BLE001
                info["matmul_gflops"][b] = None
                info.setdefault("errors", []).append(error_text(error))
    import keras

    info["keras_backend"] = keras.backend.backend()
    data = Data(payload["batch"], payload["size"], payload["classes"])
    tmpdir = tempfile.mkdtemp(prefix="cpu_training_")
    runners, described = [], []
    for name in payload["variants"]:
        entry = {"name": name}
        try:
            t0 = time.perf_counter()
            runner = runner_class(name)(name, payload["model"], data, tmpdir)
            entry["build_seconds"] = round(time.perf_counter() - t0, 2)
            warm = runner.run(payload["warmup"])
            entry["first_step_seconds"] = warm[0] if warm else None
            entry.update(params=runner.params, multiply_adds=runner.multiply_adds, batch=runner.batch,
                         source=getattr(runner, "source", None), jit_compile=getattr(runner, "jit_compile", None))
        except Exception as error:  # noqa: BLE001 - reported in the table
            runner = None
            entry["error"] = error_text(error)
        runners.append(runner)
        described.append(entry)
    info["variants"] = described
    info["rss_gib"] = rss_gib()
    reply({"ready": True, **info})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            break
        if cmd["cmd"] == "peak":
            try:
                reply({"matmul_gflops": {backend: round(matmul_gflops(backend, payload.get("matmul_n", 4096)), 1)}})
            except Exception as error:  # noqa: BLE001
                reply({"error": error_text(error)})
            continue
        runner = runners[cmd["variant"]]
        try:
            reply({"times": runner.run(cmd["steps"])})
        except Exception as error:  # noqa: BLE001
            runners[cmd["variant"]] = None
            reply({"error": error_text(error)})
    reply({"bye": True, "rss_gib": rss_gib()})


# ============================================================================ parent side


class Worker:
    """A worker process and its request/reply channel (stdin / '@@' lines on stdout)."""

    def __init__(self, key, payload):
        backend, env, threading = WORKERS[key]
        self.key = key
        self.log = tempfile.TemporaryFile(mode="w+")
        environment = dict(os.environ, KERAS_BACKEND=backend, **env)
        payload = dict(payload, threading=threading)
        self.proc = subprocess.Popen([sys.executable, "-m", MODULE, "--worker", json.dumps(payload)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     text=True, bufsize=1, env=environment)
        self.info = self._read()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("@@"):
                return json.loads(line[2:])
        self.proc.wait()
        self.log.seek(0)
        tail = [ln for ln in self.log.read().strip().splitlines() if ln.strip()]
        return {"error": (tail[-1][:500] if tail else f"exit status {self.proc.returncode}"), "dead": True}

    def request(self, obj):
        if self.proc.poll() is not None:
            return {"error": "worker exited"}
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        out = self.request({"cmd": "quit"}) if self.proc.poll() is None else {}
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return out


def describe(name):
    for n, _, text in MAIN_VARIANTS + SWEEP_VARIANTS:
        if n == name:
            return text
    return name


def worker_of(name):
    for n, w, _ in MAIN_VARIANTS + SWEEP_VARIANTS:
        if n == name:
            return w
    raise KeyError(name)


def model_facts(model):
    """Trainable parameters and multiply-adds of the Keras model (for the PyTorch assertion)."""
    import keras_preact

    m = keras_preact.build_variant(model["name"], classifier_activation=None, **(model.get("overrides") or {}))
    return keras_preact.count_params(m, trainable_only=True), keras_preact.count_flops(m)


def torch_installed():
    from importlib.util import find_spec

    return find_spec("torch") is not None


def measure_model(model, variants, args, peak):
    """Start the workers of one model, run interleaved rounds, return the model's result."""
    params, macs = model_facts(model)
    model = dict(model, keras_params=params, multiply_adds=macs)
    by_worker = {}
    skipped = {}
    have_torch = torch_installed()
    for name in variants:
        key = worker_of(name)
        if WORKERS[key][0] == "torch" and not have_torch:
            skipped[name] = "torch not installed (pip install -e .[bench])"
            continue
        by_worker.setdefault(key, []).append(name)
    rows = {name: {"name": name, "what": describe(name), "worker": worker_of(name), "step_seconds": [],
                   "round_medians": []} for name in variants}
    for name, why in skipped.items():
        rows[name]["error"] = why
    workers = []
    for key, names in by_worker.items():
        print(f"  starting {key} worker: {', '.join(names)}", file=sys.stderr, flush=True)
        payload = {"model": model, "variants": names, "batch": args.batch, "size": 32, "classes": 10,
                   "warmup": args.warmup, "measure_peak": key in ("tensorflow", "jax", "torch:plain"),
                   "matmul_n": 1024 if args.quick else 4096}
        w = Worker(key, payload)
        if w.info.get("error"):
            for name in names:
                rows[name]["error"] = f"worker failed: {w.info['error']}"
            continue
        for b, g in (w.info.get("matmul_gflops") or {}).items():
            if g:
                peak[b] = max(peak.get(b) or 0.0, g)
        for i, entry in enumerate(w.info["variants"]):
            rows[entry["name"]].update({k: v for k, v in entry.items() if k != "name"})
            rows[entry["name"]]["slot"] = (len(workers), i)
        rows_rss = w.info.get("rss_gib")
        for name in names:
            rows[name]["worker_rss_gib"] = rows_rss
        workers.append(w)
    slots = [name for name in variants if "slot" in rows[name] and not rows[name].get("error")]
    loads = [common.loadavg()]
    for r in range(args.rounds):
        k = r % len(slots) if slots else 0
        for name in slots[k:] + slots[:k]:
            row = rows[name]
            if row.get("error"):
                continue
            wi, vi = row["slot"]
            out = workers[wi].request({"cmd": "run", "variant": vi, "steps": args.steps})
            if out.get("error"):
                row["error"] = out["error"]
                continue
            row["step_seconds"] += out["times"]
            row["round_medians"].append(common.median(out["times"]) if out["times"] else None)
        loads.append(common.loadavg())
        # The matmul peak again after every round (from the TensorFlow worker): the best of all
        # samples is the figure, so one sample taken while other processes ran does not set it.
        for w in workers:
            if w.key == "tensorflow":
                for b, g in (w.request({"cmd": "peak"}).get("matmul_gflops") or {}).items():
                    if g:
                        peak[b] = max(peak.get(b) or 0.0, g)
        print(f"  round {r + 1}/{args.rounds} done, load {loads[-1][0]}", file=sys.stderr, flush=True)
    for w in workers:
        bye = w.close()
        for name in by_worker[w.key]:
            rows[name]["worker_rss_gib_end"] = bye.get("rss_gib")
    out_rows = []
    for name in variants:
        row = rows[name]
        row.pop("slot", None)
        if row["step_seconds"] and not row.get("error"):
            row["median_step_seconds"] = common.median(row["step_seconds"])
            row["images_per_second"] = row.get("batch", args.batch) / row["median_step_seconds"]
        out_rows.append(row)
    return {"model": model["name"], "label": model.get("label", model["name"]), "params": params,
            "multiply_adds": macs, "rows": out_rows, "loadavg_rounds": loads}


def add_ratios(result, peak_gflops):
    """Speed ratios (this row's images/s over the baseline's), per-round ranges, FLOP/s."""
    for m in result["models"]:
        rows = {r["name"]: r for r in m["rows"]}
        torch_rows = [rows[n] for n in TORCH_ROWS if rows.get(n, {}).get("images_per_second")]
        torch_base = max(torch_rows, key=lambda r: r["images_per_second"])["name"] if torch_rows else None
        m["torch_baseline"] = torch_base
        for r in m["rows"]:
            ips = r.get("images_per_second")
            if ips and m.get("multiply_adds"):
                r["gflops"] = 6.0 * m["multiply_adds"] * ips / 1e9
                r["fraction_of_peak"] = r["gflops"] / peak_gflops if peak_gflops else None
            for base, key in (("ours", "over_ours"), (torch_base, "over_torch")):
                b = rows.get(base) if base else None
                if not (ips and b and b.get("images_per_second")):
                    continue
                r[key] = ips / b["images_per_second"]
                per_round = [(r.get("batch", 0) / a) / (b.get("batch", 0) / c)
                             for a, c in zip(r["round_medians"], b["round_medians"]) if a and c]
                r[key + "_range"] = [min(per_round), max(per_round)] if per_round else None
        ours, torch_row = rows.get("ours", {}), rows.get(torch_base, {})
        m["ours_over_torch"] = (ours.get("images_per_second") / torch_row["images_per_second"]
                                if ours.get("images_per_second") and torch_row.get("images_per_second") else None)
        m["ours_over_torch_range"] = ours.get("over_torch_range")
        before = rows.get("before", {})
        if ours.get("images_per_second") and before.get("images_per_second"):
            m["ours_over_before"] = ours["images_per_second"] / before["images_per_second"]
            m["ours_over_before_range"] = ([1 / before["over_ours_range"][1], 1 / before["over_ours_range"][0]]
                                           if before.get("over_ours_range") else None)
        best = max((r for r in m["rows"] if r.get("images_per_second") and r["worker"].startswith("tensorflow")
                    and r.get("batch") == ours.get("batch")),
                   key=lambda r: r["images_per_second"], default=None)
        if best is not None and torch_row.get("images_per_second"):
            m["best_tensorflow"] = {"name": best["name"], "over_torch": best["images_per_second"]
                                    / torch_row["images_per_second"]}


def _cell_ratio(r, key):
    value = r.get(key)
    if value is None:
        return "–"
    rng = r.get(key + "_range")
    return common.ratio(value) + (f" ({rng[0]:.2f}–{rng[1]:.2f})" if rng and len(r["round_medians"]) > 1 else "")


def _loads(m):
    ones = [x[0] for x in m.get("loadavg_rounds", [])]
    return f"{min(ones):.1f}–{max(ones):.1f}" if ones else "–"


ROW_DERIVED = ("round_medians", "median_step_seconds", "images_per_second", "gflops", "fraction_of_peak",
               "over_ours", "over_ours_range", "over_torch", "over_torch_range")
MODEL_DERIVED = ("torch_baseline", "ours_over_torch", "ours_over_torch_range", "ours_over_before",
                 "ours_over_before_range", "best_tensorflow")


def derive(result):
    """Recompute, in place, every figure of a result from its raw measurements: each row's round
    medians (round k is step_seconds[k * steps:(k + 1) * steps], for the rounds it completed), median step and images/s, the matmul
    peak (the best of the stored samples), GFLOP/s and share of the peak, the ratios to ours and to the
    faster PyTorch row with their per-round ranges, each model's summary (add_ratios) and `ratios`."""
    peak = result["peak_gflops"]
    peak["max"] = max((v for k, v in peak.items() if v and k != "max"), default=None)
    for m in result["models"]:
        for key in MODEL_DERIVED:
            m.pop(key, None)
        for r in m["rows"]:
            for key in ROW_DERIVED:
                r.pop(key, None)
            times = r.get("step_seconds") or []
            r["round_medians"] = common.round_medians(times, len(times) // result["steps"], result["steps"])
            if r.get("step_seconds") and not r.get("error"):
                r["median_step_seconds"] = common.median(r["step_seconds"])
                r["images_per_second"] = r.get("batch", result["batch"]) / r["median_step_seconds"]
    add_ratios(result, peak["max"])
    result["ratios"] = {m["model"]: {"ours_over_torch": m.get("ours_over_torch"),
                                     "ours_over_before": m.get("ours_over_before"),
                                     "ours_over_torch_range": m.get("ours_over_torch_range"),
                                     "best_tensorflow": m.get("best_tensorflow"),
                                     **{r["name"]: {"over_ours": r.get("over_ours"), "over_torch": r.get("over_torch")}
                                        for r in m["rows"]}} for m in result["models"]}
    return result


def markdown(result):
    """The tables of a result, recomputed from its raw step times (see derive); the caption's end load
    is loadavg_end's."""
    import copy

    result = derive(copy.deepcopy(result))
    args = argparse.Namespace(**{k: result[k] for k in ("batch", "rounds", "steps", "warmup")},
                              quick=result.get("quick"))
    m0 = result["machine"]
    end_load = result["loadavg_end"][0]
    peak = result["peak_gflops"]
    peak_text = ", ".join(f"{k} {v:,.0f}" for k, v in peak.items() if v and k != "max")
    lines = [f"CPU training step, {common.machine_line(m0)}; batch {args.batch}, float32 unless said, synthetic "
             f"uint8 data; median step of {args.rounds} rounds x {args.steps} step(s) after {args.warmup} warm-up "
             f"step(s), implementations interleaved round by round; 1-minute load average "
             f"{result['loadavg_start'][0]:.2f} at start, {end_load:.2f} at end (during each model's rounds: "
             f"the summary's last column); {result['date'][:10]}. "
             f"FLOP/s = multiply-adds x 2 x 3 (forward + backward) x images/s; peak = the best float32 "
             f"4096x4096 matmul here ({peak_text} GFLOP/s)."
             + (" QUICK smoke run: tiny model and batch, not a measurement." if args.quick else "")
             + "".join(f" {', '.join(u['models'])} re-measured {u['date'][:16].replace('T', ' ')} UTC (`{u['command']}`)."
                       for u in result.get("updated", [])), ""]
    table = []
    for m in result["models"]:
        for r in m["rows"]:
            label = f"{m['label']}" + (f", batch {r['batch']}" if r.get("batch") and r["batch"] != args.batch else "")
            if r.get("error") or not r.get("images_per_second"):
                table.append([label, r["what"], "–", "–", "–", "–", "–", f"error: {(r.get('error') or '')[:140]}"])
                continue
            table.append([label, r["what"], common.fmt(r["median_step_seconds"] * 1000, 0),
                          common.fmt(r["images_per_second"], 1), _cell_ratio(r, "over_ours"),
                          _cell_ratio(r, "over_torch"), common.fmt(r.get("gflops"), 1),
                          "–" if r.get("fraction_of_peak") is None else f"{100 * r['fraction_of_peak']:.0f}%"])
    lines.append(common.markdown_table(
        ["model", "implementation", "ms/step", "images/s", "÷ ours (per-round range)", "÷ PyTorch (per-round range)",
         "GFLOP/s", "% of matmul peak"], table))
    bases = sorted({m.get("torch_baseline") for m in result["models"] if m.get("torch_baseline")})
    if bases:
        lines += ["", "÷ PyTorch is against the faster PyTorch row of each model (" + ", ".join(
            f"{m['label']}: {describe(m['torch_baseline'])}" for m in result["models"] if m.get("torch_baseline"))
            + "). PyTorch's OpenMP threads spin while idle by default; with other processes on the two cores "
              "every barrier then waits a scheduler time slice for a descheduled thread, so the PyTorch rows "
              "run with OMP_WAIT_POLICY=PASSIVE unless they say otherwise (--sweep measures both)."]
    summary = []
    for m in result["models"]:
        value = m.get("ours_over_torch")
        rng = m.get("ours_over_torch_range")
        best = m.get("best_tensorflow")
        verdict = "–" if value is None else ("yes" if value >= 1.0 else f"no: {1 - value:.0%} slower")
        gain, grng = m.get("ours_over_before"), m.get("ours_over_before_range")
        summary.append([m["label"], "–" if value is None else common.ratio(value) + (
            f" ({rng[0]:.2f}–{rng[1]:.2f})" if rng else ""), verdict,
            "–" if gain is None else common.ratio(gain) + (f" ({grng[0]:.2f}–{grng[1]:.2f})" if grng else ""),
            "–" if not best else f"{best['name']}: {best['over_torch']:.2f}x", _loads(m),
            m.get("date", result["date"])[:16].replace("T", " ")])
    lines += ["", common.markdown_table(["model", "ours ÷ PyTorch", "ours >= 1.0x PyTorch?",
                                         "ours ÷ before issue 27",
                                         "fastest TensorFlow row ÷ PyTorch", "1-min load during its rounds",
                                         "measured (UTC)"], summary)]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default=None, help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--variants", default=None, help="comma-separated variant names (default: all of the mode)")
    parser.add_argument("--sweep", action="store_true", help="add the speed options of ours (issue 27)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (128; 8 with --quick)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (5; 1 with --quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per implementation per round (2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke run: depth-8 pre-act ResNet, batch 8, 1 step")
    parser.add_argument("--rerender", action="store_true",
                        help="only rewrite --out's table from its measurements (after a change to the table's format)")
    parser.add_argument("--update", action="store_true",
                        help="replace only the measured models' entries in --out (same settings), keep the others")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    if args.batch is None:
        args.batch = 8 if args.quick else 128
    if args.rounds is None:
        args.rounds = 1 if args.quick else 5
    if args.steps is None:
        args.steps = 1 if args.quick else 2
    if args.warmup is None:
        args.warmup = 1 if args.quick else 3
    if args.out is None:
        args.out = "bench/results/cpu_training_sweep.json" if args.sweep else "bench/results/cpu_training.json"
    if args.rerender:
        with open(args.out) as f:
            result = json.load(f)
        result["markdown"] = markdown(result)
        common.write_result(args.out, result)
        print(result["markdown"])
        return
    if args.quick:
        models = [QUICK_MODEL]
    else:
        names = (args.models.split(",") if args.models else list(SWEEP_MODELS if args.sweep else MODELS))
        unknown = [n for n in names if n not in MODELS]
        if unknown:
            parser.error(f"unknown models {unknown}; valid: {', '.join(MODELS)}")
        models = [dict(MODELS[n], name=n) for n in names]
    variants = [n for n, _, _ in MAIN_VARIANTS] + ([n for n, _, _ in SWEEP_VARIANTS] if args.sweep else [])
    if args.variants:
        wanted = args.variants.split(",")
        unknown = [v for v in wanted if v not in variants]
        if unknown:
            parser.error(f"unknown variants {unknown}; valid: {', '.join(variants)}")
        variants = [v for v in variants if v in wanted]
    result = common.result_header(MODULE, args.quick)
    result.update({"batch": args.batch, "rounds": args.rounds, "steps": args.steps, "warmup": args.warmup,
                   "sweep": args.sweep, "recipe": RECIPE, "torch_installed": torch_installed(),
                   "flops_convention": "multiply-adds (keras_preact.count_flops) x 2 x 3 per image"})
    peak = {}
    try:
        peak["numpy"] = round(matmul_gflops("numpy", 1024 if args.quick else 4096), 1)
    except Exception:  # noqa: BLE001
        peak["numpy"] = None
    results = []
    for model in models:
        print(f"measuring {model.get('label', model['name'])} ({len(variants)} implementations)...",
              file=sys.stderr, flush=True)
        entry = measure_model(model, variants, args, peak)
        entry.update(date=common.now(), command=result["command"])
        results.append(entry)
    if args.update and os.path.exists(args.out):
        # Each model's rows are interleaved among themselves, so its ratios stand alone: a model
        # re-measured in a later run replaces that model's entry whole, with its own date and loads.
        with open(args.out) as f:
            old = json.load(f)
        for key in ("batch", "rounds", "steps", "warmup"):
            if old.get(key) != result[key]:
                parser.error(f"--update: {args.out} was measured with {key}={old.get(key)}, this run {result[key]}")
        fresh = {m["model"] for m in results}
        kept = [dict(m, date=m.get("date", old["date"]), command=m.get("command", old["command"]))
                for m in old.get("models", []) if m["model"] not in fresh]
        order = [m["model"] for m in old.get("models", [])]
        results = sorted(kept + results, key=lambda m: order.index(m["model"]) if m["model"] in order else 99)
        for b, g in (old.get("peak_gflops") or {}).items():
            if g and b != "max":
                peak[b] = max(peak.get(b) or 0.0, g)
        result["loadavg_start"] = old["loadavg_start"]
        result["date"], result["command"] = old["date"], old["command"]
        result["updated"] = old.get("updated", []) + [{"date": common.now(), "command": common.command_line(MODULE),
                                                       "models": sorted(fresh)}]
    peak["max"] = max((v for v in peak.values() if v), default=None)
    result["peak_gflops"] = peak
    result["models"] = results
    derive(result)
    result["loadavg_end"] = common.loadavg()
    common.finish(result, markdown(result), args.out)


if __name__ == "__main__":
    main()

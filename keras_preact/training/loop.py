"""The distributed training loop (one code path for every strategy).

Why a custom loop rather than ``model.fit``: stock ``fit`` fails under
``MultiWorkerMirroredStrategy`` with Keras 3.15 / TF 2.21 (``PerReplica`` value in
``_maybe_symbolic_build``, keras-team/keras#20585). Rather than keep two paths that
checkpoint, resume and stop on NaN differently, every strategy (default, mirrored,
multi-worker) runs this loop: ``strategy.run`` of a replica step whose loss is
``tf.nn.compute_average_loss`` over the *global* batch (plus the L2 penalty scaled by
``tf.nn.scale_regularization_loss``), gradients all-reduced (summed) by the Keras optimizer.

Per epoch: a Keras ``Progbar`` on a terminal, one log line, TensorBoard scalars, a
test-split evaluation, an atomic checkpoint (``training.state``) and an atomic
``run.json`` update. Files are written by the chief only; every worker computes the
values (reads of distributed variables may be collective).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
import keras
from absl import logging

from keras_preact import data as data_lib
from keras_preact.training import distribute, pipeline, report, schedules, state
from keras_preact.training.configs import TrainConfig


class NonFiniteLoss(RuntimeError):
    pass


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGTERM / SIGINT as a request to stop, honoured where stopping is clean.

    A signal handler that raises drops its exception into whatever Python line runs at
    that instant. When that line is ``tf.function``'s argument binding, TensorFlow
    rewraps the exception as ``TypeError: Binding inputs to tf.function failed due to
    SIGTERM`` (seen in CI), and the run dies with a traceback instead of exit 143. So
    inside ``deferred()`` (the training and evaluation steps) the handler only records the
    signal and the loop calls ``check()`` between steps; everywhere else (decoding the
    dataset, building the model) it raises at once. A second signal while one is pending
    raises at once as well, so a stuck step can still be interrupted. ``received`` keeps the
    last signal, so a caller can tell an exception TensorFlow rewrapped from a real error.
    """

    def __init__(self):
        self.pending: Optional[int] = None
        self.received: Optional[int] = None
        self._defer = False

    def install(self, signums=(signal.SIGTERM, signal.SIGINT)) -> None:
        for signum in signums:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        self.received = signum
        if self._defer and self.pending is None:
            self.pending = signum
            return
        raise Interrupted(signum)

    def check(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        previous, self._defer = self._defer, True
        try:
            yield self
        finally:
            self._defer = previous


# The process's one set of handlers; ``training.train`` installs them.
stop_signals = StopSignals()


class RunError(ValueError):
    """A problem to report as one line (wrong model_dir, batch size, ...)."""


@dataclasses.dataclass
class RunSpec:
    model: str
    dataset: str
    model_dir: str
    cfg: TrainConfig
    data_dir: Optional[str] = None
    download: bool = False
    epochs_override: bool = False
    steps_per_epoch: Optional[int] = None
    validation_steps: Optional[int] = None
    seed: int = 0
    strategy_name: str = "default"
    command: str = ""
    # Builder overrides from --model_kwargs (e.g. the v2 paper's unit/shortcut ablations).
    # They are part of the checkpoint's identity: a resume with other overrides is refused.
    model_overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)
    # A finished run's model_dir whose final weights start this run (--init_from; e.g.
    # cifar_cpu_anneal's second cycle). Part of the checkpoint's identity too.
    init_from: Optional[str] = None


def _differences(there: dict, now: dict) -> str:
    """'key: <there> there, <now> now' for every key whose value differs (either side may lack it)."""
    keys = {**there, **now}
    return ", ".join(f"{k}: {there.get(k)!r} there, {now.get(k)!r} now"
                     for k in keys if there.get(k) != now.get(k))


def _kernel_variables(model, scope: str):
    if scope == "all":
        return list(model.trainable_variables)
    out = []
    for v in model.trainable_variables:
        leaf = (getattr(v, "path", None) or v.name).split("/")[-1].split(":")[0]
        if leaf in ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"):
            out.append(v)
    return out


def _scalar_summary(tag: str, value: float) -> None:
    """tf.summary.scalar without needing the tensorboard package (not a TF dependency here):
    the same event record the TensorBoard scalars plugin writes."""
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=meta)


def weights_digest(values: List[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in values:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _model_kwargs(spec, cfg: TrainConfig, num_classes: int, size: int,
                  overrides: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    kw: Dict[str, Any] = {"classes": int(num_classes)}
    if tuple(spec.input_shape[:2]) != (size, size):
        kw["input_shape"] = (size, size, 3)
    if cfg.dropout_rate is not None and spec.family in ("densenet", "resnetv2"):
        kw["dropout_rate"] = cfg.dropout_rate
    if cfg.drop_path_rate is not None:
        kw["drop_path_rate"] = cfg.drop_path_rate
    if cfg.zero_init_residual is not None:
        kw["zero_init_residual"] = cfg.zero_init_residual
    kw.update(overrides or {})
    return kw


class Trainer:
    def __init__(self, run: RunSpec, strategy: tf.distribute.Strategy):
        import keras_preact

        self.run = run
        self.strategy = strategy
        self.cfg = run.cfg
        self.chief = distribute.is_chief(strategy)
        self.replicas = int(strategy.num_replicas_in_sync)
        self.workers = distribute.num_workers(strategy)
        self.model_dir = os.path.abspath(run.model_dir)
        self.spec = keras_preact.get_model_spec(run.model)
        self.started = time.time()
        # run.json's "hardware" is the machine of the latest session; a run resumed on another
        # machine keeps, in each epoch's entry, the CPU that trained it.
        self.cpu = report.cpu_summary()["cpu"]
        self.init_record: Optional[dict] = None
        cfg = self.cfg
        if cfg.batch_size % self.replicas:
            raise RunError(f"--batch_size={cfg.batch_size} is not divisible by the {self.replicas} replicas; "
                           f"use a multiple of {self.replicas}")
        self.size = int(cfg.image_size or self.spec.input_shape[0])
        if self.chief:
            os.makedirs(self.model_dir, exist_ok=True)
            state.clean_stale_temps(self.model_dir)

    def _split_source(self, split: str, auto_max_bytes: int):
        """(callable building the split's tf.data source, its DatasetInfo, bytes decoded in memory).

        With cache "auto" or "memory" the split is decoded into memory once (up to
        `auto_max_bytes` for "auto"; 0 bytes returned when it streams). A streamed split
        is rebuilt on each call, so it can be created inside a distributed input function.
        """
        run, cfg = self.run, self.cfg
        cached = None
        if cfg.cache in ("auto", "memory"):
            cached = data_lib.materialize(run.dataset, split, data_dir=run.data_dir, download=run.download,
                                          max_bytes=auto_max_bytes if cfg.cache == "auto" else (64 << 30))
        if cached is not None:
            x, y, info = cached
            return (lambda: tf.data.Dataset.from_tensor_slices((x, y))), info, x.nbytes

        def source():
            return data_lib.load_split(run.dataset, split, data_dir=run.data_dir, download=run.download)[0]
        _, info = data_lib.load_split(run.dataset, split, data_dir=run.data_dir, download=run.download)
        return source, info, 0

    # ------------------------------------------------------------------ data
    def _prepare_data(self):
        cfg = self.cfg
        t0 = time.time()
        self.train_source, info, in_memory_bytes = self._split_source("train", 2 << 30)
        if in_memory_bytes:
            self.cache_in_pipeline = False
            logging.info("Decoded %d training images into memory (%.0f MiB) in %.1fs", info.num_examples,
                         in_memory_bytes / 2**20, time.time() - t0)
        else:
            self.cache_in_pipeline = cfg.cache == "memory"
        self.train_info = info
        t0 = time.time()
        self.test_source, tinfo, _ = self._split_source("test", 1 << 30)
        self.test_info = tinfo
        logging.info("Test split: %d images (%.1fs)", tinfo.num_examples, time.time() - t0)
        if info.num_classes != tinfo.num_classes or info.class_names != tinfo.class_names:
            raise data_lib.DatasetError(f"train and test splits have different classes: {info.class_names} vs "
                                        f"{tinfo.class_names}")
        if info.num_examples < cfg.batch_size:
            raise RunError(f"the training split has {info.num_examples} images, fewer than one batch "
                           f"(--batch_size={cfg.batch_size})")

    # ------------------------------------------------------------------ model
    def _build(self):
        import keras_preact

        cfg = self.cfg
        policy = "float32" if cfg.mixed_precision == "none" else cfg.mixed_precision
        keras.mixed_precision.set_global_policy(policy)
        self.model_kwargs = _model_kwargs(self.spec, cfg, self.train_info.num_classes, self.size,
                                          self.run.model_overrides)
        n = self.train_info.num_examples
        self.steps_per_epoch = n // cfg.batch_size
        if self.run.steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, self.run.steps_per_epoch)
        if cfg.total_steps and not self.run.epochs_override:
            self.total_steps = int(cfg.total_steps)
            self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        else:
            self.epochs = int(cfg.epochs)
            self.total_steps = self.epochs * self.steps_per_epoch
        self.schedule = schedules.resolve(cfg, self.steps_per_epoch, self.total_steps)
        with self.strategy.scope():
            try:
                # --model_kwargs may change the registered network (the v2 paper's ablations).
                self.model = keras_preact.build_variant(self.run.model, classifier_activation=None,
                                                        **self.model_kwargs)
            except TypeError as e:
                raise RunError(f"model {self.run.model!r} does not accept {self.model_kwargs}: {e}") from None
            opt = keras.optimizers.SGD(learning_rate=self.schedule.keras_schedule(), momentum=cfg.momentum,
                                       nesterov=cfg.nesterov)
            if cfg.mixed_precision == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
            self.optimizer = opt
            self.optimizer.build(self.model.trainable_variables)
        self.decay_vars = _kernel_variables(self.model, cfg.weight_decay_scope) if cfg.weight_decay else []
        self._make_steps()

    def _make_steps(self):
        cfg, strategy, model, opt = self.cfg, self.strategy, self.model, self.optimizer
        global_batch = cfg.batch_size
        num_classes = self.train_info.num_classes
        ls = float(cfg.label_smoothing)
        wd = float(cfg.weight_decay)
        decay_vars = self.decay_vars
        float16 = cfg.mixed_precision == "mixed_float16"

        def per_example_ce(labels, logits):
            if ls > 0:
                onehot = tf.one_hot(labels, num_classes, dtype=tf.float32)
                target = onehot * (1.0 - ls) + ls / num_classes
                return tf.nn.softmax_cross_entropy_with_logits(labels=target, logits=logits)
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)

        def grads_fn(images, labels):
            with tf.GradientTape() as tape:
                logits = tf.cast(model(tf.cast(images, tf.float32), training=True), tf.float32)
                ce = per_example_ce(labels, logits)
                loss = tf.nn.compute_average_loss(ce, global_batch_size=global_batch)
                if decay_vars:
                    penalty = wd * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in decay_vars])
                    loss += tf.nn.scale_regularization_loss(penalty)
                scaled = opt.scale_loss(loss) if float16 else loss
            grads = tape.gradient(scaled, model.trainable_variables)
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1), labels), tf.float32))
            return grads, tf.reduce_sum(ce), correct

        if cfg.jit_compile:
            grads_fn = tf.function(grads_fn, jit_compile=True)

        def replica_step(images, labels):
            grads, ce_sum, correct = grads_fn(images, labels)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            n = tf.cast(tf.shape(labels)[0], tf.float32)
            return ce_sum, correct, n

        @tf.function
        def train_step(iterator):
            images, labels = next(iterator)
            out = strategy.run(replica_step, args=(images, labels))
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, o, axis=None) for o in out]

        def eval_replica(images, labels, weights):
            logits = tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32)
            ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
            top1 = tf.cast(tf.equal(tf.argmax(logits, -1), labels), tf.float32)
            k = min(5, num_classes)
            topk = tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32)
            return (tf.reduce_sum(ce * weights), tf.reduce_sum(top1 * weights), tf.reduce_sum(topk * weights),
                    tf.reduce_sum(weights))

        @tf.function
        def eval_step(iterator):
            images, labels, weights = next(iterator)
            out = strategy.run(eval_replica, args=(images, labels, weights))
            return [strategy.reduce(tf.distribute.ReduceOp.SUM, o, axis=None) for o in out]

        # BatchNorm moving statistics are created by Keras 3 with aggregation "none": each
        # replica updates its own copy from its own batches, so replicas (and workers)
        # drift apart. The update is an exponential moving average, i.e. linear, so
        # replacing every copy by the replicas' mean at the end of an epoch gives exactly
        # the statistics of averaging every step. Done before evaluation and checkpoints.
        sync_vars = [v for v in model.non_trainable_variables if v.dtype in ("float16", "bfloat16", "float32",
                                                                             "float64")]

        def replica_mean():
            ctx = tf.distribute.get_replica_context()
            return ctx.all_reduce(tf.distribute.ReduceOp.MEAN, [tf.identity(v.value) for v in sync_vars])

        @tf.function
        def sync_statistics():
            means = strategy.run(replica_mean)
            for v, m in zip(sync_vars, means):
                v.assign(strategy.experimental_local_results(m)[0])

        @tf.function
        def barrier():
            return strategy.reduce(tf.distribute.ReduceOp.SUM,
                                   strategy.run(lambda: tf.ones([], tf.float32)), axis=None)

        self.barrier = barrier
        self.sync_statistics = sync_statistics if (sync_vars and self.replicas > 1) else (lambda: None)
        self.train_step, self.eval_step = train_step, eval_step

    # ------------------------------------------------------------------ checkpoint
    def _identity(self) -> dict:
        ident = {"model": self.run.model, "dataset": data_lib.dataset_identity(self.run.dataset),
                 "model_kwargs": json.loads(json.dumps(self.model_kwargs)),
                 "num_classes": self.train_info.num_classes}
        if self.init_record:
            ident["init_from"] = self.init_record["weights_sha256"]
        return ident

    def _read_init_from(self) -> Optional[dict]:
        """What --init_from points at: a finished run of the same model on the same classes.

        Returns the record run.json keeps of it (its recipe, epochs and wall time, chained
        through its own init_from) so that the totals of a multi-cycle run stay visible.
        """
        src = self.run.init_from
        if not src:
            return None
        from keras_preact import export

        try:
            previous = export.read_run(src)  # run.json with its keys, and final.weights.h5
        except ValueError as e:
            raise RunError(f"--init_from={src} must be the model_dir of a finished training run: {e}") from None
        prev = previous.record
        if prev.get("status") != "finished":
            raise RunError(f"--init_from={src} is not a finished run (status {prev.get('status')!r}); finish it "
                           f"first by re-running its own command")
        mine = {"model": self.run.model, "model_kwargs": json.loads(json.dumps(self.model_kwargs)),
                "class_names": self.train_info.class_names}
        theirs = {k: prev.get(k) for k in mine}
        if theirs != mine:
            raise RunError(f"--init_from={src} trained another model or classes ({_differences(theirs, mine)}); "
                           f"a warm start needs the same architecture and classes")
        before = prev.get("init_from") or {}
        epochs = len(prev.get("epochs") or [])
        return {"model_dir": src, "weights_sha256": (prev.get("final") or {}).get("weights_sha256"),
                "config": (prev.get("config") or {}).get("name"), "epochs": epochs,
                "epochs_total": int(before.get("epochs_total", 0)) + epochs,
                "wall_time_s": prev.get("wall_time_s"),
                "wall_time_total_s": round(float(before.get("wall_time_total_s", 0.0))
                                           + float(prev.get("wall_time_s") or 0.0), 1),
                "test_top1": (prev.get("final") or {}).get("test_top1"),
                "command": prev.get("command"), "init_from": prev.get("init_from")}

    def _load_init_weights(self) -> None:
        """Start from --init_from's final weights (only when no checkpoint was resumed)."""
        from keras_preact import export

        path = os.path.join(self.init_record["model_dir"], export.WEIGHTS_FILE)
        try:
            with self.strategy.scope():
                self.model.load_weights(path)
        except ValueError as e:
            raise RunError(f"--init_from weights {path} do not fit {self.run.model}: {e}") from None
        got = weights_digest([np.asarray(w) for w in self.model.get_weights()])
        if self.init_record["weights_sha256"] and got != self.init_record["weights_sha256"]:
            raise RunError(f"{path} is not the weights its run.json recorded (sha256 {got[:12]}..., "
                           f"run.json says {self.init_record['weights_sha256'][:12]}...)")
        logging.info("Initialised from %s (%s, %d epoch(s), test top-1 %s)", path, self.init_record["config"],
                     self.init_record["epochs"], self.init_record["test_top1"])

    def _restore(self) -> None:
        self.history: List[dict] = []
        self.start_epoch = 0
        ckpt = state.load_checkpoint(self.model_dir)
        if ckpt is None:
            return
        ident, mine = ckpt.meta.get("identity", {}), self._identity()
        if ident != mine:
            raise RunError(f"--model_dir={self.model_dir} holds a checkpoint of a different run "
                           f"({_differences(ident, mine)}); "
                           f"use another --model_dir or the original flags")
        try:
            with self.strategy.scope():
                state.restore(self.model.weights, ckpt.model_values, "model")
                state.restore(self.optimizer.variables, ckpt.opt_values, "optimizer")
        except ValueError as e:
            raise RunError(f"checkpoint {ckpt.path} does not match this model: {e}") from None
        old_cfg = ckpt.meta.get("config") or {}
        changed = {k: (old_cfg[k], v) for k, v in self.cfg.to_dict().items() if k in old_cfg and old_cfg[k] != v}
        if changed:
            logging.warning("Resuming with a changed recipe: %s",
                            ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))
        self.start_epoch = int(ckpt.meta["epoch"])
        self.history = list(ckpt.meta.get("history", []))
        logging.info("Resumed from %s: %d epoch(s) done, iteration %d", ckpt.path, self.start_epoch,
                     int(self.optimizer.iterations.numpy()))

    def _save_checkpoint(self, epoch: int) -> None:
        mv = state.variable_values(self.model.weights)
        ov = state.variable_values(self.optimizer.variables)
        if not self.chief:
            return
        meta = {"epoch": epoch, "iteration": int(self.optimizer.iterations.numpy()), "history": self.history,
                "identity": self._identity(), "config": self.cfg.to_dict(), "time": time.time()}
        state.save_checkpoint(self.model_dir, mv, ov, meta)

    # ------------------------------------------------------------------ run.json
    def _run_record(self, status: str, final: Optional[dict] = None) -> dict:
        info = self.train_info
        prev_wall = 0.0
        path = os.path.join(self.model_dir, "run.json")
        if os.path.exists(path):
            try:
                with open(path) as f:
                    prev = json.load(f)
                prev_wall = float(prev.get("wall_time_previous_s", 0.0)) if prev.get("session_start") == \
                    self.started else float(prev.get("wall_time_s", 0.0))
            except (OSError, ValueError):
                pass
        if not hasattr(self, "_prev_wall"):
            self._prev_wall = prev_wall
        rec = {
            "model": self.run.model,
            "model_kwargs": self.model_kwargs,
            "dataset": data_lib.dataset_identity(self.run.dataset),
            "class_names": info.class_names,
            "input_shape": [self.size, self.size, 3],
            "config": self.cfg.to_dict(),
            "schedule": self.schedule.to_dict(),
            "status": status,
            "strategy": self.run.strategy_name,
            "replicas": self.replicas,
            "workers": self.workers,
            "steps_per_epoch": self.steps_per_epoch,
            "total_steps": self.total_steps,
            "epochs_planned": self.epochs,
            "epochs": self.history,
            "final": final,
            "data": {"train": info.to_dict(), "test": self.test_info.to_dict(),
                     "skipped_count": len(info.skipped_files) + len(self.test_info.skipped_files)},
            "seed": self.run.seed,
            "command": self.run.command,
            "versions": report.versions(),
            "hardware": report.hardware(self.strategy),
            "session_start": self.started,
            "wall_time_previous_s": self._prev_wall,
            "wall_time_s": round(self._prev_wall + time.time() - self.started, 1),
        }
        if self.init_record:
            rec["init_from"] = self.init_record
            rec["epochs_total"] = self.init_record["epochs_total"] + len(self.history)
            rec["wall_time_total_s"] = round(self.init_record["wall_time_total_s"] + rec["wall_time_s"], 1)
        return rec

    def _write_run_json(self, status: str, final: Optional[dict] = None) -> None:
        if self.chief:
            state.atomic_write_json(os.path.join(self.model_dir, "run.json"), self._run_record(status, final))

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict:
        steps = pipeline.eval_steps(self.test_info.num_examples, self.cfg.batch_size, self.workers,
                                    self.run.validation_steps)
        fn = pipeline.eval_dataset_fn(self.test_source, self.cfg.batch_size, self.cfg.augment, self.size, steps)
        it = iter(self.strategy.distribute_datasets_from_function(fn))
        tot = np.zeros(4)
        for _ in range(steps):
            with stop_signals.deferred():
                tot += np.array([float(t.numpy()) for t in self.eval_step(it)])
            stop_signals.check()
        n = max(tot[3], 1.0)
        return {"val_loss": tot[0] / n, "val_accuracy": tot[1] / n, "val_top5_accuracy": tot[2] / n,
                "val_examples": int(tot[3])}

    # ------------------------------------------------------------------ main loop
    def fit(self) -> dict:
        self._prepare_data()
        self._build()
        self.init_record = self._read_init_from()
        self._restore()
        if self.init_record and self.start_epoch == 0:
            self._load_init_weights()
        self._write_run_json("running")
        cfg = self.cfg
        # The overrides go in the line: "densenet_bc_100_12" alone would hide a depth-52 ablation run.
        overrides = f" {json.dumps(self.run.model_overrides, sort_keys=True)}" if self.run.model_overrides else ""
        logging.info("Training %s%s on %s: %d epochs x %d steps (batch %d over %d replica(s), %d worker(s)), "
                     "config %s, model_dir %s", self.run.model, overrides, self.run.dataset, self.epochs,
                     self.steps_per_epoch, cfg.batch_size, self.replicas, self.workers, cfg.name, self.model_dir)
        writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "tensorboard")) if self.chief else None
        fn = pipeline.train_dataset_fn(self.train_source, cfg.batch_size, cfg.augment, self.size,
                                       min(cfg.shuffle_buffer, self.train_info.num_examples),
                                       cache=self.cache_in_pipeline, seed=self.run.seed)
        train_iter = iter(self.strategy.distribute_datasets_from_function(fn))
        verbose = 1 if sys.stdout.isatty() else 0
        for epoch in range(self.start_epoch, self.epochs):
            it0 = int(self.optimizer.iterations.numpy())
            steps = min(self.steps_per_epoch, self.total_steps - it0)
            if steps <= 0:
                break
            bar = keras.utils.Progbar(steps, verbose=verbose, stateful_metrics=["loss", "accuracy", "lr"])
            t0 = time.time()
            tot = np.zeros(3)
            for s in range(steps):
                with stop_signals.deferred():
                    out = np.array([float(t.numpy()) for t in self.train_step(train_iter)])
                stop_signals.check()
                if not np.all(np.isfinite(out)):
                    raise NonFiniteLoss(
                        f"loss became {out[0]} at epoch {epoch + 1}, step {s + 1} (iteration {it0 + s + 1})")
                tot += out
                if verbose:
                    bar.update(s + 1, [("loss", tot[0] / tot[2]), ("accuracy", tot[1] / tot[2]),
                                       ("lr", self.schedule.lr_at(it0 + s))])
            self.sync_statistics()
            train_secs = time.time() - t0
            entry = {"epoch": epoch + 1, "loss": tot[0] / tot[2], "accuracy": tot[1] / tot[2],
                     "lr": self.schedule.lr_at(it0 + steps - 1), "steps": steps, "iteration": it0 + steps,
                     "train_seconds": round(train_secs, 2),
                     "images_per_sec": round(tot[2] / max(train_secs, 1e-9), 1), "cpu": self.cpu}
            last = epoch + 1 == self.epochs or it0 + steps >= self.total_steps
            if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or last):
                entry.update(self.evaluate())
            entry["seconds"] = round(time.time() - t0, 2)
            self.history.append(entry)
            self._save_checkpoint(epoch + 1)
            self._write_run_json("running")
            msg = (f"epoch {epoch + 1}/{self.epochs} loss={entry['loss']:.4f} acc={entry['accuracy']:.4f}"
                   + (f" val_loss={entry['val_loss']:.4f} val_acc={entry['val_accuracy']:.4f}"
                      f" val_top5={entry['val_top5_accuracy']:.4f}" if "val_loss" in entry else "")
                   + f" lr={entry['lr']:.5g} time={entry['seconds']:.1f}s ({entry['images_per_sec']:.0f} img/s)")
            logging.info(msg)
            if self.chief:
                with open(os.path.join(self.model_dir, "train.log"), "a") as f:
                    f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
                with writer.as_default(step=epoch + 1):
                    for k, v in entry.items():
                        if k not in ("epoch",) and isinstance(v, (int, float)):
                            _scalar_summary(k, v)
                writer.flush()
        return self.finish()

    def finish(self) -> dict:
        """Final test evaluation and the exported model files."""
        final = self.evaluate()
        final = {"test_top1": final["val_accuracy"], "test_top5": final["val_top5_accuracy"],
                 "test_loss": final["val_loss"], "test_examples": final["val_examples"],
                 "test_error": 1.0 - final["val_accuracy"], "split": "test",
                 "validation_steps_cap": self.run.validation_steps,
                 "epochs_done": len(self.history), "iterations": int(self.optimizer.iterations.numpy())}
        values = [np.asarray(w) for w in self.model.get_weights()]
        final["weights_sha256"] = weights_digest(values)
        logging.info("Final: test top-1 %.4f, top-5 %.4f on %d images; weights sha256 %s (%s)",
                     final["test_top1"], final["test_top5"], final["test_examples"], final["weights_sha256"],
                     distribute.worker_label(self.strategy))
        if self.chief:
            self._export(values)
            report.plot_curves(os.path.join(self.model_dir, "curves.png"), self.history,
                               f"{self.run.model} on {self.run.dataset} ({self.cfg.name})")
            self._write_run_json("finished", final)
        # Workers leave together (a worker that exits while the chief still writes files
        # makes the coordination service report it as crashed).
        if self.workers > 1:
            self.barrier()
        return final

    def _export(self, values: List[np.ndarray]) -> None:
        """model.keras (softmax head, as get_model builds it by default) and final.weights.h5."""
        import keras_preact

        # Exported in float32 whatever the training policy: it runs on every device, and the
        # variables are float32 under every Keras mixed-precision policy anyway.
        keras.mixed_precision.set_global_policy("float32")
        export = keras_preact.build_variant(self.run.model, **self.model_kwargs)
        export.set_weights(values)
        state.atomic_write(os.path.join(self.model_dir, "model.keras"), lambda p: export.save(p))
        state.atomic_write(os.path.join(self.model_dir, "final.weights.h5"), lambda p: export.save_weights(p))
        keras.mixed_precision.set_global_policy("float32")


"""The distributed training loop (one code path for every strategy).

Why a custom loop rather than ``model.fit``: stock ``fit`` fails under
``MultiWorkerMirroredStrategy`` with Keras 3.15 / TF 2.21 (``PerReplica`` value in
``_maybe_symbolic_build``, keras-team/keras#20585). Rather than keep two paths that
checkpoint, resume and stop on NaN differently, every strategy (default, mirrored,
multi-worker) runs this loop: ``strategy.run`` of a replica step whose loss is
``tf.nn.compute_average_loss`` over the *global* batch (plus the L2 penalty scaled by
``tf.nn.scale_regularization_loss``), gradients all-reduced (summed) by the Keras optimizer.

Per epoch: a Keras ``Progbar`` on a terminal, a test-split evaluation, an atomic
checkpoint (``training.checkpoint``), and the run's records (``training.run_record``:
run.json, one log line, train.log, TensorBoard scalars). Files are written by the chief
only; every worker computes the values (reads of distributed variables may be
collective). SIGTERM / SIGINT (``training.signals``) are honoured between steps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Dict, List, Optional

import numpy as np
import tensorflow as tf
import keras
from absl import logging

from keras_preact import data as data_lib
from keras_preact.training import (batch_norm_statistics, checkpoint, distribute, pipeline, run_record, schedules,
                                   state)
from keras_preact.training.configs import TrainConfig, model_kwargs
from keras_preact.training.errors import NonFiniteLoss, RunError
from keras_preact.training.fused_batch_norm import use_fused_batch_norm
from keras_preact.training.signals import stop_signals


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


def _kernel_variables(model, scope: str):
    if scope == "all":
        return list(model.trainable_variables)
    out = []
    for v in model.trainable_variables:
        leaf = (getattr(v, "path", None) or v.name).split("/")[-1].split(":")[0]
        if leaf in ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"):
            out.append(v)
    return out


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
        self.records = run_record.RunRecord(self.model_dir, self.chief)
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
        self.model_kwargs = model_kwargs(self.spec, cfg, self.train_info.num_classes, self.size,
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
            # Keras keeps the weights' moving average in the optimizer, so checkpoints carry it.
            opt = keras.optimizers.SGD(learning_rate=self.schedule.keras_schedule(), momentum=cfg.momentum,
                                       nesterov=cfg.nesterov, use_ema=cfg.ema_momentum > 0,
                                       ema_momentum=cfg.ema_momentum)
            if cfg.mixed_precision == "mixed_float16":
                opt = keras.optimizers.LossScaleOptimizer(opt)
            self.optimizer = opt
            self.optimizer.build(self.model.trainable_variables)
        self.decay_vars = _kernel_variables(self.model, cfg.weight_decay_scope) if cfg.weight_decay else []
        self.fused_batch_norm_layers = use_fused_batch_norm(self.model) if cfg.fused_batch_norm else 0
        if cfg.fused_batch_norm:
            logging.info("Batch norm trains with FusedBatchNormV3 in %d layer(s)", self.fused_batch_norm_layers)
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

        # One replica's loss and gradients (before XLA): bench/cpu_training.py times variants of
        # the step around this very function rather than a copy of it.
        self.grads_fn = grads_fn
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

    # ------------------------------------------------------------------ where training starts
    def _resume_or_init(self) -> None:
        """Resume from model_dir's checkpoint; without one, start from --init_from's weights if given."""
        self.init_record = run_record.read_init_from(self.run.init_from, self.run.model, self.model_kwargs,
                                                     self.train_info.class_names)
        self.history: List[dict] = []
        self.start_epoch = 0
        identity = checkpoint.identity(self.run.model, data_lib.dataset_identity(self.run.dataset),
                                       self.model_kwargs, self.train_info.num_classes, self.init_record)
        self.checkpoints = checkpoint.Checkpointer(self.model_dir, self.strategy, self.model, self.optimizer,
                                                   self.cfg, identity, self.chief)
        resumed = self.checkpoints.resume()
        if resumed is not None:
            self.start_epoch, self.history = resumed
        if self.init_record and self.start_epoch == 0:
            checkpoint.load_init_weights(self.strategy, self.model, self.run.model, self.init_record)

    def write_run_json(self, status: str, final: Optional[dict] = None) -> None:
        """run.json with `status` (written by the chief only); callable once `history` exists."""
        self.records.write_run_json(self, status, final)

    # ------------------------------------------------------------------ evaluation
    @contextlib.contextmanager
    def _averaged_weights(self):
        """The weights' moving average in the model while the block runs (with cfg.ema_momentum),
        with batch-norm statistics of its own; the live weights and statistics back after it."""
        if not self.cfg.ema_momentum:
            yield
            return
        variables = self.model.weights
        live = [np.array(v.numpy()) for v in variables]
        self._use_averaged_weights()
        try:
            yield
        finally:
            for v, value in zip(variables, live):
                v.assign(value)

    def _use_averaged_weights(self) -> None:
        """Put the weights' moving average into the model and recompute batch norm's statistics
        for it (cfg.ema_batch_norm_batches training batches; training.batch_norm_statistics)."""
        self.optimizer.finalize_variable_values(self.model.trainable_variables)
        batches = self.cfg.ema_batch_norm_batches
        if not batches:
            return
        t0 = time.time()
        cfg = self.cfg
        # Its own stream (another seed), so the training stream and its resumption are untouched.
        fn = pipeline.train_dataset_fn(self.train_source, cfg.batch_size, cfg.augment, self.size,
                                       min(cfg.shuffle_buffer, self.train_info.num_examples),
                                       cache=False, seed=self.run.seed + 1)
        it = iter(self.strategy.distribute_datasets_from_function(fn))
        with stop_signals.deferred():
            layers = batch_norm_statistics.recompute(self.strategy, self.model, it, batches)
            self.sync_statistics()
        stop_signals.check()
        logging.info("Batch-norm statistics of %d layer(s) recomputed for the averaged weights on %d batches "
                     "(%.0fs)", layers, batches, time.time() - t0)

    def evaluate(self) -> dict:
        """Test-split loss and accuracy of the weights the run exports (their average, with EMA)."""
        with self._averaged_weights():
            return self._evaluate()

    def _evaluate(self) -> dict:
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
        self._resume_or_init()
        self.write_run_json("running")
        self._log_plan()
        self.records.open_tensorboard()
        train_iter = self._train_iterator()
        verbose = 1 if sys.stdout.isatty() else 0
        for epoch in range(self.start_epoch, self.epochs):
            entry = self._train_epoch(epoch, train_iter, verbose)
            if entry is None:
                break
            self.history.append(entry)
            self.checkpoints.save(epoch + 1, self.history)
            self.write_run_json("running")
            self.records.log_epoch(entry, self.epochs)
        return self.finish()

    def _log_plan(self) -> None:
        cfg = self.cfg
        # The overrides go in the line: "densenet_bc_100_12" alone would hide a depth-52 ablation run.
        overrides = f" {json.dumps(self.run.model_overrides, sort_keys=True)}" if self.run.model_overrides else ""
        logging.info("Training %s%s on %s: %d epochs x %d steps (batch %d over %d replica(s), %d worker(s)), "
                     "config %s, model_dir %s", self.run.model, overrides, self.run.dataset, self.epochs,
                     self.steps_per_epoch, cfg.batch_size, self.replicas, self.workers, cfg.name, self.model_dir)

    def _train_iterator(self):
        cfg = self.cfg
        fn = pipeline.train_dataset_fn(self.train_source, cfg.batch_size, cfg.augment, self.size,
                                       min(cfg.shuffle_buffer, self.train_info.num_examples),
                                       cache=self.cache_in_pipeline, seed=self.run.seed)
        return iter(self.strategy.distribute_datasets_from_function(fn))

    def _train_epoch(self, epoch: int, train_iter, verbose: int) -> Optional[dict]:
        """Train epoch `epoch` (0-based) and evaluate when due: its history entry, or None once
        total_steps are done."""
        it0 = int(self.optimizer.iterations.numpy())
        steps = min(self.steps_per_epoch, self.total_steps - it0)
        if steps <= 0:
            return None
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
        entry = self.records.epoch_entry(epoch + 1, tot, self.schedule.lr_at(it0 + steps - 1), steps, it0 + steps,
                                         time.time() - t0)
        last = epoch + 1 == self.epochs or it0 + steps >= self.total_steps
        if self.cfg.eval_every and ((epoch + 1) % self.cfg.eval_every == 0 or last):
            entry.update(self.evaluate())
        entry["seconds"] = round(time.time() - t0, 2)
        return entry

    def finish(self) -> dict:
        """Final test evaluation and the exported model files (the weights' average, with EMA)."""
        if self.cfg.ema_momentum:
            self._use_averaged_weights()
        final = run_record.final_entry(self._evaluate(), self.run.validation_steps, len(self.history),
                                       int(self.optimizer.iterations.numpy()))
        values = [np.asarray(w) for w in self.model.get_weights()]
        final["weights_sha256"] = checkpoint.weights_digest(values)
        logging.info("Final: test top-1 %.4f, top-5 %.4f on %d images; weights sha256 %s (%s)",
                     final["test_top1"], final["test_top5"], final["test_examples"], final["weights_sha256"],
                     distribute.worker_label(self.strategy))
        if self.chief:
            checkpoint.export_final(self.model_dir, self.run.model, self.model_kwargs, values)
            self.records.write_curves(self.history, f"{self.run.model} on {self.run.dataset} ({self.cfg.name})")
            self.write_run_json("finished", final)
        # Workers leave together (a worker that exits while the chief still writes files
        # makes the coordination service report it as crashed).
        if self.workers > 1:
            self.barrier()
        return final

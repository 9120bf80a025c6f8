"""A run's model state on disk: the resumable checkpoint, --init_from's warm start, the final model files.

The checkpoint file itself (one npz and its previous copy, written atomically) is
``training.state``'s. This module decides what goes in it -- every model and optimizer
variable, the finished epochs' history, the recipe and the run's identity -- and when a
model_dir's checkpoint may resume a run: only a checkpoint of the same model, dataset,
builder overrides, classes and --init_from. A run that resumes nothing may start from
another finished run's ``final.weights.h5`` (--init_from), checked against the sha256 its
run.json recorded; a finished run exports ``model.keras`` and ``final.weights.h5``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from typing import List, Optional, Tuple

import keras
import numpy as np
from absl import logging

from keras_preact.models.registry import build_variant
from keras_preact.training import state
from keras_preact.training.errors import RunError, differences
from keras_preact.training.run_dir import MODEL_FILE, WEIGHTS_FILE


def weights_digest(values: List[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in values:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def identity(model: str, dataset: str, model_kwargs: dict, num_classes: int,
             init_record: Optional[dict]) -> dict:
    """What a checkpoint must have been written by to resume this run (`dataset` as
    ``data.dataset_identity`` names it; `init_record` is run.json's record of --init_from)."""
    ident = {"model": model, "dataset": dataset, "model_kwargs": json.loads(json.dumps(model_kwargs)),
             "num_classes": num_classes}
    if init_record:
        ident["init_from"] = init_record["weights_sha256"]
    return ident


class Checkpointer:
    """Saves a run's model and optimizer variables after each epoch, and resumes from them.

    Every worker calls :meth:`save` (reading distributed variables may be collective); the
    chief alone writes the file.
    """

    def __init__(self, model_dir: str, strategy, model, optimizer, cfg, identity: dict, chief: bool):
        self.model_dir, self.strategy, self.model, self.optimizer = model_dir, strategy, model, optimizer
        self.cfg, self.identity, self.chief = cfg, identity, chief

    def resume(self) -> Optional[Tuple[int, List[dict]]]:
        """(finished epochs, their history entries) restored from model_dir's checkpoint; None when
        there is none. A checkpoint of another run or another model is a RunError."""
        ckpt = state.load_checkpoint(self.model_dir)
        if ckpt is None:
            return None
        ident = ckpt.meta.get("identity", {})
        if ident != self.identity:
            raise RunError(f"--model_dir={self.model_dir} holds a checkpoint of a different run "
                           f"({differences(ident, self.identity)}); "
                           f"use another --model_dir or the original flags")
        try:
            with self.strategy.scope():
                state.restore(self.model.weights, ckpt.model_values, "model")
                state.restore(self.optimizer.variables, ckpt.opt_values, "optimizer")
        except ValueError as e:
            raise RunError(f"checkpoint {ckpt.path} does not match this model: {e}") from None
        self._warn_of_changed_recipe(ckpt.meta.get("config") or {})
        epoch = int(ckpt.meta["epoch"])
        history = list(ckpt.meta.get("history", []))
        logging.info("Resumed from %s: %d epoch(s) done, iteration %d", ckpt.path, epoch,
                     int(self.optimizer.iterations.numpy()))
        return epoch, history

    def _warn_of_changed_recipe(self, old_cfg: dict) -> None:
        changed = {k: (old_cfg[k], v) for k, v in self.cfg.to_dict().items() if k in old_cfg and old_cfg[k] != v}
        if changed:
            logging.warning("Resuming with a changed recipe: %s",
                            ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items()))

    def save(self, epoch: int, history: List[dict]) -> None:
        mv = state.variable_values(self.model.weights)
        ov = state.variable_values(self.optimizer.variables)
        if not self.chief:
            return
        meta = {"epoch": epoch, "iteration": int(self.optimizer.iterations.numpy()), "history": history,
                "identity": self.identity, "config": self.cfg.to_dict(), "time": time.time(),
                # Which optimizer arrays are what (momentum, the weights' moving average): training.carry reads it.
                "optimizer_variables": [v.path for v in self.optimizer.variables]}
        state.save_checkpoint(self.model_dir, mv, ov, meta)


def load_init_weights(strategy, model, model_name: str, init_record: dict) -> None:
    """Start from --init_from's final weights (`init_record`: run.json's record of that run)."""
    path = os.path.join(init_record["model_dir"], WEIGHTS_FILE)
    try:
        with strategy.scope():
            model.load_weights(path)
    except ValueError as e:
        raise RunError(f"--init_from weights {path} do not fit {model_name}: {e}") from None
    got = weights_digest([np.asarray(w) for w in model.get_weights()])
    if init_record["weights_sha256"] and got != init_record["weights_sha256"]:
        raise RunError(f"{path} is not the weights its run.json recorded (sha256 {got[:12]}..., "
                       f"run.json says {init_record['weights_sha256'][:12]}...)")
    logging.info("Initialised from %s (%s, %d epoch(s), test top-1 %s)", path, init_record["config"],
                 init_record["epochs"], init_record["test_top1"])


def export_final(model_dir: str, model_name: str, model_kwargs: dict, values: List[np.ndarray]) -> None:
    """model.keras (softmax head, as get_model builds it by default) and final.weights.h5."""
    # Exported in float32 whatever the training policy: it runs on every device, and the
    # variables are float32 under every Keras mixed-precision policy anyway.
    keras.mixed_precision.set_global_policy("float32")
    export = build_variant(model_name, **model_kwargs)
    export.set_weights(values)
    state.atomic_write(os.path.join(model_dir, MODEL_FILE), lambda p: export.save(p))
    state.atomic_write(os.path.join(model_dir, WEIGHTS_FILE), lambda p: export.save_weights(p))
    keras.mixed_precision.set_global_policy("float32")

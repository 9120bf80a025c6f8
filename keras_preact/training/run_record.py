"""A run's records in its model_dir: run.json, train.log, TensorBoard scalars and curves.png.

``run.json`` is rewritten atomically when training starts, after every epoch, at the end
and when a run stops early: the recipe and plan, every finished epoch (each naming the CPU
that trained it), the final test evaluation, the software versions and the latest
session's hardware, and the wall time summed over sessions. A run started from another
one's final weights (--init_from) keeps that run's record, chained through its own
init_from, and the totals over the chain. Files are written by the chief only.
"""

from __future__ import annotations

import json
import os
import time
from typing import List, Optional

import tensorflow as tf
from absl import logging

from keras_preact import data as data_lib
from keras_preact.training import environment, state
from keras_preact.training.errors import RunError, differences
from keras_preact.training.run_dir import RUN_FILE, read_run


def read_init_from(src: Optional[str], model: str, model_kwargs: dict, class_names: List[str]) -> Optional[dict]:
    """What --init_from points at: a finished run of the same model on the same classes.

    Returns the record run.json keeps of it (its recipe, epochs and wall time, chained
    through its own init_from) so that the totals of a multi-cycle run stay visible.
    """
    if not src:
        return None
    try:
        previous = read_run(src)  # run.json with its keys, and final.weights.h5
    except ValueError as e:
        raise RunError(f"--init_from={src} must be the model_dir of a finished training run: {e}") from None
    prev = previous.record
    if prev.get("status") != "finished":
        raise RunError(f"--init_from={src} is not a finished run (status {prev.get('status')!r}); finish it "
                       f"first by re-running its own command")
    mine = {"model": model, "model_kwargs": json.loads(json.dumps(model_kwargs)), "class_names": class_names}
    theirs = {k: prev.get(k) for k in mine}
    if theirs != mine:
        raise RunError(f"--init_from={src} trained another model or classes ({differences(theirs, mine)}); "
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


def final_entry(evaluation: dict, validation_steps: Optional[int], epochs_done: int, iterations: int) -> dict:
    """run.json's "final" from the last test evaluation (the loop adds "weights_sha256")."""
    return {"test_top1": evaluation["val_accuracy"], "test_top5": evaluation["val_top5_accuracy"],
            "test_loss": evaluation["val_loss"], "test_examples": evaluation["val_examples"],
            "test_error": 1.0 - evaluation["val_accuracy"], "split": "test",
            "validation_steps_cap": validation_steps, "epochs_done": epochs_done, "iterations": iterations}


def epoch_line(entry: dict, epochs: int) -> str:
    """The one line an epoch logs (and appends to train.log)."""
    return (f"epoch {entry['epoch']}/{epochs} loss={entry['loss']:.4f} acc={entry['accuracy']:.4f}"
            + (f" val_loss={entry['val_loss']:.4f} val_acc={entry['val_accuracy']:.4f}"
               f" val_top5={entry['val_top5_accuracy']:.4f}" if "val_loss" in entry else "")
            + f" lr={entry['lr']:.5g} time={entry['seconds']:.1f}s ({entry['images_per_sec']:.0f} img/s)")


def _scalar_summary(tag: str, value: float) -> None:
    """tf.summary.scalar without needing the tensorboard package (not a TF dependency here):
    the same event record the TensorBoard scalars plugin writes."""
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))
    tf.summary.write(tag, tf.constant(float(value), tf.float32), metadata=meta)


class RunRecord:
    """The records of one training session in `model_dir` (the session starts when this is made)."""

    def __init__(self, model_dir: str, chief: bool):
        self.model_dir, self.chief = model_dir, chief
        self.session_start = time.time()
        # run.json's "hardware" is the machine of the latest session; a run resumed on another
        # machine keeps, in each epoch's entry, the CPU that trained it.
        self.cpu = environment.cpu_summary()["cpu"]
        self._previous_wall: Optional[float] = None
        self._writer = None

    # ------------------------------------------------------------------ run.json
    def _previous_wall_time(self) -> float:
        """Wall time of the earlier sessions, read from run.json when this session first writes it."""
        if self._previous_wall is None:
            prev_wall = 0.0
            path = os.path.join(self.model_dir, RUN_FILE)
            if os.path.exists(path):
                try:
                    with open(path) as f:
                        prev = json.load(f)
                    prev_wall = float(prev.get("wall_time_previous_s", 0.0)) if prev.get("session_start") == \
                        self.session_start else float(prev.get("wall_time_s", 0.0))
                except (OSError, ValueError):
                    pass
            self._previous_wall = prev_wall
        return self._previous_wall

    def run_json(self, trainer, status: str, final: Optional[dict] = None) -> dict:
        """run.json's content for `trainer` (a ``loop.Trainer`` whose data and model are built)."""
        info, run = trainer.train_info, trainer.run
        previous_wall = self._previous_wall_time()
        rec = {
            "model": run.model,
            "model_kwargs": trainer.model_kwargs,
            "dataset": data_lib.dataset_identity(run.dataset),
            "class_names": info.class_names,
            "input_shape": [trainer.size, trainer.size, 3],
            "config": trainer.cfg.to_dict(),
            "schedule": trainer.schedule.to_dict(),
            "status": status,
            "strategy": run.strategy_name,
            "replicas": trainer.replicas,
            "workers": trainer.workers,
            "steps_per_epoch": trainer.steps_per_epoch,
            "total_steps": trainer.total_steps,
            "epochs_planned": trainer.epochs,
            "epochs": trainer.history,
            "final": final,
            "data": {"train": info.to_dict(), "test": trainer.test_info.to_dict(),
                     "skipped_count": len(info.skipped_files) + len(trainer.test_info.skipped_files)},
            "seed": run.seed,
            "command": run.command,
            "versions": environment.versions(),
            "hardware": environment.hardware(trainer.strategy),
            "session_start": self.session_start,
            "wall_time_previous_s": previous_wall,
            "wall_time_s": round(previous_wall + time.time() - self.session_start, 1),
        }
        init_record = trainer.init_record
        if init_record:
            rec["init_from"] = init_record
            rec["epochs_total"] = init_record["epochs_total"] + len(trainer.history)
            rec["wall_time_total_s"] = round(init_record["wall_time_total_s"] + rec["wall_time_s"], 1)
        return rec

    def write_run_json(self, trainer, status: str, final: Optional[dict] = None) -> None:
        if self.chief:
            state.atomic_write_json(os.path.join(self.model_dir, RUN_FILE), self.run_json(trainer, status, final))

    # ------------------------------------------------------------------ epochs
    def epoch_entry(self, epoch: int, sums, lr: float, steps: int, iteration: int, train_seconds: float) -> dict:
        """An epoch's entry in run.json's "epochs" from its (loss sum, correct, examples) `sums`;
        the loop adds the evaluation and "seconds"."""
        loss_sum, correct, examples = sums
        return {"epoch": epoch, "loss": loss_sum / examples, "accuracy": correct / examples, "lr": lr,
                "steps": steps, "iteration": iteration, "train_seconds": round(train_seconds, 2),
                "images_per_sec": round(examples / max(train_seconds, 1e-9), 1), "cpu": self.cpu}

    def open_tensorboard(self) -> None:
        if self.chief:
            self._writer = tf.summary.create_file_writer(os.path.join(self.model_dir, "tensorboard"))

    def log_epoch(self, entry: dict, epochs: int) -> None:
        """The epoch's line in the log and train.log, and its scalars in TensorBoard."""
        msg = epoch_line(entry, epochs)
        logging.info(msg)
        if not self.chief:
            return
        with open(os.path.join(self.model_dir, "train.log"), "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + msg + "\n")
        with self._writer.as_default(step=entry["epoch"]):
            for k, v in entry.items():
                if k not in ("epoch",) and isinstance(v, (int, float)):
                    _scalar_summary(k, v)
        self._writer.flush()

    def write_curves(self, history: List[dict], title: str) -> None:
        """curves.png: loss and top-1 error per epoch."""
        if self.chief:
            plot_curves(os.path.join(self.model_dir, "curves.png"), history, title)


def plot_curves(path: str, epochs: List[dict], title: str = "") -> None:
    """Loss and top-1 error (%) vs epoch, train and test, like the papers' figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [e["epoch"] for e in epochs]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot(ep, [e["loss"] for e in epochs], label="train", marker=".")
    val = [(e["epoch"], e) for e in epochs if e.get("val_loss") is not None]
    if val:
        a1.plot([v[0] for v in val], [v[1]["val_loss"] for v in val], label="test", marker=".")
    a1.set_xlabel("epoch")
    a1.set_ylabel("loss (cross-entropy)")
    a1.legend()
    a1.grid(alpha=0.3)
    a2.plot(ep, [100 * (1 - e["accuracy"]) for e in epochs], label="train (augmented)", marker=".")
    if val:
        a2.plot([v[0] for v in val], [100 * (1 - v[1]["val_accuracy"]) for v in val], label="test", marker=".")
    a2.set_xlabel("epoch")
    a2.set_ylabel("top-1 error (%)")
    a2.legend()
    a2.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()

    def w(tmp):
        fig.savefig(tmp, format="png", dpi=100)

    state.atomic_write(path, w)
    plt.close(fig)

"""Learning-rate schedules, resolved from a recipe to optimizer iterations.

`resolve(cfg, steps_per_epoch, total_steps)` turns a :class:`~training.configs.TrainConfig`
into a :class:`ScheduleSpec` (everything in iterations), `ScheduleSpec.lr_at(step)` is the
pure-Python reference used by tests and logs, and `ScheduleSpec.keras_schedule()` the
in-graph version the optimizer uses (both implement the same formula).

TensorFlow is imported only inside the in-graph schedule: the JAX trainer of the GPU route
(training/gpu/train_jax.py), on a machine without TensorFlow, evaluates `lr_at` on the host.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple

import keras


@dataclasses.dataclass(frozen=True)
class ScheduleSpec:
    kind: str  # piecewise | cosine | onecycle
    base_lr: float
    total_steps: int
    boundaries: Tuple[int, ...] = ()  # piecewise: steps at which lr *= decay
    decay: float = 0.1
    warmup_steps: int = 0
    warmup_factor: float = 0.1
    min_lr_factor: float = 0.0

    def lr_at(self, step: int) -> float:
        """Learning rate used for the update at 0-based iteration `step`."""
        lr = self.base_lr
        if self.kind == "piecewise":
            if step < self.warmup_steps:
                return lr * self.warmup_factor
            n = sum(1 for b in self.boundaries if step >= b)
            return lr * self.decay**n
        # cosine / onecycle: linear warm-up then decay over the remaining steps.
        if self.warmup_steps > 0 and step < self.warmup_steps:
            frac = step / self.warmup_steps
            return lr * (self.warmup_factor + (1.0 - self.warmup_factor) * frac)
        span = max(1, self.total_steps - self.warmup_steps)
        t = min(1.0, (step - self.warmup_steps) / span)
        lo = lr * self.min_lr_factor
        if self.kind == "cosine":
            return lo + (lr - lo) * 0.5 * (1.0 + math.cos(math.pi * t))
        return lo + (lr - lo) * (1.0 - t)

    def keras_schedule(self) -> "PaperSchedule":
        return PaperSchedule(**dataclasses.asdict(self))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["boundaries"] = list(self.boundaries)
        return d


class PaperSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """In-graph version of :meth:`ScheduleSpec.lr_at` (same arguments)."""

    def __init__(self, kind, base_lr, total_steps, boundaries=(), decay=0.1,
                 warmup_steps=0, warmup_factor=0.1, min_lr_factor=0.0):
        self.spec = ScheduleSpec(kind, float(base_lr), int(total_steps), tuple(int(b) for b in boundaries),
                                 float(decay), int(warmup_steps), float(warmup_factor), float(min_lr_factor))

    def __call__(self, step):
        import tensorflow as tf

        s = self.spec
        step = tf.cast(step, tf.float32)
        lr = tf.constant(s.base_lr, tf.float32)
        if s.kind == "piecewise":
            n = tf.zeros([], tf.float32)
            for b in s.boundaries:
                n += tf.cast(step >= b, tf.float32)
            out = lr * tf.pow(tf.constant(s.decay, tf.float32), n)
            if s.warmup_steps > 0:
                out = tf.where(step < s.warmup_steps, lr * s.warmup_factor, out)
            return out
        span = float(max(1, s.total_steps - s.warmup_steps))
        t = tf.clip_by_value((step - s.warmup_steps) / span, 0.0, 1.0)
        lo = lr * s.min_lr_factor
        if s.kind == "cosine":
            out = lo + (lr - lo) * 0.5 * (1.0 + tf.cos(math.pi * t))
        else:
            out = lo + (lr - lo) * (1.0 - t)
        if s.warmup_steps > 0:
            frac = step / float(s.warmup_steps)
            warm = lr * (s.warmup_factor + (1.0 - s.warmup_factor) * frac)
            out = tf.where(step < s.warmup_steps, warm, out)
        return out

    def get_config(self):
        return self.spec.to_dict()


def resolve(cfg, steps_per_epoch: int, total_steps: int) -> ScheduleSpec:
    """Resolve the recipe's schedule to iterations.

    `steps_per_epoch`: optimizer iterations per epoch of this run; `total_steps`: the
    iteration at which training stops.
    """
    if cfg.lr_schedule == "piecewise":
        unit = cfg.boundary_unit
        if unit == "steps":
            bounds = [int(round(b)) for b in cfg.lr_boundaries]
        elif unit == "epochs":
            bounds = [int(round(b * steps_per_epoch)) for b in cfg.lr_boundaries]
        elif unit == "fraction":
            bounds = [int(round(b * total_steps)) for b in cfg.lr_boundaries]
        else:
            raise ValueError(f"Invalid boundary_unit {unit!r}; valid: steps, epochs, fraction")
        warm = cfg.warmup_steps or int(round(cfg.warmup_epochs * steps_per_epoch))
        return ScheduleSpec("piecewise", cfg.learning_rate, total_steps, tuple(bounds), cfg.lr_decay,
                            warm, cfg.warmup_factor, cfg.min_lr_factor)
    if cfg.lr_schedule in ("cosine", "onecycle"):
        warm = cfg.warmup_steps or int(round(cfg.warmup_epochs * steps_per_epoch))
        warm = min(warm, max(0, total_steps - 1))
        return ScheduleSpec(cfg.lr_schedule, cfg.learning_rate, total_steps, (), cfg.lr_decay,
                            warm, cfg.warmup_factor, cfg.min_lr_factor)
    raise ValueError(f"Invalid lr_schedule {cfg.lr_schedule!r}; valid: piecewise, cosine, onecycle")

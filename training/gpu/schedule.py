"""The recipes' learning-rate schedules without TensorFlow (the device has none).

`keras_preact.training.schedules` imports TensorFlow at the top (its in-graph
`PaperSchedule`), so the JAX trainer cannot import it. This is the same formula:
`resolve` is `schedules.resolve` and `Schedule.lr_at` is `ScheduleSpec.lr_at`, line for line;
tests/test_gpu_route.py checks that both give the same learning rate at every step of every
recipe. The JAX trainer evaluates `lr_at` on the host (float64) and hands each step its
learning rate.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Tuple


@dataclasses.dataclass(frozen=True)
class Schedule:
    kind: str  # piecewise | cosine | onecycle
    base_lr: float
    total_steps: int
    boundaries: Tuple[int, ...] = ()
    decay: float = 0.1
    warmup_steps: int = 0
    warmup_factor: float = 0.1
    min_lr_factor: float = 0.0

    def lr_at(self, step: int) -> float:
        """Learning rate of the update at 0-based iteration `step`."""
        lr = self.base_lr
        if self.kind == "piecewise":
            if step < self.warmup_steps:
                return lr * self.warmup_factor
            n = sum(1 for b in self.boundaries if step >= b)
            return lr * self.decay**n
        if self.warmup_steps > 0 and step < self.warmup_steps:
            frac = step / self.warmup_steps
            return lr * (self.warmup_factor + (1.0 - self.warmup_factor) * frac)
        span = max(1, self.total_steps - self.warmup_steps)
        t = min(1.0, (step - self.warmup_steps) / span)
        lo = lr * self.min_lr_factor
        if self.kind == "cosine":
            return lo + (lr - lo) * 0.5 * (1.0 + math.cos(math.pi * t))
        return lo + (lr - lo) * (1.0 - t)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["boundaries"] = list(self.boundaries)
        return d


def resolve(cfg, steps_per_epoch: int, total_steps: int) -> Schedule:
    """`cfg` (a keras_preact.training.configs.TrainConfig) resolved to iterations."""
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
        return Schedule("piecewise", cfg.learning_rate, total_steps, tuple(bounds), cfg.lr_decay,
                        warm, cfg.warmup_factor, cfg.min_lr_factor)
    if cfg.lr_schedule in ("cosine", "onecycle"):
        warm = cfg.warmup_steps or int(round(cfg.warmup_epochs * steps_per_epoch))
        warm = min(warm, max(0, total_steps - 1))
        return Schedule(cfg.lr_schedule, cfg.learning_rate, total_steps, (), cfg.lr_decay,
                        warm, cfg.warmup_factor, cfg.min_lr_factor)
    raise ValueError(f"Invalid lr_schedule {cfg.lr_schedule!r}; valid: piecewise, cosine, onecycle")

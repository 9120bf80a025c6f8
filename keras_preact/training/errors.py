"""The errors a training run stops with, for ``training.train`` to report in one line."""

from __future__ import annotations


class RunError(ValueError):
    """A problem to report as one line (wrong model_dir, batch size, ...)."""


class NonFiniteLoss(RuntimeError):
    pass


def differences(there: dict, now: dict) -> str:
    """'key: <there> there, <now> now' for every key whose value differs (either side may lack it)."""
    keys = {**there, **now}
    return ", ".join(f"{k}: {there.get(k)!r} there, {now.get(k)!r} now"
                     for k in keys if there.get(k) != now.get(k))

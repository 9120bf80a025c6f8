"""tf.distribute strategy selection.

``--strategy``:

* ``auto``: ``multi_worker`` when ``TF_CONFIG`` names a cluster, else ``mirrored``
  when more than one GPU is visible (or ``--cpu_devices`` > 1), else ``default``.
* ``default``: the default (single-device) strategy.
* ``mirrored``: ``tf.distribute.MirroredStrategy`` over all GPUs, or over the logical
  CPU devices made by ``--cpu_devices=N`` when there is no GPU.
* ``multi_worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` configured by
  ``TF_CONFIG`` (https://www.tensorflow.org/guide/distributed_training#TF_CONFIG).

Everything here must run before TensorFlow initialises its devices (first op).
"""

from __future__ import annotations

import json
import os
from typing import Optional

import tensorflow as tf

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


class StrategyError(ValueError):
    pass


def split_cpu(n: int) -> None:
    """Split the physical CPU into `n` logical devices (for MirroredStrategy without GPUs)."""
    if n is None or n <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(n)])
    except RuntimeError as e:  # devices already initialised
        raise StrategyError(f"--cpu_devices must be applied before TensorFlow starts: {e}") from None


def tf_config() -> Optional[dict]:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except json.JSONDecodeError as e:
        raise StrategyError(f"TF_CONFIG is not valid JSON ({e}): {raw[:200]!r}") from None
    if not isinstance(cfg, dict) or "cluster" not in cfg or "task" not in cfg:
        raise StrategyError("TF_CONFIG must be JSON with 'cluster' and 'task' keys, see "
                            "https://www.tensorflow.org/guide/distributed_training#TF_CONFIG")
    return cfg


def resolve_name(name: str, cpu_devices: int = 1) -> str:
    if name not in STRATEGIES:
        raise StrategyError(f"Unknown --strategy={name!r}; valid: {', '.join(STRATEGIES)}")
    if name != "auto":
        return name
    if tf_config() is not None:
        return "multi_worker"
    if len(tf.config.list_physical_devices("GPU")) > 1 or (cpu_devices or 1) > 1:
        return "mirrored"
    return "default"


def make_strategy(name: str, cpu_devices: int = 1) -> tf.distribute.Strategy:
    """Create the strategy (call once, first thing, before any other TF op)."""
    if name not in STRATEGIES:
        raise StrategyError(f"Unknown --strategy={name!r}; valid: {', '.join(STRATEGIES)}")
    if name == "multi_worker" or (name == "auto" and tf_config() is not None):
        if tf_config() is None:
            raise StrategyError("--strategy=multi_worker needs TF_CONFIG (a JSON cluster spec) in the "
                                "environment; see https://www.tensorflow.org/guide/distributed_training#TF_CONFIG")
        # Logical CPU devices are not used by MWMS (one replica per worker without GPUs).
        return tf.distribute.MultiWorkerMirroredStrategy()
    split_cpu(cpu_devices)
    resolved = resolve_name(name, cpu_devices)
    if resolved == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        cpus = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(
            devices=cpus, cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.get_strategy()


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes files (the only one outside multi-worker runs)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and task_id == 0 and not has_chief


def worker_label(strategy) -> str:
    resolver = getattr(strategy, "cluster_resolver", None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and resolver is not None:
        return f"{resolver.task_type}:{resolver.task_id}"
    return "local"


def num_workers(strategy) -> int:
    ext = strategy.extended
    return int(getattr(ext, "_num_workers", 1) or 1)

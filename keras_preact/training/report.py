"""run.json content (versions, hardware) and the training-curve figure."""

from __future__ import annotations

import os
import platform
import sys
from typing import List

from keras_preact.training.state import atomic_write


def versions() -> dict:
    out = {"python": platform.python_version()}
    for mod in ("tensorflow", "keras", "tensorflow_datasets", "numpy", "keras_preact", "jax"):
        m = sys.modules.get(mod)
        if m is None and mod != "jax":
            try:
                m = __import__(mod)
            except Exception:  # noqa: BLE001
                m = None
        if m is not None:
            out[mod] = getattr(m, "__version__", "unknown")
    return out


def cpu_summary():
    """CPU model, core count and the SIMD/matrix flags that decide CPU training speed."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "avx2": "avx2" in flags,
        "fma": "fma" in flags,
        "avx512": sorted(f for f in flags if f.startswith("avx512")),
        "amx": sorted(f for f in flags if f.startswith("amx")),
        "avx512_bf16": "avx512_bf16" in flags,
    }


def hardware(strategy=None) -> dict:
    import tensorflow as tf

    cpu = cpu_summary()
    out = {
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu": cpu["cpu"],
        # The project's CPUs have differed between sessions (with and without AVX-512 /
        # AVX512_BF16), and the flags decide CPU training speed and which dtype is fast.
        "cpu_flags": {key: cpu[key] for key in ("avx2", "fma", "avx512", "amx", "avx512_bf16")},
        "cpu_count": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
    }
    try:
        import psutil

        out["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # noqa: BLE001
        pass
    if strategy is not None:
        out["strategy"] = type(strategy).__name__
        out["replicas"] = int(strategy.num_replicas_in_sync)
        try:
            out["devices"] = list(strategy.extended.worker_devices)
        except (RuntimeError, AttributeError):
            out["devices"] = ["default"]
    return out


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

    atomic_write(path, w)
    plt.close(fig)

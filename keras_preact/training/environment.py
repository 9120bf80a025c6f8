"""The software and machine a run trains on: run.json's "versions" and "hardware", each epoch's "cpu"
(and the benches' CPU line)."""

from __future__ import annotations

import os
import platform
import sys


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

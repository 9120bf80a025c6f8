"""Atomic files and the resumable training checkpoint.

Every file the trainer writes goes through :func:`atomic_write`: the content is written
to a temporary file in the same folder, flushed and fsync'ed, then ``os.replace``'d over
the target, so a reader (or a resumed run) sees either the old or the new file, never a
half-written one -- whatever signal kills the writer (SIGKILL included).

The checkpoint is ONE ``.npz`` file (``model_dir/checkpoint/ckpt.npz``) holding every model
variable (weights and BatchNorm statistics), every optimizer variable (iteration count,
momentum buffers, loss scale) and a JSON ``meta`` record (finished epochs, history,
identity of the run). Before a new checkpoint replaces it, the previous one is kept as
``ckpt.prev.npz``; :func:`load_checkpoint` falls back to it if the newest one does not
load. This module holds the file and copies variables to and from its arrays;
``training.checkpoint`` decides what goes in it and when it may resume a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import Callable, List, Optional, Sequence

import numpy as np
from absl import logging

CKPT_DIR = "checkpoint"
CKPT = "ckpt.npz"
CKPT_PREV = "ckpt.prev.npz"


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then atomically move tmp_path to `path`.

    The temporary name keeps `path`'s suffix (Keras insists on ``.keras`` /
    ``.weights.h5``) and lives in the same directory (``os.replace`` must not cross
    file systems).
    """
    d, base = os.path.split(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=f"-{base}", dir=d)
    os.close(fd)
    try:
        os.remove(tmp)  # some writers refuse to overwrite
        write(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(d)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
    def w(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, w)


def atomic_write_json(path: str, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


def clean_stale_temps(directory: str) -> None:
    """Remove temporary files left by a writer that was killed mid-write."""
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        if name.startswith(".tmp-"):
            with contextlib.suppress(OSError):
                os.remove(os.path.join(directory, name))


# ----------------------------------------------------------------------------- checkpoint


def variable_values(variables: Sequence) -> List[np.ndarray]:
    """Numpy copies of the variables (call on every worker: reads may be collective)."""
    return [np.asarray(v.numpy()) for v in variables]


def save_checkpoint(model_dir: str, model_values: List[np.ndarray], opt_values: List[np.ndarray],
                    meta: dict) -> str:
    d = os.path.join(model_dir, CKPT_DIR)
    os.makedirs(d, exist_ok=True)
    arrays = {f"m{i}": a for i, a in enumerate(model_values)}
    arrays.update({f"o{i}": a for i, a in enumerate(opt_values)})
    meta = dict(meta, n_model=len(model_values), n_opt=len(opt_values))
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8)

    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    path = os.path.join(d, CKPT)
    # Keep the previous good checkpoint until the new one is in place.
    if os.path.exists(path):
        _link_or_copy(path, os.path.join(d, CKPT_PREV))
    atomic_write(path, w)
    return path


def _link_or_copy(src: str, dst: str) -> None:
    """Atomically make dst a copy of src (hard link when possible)."""
    d = os.path.dirname(dst)
    tmp = os.path.join(d, f".tmp-{os.getpid()}-link")
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        import shutil

        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class Checkpoint:
    def __init__(self, path: str, model_values, opt_values, meta):
        self.path, self.model_values, self.opt_values, self.meta = path, model_values, opt_values, meta


def read_checkpoint(path: str) -> Checkpoint:
    """One checkpoint file (ckpt.npz or a copy of it); errors as numpy and json raise them."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        m = [z[f"m{i}"] for i in range(meta["n_model"])]
        o = [z[f"o{i}"] for i in range(meta["n_opt"])]
    return Checkpoint(path, m, o, meta)


def load_checkpoint(model_dir: str) -> Optional[Checkpoint]:
    """The newest checkpoint that loads, or None when there is none."""
    d = os.path.join(model_dir, CKPT_DIR)
    clean_stale_temps(d)
    for name in (CKPT, CKPT_PREV):
        path = os.path.join(d, name)
        if not os.path.exists(path):
            continue
        try:
            return read_checkpoint(path)
        except Exception as e:  # noqa: BLE001 - any failure: try the older one
            logging.warning("Checkpoint %s does not load (%s: %s); trying the previous one", path,
                            type(e).__name__, e)
    return None


def restore(variables: Sequence, values: Sequence[np.ndarray], what: str) -> None:
    if len(variables) != len(values):
        raise ValueError(f"checkpoint has {len(values)} {what} variables, the model has {len(variables)}")
    for v, a in zip(variables, values):
        if tuple(v.shape) != tuple(a.shape):
            raise ValueError(f"checkpoint {what} variable {getattr(v, 'path', v.name)} has shape {a.shape}, "
                             f"the model's has {tuple(v.shape)}")
    for v, a in zip(variables, values):
        v.assign(a)

"""The data file that travels to the device: an image-folder dataset as JPEG bytes in one .npz.

Written by `training.gpu.prepare` (here), read by `load_split` (there, numpy only, plus a
JPEG decoder). Keys, for each split S in ("train", "test"):

* ``S_jpeg``: uint8, the split's JPEG files concatenated, in sorted path order;
* ``S_offsets``: int64 [n + 1], file i is ``S_jpeg[offsets[i]:offsets[i + 1]]``;
* ``S_labels``: int16 [n], index into the class names;
* ``S_paths``: uint8, the files' paths relative to the dataset root, "\\n"-joined UTF-8;

and ``class_names`` ("\\n"-joined UTF-8) and ``meta`` (JSON, UTF-8): the source, its sha256, the
decoder and its settings, and per split the sha256 of the decoded uint8 pixels [n, H, W, 3]
in file order together with what `prepare` checked them against (the pixels
`keras_preact.data` decodes with TensorFlow). Saved with ``np.savez_compressed``: the JPEG
headers repeat in every file and deflate to almost nothing (CIFAR-10: 55 MB of JPEG files
give an 18 MB file). No pickled objects: ``np.load(allow_pickle=False)`` reads it.

Decoding. TensorFlow's ``tf.io.decode_image`` (what `keras_preact.data` uses) decodes JPEG
with libjpeg-turbo's fast integer IDCT (``JDCT_IFAST``, TF's default ``dct_method``) and
"fancy" chroma upsampling. ``simplejpeg.decode_jpeg(fastdct=True, fastupsample=False)``
asks libjpeg-turbo for exactly that, and gives the same bytes (measured: every pixel of the
60,000 CIFAR-10 (JPEG q75 copy) images). Pillow uses the accurate IDCT (``JDCT_ISLOW``) and
cannot be told otherwise: it differs by up to 5 levels (CIFAR-10 (JPEG q75 copy) test split,
mean abs difference about 1), so it is only the fallback. `load_split` compares the decoded
pixels' sha256 with the one `prepare` recorded and says whether they match.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Tuple

import numpy as np

FORMAT = "keras-preact-jpeg-bundle/1"
DATA_FILE = "cifar10_jpeg.npz"
SPLITS = ("train", "test")
DECODERS = ("simplejpeg", "pillow")


def pixels_sha256(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.uint8).tobytes()).hexdigest()


def _text(a: np.ndarray) -> str:
    return a.tobytes().decode("utf-8")


def _bytes_array(s: str) -> np.ndarray:
    return np.frombuffer(s.encode("utf-8"), dtype=np.uint8)


def write(path: str, splits: dict, class_names: List[str], meta: dict) -> None:
    """`splits`: {split: (list of JPEG bytes, labels, relative paths)}. Written atomically."""
    arrays = {"class_names": _bytes_array("\n".join(class_names))}
    for split, (blobs, labels, paths) in splits.items():
        offsets = np.zeros(len(blobs) + 1, np.int64)
        offsets[1:] = np.cumsum([len(b) for b in blobs])
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(blobs), dtype=np.uint8)
        arrays[f"{split}_offsets"] = offsets
        arrays[f"{split}_labels"] = np.asarray(labels, np.int16)
        arrays[f"{split}_paths"] = _bytes_array("\n".join(paths))
    arrays["meta"] = _bytes_array(json.dumps({"format": FORMAT, **meta}, sort_keys=True))
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def update_meta(path: str, **changes) -> dict:
    """Rewrite the file with `changes` merged into its meta (prepare adds its checks)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(_text(arrays["meta"]))
    meta.update(changes)
    arrays["meta"] = _bytes_array(json.dumps(meta, sort_keys=True))
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return meta


def read_meta(path: str) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(_text(z["meta"]))


def read_raw(path: str, split: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray, List[str], List[str]]:
    """(jpeg bytes, offsets, labels, relative paths, class names) of `split`."""
    with np.load(path, allow_pickle=False) as z:
        return (z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"].astype(np.int64),
                _text(z[f"{split}_paths"]).split("\n"), _text(z["class_names"]).split("\n"))


def available_decoder(preferred: Optional[str] = None) -> str:
    """The first of `preferred`, simplejpeg, Pillow that imports here; ImportError if none."""
    import importlib.util

    order = [preferred] if preferred else list(DECODERS)
    for name in order:
        if name not in DECODERS:
            raise ValueError(f"Unknown decoder {name!r}; valid: {', '.join(DECODERS)}")
        if importlib.util.find_spec({"simplejpeg": "simplejpeg", "pillow": "PIL"}[name]) is not None:
            return name
    raise ImportError(f"No JPEG decoder: install simplejpeg (exact TF pixels) or Pillow (tried {order})")


def _decode_fn(decoder: str):
    if decoder == "simplejpeg":
        import simplejpeg

        return lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB", fastdct=True, fastupsample=False)
    from PIL import Image

    return lambda b: np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))


def decode(jpeg: np.ndarray, offsets: np.ndarray, decoder: str, workers: int = 0) -> np.ndarray:
    """uint8 [n, H, W, 3] of the n JPEG files in `jpeg` (all of one size; ValueError otherwise)."""
    fn = _decode_fn(decoder)
    data = jpeg.tobytes()
    n = len(offsets) - 1
    if n == 0:
        raise ValueError("no images")
    first = fn(data[offsets[0]:offsets[1]])
    out = np.empty((n,) + first.shape, np.uint8)

    def run(lo_hi):
        lo, hi = lo_hi
        for i in range(lo, hi):
            img = fn(data[offsets[i]:offsets[i + 1]])
            if img.shape != first.shape:
                raise ValueError(f"image {i} is {img.shape}, image 0 is {first.shape}: one size only")
            out[i] = img

    workers = workers or min(16, os.cpu_count() or 1)
    chunk = max(1, -(-n // (workers * 4)))
    # simplejpeg and Pillow release the GIL while decoding: threads use the cores.
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(run, [(lo, min(n, lo + chunk)) for lo in range(0, n, chunk)]))
    return out


def load_split(path: str, split: str, decoder: Optional[str] = None, limit: Optional[int] = None):
    """(pixels uint8 [n, H, W, 3], labels int64 [n], info dict) of `split`.

    info: class_names, paths, decoder, pixels_sha256, and "matches_reference": whether the
    pixels are the ones `prepare` recorded (True: the same bytes as TensorFlow's decoder
    there; None: `limit` was given, nothing to compare).
    """
    jpeg, offsets, labels, paths, class_names = read_raw(path, split)
    if limit is not None:
        offsets, labels, paths = offsets[: limit + 1], labels[:limit], paths[:limit]
    dec = available_decoder(decoder)
    x = decode(jpeg, offsets, dec)
    meta = read_meta(path)
    ref = (meta.get("pixels") or {}).get(split, {})
    sha = pixels_sha256(x)
    info = {"class_names": class_names, "paths": paths, "decoder": dec, "pixels_sha256": sha,
            "matches_reference": None if limit is not None else (sha == ref.get("sha256")),
            "reference": ref}
    return x, labels, info

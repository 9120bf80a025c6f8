"""Write the folder that travels to the GPU machine: data file, wheels, and a size report.

    python -m training.gpu.prepare --out gpu_bundle/                # CIFAR-10 (JPEG q75 copy) + wheels
    python -m training.gpu.prepare --out /tmp/b --per_class 20 --no_wheels   # a tiny bundle (tests)

Writes into --out (gitignored; the device call names it in `carry`):

* ``cifar10_jpeg.npz`` (`training.gpu.bundle`): the JPEG files of the source (a
  ``.tar.gz``/``.tar`` of ``{train,test}/<class>/*.jpg`` or such a folder) in one numpy file.
  Unless ``--no_check``, the pixels are checked against `keras_preact.data` (TensorFlow): the
  split is decoded with ``keras_preact.data.materialize`` and with every JPEG decoder
  available here (simplejpeg, Pillow), and the file's meta records per split the sha256 of
  TensorFlow's pixels, whether each decoder gives exactly those (compared image by image
  against ``tf.io.decode_image``, the op `keras_preact.data` decodes with, after checking that
  `materialize` yields the same set of (label, pixels)), and the max / mean abs difference.
* ``wheels/``: what the device may lack, for each of ``--pythons``: Keras (the version
  installed here) and its pure-Python dependencies once, and per CPython version the
  binary ones (optree; h5py with ``--with_h5py``) and simplejpeg, the decoder that
  reproduces TensorFlow's pixels. ``pip download`` from the index this machine uses; files
  already there are kept (delete the folder to drop some).
* ``MANIFEST.json``: what is there, the checks, and the size of everything that travels
  (this folder, and the working tree: tracked plus untracked-not-ignored files) against
  the device's 64 MiB; also printed.

The keras_preact source is not copied: the working tree travels with every call, and
`train_jax.py` imports the package from it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from training.gpu import bundle

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE_LIMIT = 64 * 2**20
DEFAULT_ARCHIVE = os.environ.get("KERAS_PREACT_CIFAR10_TAR") or os.path.join(
    os.path.dirname(REPO), "shared", "datasets", "cifar10-jpeg.tar.gz")
# The device's python3 was 3.12 (docs/gpu.md); 3.11 and 3.13 in case its image changes.
PYTHONS = ("3.11", "3.12", "3.13")
SIMPLEJPEG = "simplejpeg==1.9.0"
# Keras 3.15's requirements (pip show keras) and theirs, by whether the wheel is per CPython.
PURE = ("keras", "namex", "absl-py", "rich", "markdown-it-py", "mdurl", "pygments", "packaging",
        "typing_extensions")
BINARY = ("optree",)
# ml-dtypes (also Keras') and numpy come with JAX: the device has them in the versions its jax needs.
# h5py (Keras needs it only to write final.weights.h5) is in the device's image and costs ~4.7 MiB
# per CPython version: carried with --with_h5py only; without it there, training.gpu.finalize
# writes the file here from the checkpoint.
H5PY = "h5py"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64")
IMAGE_SUFFIXES = (".jpg", ".jpeg")


# ----------------------------------------------------------------------------- reading the source


def _relative(path: str) -> Optional[Tuple[str, str, str]]:
    """(split, class, relative path from the split's parent) of an image path, or None."""
    parts = path.replace("\\", "/").strip("/").split("/")
    for i, part in enumerate(parts[:-2]):
        if part in bundle.SPLITS and len(parts) - i == 3:
            if parts[-1].lower().endswith(IMAGE_SUFFIXES) and not parts[-1].startswith("."):
                return part, parts[i + 1], "/".join(parts[i:])
    return None


def read_source(source: str, per_class: Optional[int] = None) -> Dict[str, Dict[str, Dict[str, bytes]]]:
    """{split: {class: {relative path: JPEG bytes}}} of an archive or folder (sorted, capped)."""
    found: Dict[str, Dict[str, Dict[str, bytes]]] = {s: {} for s in bundle.SPLITS}
    if os.path.isdir(source):
        for dirpath, _, files in os.walk(source):
            for f in files:
                full = os.path.join(dirpath, f)
                rel = _relative(os.path.relpath(full, source))
                if rel:
                    with open(full, "rb") as fh:
                        found[rel[0]].setdefault(rel[1], {})[rel[2]] = fh.read()
    else:
        with tarfile.open(source) as tar:
            for member in tar:
                rel = _relative(member.name) if member.isfile() else None
                if rel:
                    found[rel[0]].setdefault(rel[1], {})[rel[2]] = tar.extractfile(member).read()
    for split in bundle.SPLITS:
        if not found[split]:
            raise SystemExit(f"{source} has no {split}/<class>/*.jpg files")
    if sorted(found["train"]) != sorted(found["test"]):
        raise SystemExit(f"{source}: train and test have different classes")
    out: Dict[str, Dict[str, Dict[str, bytes]]] = {}
    for split, classes in found.items():
        out[split] = {}
        for cls in sorted(classes):
            names = sorted(classes[cls])[:per_class] if per_class else sorted(classes[cls])
            for name in names:
                if not classes[cls][name].startswith(b"\xff\xd8\xff"):
                    raise SystemExit(f"{name} is not a JPEG file: the bundle carries JPEG only")
            out[split][cls] = {n: classes[cls][n] for n in names}
    return out


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _portable(path: str) -> str:
    """`path` relative to the checkout's parent when it is beside the checkout (../shared/...)."""
    path = os.path.abspath(path)
    parent = os.path.dirname(REPO)
    if path.startswith(REPO + os.sep):
        return os.path.relpath(path, REPO)
    if path.startswith(parent + os.sep):
        return os.path.join("..", os.path.relpath(path, parent))
    return path


# ----------------------------------------------------------------------------- the pixel check


def _image_keys(x: np.ndarray, y: np.ndarray) -> List[Tuple[int, str]]:
    return sorted((int(label), hashlib.sha1(img.tobytes()).hexdigest()) for img, label in zip(x, y))


def check_pixels(data_file: str, folder: str, split: str) -> dict:
    """Decode `split` of the bundle with every decoder here and compare with TensorFlow's pixels.

    `folder`: the same images as an image folder, read by `keras_preact.data.materialize`.
    """
    import tensorflow as tf

    from keras_preact import data as data_lib

    jpeg, offsets, labels, paths, class_names = bundle.read_raw(data_file, split)
    raw = jpeg.tobytes()
    # The op keras_preact.data decodes with (data._decode), image by image in bundle order.
    reference = np.stack([
        tf.io.decode_image(raw[offsets[i]:offsets[i + 1]], channels=3, expand_animations=False,
                           dtype=tf.uint8).numpy() for i in range(len(labels))])
    x_tf, y_tf, info = data_lib.materialize(f"folder:{folder}", split)
    if list(info.class_names) != class_names:
        raise SystemExit(f"class names differ: keras_preact.data {info.class_names}, bundle {class_names}")
    same_set = _image_keys(x_tf, y_tf) == _image_keys(reference, labels)
    if not same_set:
        raise SystemExit(f"{split}: keras_preact.data.materialize and tf.io.decode_image of the bundle's "
                         "files do not give the same (label, pixels): the bundle is not that dataset")
    result = {"n": int(len(labels)), "shape": list(reference.shape[1:]),
              "sha256": bundle.pixels_sha256(reference),
              "reference": "keras_preact.data.materialize (tf.io.decode_image, TensorFlow "
                           f"{tf.__version__}); same (label, pixels) multiset, compared image by image "
                           "with tf.io.decode_image in bundle order",
              "decoders": {}}
    for name in bundle.DECODERS:
        try:
            bundle.available_decoder(name)
        except ImportError:
            result["decoders"][name] = {"available_here": False}
            continue
        x = bundle.decode(jpeg, offsets, name)
        d = np.abs(x.astype(np.int16) - reference.astype(np.int16))
        result["decoders"][name] = {"available_here": True, "equal": bool(d.max() == 0),
                                    "max_abs_diff": int(d.max()), "mean_abs_diff": round(float(d.mean()), 4),
                                    "pixels_differing": int((d > 0).sum()), "pixels": int(d.size)}
    return result


# ----------------------------------------------------------------------------- wheels


def _installed(dist: str) -> Optional[str]:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def download_wheels(dest: str, pythons=PYTHONS, with_h5py: bool = False) -> List[str]:
    """Download the wheels (versions pinned to those installed here); return the pip commands run."""
    os.makedirs(dest, exist_ok=True)
    pins = []
    for dist in PURE + BINARY + ((H5PY,) if with_h5py else ()):
        version = _installed(dist)
        pins.append(f"{dist}=={version}" if version else dist)
    pure = [p for p in pins if p.split("==")[0] in PURE]
    binary = [p for p in pins if p.split("==")[0] not in PURE] + [SIMPLEJPEG]
    base = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--implementation", "cp", "-d", dest]
    for p in PLATFORMS:
        base += ["--platform", p]
    commands = []
    for i, version in enumerate(pythons):
        wanted = binary + (pure if i == 0 else [])
        cmd = base + ["--python-version", version] + wanted
        commands.append(" ".join(cmd[1:]))
        subprocess.run(cmd, check=True)
    return commands


# ----------------------------------------------------------------------------- sizes


def tree_bytes(repo: str = REPO) -> Tuple[int, int]:
    """(bytes, files) of the working tree that travels: tracked + untracked-not-ignored files."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=repo, capture_output=True, check=True).stdout
    total = count = 0
    for name in out.decode().split("\0"):
        path = os.path.join(repo, name)
        if name and os.path.isfile(path) and not os.path.islink(path):
            total += os.path.getsize(path)
            count += 1
    return total, count


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


# ----------------------------------------------------------------------------- main


def prepare(out: str, source: str = DEFAULT_ARCHIVE, *, per_class: Optional[int] = None,
            wheels: bool = True, check: bool = True, pythons=PYTHONS, with_h5py: bool = False) -> dict:
    t0 = time.time()
    os.makedirs(out, exist_ok=True)
    images = read_source(source, per_class)
    class_names = sorted(images["train"])
    splits = {}
    for split in bundle.SPLITS:
        blobs, labels, paths = [], [], []
        for label, cls in enumerate(class_names):
            for rel, data in images[split][cls].items():
                blobs.append(data)
                labels.append(label)
                paths.append(rel)
        splits[split] = (blobs, labels, paths)
    data_file = os.path.join(out, bundle.DATA_FILE)
    source_sha = _sha256_file(source) if os.path.isfile(source) else None
    meta = {"source": _portable(source), "source_sha256": source_sha, "per_class": per_class,
            "counts": {s: len(splits[s][0]) for s in bundle.SPLITS},
            "jpeg_bytes": {s: int(sum(map(len, splits[s][0]))) for s in bundle.SPLITS},
            "decoder": {"name": "simplejpeg", "call": "decode_jpeg(b, colorspace='RGB', fastdct=True, "
                        "fastupsample=False)", "fallback": "Pillow (accurate IDCT: not TF's pixels)"},
            "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    bundle.write(data_file, splits, class_names, meta)
    commands = download_wheels(os.path.join(out, "wheels"), pythons, with_h5py) if wheels else []
    wheel_dir = os.path.join(out, "wheels")
    if check:
        with tempfile.TemporaryDirectory(prefix="kp_bundle_check_") as tmp:
            if os.path.isdir(wheel_dir):  # the carried decoder, for this interpreter, checked here too
                from training.gpu import bootstrap

                bootstrap.ensure(wheel_dir, os.path.join(tmp, "site"))
            folder = source if os.path.isdir(source) and not per_class else None
            if folder is None and per_class is None and os.path.isfile(source):
                from keras_preact.data import unpack_archive

                folder = unpack_archive(source)
            if folder is None:  # a capped selection: the same files as a folder
                folder = os.path.join(tmp, "images")
                for split in bundle.SPLITS:
                    for rel, data in zip(splits[split][2], splits[split][0]):
                        path = os.path.join(folder, rel)
                        os.makedirs(os.path.dirname(path), exist_ok=True)
                        with open(path, "wb") as f:
                            f.write(data)
            pixels = {split: check_pixels(data_file, folder, split) for split in bundle.SPLITS}
        meta = bundle.update_meta(data_file, pixels=pixels)
    tree, files = tree_bytes()
    manifest = {"data_file": bundle.DATA_FILE, "meta": meta,
                "wheels": sorted(os.listdir(wheel_dir)) if os.path.isdir(wheel_dir) else [],
                "pip_commands": commands, "seconds": round(time.time() - t0, 1)}
    for _ in range(2):  # the manifest counts itself: the second pass sees its final size
        sizes = {"data_file": os.path.getsize(data_file),
                 "wheels": folder_bytes(wheel_dir) if os.path.isdir(wheel_dir) else 0,
                 "bundle_total": folder_bytes(out), "working_tree": tree, "working_tree_files": files}
        sizes["travels_total"] = tree + sizes["bundle_total"]
        sizes["device_limit"] = DEVICE_LIMIT
        sizes["headroom"] = DEVICE_LIMIT - sizes["travels_total"]
        manifest["sizes"] = sizes
        with open(os.path.join(out, "MANIFEST.json"), "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.write("\n")
    return manifest


def report(manifest: dict) -> str:
    s = manifest["sizes"]
    meta = manifest["meta"]
    lines = [f"data file   {_mib(s['data_file']):>10}  ({meta['counts']['train']} train + "
             f"{meta['counts']['test']} test JPEGs, {_mib(sum(meta['jpeg_bytes'].values()))} as files)",
             f"wheels      {_mib(s['wheels']):>10}  ({len(manifest['wheels'])} files)",
             f"bundle      {_mib(s['bundle_total']):>10}",
             f"work tree   {_mib(s['working_tree']):>10}  ({s['working_tree_files']} tracked + untracked files)",
             f"travels     {_mib(s['travels_total']):>10}  of {_mib(s['device_limit'])} "
             f"({_mib(s['headroom'])} to spare)"]
    for split, check in (meta.get("pixels") or {}).items():
        for name, d in check["decoders"].items():
            if d.get("available_here"):
                lines.append(f"pixels {split:5s} {name:10s} vs TensorFlow: "
                             + ("identical" if d["equal"] else
                                f"max abs diff {d['max_abs_diff']}, mean {d['mean_abs_diff']}, "
                                f"{d['pixels_differing']}/{d['pixels']} values differ"))
            else:
                lines.append(f"pixels {split:5s} {name:10s} not installed here: not checked")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Write the GPU route's bundle (docs/gpu.md).")
    p.add_argument("--out", default=os.path.join(REPO, "gpu_bundle"))
    p.add_argument("--source", default=DEFAULT_ARCHIVE,
                   help="the dataset: a .tar.gz/.tar or folder of {train,test}/<class>/*.jpg "
                        "(default: $KERAS_PREACT_CIFAR10_TAR or ../shared/datasets/cifar10-jpeg.tar.gz)")
    p.add_argument("--per_class", type=int, default=None, help="keep the first N images per class and split")
    p.add_argument("--no_wheels", action="store_true", help="do not download wheels")
    p.add_argument("--no_check", action="store_true", help="skip the comparison with TensorFlow's pixels")
    p.add_argument("--pythons", default=",".join(PYTHONS), help="CPython versions of the binary wheels")
    p.add_argument("--with_h5py", action="store_true",
                   help="carry h5py too (the device's image has it; ~4.7 MiB per CPython version)")
    a = p.parse_args(argv)
    manifest = prepare(a.out, a.source, per_class=a.per_class, wheels=not a.no_wheels, check=not a.no_check,
                       pythons=tuple(v for v in a.pythons.split(",") if v), with_h5py=a.with_h5py)
    print(report(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())

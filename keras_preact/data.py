"""Datasets and the tf.data input pipeline.

Public contract (used by the zoo/CLI code too)::

    ds, info = load_split("folder:/path/to/tree" | "cifar10" | ..., "train" | "test",
                          data_dir=None, download=False)

``ds`` yields un-batched, un-augmented ``(image uint8 [H, W, 3], label int64)``;
``info`` is a :class:`DatasetInfo` (``name``, ``num_classes``, ``class_names``,
``num_examples``, plus ``skipped_files``).

Sources:

* ``folder:PATH`` -- a tree ``PATH/{train,test}/<class>/*.{jpg,jpeg,png}`` read with
  ``tfds.folder_dataset.ImageFolder``. Before anything is read, :func:`check_folder`
  reports missing splits, empty class folders, train/test class mismatches
  (:class:`DatasetError`, raised before training) and files that are not images
  (wrong magic bytes, empty files), which are skipped with a warning and listed in
  ``info.skipped_files``. Files that look like images but fail to decode (truncated,
  corrupt) are found by :func:`materialize` (the in-memory cache pass) and skipped the
  same way; on the streaming path ``ignore_errors`` drops them so an epoch never dies.
* any tfds name with ``image``/``label`` features (``cifar10``, ``cifar100``,
  ``imagenet2012``, ...). The dataset must already be prepared in ``data_dir``
  unless ``download=True``; offline this fails in about a second with a message that
  says to pass ``--data_dir`` or ``folder:PATH`` (instead of tfds retrying for minutes).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from absl import logging

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")  # what tfds ImageFolder reads
SPLITS = ("train", "test")
FOLDER_PREFIX = "folder:"
KNOWN_TFDS_EXAMPLES = ("cifar10", "cifar100", "imagenet2012", "imagenette", "svhn_cropped",
                       "oxford_flowers102", "food101")
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


class DatasetError(ValueError):
    """A dataset problem to show the user as a one-line message (no traceback)."""


@dataclasses.dataclass
class DatasetInfo:
    name: str
    num_classes: int
    class_names: List[str]
    num_examples: int
    split: str = "train"
    source: str = "tfds"  # "tfds" | "folder"
    skipped_files: List[str] = dataclasses.field(default_factory=list)
    image_shape: Optional[Tuple[int, int, int]] = None  # fixed (H, W, C) if the source declares one

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["skipped_count"] = len(self.skipped_files)
        return d


# ----------------------------------------------------------------------------- folders


@dataclasses.dataclass
class FolderReport:
    root: str
    classes: Dict[str, List[str]]  # split -> sorted class names (folders)
    files: Dict[str, Dict[str, List[str]]]  # split -> class -> image paths
    bad_files: List[Tuple[str, str]]  # (path, reason)
    ignored_files: List[str]  # files with other extensions (ImageFolder ignores them)

    @property
    def class_names(self) -> List[str]:
        names = set()
        for cls in self.classes.values():
            names.update(cls)
        return sorted(names)


def _looks_like_image(path: str) -> Optional[str]:
    """None if the file starts like a JPEG/PNG, else the reason it is not one."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        return f"unreadable ({e.strerror})"
    if not head:
        return "empty file"
    if not any(head.startswith(m) for m in _MAGIC):
        return "not a JPEG/PNG file"
    return None


_REPORTS: Dict[Tuple[str, Tuple[str, ...]], FolderReport] = {}


def check_folder(root: str, splits: Sequence[str] = SPLITS) -> FolderReport:
    """Cached :func:`scan_folder` (one scan per process and folder)."""
    key = (os.path.abspath(os.path.expanduser(root)), tuple(splits))
    if key not in _REPORTS:
        _REPORTS[key] = scan_folder(key[0], splits)
    return _REPORTS[key]


def scan_folder(root: str, splits: Sequence[str] = SPLITS) -> FolderReport:
    """Check an image-folder tree before training; raise DatasetError for structural problems.

    Structural problems (reported together, before any training): the root or a split
    folder is missing, a split has no class folders, a class folder holds no images,
    train and test have different class folders. Files that are not images are returned
    in ``bad_files`` (the caller skips them with a warning).
    """
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
        raise DatasetError(f"Dataset folder {root!r} does not exist (expected {root}/{{train,test}}/<class>/*.jpg)")
    problems = []
    classes, files = {}, {}
    bad, ignored = [], []
    for split in splits:
        sdir = os.path.join(root, split)
        if not os.path.isdir(sdir):
            present = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
            problems.append(f"missing split folder {sdir!r} (found: {', '.join(present) or 'nothing'})")
            continue
        cls_names = sorted(d for d in os.listdir(sdir) if os.path.isdir(os.path.join(sdir, d)))
        if not cls_names:
            problems.append(f"{sdir!r} has no class folders")
        classes[split] = cls_names
        files[split] = {}
        for c in cls_names:
            cdir = os.path.join(sdir, c)
            paths = []
            for f in sorted(os.listdir(cdir)):
                p = os.path.join(cdir, f)
                if not os.path.isfile(p):
                    continue
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(p)
                else:
                    ignored.append(p)
            if not paths:
                problems.append(f"empty class folder {cdir!r} (no .jpg/.jpeg/.png files)")
            files[split][c] = paths
    if len(classes) == len(splits) and len(splits) > 1:
        sets = {s: set(c) for s, c in classes.items()}
        ref = splits[0]
        for s in splits[1:]:
            only_ref = sorted(sets[ref] - sets[s])
            only_s = sorted(sets[s] - sets[ref])
            if only_ref or only_s:
                problems.append(
                    f"class folders differ between {ref} and {s}: only in {ref}: {only_ref or '-'}; "
                    f"only in {s}: {only_s or '-'}")
    if problems:
        raise DatasetError(f"Dataset folder {root!r} is not usable: " + "; ".join(problems))
    # Content check (magic bytes). Cheap: reads 8 bytes per file.
    from concurrent.futures import ThreadPoolExecutor

    all_paths = [p for s in files for c in files[s] for p in files[s][c]]
    with ThreadPoolExecutor(8) as ex:
        for p, reason in zip(all_paths, ex.map(_looks_like_image, all_paths, chunksize=512)):
            if reason:
                bad.append((p, reason))
    return FolderReport(root, classes, files, bad, ignored)


_FOLDER_CACHE: Dict[str, Tuple[FolderReport, object]] = {}


def _folder_builder(root: str):
    root = os.path.abspath(os.path.expanduser(root))
    if root not in _FOLDER_CACHE:
        report = check_folder(root)
        for p, reason in report.bad_files:
            logging.warning("Skipping damaged or non-image file %s: %s", p, reason)
        if report.bad_files:
            logging.warning("Skipping %d damaged/non-image file(s) in %s", len(report.bad_files), root)
        import tensorflow_datasets as tfds

        builder = tfds.folder_dataset.ImageFolder(root)
        _FOLDER_CACHE[root] = (report, builder)
    return _FOLDER_CACHE[root]


def _decode(image_bytes):
    img = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8)
    img.set_shape([None, None, 3])
    return img


def _folder_split(root: str, split: str, with_filename: bool = False):
    import tensorflow_datasets as tfds

    report, builder = _folder_builder(root)
    names = builder.info.features["label"].names
    bad = sorted(p for p, _ in report.bad_files if os.sep + split + os.sep in p[len(report.root):])
    n = builder.info.splits[split].num_examples - len(bad)
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders={"image": tfds.decode.SkipDecoding()})
    if bad:
        bad_t = tf.constant(bad)
        ds = ds.filter(lambda ex: tf.logical_not(tf.reduce_any(tf.equal(ex["image/filename"], bad_t))))

    def fn(ex):
        out = (_decode(ex["image"]), tf.cast(ex["label"], tf.int64))
        return out + (ex["image/filename"],) if with_filename else out

    ds = ds.map(fn, num_parallel_calls=AUTOTUNE)
    info = DatasetInfo(name=f"{FOLDER_PREFIX}{report.root}", num_classes=len(names), class_names=list(names),
                       num_examples=n, split=split, source="folder", skipped_files=bad)
    return ds, info


# ----------------------------------------------------------------------------- tfds


def _probe_internet(timeout: float = 3.0) -> bool:
    for host in ("storage.googleapis.com", "www.google.com"):
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def _tfds_builder(name: str, data_dir: Optional[str], download: bool):
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise DatasetError(
            f"Unknown dataset {name!r}. Use folder:PATH (a PATH/{{train,test}}/<class>/*.jpg tree) or a "
            f"tensorflow-datasets image-classification name, e.g. {', '.join(KNOWN_TFDS_EXAMPLES)}") from None
    except Exception as e:  # bad version strings, missing extra packages, ...
        raise DatasetError(f"Cannot open tfds dataset {name!r}: {str(e).splitlines()[0]}") from None
    feats = builder.info.features
    if not ("image" in feats and "label" in feats):
        raise DatasetError(
            f"tfds dataset {name!r} has no image/label features (it has: {', '.join(feats.keys())}); "
            f"use an image-classification dataset such as {', '.join(KNOWN_TFDS_EXAMPLES[:3])}")
    if not builder.is_prepared():
        where = data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
        if not download:
            raise DatasetError(
                f"Dataset {name!r} is not prepared in data_dir {where!r} and downloading is off. "
                f"Pass --data_dir=DIR holding a prepared tfds copy, or --dataset=folder:PATH for an image "
                f"folder (PATH/{{train,test}}/<class>/*.jpg), or --download to fetch it.")
        if not _probe_internet():
            raise DatasetError(
                f"Dataset {name!r} is not prepared in {where!r} and this machine cannot reach the internet "
                f"to download it. Pass --data_dir=DIR holding a prepared tfds copy, or "
                f"--dataset=folder:PATH for an image folder.")
        builder.download_and_prepare()
    return builder


def _tfds_split(name: str, split: str, data_dir, download):
    builder = _tfds_builder(name, data_dir, download)
    splits = builder.info.splits
    use = split
    if split == "test" and "test" not in splits:
        use = "validation" if "validation" in splits else None
    if use is None or use not in splits:
        raise DatasetError(f"tfds dataset {name!r} has no {split!r} split (it has: {', '.join(splits.keys())})")
    ds = builder.as_dataset(split=use, shuffle_files=(split == "train"))
    def to_pair(ex):
        img = tf.cast(ex["image"], tf.uint8)
        if img.shape.rank == 3 and img.shape[-1] == 1:  # grayscale datasets (mnist, ...)
            img = tf.image.grayscale_to_rgb(img)
        return tf.ensure_shape(img, [None, None, 3]), tf.cast(ex["label"], tf.int64)

    ds = ds.map(to_pair, num_parallel_calls=AUTOTUNE)
    label = builder.info.features["label"]
    shape = builder.info.features["image"].shape
    info = DatasetInfo(name=name, num_classes=label.num_classes, class_names=list(label.names),
                       num_examples=splits[use].num_examples, split=split, source="tfds",
                       image_shape=tuple(shape[:2]) + (3,) if shape and None not in shape else None)
    return ds, info


# ----------------------------------------------------------------------------- public API


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def dataset_cache_dir() -> str:
    """Where archives given as folder:ARCHIVE are unpacked: $KERAS_PREACT_CACHE or ~/.cache."""
    return os.path.expanduser(os.environ.get("KERAS_PREACT_CACHE", "~/.cache/keras_preact"))


def unpack_archive(path: str) -> str:
    """Unpack a .tar/.tar.gz image tree once into the cache; return its root.

    The cache folder is named by the archive's sha256, so a changed archive is
    unpacked again; unpacking goes to a temporary folder renamed into place, so
    an interrupted unpack is never mistaken for a finished one. If the archive
    holds one top-level folder around train/ and test/, that folder is the root.
    """
    import hashlib
    import shutil
    import tarfile
    import tempfile

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    name = os.path.basename(path)
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    target = os.path.join(dataset_cache_dir(), "datasets", f"{name}-{digest.hexdigest()[:16]}")
    if not os.path.isdir(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        staging = tempfile.mkdtemp(dir=os.path.dirname(target), prefix=".unpacking-")
        try:
            with tarfile.open(path) as archive:
                archive.extractall(staging, filter="data")  # refuses absolute paths and ..
            os.replace(staging, target)
        except Exception as error:
            shutil.rmtree(staging, ignore_errors=True)
            if os.path.isdir(target):  # another process finished first
                return _archive_root(target)
            raise DatasetError(f"Could not unpack {path!r}: {error}") from error
    return _archive_root(target)


def _archive_root(folder: str) -> str:
    entries = [e for e in os.listdir(folder) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isdir(os.path.join(folder, entries[0])) \
            and not set(SPLITS) & set(entries):
        return os.path.join(folder, entries[0])
    return folder


def parse_dataset(dataset: str) -> Tuple[str, str]:
    """('folder', path) or ('tfds', name). folder:ARCHIVE.tar.gz is unpacked to the cache."""
    if not dataset:
        raise DatasetError("--dataset is required: folder:PATH or a tfds name such as cifar10")
    if dataset.startswith(FOLDER_PREFIX):
        path = dataset[len(FOLDER_PREFIX):]
        if not path:
            raise DatasetError("--dataset=folder: needs a path, e.g. folder:/data/cifar10-jpeg")
        path = os.path.abspath(os.path.expanduser(path))
        if os.path.isfile(path) and path.endswith(ARCHIVE_SUFFIXES):
            return "folder", unpack_archive(path)
        return "folder", path
    return "tfds", dataset


def load_split(dataset: str, split: str, *, data_dir: Optional[str] = None,
               download: bool = False) -> Tuple[tf.data.Dataset, DatasetInfo]:
    """Un-batched, un-augmented ``(image uint8 [H,W,3], label int64)`` and its DatasetInfo."""
    if split not in SPLITS:
        raise DatasetError(f"Unknown split {split!r}; valid: {', '.join(SPLITS)}")
    kind, ref = parse_dataset(dataset)
    if kind == "folder":
        ds, info = _folder_split(ref, split)
        # Last line of defence on the streaming path: a file that passed the header
        # check but fails to decode is dropped instead of ending the epoch.
        return ds.ignore_errors(log_warning=True), info
    return _tfds_split(ref, split, data_dir, download)


def dataset_identity(dataset: str) -> str:
    kind, ref = parse_dataset(dataset)
    return f"folder:{ref}" if kind == "folder" else ref


def portable_path(given):
    """PATH relative to the working directory when it lies inside it or beside it, else absolute.

    How model cards (keras_preact/zoo/publish.py), int8 calibration records
    (keras_preact/quantization.py) and benchmark commands name a dataset. Cards are read on
    other machines, so an absolute path of ours (`/work/shared/...`) would mean nothing
    there; publishing from a checkout's root gives `../shared/...`, the layout the README
    documents.
    """
    here = Path.cwd()
    # Compare the paths as written first: `../shared` is often a symlink, and resolving it
    # would turn the portable `../shared/...` back into wherever the link points.
    for resolve in (os.path.abspath, os.path.realpath):
        path, repo = Path(resolve(given)), Path(resolve(str(here)))
        if path.is_relative_to(repo):
            return str(path.relative_to(repo))
        if path.is_relative_to(repo.parent):
            return str(Path('..') / path.relative_to(repo.parent))
    return os.path.abspath(given)


def portable_dataset(dataset):
    """`folder:PATH` with PATH made portable (`portable_path`); tfds names as they are."""
    if not dataset or not dataset.startswith(FOLDER_PREFIX):
        return dataset
    return f"folder:{portable_path(dataset[len(FOLDER_PREFIX):])}"


def materialize(dataset: str, split: str, *, data_dir=None, download=False,
                max_bytes: int = 2 << 30) -> Optional[Tuple[np.ndarray, np.ndarray, DatasetInfo]]:
    """Decode a whole split into memory, or None when it is too big or has mixed image sizes.

    For folders this pass also finds files that look like images but do not decode:
    they are skipped with a warning naming them, and added to ``info.skipped_files``.
    """
    kind, ref = parse_dataset(dataset)
    if kind == "folder":
        ds, info = _folder_split(ref, split, with_filename=True)
        report, _ = _folder_builder(ref)
    else:
        ds, info = _tfds_split(ref, split, data_dir, download)
        ds = ds.map(lambda x, y: (x, y, tf.constant("")))
    # Peek at the first image to estimate the memory needed.
    first = next(iter(ds.ignore_errors().take(1)), None)
    if first is None:
        raise DatasetError(f"{dataset} split {split!r} has no readable images")
    h, w, c = first[0].shape
    if info.num_examples * h * w * c > max_bytes:
        return None
    shape = (h, w, c)
    same = ds.ignore_errors(log_warning=False).filter(
        lambda x, y, n: tf.reduce_all(tf.equal(tf.shape(x), shape)))
    same = same.map(lambda x, y, n: (tf.ensure_shape(x, shape), y, n))
    images, labels, names = [], [], []
    for img, lab, fname in same.batch(1024).prefetch(2).as_numpy_iterator():
        images.append(img)
        labels.append(lab)
        names.append(fname)
    x = np.concatenate(images)
    y = np.concatenate(labels).astype(np.int64)
    if kind == "folder":
        got = set(n.decode() for n in np.concatenate(names))
        skipped = set(info.skipped_files)
        expected = [p for cls in report.files[split].values() for p in cls if p not in skipped]
        missing = sorted(set(expected) - got)
        failed = []
        for p in missing:  # either a damaged file or an image of another size
            reason = _pil_problem(p)
            if reason is None:
                logging.info("%s has images of different sizes (%s); not caching in memory", dataset, p)
                return None
            failed.append(p)
            logging.warning("Skipping file that does not decode as an image: %s (%s)", p, reason)
        if failed:
            logging.warning("Skipped %d file(s) of %s/%s that do not decode", len(failed), ref, split)
        info.skipped_files = sorted(skipped | set(failed))
    elif len(y) != info.num_examples:
        return None  # mixed image sizes in a tfds dataset: stream it instead
    info.num_examples = int(len(y))
    info.image_shape = shape
    return x, y, info


def _pil_problem(path: str) -> Optional[str]:
    """None if PIL decodes the file fully, else the error."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            im.load()
        return None
    except Exception as e:  # noqa: BLE001 - any decoder error means "damaged"
        return f"{type(e).__name__}: {e}"

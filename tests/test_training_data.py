"""Datasets: load_split contract, folder checks, damaged files, offline tfds, pipelines."""

import io
import functools
import os
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_preact.models._builder import PREPROCESSING
from keras_preact import data
from keras_preact.training import configs, pipeline
from image_folders import make_image_folder


make_folder = functools.partial(make_image_folder, classes=("cat", "dog"), n_train=6, n_test=2)


def _fresh(root):
    """Folder checks are cached per process: drop the cache for a freshly changed tree."""
    data._REPORTS.clear()
    data._FOLDER_CACHE.clear()
    return root


def test_load_split_folder_contract(tmp_path):
    root = _fresh(make_folder(tmp_path / "ds", classes=("b", "a", "c"), n_train=4, n_test=2))
    ds, info = data.load_split(f"folder:{root}", "train")
    assert info.class_names == ["a", "b", "c"] and info.num_classes == 3 and info.num_examples == 12
    assert info.name == f"folder:{root}"
    items = list(ds.as_numpy_iterator())
    assert len(items) == 12
    img, label = items[0]
    assert img.dtype == np.uint8 and img.shape == (32, 32, 3)
    assert isinstance(label, (np.int64, int)) or label.dtype == np.int64
    assert sorted(int(lab) for _, lab in items) == [0] * 4 + [1] * 4 + [2] * 4
    _, tinfo = data.load_split(f"folder:{root}", "test")
    assert tinfo.num_examples == 6 and tinfo.class_names == info.class_names
    with pytest.raises(data.DatasetError, match="valid: train, test"):
        data.load_split(f"folder:{root}", "validation")


def test_damaged_and_non_image_files_are_named_and_skipped(tmp_path, caplog):
    root = make_folder(tmp_path / "ds", n_train=5)
    not_image = os.path.join(root, "train", "cat", "notes.jpg")
    with open(not_image, "w") as f:
        f.write("this is not a picture")
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buf, format="JPEG")
    truncated = os.path.join(root, "train", "dog", "truncated.jpg")
    with open(truncated, "wb") as f:
        f.write(buf.getvalue()[: len(buf.getvalue()) // 3])
    empty = os.path.join(root, "test", "dog", "empty.png")
    open(empty, "wb").close()
    _fresh(root)
    x, y, info = data.materialize(f"folder:{root}", "train")
    assert len(y) == 10 and x.shape == (10, 32, 32, 3)
    assert sorted(info.skipped_files) == sorted([not_image, truncated])
    logged = caplog.text
    assert "notes.jpg" in logged and "truncated.jpg" in logged
    # The streaming path skips them too and never raises mid-iteration.
    ds, sinfo = data.load_split(f"folder:{root}", "test")
    assert sinfo.skipped_files == [empty]
    assert len(list(ds)) == 4


def test_empty_class_folder_reported(tmp_path):
    root = make_folder(tmp_path / "ds")
    os.makedirs(os.path.join(root, "train", "bird"))
    os.makedirs(os.path.join(root, "test", "bird"))
    with pytest.raises(data.DatasetError, match="empty class folder .*bird"):
        data.scan_folder(root)


def test_mismatched_classes_reported(tmp_path):
    root = make_folder(tmp_path / "ds")
    make_folder(tmp_path / "other", classes=("cat", "fox"))
    os.rename(os.path.join(tmp_path, "other", "test"), os.path.join(root, "test2"))
    import shutil

    shutil.rmtree(os.path.join(root, "test"))
    os.rename(os.path.join(root, "test2"), os.path.join(root, "test"))
    with pytest.raises(data.DatasetError) as e:
        data.scan_folder(root)
    msg = str(e.value)
    assert "only in train: ['dog']" in msg and "only in test: ['fox']" in msg


def test_missing_folder_and_split(tmp_path):
    with pytest.raises(data.DatasetError, match="does not exist"):
        data.scan_folder(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "ds" / "train" / "a")
    with pytest.raises(data.DatasetError, match="missing split folder"):
        data.scan_folder(str(tmp_path / "ds"))


def test_tfds_offline_fails_fast_with_hint(tmp_path):
    t0 = time.time()
    with pytest.raises(data.DatasetError) as e:
        data.load_split("cifar10", "train", data_dir=str(tmp_path))
    assert time.time() - t0 < 15
    msg = str(e.value)
    assert "--data_dir" in msg and "folder:" in msg


def test_unknown_tfds_dataset(tmp_path):
    with pytest.raises(data.DatasetError, match="Unknown dataset 'no_such_dataset_xyz'.*folder:PATH.*cifar10"):
        data.load_split("no_such_dataset_xyz", "train", data_dir=str(tmp_path))


def test_cifar_augmentation_shapes_and_content():
    img = tf.constant(np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3))
    fn = pipeline.train_transform("cifar", 32)
    outs = [fn(img, tf.constant(1, tf.int64))[0].numpy() for _ in range(8)]
    assert all(o.shape == (32, 32, 3) and o.dtype == np.uint8 for o in outs)
    assert any(not np.array_equal(o, img.numpy()) for o in outs)  # crops/flips happen
    # A crop of the 4-pixel zero-padded image: every row of the output is a row of
    # the padded (possibly flipped) original.
    padded = np.pad(img.numpy(), ((4, 4), (4, 4), (0, 0)))
    o = outs[0]
    found = False
    for flip in (False, True):
        p = padded[:, ::-1] if flip else padded
        for dy in range(9):
            for dx in range(9):
                if np.array_equal(p[dy:dy + 32, dx:dx + 32], o):
                    found = True
    assert found


def test_cutout_fills_one_square_with_the_mean_pixel_clipped_at_the_border():
    img = tf.fill([32, 32, 3], tf.constant(7, tf.uint8))
    fill = np.array(configs.CUTOUT_FILL, np.uint8)
    # The "cifar" normalisation maps the fill to (about) 0, as the paper's zero mask does.
    mean = np.array(PREPROCESSING["cifar"]["mean"])
    assert np.abs(fill / 255.0 - mean).max() < 0.5 / 255
    tf.random.set_seed(0)
    areas = []
    for _ in range(100):
        out = pipeline.cutout(img).numpy()
        cut = (out != 7).any(-1)
        assert (out[cut] == fill).all() and (out[~cut] == 7).all()
        rows, cols = np.nonzero(cut.any(1))[0], np.nonzero(cut.any(0))[0]
        # one axis-aligned rectangle: every pixel of its bounding box is cut
        assert cut.sum() == len(rows) * len(cols) and np.ptp(rows) + 1 == len(rows)
        assert len(rows) <= configs.CUTOUT_SIZE and len(cols) <= configs.CUTOUT_SIZE
        areas.append(cut.sum())
    assert max(areas) == configs.CUTOUT_SIZE ** 2  # whole squares inside the image...
    assert min(areas) < configs.CUTOUT_SIZE ** 2 // 2  # ...and squares clipped at a border


def test_cutout_augment_crops_flips_then_cuts():
    img = tf.fill([32, 32, 3], tf.constant(200, tf.uint8))
    fn = pipeline.train_transform("cifar_cutout", 32)
    out = fn(img, tf.constant(1, tf.int64))[0].numpy()
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    values = {tuple(v) for v in out.reshape(-1, 3)}
    assert (200, 200, 200) in values and configs.CUTOUT_FILL in values
    assert values <= {(200, 200, 200), (0, 0, 0), configs.CUTOUT_FILL}  # image, zero padding, cut


def test_unknown_augment_names_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown augment 'cutout'.*cifar, cifar_cutout, imagenet, none"):
        pipeline.train_transform("cutout", 32)


def test_imagenet_augmentation_and_eval_crop():
    img = tf.constant(np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8))
    out, _ = pipeline.train_transform("imagenet", 224)(img, tf.constant(0, tf.int64))
    assert out.shape == (224, 224, 3) and out.dtype == tf.uint8
    out, _ = pipeline.eval_transform("imagenet", 224)(img, tf.constant(0, tf.int64))
    assert out.shape == (224, 224, 3)


def test_eval_padding_covers_every_example_once():
    n, batch = 23, 8
    steps = pipeline.eval_steps(n, batch, 1)
    src = lambda: tf.data.Dataset.from_tensor_slices(  # noqa: E731
        (np.zeros((n, 32, 32, 3), np.uint8), np.arange(n, dtype=np.int64)))
    ds = pipeline.eval_dataset_fn(src, batch, "cifar", 32, steps)(tf.distribute.InputContext())
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == steps == 3
    w = np.concatenate([b[2] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    assert w.sum() == n and sorted(labels[w > 0].tolist()) == list(range(n))


def test_mixed_size_folder_streams_and_resizes(tmp_path):
    root = make_folder(tmp_path / "ds", n_train=3, n_test=1, size=32)
    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(os.path.join(root, "train", "cat", "big.png"))
    _fresh(root)
    assert data.materialize(f"folder:{root}", "train") is None  # mixed sizes: not cached, streamed
    ds, info = data.load_split(f"folder:{root}", "train")
    assert info.num_examples == 7
    fn = pipeline.train_transform("cifar", 32)
    shapes = {tuple(fn(x, y)[0].shape) for x, y in ds}
    assert shapes == {(32, 32, 3)}


def test_prepared_tfds_dataset_loads_offline(tmp_path):
    import tensorflow_datasets as tfds

    class TinyTrainingTestImages(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 3)),
                "label": tfds.features.ClassLabel(names=["x", "y"])}))

        def _split_generators(self, dl_manager):
            return {"train": self._gen(6), "test": self._gen(2)}

        def _gen(self, n):
            for i in range(n):
                yield i, {"image": np.full((8, 8, 3), i, np.uint8), "label": i % 2}

        def _generate_examples(self):  # pragma: no cover - not used
            yield from ()

    TinyTrainingTestImages(data_dir=str(tmp_path)).download_and_prepare()
    ds, info = data.load_split("tiny_training_test_images", "train", data_dir=str(tmp_path))
    assert info.class_names == ["x", "y"] and info.num_examples == 6 and info.source == "tfds"
    items = list(ds.as_numpy_iterator())
    assert len(items) == 6 and items[0][0].dtype == np.uint8 and items[0][0].shape == (8, 8, 3)
    x, y, minfo = data.materialize("tiny_training_test_images", "test", data_dir=str(tmp_path))
    assert x.shape == (2, 8, 8, 3) and sorted(y.tolist()) == [0, 1]


def test_folder_dataset_can_be_a_tar_gz_archive(tmp_path, monkeypatch):
    """folder:ARCHIVE.tar.gz (e.g. ../shared/datasets/cifar10-jpeg.tar.gz) is unpacked once."""
    import tarfile

    import numpy as np
    from PIL import Image

    from keras_preact import data

    tree = tmp_path / "tree"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (tree / split / cls).mkdir(parents=True)
            Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(tree / split / cls / "0.jpg")
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tree / split, arcname=split)
    monkeypatch.setenv("KERAS_PREACT_CACHE", str(tmp_path / "cache"))
    # Watch the unpacking itself: every extraction goes through TarFile.extractall.
    extractions = []
    extractall = tarfile.TarFile.extractall

    def counting_extractall(self, path=".", *args, **kwargs):
        extractions.append(path)
        return extractall(self, path, *args, **kwargs)

    monkeypatch.setattr(tarfile.TarFile, "extractall", counting_extractall)
    ds, info = data.load_split(f"folder:{archive}", "test")
    assert info.class_names == ["cat", "dog"]
    assert len(list(ds)) == 2
    assert len(extractions) == 1
    first = data.parse_dataset(f"folder:{archive}")[1]
    assert data.parse_dataset(f"folder:{archive}")[1] == first
    assert len(extractions) == 1, "unpacked again"  # unpacked once, reused
    # A changed archive (another sha256) is unpacked again, into another folder.
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tree / split, arcname=split)
        tar.add(tree / "test" / "cat" / "0.jpg", arcname="README.jpg")
    assert data.parse_dataset(f"folder:{archive}")[1] != first
    assert len(extractions) == 2

"""tf.data input pipelines: the papers' augmentation, shuffle, batch, prefetch, distribute.

Images stay uint8 through the pipeline (4x less host memory traffic) and are cast to
float32 0..255 in the train step: the models normalise inside
(``include_preprocessing=True``), so nothing here normalises.

Augmentation (``cfg.augment``):

* ``cifar`` -- He et al. 2015 sec. 4.2: "4 pixels are padded on each side, and a 32x32
  crop is randomly sampled from the padded image or its horizontal flip".
* ``cifar_cutout`` -- ``cifar``, then Cutout (DeVries & Taylor 2017, arXiv:1708.04552):
  one 16x16 square, its centre uniform over the image (so it may be clipped at the
  border), filled with the CIFAR-10 mean pixel -- the value the models' normalisation
  maps to 0, as the paper's zero mask after normalisation does. A regulariser the
  papers' recipes lack; 16 px is the paper's choice for CIFAR-10.
* ``imagenet`` -- scale and aspect-ratio augmentation (random crop covering 8%-100% of
  the image, aspect 3/4..4/3, resized to ``size``) and horizontal flip, the form used
  by He et al. 2016 (Table 5, "scale + aspect ratio") and the public ResNet/DenseNet
  Torch code; evaluation: resize the shorter side to size/0.875, centre crop.
* ``none`` -- no augmentation (DenseNet C10/C100 without "+").
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import tensorflow as tf

from keras_preact.training.configs import CUTOUT_FILL, CUTOUT_SIZE, VALID

AUTOTUNE = tf.data.AUTOTUNE


def _resize_to(img, size: int):
    shape = tf.shape(img)

    def do():
        r = tf.image.resize(img, [size, size], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(r), 0, 255), tf.uint8)

    return tf.cond(tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size)),
                   lambda: img, do)


def _resize_shorter_center_crop(img, size: int, ratio: float = 0.875):
    shape = tf.cast(tf.shape(img)[:2], tf.float32)
    scale = (size / ratio) / tf.reduce_min(shape)
    new = tf.cast(tf.round(shape * scale), tf.int32)
    r = tf.image.resize(img, new, method="bilinear", antialias=True)
    r = tf.image.resize_with_crop_or_pad(r, size, size)
    return tf.cast(tf.clip_by_value(tf.round(r), 0, 255), tf.uint8)


def _pad_crop_flip(img, size: int):
    img = _resize_to(img, size)
    img = tf.pad(img, [[4, 4], [4, 4], [0, 0]])
    img = tf.image.random_crop(img, [size, size, 3])
    return tf.image.random_flip_left_right(img)


def cutout(img, length: int = CUTOUT_SIZE, fill=CUTOUT_FILL):
    """Fill one ``length`` x ``length`` square of an HxWx3 uint8 image with ``fill``.

    The centre is uniform over the whole image, so near a border only part of the
    square lands inside (DeVries & Taylor 2017 found that better than keeping it inside).
    """
    def inside(n):  # the square's extent along an axis of n pixels
        first = tf.random.uniform([], 0, n, tf.int32) - length // 2
        pos = tf.range(n)
        return (pos >= first) & (pos < first + length)

    shape = tf.shape(img)
    square = inside(shape[0])[:, None] & inside(shape[1])[None, :]
    return tf.where(square[:, :, None], tf.constant(fill, img.dtype), img)


def train_transform(augment: str, size: int) -> Callable:
    if augment == "cifar":
        def fn(img, label):
            return _pad_crop_flip(img, size), label
    elif augment == "cifar_cutout":
        def fn(img, label):
            return cutout(_pad_crop_flip(img, size)), label
    elif augment == "imagenet":
        def fn(img, label):
            bbox = tf.zeros([1, 0, 4], tf.float32)
            begin, crop, _ = tf.image.sample_distorted_bounding_box(
                tf.shape(img), bounding_boxes=bbox, min_object_covered=0.0,
                aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
                use_image_if_no_bounding_boxes=True)
            img = tf.slice(img, begin, crop)
            r = tf.image.resize(img, [size, size], method="bilinear")
            img = tf.cast(tf.clip_by_value(tf.round(r), 0, 255), tf.uint8)
            img = tf.image.random_flip_left_right(img)
            return img, label
    elif augment == "none":
        def fn(img, label):
            return _resize_to(img, size), label
    else:
        raise ValueError(f"Unknown augment {augment!r}; valid: {', '.join(VALID['augment'])}")
    return fn


def eval_transform(augment: str, size: int) -> Callable:
    if augment == "imagenet":
        return lambda img, label: (_resize_shorter_center_crop(img, size), label)
    return lambda img, label: (_resize_to(img, size), label)


def _set_shape(size):
    def fn(img, label):
        return tf.ensure_shape(img, [size, size, 3]), label
    return fn


def train_dataset_fn(source: Callable[[], tf.data.Dataset], global_batch: int, augment: str, size: int,
                     shuffle_buffer: int, cache: bool = False, seed: Optional[int] = None):
    """A ``dataset_fn(input_context)`` for ``strategy.distribute_datasets_from_function``.

    Each input pipeline (one per worker) reads its shard, shuffles, repeats forever
    (the trainer counts steps), augments, and batches at the per-replica batch size.
    """

    def dataset_fn(ctx: tf.distribute.InputContext):
        ds = source()
        if ctx.num_input_pipelines > 1:
            ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        if cache:
            ds = ds.cache()
        if shuffle_buffer > 1:
            s = None if seed is None else seed + ctx.input_pipeline_id
            ds = ds.shuffle(shuffle_buffer, seed=s, reshuffle_each_iteration=True)
        ds = ds.repeat()
        ds = ds.map(train_transform(augment, size), num_parallel_calls=AUTOTUNE)
        ds = ds.map(_set_shape(size))
        ds = ds.batch(ctx.get_per_replica_batch_size(global_batch), drop_remainder=True)
        opts = tf.data.Options()
        opts.deterministic = False
        ds = ds.with_options(opts)
        return ds.prefetch(AUTOTUNE)

    return dataset_fn


def eval_steps(num_examples: int, global_batch: int, num_workers: int, cap: Optional[int] = None) -> int:
    """Steps that cover every test example once (same number on every worker)."""
    per_worker_examples = math.ceil(num_examples / num_workers)
    per_worker_batch = global_batch // num_workers
    steps = max(1, math.ceil(per_worker_examples / per_worker_batch))
    return min(steps, cap) if cap else steps


def eval_dataset_fn(source: Callable[[], tf.data.Dataset], global_batch: int, augment: str, size: int,
                    steps: int):
    """Evaluation batches ``(image, label, weight)``: every worker yields exactly `steps`
    global batches; the tail is padded with weight-0 blank images so all replicas run the
    same number of steps (no uneven-batch hangs under MultiWorkerMirroredStrategy) and
    metrics are exact weighted sums over the real examples."""

    def dataset_fn(ctx: tf.distribute.InputContext):
        per_replica = ctx.get_per_replica_batch_size(global_batch)
        per_worker = global_batch // ctx.num_input_pipelines
        ds = source()
        if ctx.num_input_pipelines > 1:
            ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        ds = ds.map(eval_transform(augment, size), num_parallel_calls=AUTOTUNE).map(_set_shape(size))
        ds = ds.map(lambda x, y: (x, y, tf.constant(1.0, tf.float32)))
        pad = tf.data.Dataset.from_tensors(
            (tf.zeros([size, size, 3], tf.uint8), tf.constant(0, tf.int64), tf.constant(0.0, tf.float32))
        ).repeat()
        ds = ds.concatenate(pad).take(steps * per_worker)
        return ds.batch(per_replica, drop_remainder=True).prefetch(AUTOTUNE)

    return dataset_fn

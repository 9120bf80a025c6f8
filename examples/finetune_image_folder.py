"""Fine-tune a keras-preact model on a folder of images, then save, reload and export it.

The folder holds one sub-folder per class, as `keras.utils.image_dataset_from_directory`
reads it:

    DIR/cat/001.jpg  DIR/cat/002.jpg  ...  DIR/dog/001.jpg  ...

Training runs under `tf.distribute.MirroredStrategy`: over the GPUs when there are any,
otherwise over the CPU split into `--replicas` logical devices, so that the same
multi-replica code path runs on a laptop.

Examples:

    # ResNetV2-20 (CIFAR-style, 32x32) from scratch, 2 CPU replicas:
    python examples/finetune_image_folder.py --data DIR --epochs 5 --out /tmp/run

    # Start from the zoo's CIFAR-10 weights (the folder must have the 10 CIFAR-10 classes):
    python examples/finetune_image_folder.py --data DIR --weights resnetv2_20_cifar10

    # Another registered network: see keras_preact.list_models()
    python examples/finetune_image_folder.py --data DIR --model densenet_bc_100_12

It writes OUT/model.keras (the whole model: `keras.saving.load_model` reloads it) and
OUT/saved_model/1 (a SavedModel for TensorFlow Serving, which needs only TensorFlow).
"""

import argparse
from pathlib import Path

# keras_preact first: imported before TensorFlow, it keeps TensorFlow's start-up INFO
# lines quiet. Importing it also registers its custom layers with Keras, which is all
# that `keras.saving.load_model` needs to rebuild a saved keras-preact model.
import keras_preact
from keras_preact.export import export_model

import keras
import numpy as np
import tensorflow as tf


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--data", type=Path, required=True,
                        help="image folder: DIR/<class>/*.jpg (or .png, .bmp, .gif)")
    parser.add_argument("--model", default="resnetv2_20",
                        help="registry name of the network (keras_preact.list_models())")
    parser.add_argument("--weights", default=None,
                        help="zoo weights to start from, e.g. resnetv2_20_cifar10 "
                             "(keras_preact.list_zoo()). They must be for --model and the "
                             "folder must have as many classes as the zoo model (10 for "
                             "*_cifar10); the classifier is reused, not replaced.")
    parser.add_argument("--epochs", type=int, default=1, help="passes over the images")
    parser.add_argument("--steps_per_epoch", type=int, default=None,
                        help="cap on the training steps per epoch (default: one pass)")
    parser.add_argument("--batch_size", type=int, default=32,
                        help="global batch size, split evenly across the replicas")
    parser.add_argument("--image_size", type=int, default=32,
                        help="images are resized to this square size (32 for CIFAR-style "
                             "networks, 224 for ImageNet-style ones)")
    parser.add_argument("--learning_rate", type=float, default=0.01,
                        help="of SGD with momentum 0.9")
    parser.add_argument("--validation_split", type=float, default=0.2,
                        help="fraction of the images held out for validation (0: none)")
    parser.add_argument("--replicas", type=int, default=None,
                        help="replicas: default all GPUs, or 2 logical CPU devices "
                             "when there is no GPU")
    parser.add_argument("--out", type=Path, default=Path("finetune_out"),
                        help="writes OUT/model.keras and OUT/saved_model/1")
    return parser.parse_args(argv)


def make_strategy(replicas):
    """A MirroredStrategy over `replicas` GPUs or, without a GPU, logical CPU devices."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        devices = [f"/gpu:{i}" for i in range(replicas or len(gpus))]
    else:
        # One physical CPU becomes `replicas` logical ones. TensorFlow fixes its devices
        # at the first op it runs, so this must come before any tensor is made.
        replicas = replicas or 2
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
        devices = [f"/cpu:{i}" for i in range(replicas)]
    return tf.distribute.MirroredStrategy(devices)


class SyncBatchNormStatistics(keras.callbacks.Callback):
    """Average the BatchNorm moving statistics over the replicas before each use.

    Keras 3 creates BatchNorm's moving mean and variance with aggregation "none", so under
    MirroredStrategy every replica updates its own copy from its own half of the batch and
    the copies drift apart: validation then depends on which replica saw an image, and
    `model.save` keeps replica 0's copy only. The moving average is linear, so replacing
    every copy by the mean of the copies gives the statistics of the whole global batch.
    """

    def _sync(self):
        for variable in self.model.non_trainable_variables:
            copies = getattr(variable.value, "values", None)  # one tensor per replica
            if copies and len(copies) > 1:
                variable.assign(tf.add_n(copies) / len(copies))  # writes every replica's copy

    def on_test_begin(self, logs=None):  # before fit's validation
        self._sync()

    def on_epoch_end(self, epoch, logs=None):
        self._sync()


def load_folder(args):
    """(train, validation or None, class names) from the image folder."""
    split = args.validation_split > 0
    datasets = keras.utils.image_dataset_from_directory(
        args.data,
        image_size=(args.image_size, args.image_size),
        batch_size=args.batch_size,
        validation_split=args.validation_split if split else None,
        subset="both" if split else None,
        seed=0,  # the same seed for both subsets keeps them disjoint
    )
    train, val = datasets if split else (datasets, None)
    class_names = train.class_names  # sorted folder names; label i is class_names[i]
    # The images stay float32 RGB pixels in 0..255: keras-preact models normalize them
    # inside the model (include_preprocessing=True), so there is no preprocess_input.
    flip = keras.layers.RandomFlip("horizontal")
    train = train.map(lambda x, y: (flip(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    if args.steps_per_epoch:
        train = train.repeat()  # so that a step cap never runs the data out
    return train.prefetch(tf.data.AUTOTUNE), val, class_names


def build_model(args, classes):
    kwargs = dict(classes=classes, input_shape=(args.image_size, args.image_size, 3))
    if args.weights:
        card = keras_preact.zoo.get_card(args.weights)
        if card["classes"] != classes:
            raise SystemExit(f"--weights {args.weights} has {card['classes']} classes but "
                             f"{args.data} has {classes}; train without --weights.")
        kwargs["weights"] = args.weights  # checks the architecture and the file's sha256
        return keras_preact.get_model(args.model, **kwargs), card["class_names"]
    return keras_preact.get_model(args.model, **kwargs), None


def main(argv=None):
    args = parse_args(argv)
    strategy = make_strategy(args.replicas)  # first: before any TensorFlow op
    print(f"MirroredStrategy with {strategy.num_replicas_in_sync} replicas: "
          f"{list(strategy.extended.worker_devices)}")

    train, val, class_names = load_folder(args)
    print(f"{len(class_names)} classes: {class_names}")

    # Variables made inside the scope are mirrored on every replica; fit() then splits
    # each global batch between the replicas and all-reduces their gradients.
    with strategy.scope():
        model, zoo_class_names = build_model(args, len(class_names))
        model.compile(
            optimizer=keras.optimizers.SGD(args.learning_rate, momentum=0.9),
            loss="sparse_categorical_crossentropy",  # the model ends in a softmax
            metrics=["accuracy"],
        )
    if zoo_class_names and zoo_class_names != class_names:
        # The zoo head's output i means zoo_class_names[i]; the folder's label i means
        # class_names[i]. Fine-tuning still works, but starts from a scrambled head.
        print(f"Warning: the folder's classes {class_names} are not the zoo model's "
              f"{zoo_class_names} in the same order.")

    model.fit(train, validation_data=val, epochs=args.epochs,
              steps_per_epoch=args.steps_per_epoch, verbose=2,
              callbacks=[SyncBatchNormStatistics()])

    # 1. Save the whole model (architecture + weights + optimizer) and reload it.
    args.out.mkdir(parents=True, exist_ok=True)
    keras_path = args.out / "model.keras"
    model.save(keras_path)
    # No custom_objects needed, but `import keras_preact` is: a process that has not
    # imported it fails with "Could not locate class 'ImageNormalization'".
    reloaded = keras.saving.load_model(keras_path)
    images, _ = next(iter(val or train))
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5, atol=1e-6)
    print(f"Saved {keras_path}; the reloaded model gives the same predictions.")

    # 2. Export for TensorFlow Serving. "1" is the model version TF Serving expects
    #    under its model base path (OUT/saved_model).
    export_dir = export_model(model, args.out / "saved_model" / "1", class_names=class_names)
    print(f"Exported SavedModel to {export_dir}")

    # 3. Serve one image file with TensorFlow alone, through the `serving_bytes`
    #    signature: it takes encoded JPEG/PNG bytes of any size and resizes in-graph.
    serving = tf.saved_model.load(str(export_dir))
    image_file = next(p for p in sorted(args.data.rglob("*"))
                      if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    outputs = serving.signatures["serving_bytes"](
        image_bytes=tf.constant([image_file.read_bytes()]))
    name = outputs["top_k_class_names"][0, 0].numpy().decode()
    probability = float(outputs["top_k_probabilities"][0, 0])
    print(f"serving_bytes: {image_file.relative_to(args.data)} -> {name} ({probability:.1%})")


if __name__ == "__main__":
    main()

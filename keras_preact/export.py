"""Export a trained keras-preact model as a SavedModel that TensorFlow Serving serves.

The SavedModel needs nothing but TensorFlow to load: no Keras, no
keras_preact, no custom objects. It has two signatures:

- `serving_default`: input `images`, uint8 `[N, H, W, 3]` RGB pixels 0..255.
  Any H, W is accepted; other sizes than the model's are resized in-graph.
- `serving_bytes`: input `image_bytes`, tf.string `[N]` of encoded JPEG or
  PNG files of any size. The `_bytes` suffix makes TF Serving's REST API
  accept `{"b64": ...}` values for it.

Both return `probabilities` (float32 `[N, classes]`), `top_k_classes`
(int32 `[N, k]`), `top_k_probabilities` (float32 `[N, k]`) and
`top_k_class_names` (tf.string `[N, k]`), with k = min(5, classes). The
pixels reach the network exactly as in training: the model's own
`ImageNormalization` layer normalizes them inside the graph.

A zoo model is exported on demand with `export_zoo_model` (`keras-preact export
--model NAME --out DIR`): SavedModels are built from the verified weight file, not
stored. A training run directory is exported with `export_run`, which rebuilds the
architecture named in `run.json` and loads `final.weights.h5` into it
(`keras_preact.training.run_dir`), so the SavedModel and the zoo's weight file come from
the same weights. `check_exportable` and `probabilities_fn` are the contract the other
formats' exports (keras_preact/runtimes.py) share with the SavedModel.
"""

import shutil
import tempfile
from pathlib import Path

import keras

from keras_preact import store
from keras_preact.models.data_format import channels_last_twin
from keras_preact.models.layers import ImageNormalization
from keras_preact.models.registry import load_zoo_model
from keras_preact.training.run_dir import build_trained_model, read_run

SERVING_DEFAULT = "serving_default"
SERVING_BYTES = "serving_bytes"
IMAGES_INPUT = "images"
BYTES_INPUT = "image_bytes"
OUTPUT_NAMES = ("probabilities", "top_k_classes", "top_k_probabilities", "top_k_class_names")
TOP_K = 5


def export_run(model_dir, export_dir, *, top_k=TOP_K, test_time_flip=False):
    """Export a training run directory's model to `export_dir`; return the path."""
    run = read_run(model_dir)
    model = build_trained_model(run)
    return export_model(model, export_dir, class_names=run.class_names, top_k=top_k,
                        test_time_flip=test_time_flip)


def export_zoo_model(name, export_dir, *, top_k=TOP_K, test_time_flip=False):
    """Export zoo model `name` (weights verified against its card) to `export_dir`; return the path.

    For TF Serving, export into a numbered version folder of the model's base path
    (`--out serving/NAME/1`, served with `--model_base_path=$PWD/serving/NAME`).
    """
    return export_model(load_zoo_model(name), export_dir, class_names=store.get_card(name)["class_names"],
                        top_k=top_k, test_time_flip=test_time_flip)


def zoo_saved_model(name):
    """The SavedModel of zoo model `name`, exported once into the cache and reused.

    Keyed by the weights' sha256, so new weights under the same name get a new export.
    """
    card = store.get_card(name)
    target = store.cache_dir() / name / f"saved_model-{card['weights']['sha256'][:16]}"
    if not (target / "saved_model.pb").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
        try:
            export_zoo_model(name, staging / "saved_model")
            shutil.rmtree(target, ignore_errors=True)
            (staging / "saved_model").rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def export_model(model, export_dir, *, class_names, top_k=TOP_K, test_time_flip=False):
    """Write `model` as a SavedModel with the `serving_default` and `serving_bytes` signatures.

    Args:
        model: keras.Model. A keras-preact classifier built with
            `include_top=True` and `include_preprocessing=True` (raw 0..255
            pixels in), with a fixed input height and width.
        export_dir: str or Path. Where to write the SavedModel.
        class_names: list of str. One name per output class, in label order.
        top_k: int. How many best classes the signatures report (capped at
            the class count). Defaults to 5.
        test_time_flip: bool. Serve the mean of the probabilities of each
            image and of its horizontal mirror (twice the compute). Defaults
            to False: the single-crop model the cards' `top1` measures.

    Returns:
        Path of the SavedModel directory.

    Raises:
        ValueError: the backend is not TensorFlow, or the model does not fit
            the description above.
    """
    import tensorflow as tf

    from keras_preact import serving

    # Exports take NHWC pixels whatever the model's data format (the same weights).
    model = channels_last_twin(model)
    height, width, classes = check_exportable(model, class_names)
    names = tf.constant([str(name) for name in class_names], dtype=tf.string)
    k = min(int(top_k), classes)
    to_probabilities = probabilities_fn(model)

    def predict(pixels):
        return tf.cast(to_probabilities(model(pixels, training=False)), tf.float32)

    def predict_flip_averaged(pixels):
        return 0.5 * (predict(pixels) + predict(tf.reverse(pixels, axis=[2])))

    def classify(pixels):
        # An empty request never reaches the model: on AVX-512 CPUs TensorFlow's batch-norm
        # kernel fails on a batch of 0 ("Incompatible shapes: [16] vs. [0,32,32,3]").
        probabilities = tf.cond(
            tf.shape(pixels)[0] > 0,
            lambda: (predict_flip_averaged if test_time_flip else predict)(pixels),
            lambda: tf.zeros([0, classes], tf.float32),
        )
        return serving.classification_outputs(probabilities, names, k)

    def serve_images(images):
        with tf.control_dependencies([serving.check_pixel_batch(images)]):
            return classify(serving.resize_images(images, height, width))

    def serve_bytes(image_bytes):
        return classify(serving.decode_images(image_bytes, height=height, width=width))

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SERVING_DEFAULT,
        serve_images,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=IMAGES_INPUT)],
    )
    archive.add_endpoint(
        SERVING_BYTES,
        serve_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name=BYTES_INPUT)],
    )
    export_dir = Path(export_dir)
    archive.write_out(str(export_dir), verbose=False)
    return export_dir


def check_exportable(model, class_names):
    """(height, width, classes) of an exportable model; ValueError naming what is wrong."""
    if keras.backend.backend() != "tensorflow":
        raise ValueError(
            "Exporting a SavedModel needs the TensorFlow backend; this process uses "
            f"KERAS_BACKEND={keras.backend.backend()!r}. Run again with KERAS_BACKEND=tensorflow."
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"Only single-input, single-output classifiers can be exported; model "
            f"{model.name!r} has {len(model.inputs)} inputs and {len(model.outputs)} outputs."
        )
    _, height, width, channels = model.inputs[0].shape
    if height is None or width is None or channels != 3:
        raise ValueError(
            f"The model's input must have a fixed size and 3 channels; model {model.name!r} "
            f"takes {tuple(model.inputs[0].shape)}. Build it with input_shape=(H, W, 3)."
        )
    output_shape = model.outputs[0].shape
    if len(output_shape) != 2 or not isinstance(model.layers[-1], keras.layers.Dense):
        raise ValueError(
            f"The model must end in its classifier (a Dense layer giving [N, classes]); "
            f"model {model.name!r} ends in {model.layers[-1].name!r} with output "
            f"{tuple(output_shape)}. Build it with include_top=True."
        )
    classes = int(output_shape[-1])
    if len(class_names) != classes:
        raise ValueError(
            f"Model {model.name!r} has {classes} classes but {len(class_names)} class "
            f"names were given: {list(class_names)[:12]}."
        )
    if not any(isinstance(layer, ImageNormalization) for layer in model.layers):
        raise ValueError(
            f"Model {model.name!r} has no ImageNormalization layer, so it expects "
            "normalized input. Exported models take raw 0..255 pixels: build it with "
            "include_preprocessing=True."
        )
    return int(height), int(width), classes


def probabilities_fn(model):
    """softmax for a model that outputs logits, identity for one that ends in softmax."""
    activation = getattr(model.layers[-1], "activation", None)
    name = keras.activations.serialize(activation) if activation is not None else "linear"
    name = name if isinstance(name, str) else name.get("config", name)
    if name == "softmax":
        return lambda scores: scores
    if name == "linear":
        return keras.ops.softmax
    raise ValueError(
        f"The model's last layer {model.layers[-1].name!r} has activation {name!r}; "
        "an exported classifier must end in 'softmax' or output logits (None)."
    )

"""Weight loading for every keras-preact builder: what `weights=` names, checked, and loaded.

`resolve_weights` turns a builder's `weights` argument (None, "imagenet", a
zoo model name or a `.weights.h5` path) into a source before any layer is
built, so a typo costs no build time; zoo names are resolved by the zoo store,
`keras_preact.store.resolve_weights`. `load_weights` loads a file only after
checking every tensor's shape against the model, and
`KerasApplicationsWeights` copies keras.applications' ImageNet weights into
the networks that are keras.applications' layer for layer.
"""

import os

import keras

from keras_preact import store
from keras_preact.models import registry

IMAGENET = "imagenet"


class KerasApplicationsWeights:
    """`weights="imagenet"`: keras.applications' ImageNet weights of the same network.

    keras.applications downloads them once into ~/.keras/models; they are copied with
    `set_weights`, which works because the networks with a `ModelSpec.imagenet_weights`
    hold their weights in keras.applications' order (tests/test_keras_applications.py).
    """

    def __init__(self, application):
        self.application = application

    def load_into(self, model, *, architecture, include_top):
        try:
            reference = getattr(keras.applications, self.application)(
                weights=IMAGENET, include_top=include_top)
        except Exception as error:
            raise RuntimeError(
                f"Could not get the ImageNet weights of keras.applications.{self.application}: "
                "keras.applications downloads them once from the internet into "
                f"~/.keras/models and reads them from there afterwards. Underlying error: {error}"
            ) from error
        theirs = reference.get_weights()
        del reference
        ours = [tuple(w.shape) for w in model.weights]
        mismatch = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != tuple(b.shape)]
        if len(ours) != len(theirs) or mismatch:
            first = mismatch[0] if mismatch else min(len(ours), len(theirs))
            where = model.weights[first].path if first < len(ours) else "past the model's last"
            raise ValueError(
                f"keras.applications.{self.application}'s ImageNet weights do not fit model "
                f"{model.name!r}: {len(theirs)} arrays against the model's {len(ours)}, first "
                f"difference at array {first} ({where}). "
                f"Build the network as registered, get_model({architecture!r}, weights='imagenet'), "
                "without arguments that change its layers."
            )
        model.set_weights(theirs)
        return model


def imagenet_weights(architecture, *, classes, include_top):
    """The KerasApplicationsWeights for `weights="imagenet"`, after checking the request."""
    sources = registry.imagenet_weight_sources()
    if architecture not in sources:
        raise ValueError(
            "weights='imagenet' loads keras.applications' ImageNet weights, so it exists for "
            f"the networks that are keras.applications' own: {', '.join(sources)}. "
            f"{architecture!r} is not one of them; pass weights=None (random initialization), "
            "a zoo model name (keras_preact.list_zoo()) or the path of a .weights.h5 file."
        )
    if include_top and classes != 1000:
        raise ValueError(
            f"weights='imagenet' with include_top=True needs classes=1000 (ImageNet's); "
            f"received classes={classes}. Pass include_top=False to put your own head on "
            "the ImageNet features."
        )
    return KerasApplicationsWeights(sources[architecture])


def resolve_weights(weights, *, architecture, classes, include_top):
    """Where the weights for `weights` (None, "imagenet", zoo name, or file path) come from.

    Checked before the model is built, so a typo costs no build time.
    `architecture` is the registry name of the network being built; zoo
    weights of another architecture are refused by name. Returns None, a
    file path, or a KerasApplicationsWeights.
    """
    if weights is None:
        return None
    weights = os.fspath(weights)
    if weights == IMAGENET:
        return imagenet_weights(architecture, classes=classes, include_top=include_top)
    known = store.list_zoo()
    if weights in known:
        return store.resolve_weights(
            weights, architecture=architecture, classes=classes, include_top=include_top
        )
    if os.path.isfile(weights):
        return weights
    raise ValueError(
        f"Unknown `weights`: received weights={weights!r}, which is neither a zoo "
        f"model nor an existing file. Valid zoo models: "
        f"{', '.join(known) if known else '(none installed)'}; or pass None, 'imagenet' "
        "(keras.applications' networks only), or the path of a .weights.h5 file."
    )


def _variable_shapes(h5_group, prefix=""):
    """{"layers/conv2d": [shape, ...], ...} for every weight-bearing object in a Keras 3 file."""
    import h5py

    shapes = {}
    for key, item in h5_group.items():
        path = f"{prefix}/{key}" if prefix else key
        # A compiled model's file also holds optimizer state: not model weights.
        if not isinstance(item, h5py.Group) or (not prefix and key == "optimizer"):
            continue
        if key == "vars":
            if len(item):
                shapes[prefix] = [item[str(i)].shape for i in range(len(item))]
        else:
            shapes.update(_variable_shapes(item, path))
    return shapes


def _shapes_in_file(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return _variable_shapes(f)
    except Exception as error:
        raise ValueError(
            f"Could not read weights from {path!r}: it is not a readable Keras "
            f".weights.h5 file (damaged or truncated?). Underlying error: {error}"
        ) from error


def _shapes_in_model(model):
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        reference = os.path.join(tmp, "reference.weights.h5")
        model.save_weights(reference)
        return _shapes_in_file(reference)


def load_weights(model, path, *, include_top=True):
    """Load `path` into `model` after checking the file matches it exactly.

    Keras 3 matches a `.weights.h5` file to a model by layer type and order, so
    the weights of a deeper network load silently into a shallower one. Here
    every weight tensor of the model must be in the file with the same shape,
    and the file may hold nothing else except (when `include_top=False`) the
    classifier head. Nothing is assigned unless the whole file fits, so a bad
    file leaves the model untouched.
    """
    if path is None:
        return model
    in_file = _shapes_in_file(path)
    in_model = _shapes_in_model(model)
    problems = [
        f"{key}: file {in_file.get(key, 'missing')} vs model {shapes}"
        for key, shapes in in_model.items()
        if in_file.get(key) != shapes
    ]
    extra = sorted(set(in_file) - set(in_model))
    if include_top and extra:
        problems.append(f"file has weights the model lacks: {', '.join(extra[:5])}")
    elif not include_top and len(extra) > 1:
        problems.append(f"file has more than a classifier head extra: {', '.join(extra[:5])}")
    if problems:
        raise ValueError(
            f"The weights in {path!r} do not fit model {model.name!r}: they were saved "
            f"from a different architecture or class count ({len(problems)} mismatches; "
            f"first: {problems[0]}). Build the architecture the file was saved from, "
            "or pass `classes` equal to its class count."
        )
    try:
        model.load_weights(path)
    except Exception as error:
        raise ValueError(
            f"Could not load weights from {path!r} into model {model.name!r}: {error}"
        ) from error
    return model

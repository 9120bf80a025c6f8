"""A training run's model_dir as the steps after training read it: its files, run.json, its model.

A finished run leaves `run.json` (`RUN_FILE`, written by `run_record`), `final.weights.h5`
(`WEIGHTS_FILE`) and `model.keras` (`MODEL_FILE`, both written by `checkpoint.export_final`).
`read_run` checks a model_dir has what the steps after training need (the keys
`REQUIRED_RUN_KEYS` and the weight file) and `build_trained_model` rebuilds the trained model
from them: a warm start (--init_from), `keras-preact export --model_dir`, and zoo publishing all
read a run this way. Light on purpose: no TensorFlow import, so the export modules import it
freely.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from keras_preact.models.registry import build_variant

RUN_FILE = "run.json"
WEIGHTS_FILE = "final.weights.h5"
MODEL_FILE = "model.keras"
REQUIRED_RUN_KEYS = ("model", "model_kwargs", "dataset", "class_names")


@dataclass(frozen=True)
class TrainingRun:
    """What the steps after training read from a training run directory.

    Attributes:
        model_dir: Path. The run directory.
        architecture: str. Registry name of the trained model (`run.json` "model").
        model_kwargs: dict. Keyword arguments it was built with.
        class_names: list of str. Names of the classes, in label order.
        record: dict. The whole `run.json`.
    """

    model_dir: Path
    architecture: str
    model_kwargs: dict
    class_names: list
    record: dict

    @property
    def weights_path(self):
        return self.model_dir / WEIGHTS_FILE


def read_run(model_dir):
    """Read and check a training run directory's `run.json`.

    Raises:
        ValueError: the directory, `run.json`, one of its required keys or
            `final.weights.h5` is missing.
    """
    model_dir = Path(model_dir)
    run_file = model_dir / RUN_FILE
    if not run_file.is_file():
        raise ValueError(
            f"{model_dir} is not a training run directory: it has no {RUN_FILE}. "
            "Pass the --model_dir a training run wrote."
        )
    record = json.loads(run_file.read_text())
    missing = [key for key in REQUIRED_RUN_KEYS if key not in record]
    if missing:
        raise ValueError(
            f"{run_file} lacks the keys {missing}; a training run writes "
            f"{list(REQUIRED_RUN_KEYS)}."
        )
    run = TrainingRun(
        model_dir=model_dir,
        architecture=record["model"],
        # `weights` would load something else over the trained weights.
        model_kwargs={k: v for k, v in record["model_kwargs"].items() if k != "weights"},
        class_names=[str(name) for name in record["class_names"]],
        record=record,
    )
    if not run.weights_path.is_file():
        raise ValueError(f"{model_dir} has no {WEIGHTS_FILE}; did the training run finish?")
    return run


def build_trained_model(run):
    """The run's architecture, built from the registry, with `final.weights.h5` loaded.

    Loaded with Keras' own `load_weights`, which skips the optimizer state a
    training run's weight file carries.
    """
    # A run's model_kwargs may change the registered network (the ablations' unit=, depth=).
    model = build_variant(run.architecture, **run.model_kwargs)
    try:
        model.load_weights(run.weights_path)
    except Exception as error:  # h5py and Keras raise many types; the user needs one.
        raise ValueError(
            f"Could not load {run.weights_path} into {run.architecture!r} built with "
            f"{run.model_kwargs}: {error}"
        ) from error
    return model

r"""``python -m training.train`` plus ``--model_kwargs``: builder overrides as JSON.

    python -m training.experiments.train --model=resnetv2_20 \
        --model_kwargs='{"unit": "original", "shortcut": "exclusive_gating", "gate_bias_init": -6.0}' \
        --dataset=folder:data/cifar10-jpeg --config=cifar_cpu_short --model_dir=DIR

Every other flag, the exit codes, checkpointing and resume are ``training.train``'s: this
module only merges the JSON object into the keyword arguments the trainer passes to
``keras_preact.get_model`` (``training.loop._model_kwargs``), so they reach the model, the
checkpoint's identity (a resume with other overrides is refused), ``run.json``'s
``model_kwargs`` and the exported ``model.keras``. It exists because ``training/train.py``
has no such flag; if it gains one, this module defers to it.
"""

from __future__ import annotations

import json

from absl import app, flags

from training import train as train_cli

FLAGS = flags.FLAGS
NATIVE = "model_kwargs" in FLAGS  # training.train defines the flag itself
if not NATIVE:
    flags.DEFINE_string("model_kwargs", None, "JSON object of keras_preact builder overrides, e.g. "
                        "'{\"unit\": \"original\", \"shortcut\": \"conv1x1\"}'.")

# Set by the trainer itself; overriding them here would break the run.
RESERVED = ("classifier_activation", "weights")


def parse_model_kwargs(text: str) -> dict:
    """The JSON object of --model_kwargs; ValueError with a one-line reason."""
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise ValueError(f"--model_kwargs is not valid JSON ({e}): {text!r}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"--model_kwargs must be a JSON object, got {text!r}")
    bad = [k for k in obj if k in RESERVED]
    if bad:
        raise ValueError(f"--model_kwargs may not set {', '.join(bad)} (the trainer sets it)")
    return obj


def install(extra: dict) -> None:
    """Make the trainer pass `extra` to get_model on top of what it computes itself."""
    from training import loop

    base = getattr(loop._model_kwargs, "__wrapped__", loop._model_kwargs)

    def model_kwargs(spec, cfg, num_classes, size):
        kw = base(spec, cfg, num_classes, size)
        kw.update(extra)
        return kw

    model_kwargs.__wrapped__ = base
    loop._model_kwargs = model_kwargs


def main(argv):
    if not NATIVE and FLAGS.model_kwargs:
        try:
            extra = parse_model_kwargs(FLAGS.model_kwargs)
        except ValueError as e:
            train_cli.fail(str(e))
        install(extra)
    return train_cli.main(argv)


if __name__ == "__main__":
    app.run(main)

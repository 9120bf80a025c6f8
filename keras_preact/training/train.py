r"""Train a keras_preact model the way its paper did.

    keras-preact train --model=resnetv2_20 --dataset=folder:data/cifar10-jpeg \
        --config=cifar_cpu_short --model_dir=runs/resnetv2_20

Run the same command again after an interruption (Ctrl-C, SIGTERM, kill -9, crash) and
training resumes from the last finished epoch. A first Ctrl-C or SIGTERM stops at the end of
the running step (a second one stops at once). See docs/training.md.

Exit status: 0 done; 2 bad flags / dataset / model_dir (one-line message); 3 loss became
NaN/inf (last good checkpoint kept); 128+N stopped by signal N (resume by re-running).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from typing import Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from absl import app, flags, logging  # noqa: E402

from keras_preact.training import configs as configs_lib  # noqa: E402
from keras_preact.training import distribute  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "Registry name of the model, e.g. resnetv2_20 (see keras_preact.list_models()).")
flags.DEFINE_string("dataset", None, "A tfds name with image/label features (cifar10, cifar100, imagenet2012, ...) "
                    "or folder:PATH for PATH/{train,test}/<class>/*.{jpg,png}.")
flags.DEFINE_string("model_dir", None, "Where checkpoints, run.json, logs and the trained model go.")
flags.DEFINE_string("config", None, "Named recipe (keras_preact/training/configs.py); default: the paper recipe for the model "
                    "family and dataset. Flags below override it.")
flags.DEFINE_integer("epochs", None, "Number of epochs (overrides the recipe's epochs / total iterations).")
flags.DEFINE_integer("batch_size", None, "Global batch size (split over all replicas).")
flags.DEFINE_integer("steps_per_epoch", None, "Cap on optimizer steps per epoch (quick runs).")
flags.DEFINE_integer("validation_steps", None, "Cap on evaluation steps (quick runs).")
flags.DEFINE_float("learning_rate", None, "Base (peak) learning rate.")
flags.DEFINE_enum("strategy", "auto", list(distribute.STRATEGIES),
                  "auto: multi_worker if TF_CONFIG is set, mirrored if >1 GPU (or --cpu_devices>1), else default.")
flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices (MirroredStrategy without GPUs).")
flags.DEFINE_enum("mixed_precision", None, ["none", "mixed_float16", "mixed_bfloat16"],
                  "Keras mixed-precision policy (default: the recipe's).")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets data_dir holding prepared datasets.")
flags.DEFINE_bool("download", False, "Let tensorflow-datasets download and prepare the dataset if missing.")
flags.DEFINE_integer("seed", 0, "Random seed (weights init, shuffling, augmentation).")
flags.DEFINE_string("init_from", None, "model_dir of a finished run of the same model whose final weights start "
                    "this one (a warm restart, e.g. --config=cifar_cpu_anneal after cifar_cpu_long).")
flags.DEFINE_bool("jit_compile", None, "XLA-compile the forward/backward pass (default: the recipe's).")
flags.DEFINE_bool("fused_batch_norm", None, "Train batch norm with TensorFlow's fused kernel (same function, faster; "
                  "default: the recipe's, true). --nofused_batch_norm uses Keras' composite ops.")
flags.DEFINE_float("ema_momentum", None, "Evaluate and export an exponential moving average of the weights with "
                   "this momentum, e.g. 0.999 (default: the recipe's; 0: off).")
flags.DEFINE_integer("ema_batch_norm_batches", None, "With --ema_momentum: training batches on which batch norm's "
                     "statistics are recomputed for the averaged weights before evaluation and export (default: "
                     "the recipe's, 100; 0 keeps the live weights' statistics).")
flags.DEFINE_string("model_kwargs", None, "JSON object of extra keras_preact builder arguments, e.g. the v2 paper's "
                    "ablations: '{\"unit\": \"original\", \"shortcut\": \"conv1x1\"}'.")

# Set by the trainer itself; --model_kwargs may not override them.
RESERVED_MODEL_KWARGS = ("classifier_activation", "weights")


def fail(msg: str, code: int = 2) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


def parse_model_kwargs(text: Optional[str]) -> dict:
    """The JSON object of --model_kwargs ({} when unset); ValueError with a one-line reason."""
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise ValueError(f"--model_kwargs is not valid JSON ({e}): {text!r}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"--model_kwargs must be a JSON object, got {text!r}")
    bad = [k for k in obj if k in RESERVED_MODEL_KWARGS]
    if bad:
        raise ValueError(f"--model_kwargs may not set {', '.join(bad)} (the trainer sets it)")
    return obj


def resolve_config(model_spec, dataset_kind: str):
    name = FLAGS.config or configs_lib.default_config_for(model_spec.family, dataset_kind)
    cfg = configs_lib.get_config(name)
    over = {}
    if FLAGS.epochs is not None:
        over["epochs"] = FLAGS.epochs
    if FLAGS.batch_size is not None:
        over["batch_size"] = FLAGS.batch_size
    if FLAGS.learning_rate is not None:
        over["learning_rate"] = FLAGS.learning_rate
    if FLAGS.mixed_precision is not None:
        over["mixed_precision"] = FLAGS.mixed_precision
    if FLAGS.jit_compile is not None:
        over["jit_compile"] = FLAGS.jit_compile
    if FLAGS.fused_batch_norm is not None:
        over["fused_batch_norm"] = FLAGS.fused_batch_norm
    if FLAGS.ema_momentum is not None:
        over["ema_momentum"] = FLAGS.ema_momentum
    if FLAGS.ema_batch_norm_batches is not None:
        over["ema_batch_norm_batches"] = FLAGS.ema_batch_norm_batches
    cfg = cfg.replace(**over)
    configs_lib.validate(cfg)
    return cfg


def _exit_interrupted(trainer, signum: int) -> None:
    """Record the interruption in run.json, say how to resume, and exit 128+signum."""
    name = signal.Signals(signum).name
    history = getattr(trainer, "history", None) if trainer is not None else None
    if history is not None:
        try:
            trainer.write_run_json(f"interrupted by {name}")
        except Exception:  # noqa: BLE001 - the checkpoint, not run.json, is what resumes
            pass
    print(f"interrupted by {name}: {len(history or [])} epoch(s) are checkpointed in {FLAGS.model_dir}; run the "
          f"same command again to resume.", file=sys.stderr, flush=True)
    os._exit(128 + signum)


def main(argv):
    if len(argv) > 1:
        fail(f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("model", "dataset", "model_dir"):
        if not getattr(FLAGS, name):
            fail(f"--{name} is required (keras-preact train --model=NAME --dataset=DATASET --model_dir=DIR)")
    for name in ("epochs", "batch_size", "steps_per_epoch", "validation_steps", "cpu_devices"):
        v = getattr(FLAGS, name)
        if v is not None and v < 1:
            fail(f"--{name} must be >= 1, got {v}")
    if FLAGS.learning_rate is not None and FLAGS.learning_rate <= 0:
        fail(f"--learning_rate must be > 0, got {FLAGS.learning_rate}")

    import keras_preact
    from keras_preact import data as data_lib

    try:
        spec = keras_preact.get_model_spec(FLAGS.model)
    except (ValueError, KeyError):
        fail(f"unknown --model={FLAGS.model!r}. Valid models: {', '.join(keras_preact.list_models())}")
    try:
        cfg = resolve_config(spec, spec.dataset)
        model_overrides = parse_model_kwargs(FLAGS.model_kwargs)
    except ValueError as e:
        fail(str(e))

    # Pre-flight checks that need no TensorFlow devices (those must not start before
    # the strategy is made): dataset structure, tfds availability.
    try:
        kind, ref = data_lib.parse_dataset(FLAGS.dataset)
        if kind == "folder":
            data_lib.check_folder(ref)
        else:
            data_lib._tfds_builder(ref, FLAGS.data_dir, FLAGS.download)
    except data_lib.DatasetError as e:
        fail(str(e))

    try:
        strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.cpu_devices)
        strategy_name = distribute.resolve_name(FLAGS.strategy, FLAGS.cpu_devices)
    except distribute.StrategyError as e:
        fail(str(e))

    import keras
    import tensorflow as tf

    from keras_preact.training import loop
    from keras_preact.training.errors import NonFiniteLoss, RunError
    from keras_preact.training.signals import Interrupted, stop_signals

    tf.get_logger().setLevel("WARNING")

    keras.utils.set_random_seed(FLAGS.seed)
    stop_signals.install()
    run = loop.RunSpec(model=FLAGS.model, dataset=FLAGS.dataset, model_dir=FLAGS.model_dir, cfg=cfg,
                       data_dir=FLAGS.data_dir, download=FLAGS.download, epochs_override=FLAGS.epochs is not None,
                       steps_per_epoch=FLAGS.steps_per_epoch, validation_steps=FLAGS.validation_steps,
                       seed=FLAGS.seed, strategy_name=strategy_name, model_overrides=model_overrides,
                       init_from=FLAGS.init_from,
                       command=" ".join(shlex.quote(a) for a in sys.argv))
    trainer = None
    try:
        trainer = loop.Trainer(run, strategy)
        final = trainer.fit()
    except (data_lib.DatasetError, RunError) as e:
        fail(str(e))
    except NonFiniteLoss as e:
        if trainer is not None and getattr(trainer, "history", None) is not None:
            try:
                trainer.write_run_json("stopped: non-finite loss")
            except Exception:  # noqa: BLE001
                pass
        done = len(trainer.history) if trainer is not None and getattr(trainer, "history", None) else 0
        kept = (f"the last good checkpoint (epoch {done}) is kept in {os.path.join(FLAGS.model_dir, 'checkpoint')}"
                if done else "no epoch had finished, so there is no checkpoint")
        fail(f"{e}. Training stopped; {kept}. Lower --learning_rate (or check the data) and re-run the same "
             f"command to resume.", code=3)
    except Interrupted as e:
        _exit_interrupted(trainer, e.signum)
    except Exception:
        # A signal that arrived outside the step loop raises wherever Python is; TensorFlow
        # may rewrap it (TypeError, ...). It is still an interruption, not a crash.
        if stop_signals.received is None:
            raise
        _exit_interrupted(trainer, stop_signals.received)
    logging.info("Done: test top-1 %.4f, top-5 %.4f; outputs in %s", final["test_top1"], final["test_top5"],
                 FLAGS.model_dir)
    return 0


def _flags_help() -> str:
    """This module's flags, as absl formats them (its own --help shows only a script's flags)."""
    module = sys.modules[__name__]
    names = {module.__name__, getattr(module, "__file__", None), sys.argv[0]}
    return "\n".join(FLAGS.module_help(name) for name in names
                     if name and FLAGS.get_flags_for_module(name))


def run_main(argv=None):
    """Parse the flags in `argv` (default: sys.argv) and train; exits with main's status."""
    argv = list(sys.argv if argv is None else argv)
    if any(arg in ("-h", "--help", "-help", "--helpshort") for arg in argv[1:]):
        print(__doc__.strip())
        print()
        print(_flags_help())
        sys.exit(0)
    app.run(main, argv=argv)


if __name__ == "__main__":
    run_main()

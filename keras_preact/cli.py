"""`keras-preact`: list, use, evaluate, export and publish the models of the zoo.

    keras-preact list [--architectures]
    keras-preact predict --model NAME IMAGE...
    keras-preact evaluate --model NAME --dataset folder:PATH [--limit N] [--check]
    keras-preact export (--model NAME | --model_dir RUN_DIR) [--format FORMAT] [--int8] --out DIR
    keras-preact train --model ARCH --dataset folder:PATH --model_dir RUN_DIR [--config ...]
    keras-preact publish --model_dir RUN_DIR --name NAME --dataset folder:PATH --zoo_dir DIR
    keras-preact zoo-readme [--zoo_dir DIR]

The output is the command's own: TensorFlow's start-up and log lines are held back
(keras_preact/_startup.py); `--verbose`, anywhere on the line, shows them.

Errors the user can fix (unknown model, bad file, wrong dataset) print one
line to stderr and exit with status 2; a `--check` that finds a number
different from the model card exits with status 1.
"""

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from keras_preact import _startup, zoo

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def _print_zoo_table():
    """One line per zoo model, or how to get one when the zoo is empty."""
    names = zoo.list_zoo()
    if not names:
        print(
            f"The zoo ({', '.join(str(d) for d in zoo.zoo_dirs())}) has no models.\n"
            "Train one (keras-preact train), then publish it:\n"
            "  keras-preact publish --model_dir RUN_DIR --name NAME --dataset folder:PATH --zoo_dir DIR\n"
            "Or build an untrained network: keras-preact list --architectures"
        )
        return
    rows = [("name", "architecture", "dataset", "top-1", "top-5", "params")]
    for name in names:
        card = zoo.get_card(name)
        rows.append((
            name, card["architecture"], card["dataset"], f"{100 * card['top1']:.2f}%",
            f"{100 * card['top5']:.2f}%", f"{card['params'] / 1e6:.2f}M",
        ))
    _print_rows(rows)


def _print_rows(rows):
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def _print_architectures(family):
    """Every registered network: which builder, input, layout, depth, size and paper number."""
    import keras_preact

    rows = [("name", "builder", "input", "layout", "depth", "params", "mult-adds", "paper error",
             "reproduces")]
    for row in keras_preact.describe_models(family):
        error = row["paper_error"]
        rows.append((
            row["name"], row["builder"], row["input_size"], row["layout"], str(row["depth"]),
            f"{row['params'] / 1e6:.2f}M", f"{row['multiply_adds'] / 1e9:.2f}G",
            f"{error:.2f}%" if error is not None else "-", row["paper"],
        ))
    _print_rows(rows)


def cmd_list(args):
    """Print the zoo's models (or, with --architectures, every buildable architecture)."""
    if args.architectures:
        _print_architectures(args.family)
        return EXIT_OK
    _print_zoo_table()
    return EXIT_OK


def _saved_model_for(model):
    """`model` itself if it is a SavedModel directory, else the zoo model's SavedModel (exported once, cached)."""
    path = Path(model)
    if (path / "saved_model.pb").is_file():
        return path
    from keras_preact.export import zoo_saved_model

    zoo.model_dir(model)  # an unknown name fails here, with the zoo's list, before any export
    return zoo_saved_model(model)


def cmd_predict(args):
    """Print the top-5 classes of each image, served by the model's SavedModel."""
    import tensorflow as tf

    from keras_preact.serving import readable_error

    serve = tf.saved_model.load(str(_saved_model_for(args.model))).signatures["serving_bytes"]
    failures = 0
    for image in args.images:
        try:
            data = Path(image).read_bytes()
            outputs = serve(image_bytes=tf.constant([data]))
        except (OSError, tf.errors.InvalidArgumentError) as error:
            message = readable_error(error.message) if isinstance(error, tf.errors.OpError) else error
            print(f"{image}: cannot classify: {message}", file=sys.stderr)
            failures += 1
            continue
        names = outputs["top_k_class_names"][0].numpy()
        probabilities = outputs["top_k_probabilities"][0].numpy()
        print(image)
        for rank, (name, probability) in enumerate(zip(names, probabilities), start=1):
            print(f"  {rank}. {name.decode('utf-8'):20s} {100 * probability:6.2f}%")
    return EXIT_USAGE if failures else EXIT_OK


def cmd_evaluate(args):
    """Measure top-1/top-5 of a zoo model; with --check, compare with its card."""
    from keras_preact.zoo import evaluation as zoo_evaluation

    if args.record:
        from keras_preact.zoo.publish import record_flip

        if not args.flip or args.limit is not None or args.runtime != "keras":
            raise ValueError("--record writes the test-time-flip numbers into the card: pass it "
                             "with --flip, on the full split, with the keras runtime.")
        flip = record_flip(args.model, args.dataset, data_dir=args.data_dir, progress=not args.quiet)
        print(json.dumps({"model": args.model, "dataset": args.dataset, "flip": flip}))
        print(f"Recorded in the model card of {args.model} (key 'flip').")
        return EXIT_OK
    evaluation = zoo_evaluation.evaluate(
        args.model, args.dataset, runtime=args.runtime, split=args.split,
        data_dir=args.data_dir, limit=args.limit, batch_size=args.batch_size,
        progress=not args.quiet, flip=args.flip,
    )
    summary = evaluation.summary()
    result = {"model": args.model, "dataset": args.dataset, "split": args.split,
              "runtime": args.runtime, "flip": args.flip, **summary}
    print(json.dumps(result))
    if not args.check:
        return EXIT_OK
    differences = zoo_evaluation.check_against_card(args.model, summary, flip=args.flip)
    if differences:
        print(f"MISMATCH with the model card of {args.model}: " + "; ".join(differences),
              file=sys.stderr)
        return EXIT_MISMATCH
    print(f"OK: matches the model card of {args.model}.")
    return EXIT_OK


def cmd_export(args):
    """Export a zoo model or a training run directory as a SavedModel, ONNX, OpenVINO IR or LiteRT."""
    from keras_preact import export, runtimes

    if (args.model is None) == (args.model_dir is None):
        raise ValueError("pass exactly one of --model NAME (a zoo model) and --model_dir RUN_DIR "
                         "(a training run).")
    if args.flip and args.format != "saved_model":
        raise ValueError("--flip is available for --format saved_model only.")
    if (args.calibration is not None or args.calibration_count is not None) and not args.int8:
        raise ValueError("--calibration and --calibration_count go with --int8.")
    runtimes.require(args.format, args.int8)  # a missing converter or quantizer: one line naming the extra
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; --out takes a folder.")
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ValueError(f"{out} exists and is not empty; choose a new folder (for TF Serving, "
                         "a new version number such as DIR/2) or pass --overwrite.")
    if args.model is not None:
        zoo.model_dir(args.model)  # an unknown name fails here, with the zoo's list
    if args.format == "saved_model":
        if args.model is not None:
            path = export.export_zoo_model(args.model, out, test_time_flip=args.flip)
        else:
            path = export.export_run(args.model_dir, out, test_time_flip=args.flip)
        print(f"SavedModel written to {path} (signatures: {export.SERVING_DEFAULT}, "
              f"{export.SERVING_BYTES}).")
        return EXIT_OK
    int8 = {"int8": args.int8, "calibration": args.calibration, "calibration_count": args.calibration_count}
    if args.model is not None:
        path = runtimes.export_zoo_model(args.model, out, args.format, **int8)
    else:
        path = runtimes.export_run(args.model_dir, out, args.format, **int8)
    info = json.loads((out / runtimes.INFO_FILE).read_text())
    if args.int8:
        record = json.loads((out / "quantization.json").read_text())
        calibration, check = record["calibration"], record["check"]
        agreement = 100 * check["top1_agreement_calibration"]
        print(f"int8 {runtimes.RUNTIME_NAMES[args.format]} model written to {path} ({record['quantizer']}), "
              f"calibrated on {calibration['count']} {calibration['split']} images of "
              f"{calibration['dataset']} (seed {calibration['seed']}); top-1 agrees with Keras on "
              f"{agreement:.1f}% of them; record in {out / 'quantization.json'}.")
        return EXIT_OK
    shape = "x".join(str(d) for d in info["input"]["shape"][1:3])
    print(f"{runtimes.RUNTIME_NAMES[args.format]} model written to {path}: input "
          f"'{runtimes.INPUT_NAME}' uint8 [N, {shape}, 3], output '{runtimes.OUTPUT_NAME}' float32 "
          f"[N, {len(info['class_names'])}]; checked with {info['checked_with']} (max |difference| "
          f"from Keras {info['max_abs_diff_vs_keras']:.1e}); class names in {out / runtimes.INFO_FILE}.")
    return EXIT_OK


def cmd_publish(args):
    """Turn a training run directory into zoo/<name>/."""
    from keras_preact.zoo.publish import publish

    path = publish(
        args.model_dir, args.name, args.dataset, zoo_dir=args.zoo_dir,
        weights_url=args.weights_url, dataset_label=args.dataset_label,
        data_dir=args.data_dir, split=args.split, overwrite=args.overwrite, limit=args.limit,
        progress=not args.quiet,
    )
    card = json.loads((path / zoo.CARD_FILE).read_text())
    print(f"Published {args.name} to {path}: top-1 {100 * card['top1']:.2f}%, "
          f"top-5 {100 * card['top5']:.2f}% on {card['evaluation']['num_examples']} "
          f"{card['evaluation']['split']} images of {card['dataset']}.")
    return EXIT_OK


def cmd_zoo_readme(args):
    """Regenerate a zoo directory's README.md from its model cards."""
    from keras_preact.zoo.cards import write_zoo_readme

    root = args.zoo_dir or zoo.explicit_zoo_dir() or zoo.PACKAGED_ZOO
    print(f"Wrote {write_zoo_readme(root)}")
    return EXIT_OK


def cmd_train(args):
    """Train a registry architecture: the trainer's own flags (keras-preact train --help)."""
    from keras_preact.training.train import run_main

    run_main(["keras-preact train", *args.flags])  # exits with the trainer's status
    return EXIT_OK


def _add_dataset_args(parser):
    parser.add_argument("--dataset", required=True,
                        help="tfds name, or folder:PATH with PATH/<split>/<class>/*.jpg")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--data_dir", "--data-dir", default=None, help="tfds data directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_parser():
    """The argparse parser of `keras-preact`."""
    parser = argparse.ArgumentParser(
        prog="keras-preact",
        description="Use, evaluate, export and publish keras-preact zoo models.",
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up and log lines (hidden by default); "
                             "may follow the command too")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list the zoo's trained models")
    listing.add_argument("--architectures", "--all", action="store_true",
                         help="list every registered network instead: builder, input size, "
                              "layout (paper or keras.applications), depth, size, paper error")
    listing.add_argument("--family", choices=("resnet", "resnetv2", "densenet"), default=None,
                         help="with --architectures: one family only")
    listing.set_defaults(run=cmd_list)

    predict = commands.add_parser("predict", help="top-5 classes of JPEG/PNG images")
    predict.add_argument("--model", required=True, help="zoo name or SavedModel directory")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="JPEG or PNG files")
    predict.set_defaults(run=cmd_predict)

    evaluate = commands.add_parser("evaluate", help="top-1/top-5 of a zoo model on a dataset")
    evaluate.add_argument("--model", required=True, help="zoo name")
    _add_dataset_args(evaluate)
    evaluate.add_argument("--limit", type=int, default=None,
                          help="evaluate the first N examples only")
    evaluate.add_argument("--batch_size", "--batch-size", type=int, default=256)
    evaluate.add_argument("--runtime", choices=("keras", "saved_model"), default="keras",
                          help="keras: get_model(weights=NAME); saved_model: the SavedModel")
    evaluate.add_argument("--check", action="store_true",
                          help="exit 1 unless the numbers match the model card")
    evaluate.add_argument("--flip", action="store_true",
                          help="test-time flip: average each image's prediction with its mirror's "
                               "(compared with the card's 'flip' numbers, not its single-crop top1)")
    evaluate.add_argument("--record", action="store_true",
                          help="with --flip on the full split: write the numbers into the card")
    evaluate.set_defaults(run=cmd_evaluate)

    export = commands.add_parser(
        "export", help="write a SavedModel (TF Serving), ONNX, OpenVINO or LiteRT model "
                       "(preprocessing inside)",
        description="Write a zoo model or a training run into --out. saved_model: for TF "
                    "Serving, use a numbered version folder: --out serving/NAME/1, served with "
                    "--model_base_path=$PWD/serving/NAME. onnx, openvino, litert: uint8 [N, H, W, 3] "
                    "pixels at the model's size in, probabilities out; needs "
                    'pip install "keras-preact[FORMAT]" (docs/deployment.md).')
    export.add_argument("--model", default=None, help="zoo name")
    export.add_argument("--model_dir", "--model-dir", default=None, help="training run dir")
    export.add_argument("--format", default="saved_model",
                        choices=("saved_model", "onnx", "openvino", "litert"),
                        help="saved_model (default; TF Serving), onnx (ONNX Runtime), openvino "
                             "(OpenVINO IR), litert (.tflite)")
    export.add_argument("--out", required=True, help="folder to write (SavedModel, or the "
                                                     "artifact + model_info.json)")
    export.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    export.add_argument("--flip", action="store_true",
                        help="saved_model only: serve the mean of each image's and its mirror's "
                             "probabilities (test-time flip; off by default)")
    export.add_argument("--int8", action="store_true",
                        help="onnx, openvino, litert: post-training static int8 quantization with the "
                             "runtime's own quantizer (openvino needs nncf: the openvino extra)")
    export.add_argument("--calibration", default=None, metavar="DATASET",
                        help="with --int8: folder:PATH or a tfds name whose train split calibrates "
                             "(never the test split); default: the card's / run's dataset if it is here")
    export.add_argument("--calibration_count", "--calibration-count", type=int, default=None,
                        help="with --int8: how many training images (seeded sample; default 512)")
    export.set_defaults(run=cmd_export)

    train = commands.add_parser(
        "train", help="train an architecture (flags: keras-preact train --help)", add_help=False,
        description="Train a registry architecture with a named recipe; resumable.")
    train.add_argument("flags", nargs=argparse.REMAINDER, help="the trainer's flags")
    train.set_defaults(run=cmd_train)

    publish = commands.add_parser("publish", help="turn a training run into ZOO_DIR/NAME/")
    publish.add_argument("--model_dir", "--model-dir", required=True, help="training run dir")
    publish.add_argument("--name", required=True, help="zoo name, e.g. resnetv2_20_cifar10")
    _add_dataset_args(publish)
    publish.add_argument("--dataset_label", "--dataset-label", default=None,
                         help="dataset name for the card, e.g. cifar10-jpeg-q75")
    publish.add_argument("--zoo_dir", "--zoo-dir", default=None,
                         help="zoo directory to publish into (default: $KERAS_PREACT_ZOO; in a "
                              "checkout, keras_preact/zoo/models is the zoo the wheel ships)")
    publish.add_argument("--weights_url", "--weights-url", default=None,
                         help="URL users download the weights from (large models); recorded "
                              "in the card")
    publish.add_argument("--overwrite", action="store_true", help="replace ZOO_DIR/NAME/")
    publish.add_argument("--limit", type=int, default=None,
                         help="evaluate the first N examples only (tests; not for real cards)")
    publish.set_defaults(run=cmd_publish)

    readme = commands.add_parser("zoo-readme", help="regenerate a zoo directory's README.md")
    readme.add_argument("--zoo_dir", "--zoo-dir", default=None,
                        help="default: $KERAS_PREACT_ZOO, else the packaged zoo")
    readme.set_defaults(run=cmd_zoo_readme)
    return parser


def main(argv=None):
    """Entry point of the `keras-preact` console script; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    argv = sys.argv[1:] if argv is None else list(argv)
    # --verbose acted before this module was imported (keras_preact/_startup.py).
    verbose = "--verbose" in argv
    argv = [arg for arg in argv if arg != "--verbose"]
    if argv[:1] == ["train"]:
        # The trainer parses its own flags (argparse would take `--help` and the like as ours).
        return cmd_train(argparse.Namespace(flags=argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        print()
        _print_zoo_table()
        return EXIT_OK
    # export's LiteRT check prints TensorFlow Lite's INFO line about its CPU delegate.
    quiet = args.command == "export" and not verbose
    try:
        with _startup.log_lines_held_back() if quiet else contextlib.nullcontext():
            return args.run(args)
    except ValueError as error:
        print(f"keras-preact {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

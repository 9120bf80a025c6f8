"""`keras-preact`: list, use, evaluate, export and publish the models of the zoo.

    keras-preact list [--architectures]
    keras-preact predict --model NAME IMAGE...
    keras-preact evaluate --model NAME --dataset folder:PATH [--limit N] [--check]
    keras-preact export --model_dir RUN_DIR --out DIR
    keras-preact publish --model_dir RUN_DIR --name NAME --dataset folder:PATH
    keras-preact zoo-readme

Errors the user can fix (unknown model, bad file, wrong dataset) print one
line to stderr and exit with status 2; a `--check` that finds a number
different from the model card exits with status 1.
"""

import argparse
import json
import os
import sys
from pathlib import Path

from keras_preact import zoo

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def _print_zoo_table():
    """One line per zoo model, or how to get one when the zoo is empty."""
    names = zoo.list_zoo()
    if not names:
        print(
            f"The zoo ({zoo.zoo_dir()}) has no models yet.\n"
            "Train one (see training/), then publish it:\n"
            "  keras-preact publish --model_dir RUN_DIR --name NAME --dataset folder:PATH\n"
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
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_list(args):
    """Print the zoo's models (or, with --architectures, every buildable architecture)."""
    if args.architectures:
        import keras_preact

        for name in keras_preact.list_models():
            spec = keras_preact.get_model_spec(name)
            print(f"{name:22s} {spec.family:9s} {spec.dataset:9s} {spec.paper}")
        return EXIT_OK
    _print_zoo_table()
    return EXIT_OK


def _saved_model_for(model):
    """SavedModel directory of a zoo name, or `model` itself if it is a SavedModel directory."""
    path = Path(model)
    if (path / "saved_model.pb").is_file():
        return path
    return zoo.saved_model_path(model)


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
    evaluation = zoo.evaluate(
        args.model, args.dataset, runtime=args.runtime, split=args.split,
        data_dir=args.data_dir, limit=args.limit, batch_size=args.batch_size,
        progress=not args.quiet,
    )
    summary = evaluation.summary()
    result = {"model": args.model, "dataset": args.dataset, "split": args.split,
              "runtime": args.runtime, **summary}
    print(json.dumps(result))
    if not args.check:
        return EXIT_OK
    differences = zoo.check_against_card(args.model, summary)
    if differences:
        print(f"MISMATCH with the model card of {args.model}: " + "; ".join(differences),
              file=sys.stderr)
        return EXIT_MISMATCH
    print(f"OK: matches the model card of {args.model}.")
    return EXIT_OK


def cmd_export(args):
    """Export a training run directory as a SavedModel."""
    from keras_preact import export

    path = export.export_run(args.model_dir, args.out)
    print(f"SavedModel written to {path} (signatures: {export.SERVING_DEFAULT}, "
          f"{export.SERVING_BYTES}).")
    return EXIT_OK


def cmd_publish(args):
    """Turn a training run directory into zoo/<name>/."""
    path = zoo.publish(
        args.model_dir, args.name, args.dataset, dataset_label=args.dataset_label,
        data_dir=args.data_dir, split=args.split, overwrite=args.overwrite, limit=args.limit,
        progress=not args.quiet,
    )
    card = zoo.get_card(args.name)
    print(f"Published {args.name} to {path}: top-1 {100 * card['top1']:.2f}%, "
          f"top-5 {100 * card['top5']:.2f}% on {card['evaluation']['num_examples']} "
          f"{card['evaluation']['split']} images of {card['dataset']}.")
    return EXIT_OK


def cmd_zoo_readme(args):
    """Regenerate zoo/README.md from the model cards."""
    print(f"Wrote {zoo.write_zoo_readme()}")
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    listing = commands.add_parser("list", help="list the zoo's trained models")
    listing.add_argument("--architectures", action="store_true",
                         help="list every buildable architecture instead")
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
    evaluate.set_defaults(run=cmd_evaluate)

    export = commands.add_parser("export", help="export a training run as a SavedModel")
    export.add_argument("--model_dir", "--model-dir", required=True, help="training run dir")
    export.add_argument("--out", required=True, help="SavedModel directory to write")
    export.set_defaults(run=cmd_export)

    publish = commands.add_parser("publish", help="turn a training run into zoo/NAME/")
    publish.add_argument("--model_dir", "--model-dir", required=True, help="training run dir")
    publish.add_argument("--name", required=True, help="zoo name, e.g. resnetv2_20_cifar10")
    _add_dataset_args(publish)
    publish.add_argument("--dataset_label", "--dataset-label", default=None,
                         help="dataset name for the card, e.g. cifar10-jpeg-q75")
    publish.add_argument("--overwrite", action="store_true", help="replace zoo/NAME/")
    publish.add_argument("--limit", type=int, default=None,
                         help="evaluate the first N examples only (tests; not for real cards)")
    publish.set_defaults(run=cmd_publish)

    readme = commands.add_parser("zoo-readme", help="regenerate zoo/README.md from the cards")
    readme.set_defaults(run=cmd_zoo_readme)
    return parser


def main(argv=None):
    """Entry point of the `keras-preact` console script; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        print()
        _print_zoo_table()
        return EXIT_OK
    try:
        return args.run(args)
    except ValueError as error:
        print(f"keras-preact {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

"""Print the table of every registered model (parameters, multiply-adds,
depth, paper source), write it as JSON, and put it into docs/models.md.

    python -m bench.model_table [--out bench/results/model_table.json] [--doc docs/models.md]

The table replaces what stands between the `<!-- model-table -->` and
`<!-- /model-table -->` markers of --doc (only when every model was measured);
tests/test_docs.py checks that docs/models.md holds the JSON's table.

Counting, not timing: the numbers are exact and machine-independent.
"""

import argparse
import json
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# The document whose model table is this module's output, and its markers.
DOC = os.path.join("docs", "models.md")
TABLE_BLOCK = re.compile(r"(<!-- model-table -->\n)(.*?)(\n<!-- /model-table -->)", re.S)


def measure(name):
    import keras

    import keras_preact

    spec = keras_preact.get_model_spec(name)
    model = keras_preact.get_model(name)
    row = {
        "name": name,
        "family": spec.family,
        "dataset": spec.dataset,
        "input": list(spec.input_shape),
        "params": keras_preact.count_params(model),
        "trainable_params": keras_preact.count_params(model, trainable_only=True),
        "multiply_adds": keras_preact.count_flops(model),
        "depth": keras_preact.paper_depth(model),
        "paper": spec.paper,
        "published_params": spec.params,
        "published_params_source": spec.params_source,
        "published_error": spec.error,
    }
    keras.backend.clear_session()
    return row


def human(n):
    if n is None:
        return "–"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def markdown(rows):
    lines = [
        "| model | input | depth | params | trainable | multiply-adds | published params | paper error % | reproduces |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['name']}` | {r['input'][0]}x{r['input'][1]} | {r['depth']} | {r['params']:,} | "
            f"{r['trainable_params']:,} | {human(r['multiply_adds'])} | "
            f"{human(r['published_params'])}{' (' + r['published_params_source'] + ')' if r['published_params'] else ''} | "
            f"{r['published_error'] if r['published_error'] is not None else '–'} | {r['paper']} |"
        )
    return "\n".join(lines)


def doc_table(text):
    """The table between the model-table markers of `text` (ValueError if there are none)."""
    match = TABLE_BLOCK.search(text)
    if not match:
        raise ValueError("no <!-- model-table --> ... <!-- /model-table --> block")
    return match.group(2)


def replace_doc_table(text, table):
    """`text` with the table between its model-table markers replaced by `table`."""
    doc_table(text)  # the markers must be there
    return TABLE_BLOCK.sub(lambda m: m.group(1) + table + m.group(3), text, count=1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/model_table.json")
    parser.add_argument("--models", nargs="*", help="registry names (default: all)")
    parser.add_argument("--doc", default=DOC,
                        help="markdown file whose model-table block gets the table, when every "
                             "model is measured ('' for none)")
    args = parser.parse_args(argv)
    import keras_preact

    names = args.models or keras_preact.list_models()
    rows = []
    for name in names:
        rows.append(measure(name))
        print(f"measured {name}", file=sys.stderr, flush=True)
    print(markdown(rows))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"command": "python -m bench.model_table", "models": rows}, f, indent=1)
    print(f"wrote {args.out}", file=sys.stderr)
    if args.doc and not args.models:
        with open(args.doc) as f:
            text = f.read()
        with open(args.doc, "w") as f:
            f.write(replace_doc_table(text, markdown(rows)))
        print(f"wrote the table into {args.doc}", file=sys.stderr)


if __name__ == "__main__":
    main()

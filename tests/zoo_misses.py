"""Which test images each real zoo model gets wrong: the per-image outcome behind its card's
full-split numbers.

A card's `top1`/`top5` and `flip.top1`/`flip.top5` (README's zoo table, docs/zoo.md, the card
READMEs) summarize 10,000 per-image outcomes that no default test can afford to re-measure
(the full split with flip is minutes of CPU a model). `zoo_misses.json` beside this file keeps
those outcomes (the indices, in the dataset's order, of the test images missed at top-1 and at
top-5, single-crop and flip-averaged), so that:

- the default run recomputes each card's full-split figures from the misses
  (tests/test_zoo.py, test_real_zoo_card_numbers_are_its_misses: a figure changed in the card
  and every copy of it fails there), and re-measures the misses among the CI slice's images from
  the shipped weights (test_real_zoo_card_reproduces_on_the_ci_slice);
- `-m slow` re-measures every miss of the full split (test_real_zoo_card_reproduces_on_the_full_test_split).

Regenerate after publishing or re-recording a zoo model (minutes of CPU a model; the CIFAR-10 JPEG
copy unpacked at PATH, or the archive's path in KERAS_PREACT_CIFAR10_TAR):

    python tests/zoo_misses.py [--data folder:PATH] [NAME ...]
"""

import argparse
import json
import pathlib
import sys

import numpy as np

RECORD = pathlib.Path(__file__).resolve().parent / "zoo_misses.json"
MODES = {"single": False, "flip": True}


def misses(evaluation):
    """{"top1": [...], "top5": [...]}: indices of the examples an `Evaluation` missed."""
    return {"top1": np.flatnonzero(~evaluation.top1_hits).tolist(),
            "top5": np.flatnonzero(~evaluation.top5_hits).tolist()}


def summary(record, limit=None):
    """{"num_examples", "top1", "top5"} of one mode's record, over its first `limit` examples,
    rounded as the cards round (evaluation.Evaluation.summary)."""
    from keras_preact.zoo import DECIMALS

    total = record["num_examples"] if limit is None else min(limit, record["num_examples"])

    def rate(key):  # as Evaluation.summary: the mean of the hits
        return round((total - sum(i < total for i in record["misses"][key])) / total, DECIMALS)

    return {"num_examples": total, "top1": rate("top1"), "top5": rate("top5")}


def load():
    return json.loads(RECORD.read_text(encoding="utf-8"))


def _write(record):
    lines = ["{", f' "about": {json.dumps(record["about"])},', ' "models": {']
    models = sorted(record["models"])
    for m, name in enumerate(models):
        lines.append(f'  "{name}": {{')
        for k, mode in enumerate(MODES):
            entry = record["models"][name][mode]
            lines.append(f'   "{mode}": {{"num_examples": {entry["num_examples"]}, "misses": {{')
            lines.append(f'    "top1": {json.dumps(entry["misses"]["top1"])},')
            lines.append(f'    "top5": {json.dumps(entry["misses"]["top5"])}')
            lines.append("   }}" + ("," if k < len(MODES) - 1 else ""))
        lines.append("  }" + ("," if m < len(models) - 1 else ""))
    lines += [" }", "}", ""]
    RECORD.write_text("\n".join(lines), encoding="utf-8")
    json.loads(RECORD.read_text(encoding="utf-8"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="folder:PATH of the CIFAR-10 JPEG copy (default: the cards' "
                                       "source, found as tests/test_zoo.py finds it)")
    parser.add_argument("names", nargs="*", help="zoo models (default: every packaged one)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(RECORD.parent))
    from keras_preact.zoo import PACKAGED_ZOO, evaluation, get_card

    names = args.names or sorted(p.parent.name for p in PACKAGED_ZOO.glob("*/model_card.json"))
    data = args.data
    if data is None:
        from test_zoo_support import cifar_folder

        data = f"folder:{cifar_folder()}"
    record = load() if RECORD.is_file() else {"models": {}}
    record["about"] = ("Indices (dataset order, 0-based) of the test images each zoo model misses at "
                       "top-1 and top-5, single-crop and flip-averaged, on the full test split of "
                       "its card's dataset: written by `python tests/zoo_misses.py`, see its docstring.")
    for name in names:
        card = get_card(name)
        record["models"][name] = {}
        for mode, flip in MODES.items():
            measured = evaluation.evaluate(name, data, flip=flip, progress=False)
            entry = {"num_examples": int(measured.top1_hits.size), "misses": misses(measured)}
            expected = card["flip"] if flip else card
            got = summary(entry)
            print(name, mode, got, "card:", expected["top1"], expected["top5"], flush=True)
            record["models"][name][mode] = entry
        _write(record)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The real zoo's full-split numbers, recomputed from the test images each model misses.

A card's `top1`/`top5` and `flip.top1`/`flip.top5` (and every copy: README's zoo table,
docs/zoo.md, the card READMEs, keras_preact/zoo/models/README.md) are the full test split's,
which the default run cannot afford to re-measure. tests/zoo_misses.json keeps the per-image
outcome they summarize (the indices of the images missed at top-1 and top-5, single-crop and
flip-averaged). Here, in milliseconds, each card's numbers are recomputed from those misses,
full split and CI slice; tests/test_zoo.py re-measures the misses among the CI slice's images
from the shipped weights (and, with -m slow, every miss of the full split). A figure changed in
a card and in all its copies fails here; a miss record changed to match fails there.
"""

import json
import pathlib

import pytest

import zoo_misses
from keras_preact.zoo import PACKAGED_ZOO

CARDS = {p.parent.name: json.loads(p.read_text()) for p in sorted(PACKAGED_ZOO.glob("*/model_card.json"))}


def test_every_real_zoo_model_has_its_misses_recorded():
    assert sorted(zoo_misses.load()["models"]) == sorted(CARDS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_real_zoo_card_numbers_are_its_misses(name):
    card, record = CARDS[name], zoo_misses.load()["models"][name]
    single = {"top1": card["top1"], "top5": card["top5"], "ci_slice": card["evaluation"]["ci_slice"]}
    for mode, numbers in (("single", single), ("flip", card["flip"])):
        full, ci = zoo_misses.summary(record[mode]), numbers["ci_slice"]
        assert full == {"num_examples": card["evaluation"]["num_examples"],
                        "top1": numbers["top1"], "top5": numbers["top5"]}, (mode, full)
        assert zoo_misses.summary(record[mode], ci["num_examples"]) == ci, (mode, ci)
        misses = record[mode]["misses"]
        assert set(misses["top5"]) <= set(misses["top1"]), mode  # a top-5 miss is a top-1 miss
        assert misses["top1"] == sorted(set(misses["top1"])), mode


def test_summary_counts_misses_among_the_first_images():
    record = {"num_examples": 8, "misses": {"top1": [0, 3, 6, 7], "top5": [6]}}
    assert zoo_misses.summary(record) == {"num_examples": 8, "top1": 0.5, "top5": 0.875}
    assert zoo_misses.summary(record, 4) == {"num_examples": 4, "top1": 0.5, "top5": 1.0}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_real_zoo_runtime_numbers_follow_from_the_keras_misses(name):
    """docs/deployment.md's and the card README's full-split top-1 in each runtime: a runtime whose
    top-1 prediction differs from Keras' on `top1_differs` images is within that many of the card's
    top-1 (recomputed from the misses above), and equal where it differs on none. The differences
    themselves are re-measured on the CI slice by tests/test_zoo_runtimes.py."""
    card = CARDS[name]
    top1 = zoo_misses.summary(zoo_misses.load()["models"][name]["single"])["top1"]
    checked = []
    for fmt, entry in card.get("runtimes", {}).items():
        for label, numbers in ((fmt, entry), (f"{fmt} default precision", entry.get("default_precision"))):
            if numbers is None:
                continue
            assert numbers.get("num_examples", entry["num_examples"]) == card["evaluation"]["num_examples"]
            bound = numbers["top1_differs"] / entry["num_examples"]
            assert abs(numbers["top1"] - top1) <= bound + 1e-9, (label, numbers["top1"], top1, numbers["top1_differs"])
            if "float32_top1" in numbers:
                assert numbers["float32_top1"] == top1, label
            checked.append(label)
    assert {"saved_model", "onnx", "openvino", "litert"} <= set(checked), checked


INT8_JSON = pathlib.Path(__file__).resolve().parents[1] / "bench" / "results" / "int8.json"


def _int8_card_mismatches(card, result):
    """Where a card's int8 entries ("<format>_int8", written by bench/runtime_cards.py --int8) differ from
    the int8.json entry of the same model and format, which keeps the per-image lists behind its
    accuracy figures (tests/test_bench_tables.py recomputes them from those): [] where int8.json
    has not measured the model."""
    from bench import runtime_cards

    measured = result["models"].get(card["name"])
    if measured is None:
        return []
    problems = []
    for fmt, entry in card.get("runtimes", {}).items():
        if entry.get("precision") != "int8":
            continue
        if runtime_cards.PER_IMAGE in entry:
            problems.append(f"{fmt}: the card keeps per-image lists")
        stored = measured["entries"].get(fmt)
        if stored is None:
            problems.append(f"{fmt}: not in int8.json")
            continue
        stored = runtime_cards.card_entry(stored)
        problems += [f"{fmt}/{key}: card {entry.get(key)!r}, int8.json {stored.get(key)!r}"
                     for key in sorted(set(entry) | set(stored)) if entry.get(key) != stored.get(key)]
    return problems


@pytest.mark.parametrize("name", sorted(CARDS))
def test_real_zoo_int8_entries_are_the_int8_json_entries(name):
    """A card's int8 figures (its README's int8 rows, keras_preact/zoo/models/README.md's int8 table:
    tests/test_zoo.py re-renders both from the card) are bench/results/int8.json's, whose accuracy
    figures tests/test_bench_tables.py recomputes from the per-image lists it keeps."""
    result = json.loads(INT8_JSON.read_text())
    assert not _int8_card_mismatches(CARDS[name], result)
    if name in result["models"]:
        fmts = {fmt for fmt, e in CARDS[name].get("runtimes", {}).items() if e.get("precision") == "int8"}
        assert fmts == set(result["models"][name]["entries"]), "int8.json measured formats the card lacks"


def test_an_int8_figure_planted_in_a_card_alone_is_found():
    result = {"models": {"m": {"entries": {"onnx_int8": {"precision": "int8", "top1": 0.9, "top5": 0.99,
                                                         "per_image": {"top1_misses": [0]}}}}}}
    card = {"name": "m", "runtimes": {"onnx": {"top1": 0.91},
                                      "onnx_int8": {"precision": "int8", "top1": 0.9, "top5": 0.99}}}
    assert _int8_card_mismatches(card, result) == []
    card["runtimes"]["onnx_int8"]["top1"] = 0.91
    assert _int8_card_mismatches(card, result) == ["onnx_int8/top1: card 0.91, int8.json 0.9"]
    card["runtimes"]["onnx_int8"]["per_image"] = {"top1_misses": [0]}
    assert "onnx_int8: the card keeps per-image lists" in _int8_card_mismatches(card, result)
    assert _int8_card_mismatches({**card, "name": "other"}, result) == []  # int8.json has not measured it

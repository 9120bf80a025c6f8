"""README's zoo figures are the cards' figures: its zoo table (one row per card on disk, each
number equal to the card's), the gap to the papers its prose states, and how many zoo models the
wheel carries. The cards' own numbers are re-measured from the shipped weights in
tests/test_zoo.py (CI slice; the full split with -m slow), so a figure changed in the cards and
in README alike still fails there."""

import json
import pathlib
import re

import pytest

from keras_preact.models.registry import get_model_spec
from keras_preact.zoo import PACKAGED_ZOO, cards

ROOT = pathlib.Path(__file__).resolve().parents[1]
CARDS = {p.parent.name: json.loads(p.read_text()) for p in sorted(PACKAGED_ZOO.glob("*/model_card.json"))}
ROW = re.compile(r"^\| \[`(?P<name>[a-z0-9_]+)`\]\((?P<link>[^)]+)\) \| (?P<cells>.*) \|$", re.M)
NUMBER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}


def _readme():
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _zoo_rows():
    section = _readme().split("\n## The zoo\n", 1)[1].split("\n## ", 1)[0]
    return {m["name"]: (m["link"], [c.strip() for c in m["cells"].split(" | ")])
            for m in ROW.finditer(section)}


def _percent(fraction):
    return f"{100 * fraction:.2f}%"


def _paper_accuracy(card):
    """The paper's CIFAR-10 accuracy for the card's network: its own, or for the v2 paper's
    ResNetV2-20..56, which that paper did not train, its v1 namesake's (same layers, v1 Table 6:
    the registry says "layers of He et al., CVPR 2016, Table 6")."""
    error = cards.paper_numbers(card["architecture"], card["dataset"], card.get("model_kwargs"))[0]
    spec = get_model_spec(card["architecture"])
    if error is None and spec.paper.endswith("layers of He et al., CVPR 2016, Table 6"):
        error = get_model_spec(card["architecture"].replace("resnetv2_", "resnet_")).error
    return None if error is None else 100 - error


def test_readme_zoo_table_has_one_row_per_card():
    assert CARDS, "no zoo cards found"
    assert sorted(_zoo_rows()) == sorted(CARDS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_readme_zoo_row_is_the_card(name):
    card = CARDS[name]
    link, cells = _zoo_rows()[name]
    assert link == f"keras_preact/zoo/models/{name}/README.md"
    top1, top5, flip_top1, epochs, paper = cells
    assert (top1, top5) == (_percent(card["top1"]), _percent(card["top5"]))
    assert flip_top1 == _percent(card["flip"]["top1"])
    # Epochs over every cycle of a warm-started run: "70 (40 + 30)" on the card's page, 70 here.
    assert epochs == str(cards._epoch_count(card)).split()[0]
    assert f" {_paper_accuracy(card):.2f}% (" in f" {paper}", (paper, _paper_accuracy(card))


def test_readme_states_the_gap_to_the_papers_of_the_cards():
    gaps = [_paper_accuracy(c) - 100 * c["top1"] for c in CARDS.values() if _paper_accuracy(c)]
    text = " ".join(_readme().split())
    assert f"the zoo's models end {min(gaps):.1f}-{max(gaps):.1f} points short of the papers" in text


def test_readme_counts_the_zoo_models_in_the_wheel():
    shipped = [n for n in CARDS if (PACKAGED_ZOO / n / f"{n}.weights.h5").is_file()]
    text = " ".join(_readme().split())
    assert f"it carries the {NUMBER_WORDS[len(shipped)]} CIFAR-10 zoo models' weights" in text

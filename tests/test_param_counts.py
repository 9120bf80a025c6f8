"""Every registered network against the published numbers.

CIFAR models: parameters within 3% of the papers' tables (ResNet v1 Table 6,
ResNet v2 Table 3, DenseNet Table 2). ImageNet models: within 1% of the
published counts (keras.applications counts BN statistics, torchvision only
learnable weights). Depth counted as the papers count it (convs + FC, no
projection shortcuts) equals the number in the name. And the exact counts the package
publishes (`registry.MEASURED`, behind every builder docstring, `describe_models()`,
`keras-preact list --all`, docs/models.md and README) are recomputed here from the built
networks, every one of them, not compared with another stored copy.

Cheap enough for the default run: each network is built inside a `keras.StatelessScope` that
leaves its variables uninitialized, so no weight is allocated or drawn (the slow part of a
build: resnet_1202 takes ~6 s this way, ~15 s with its weights). Counting needs only the shapes.
The input size does not matter for the cost (a functional model's shapes are traced
symbolically, at 224x224 as at 32x32), so every network is counted at its registered input size.
"""

import functools
import inspect
import json
import pathlib
import re

import keras
import pytest

import keras_preact
from keras_preact.models.registry import MEASURED, get_model_spec, list_models

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL_TABLE = ROOT / "bench" / "results" / "model_table.json"


@functools.lru_cache(maxsize=None)
def _built(name):
    """Each network is built once for this module (the depth, count and FLOPs checks share it),
    without weights: its variables have shapes but no values (see the module docstring)."""
    with keras.StatelessScope(initialize_variables=False):
        return keras_preact.get_model(name)


def _depth_in_name(name):
    numbers = [int(n) for n in re.findall(r"\d+", name)]
    # "densenet_bc_100_12" -> 100; "resnet50v2" -> 50; "resnetv2_164" -> 164
    return numbers[-1] if name.startswith("resnetv2_") else numbers[0]


def _check_against_paper(name):
    spec = get_model_spec(name)
    model = _built(name)
    # DenseNet-264's blocks (6, 12, 64, 48) make 265 weighted layers by the
    # paper's own rule; the paper keeps the name 264.
    expected_depth = 265 if name == "densenet264" else _depth_in_name(name)
    assert keras_preact.paper_depth(model) == expected_depth
    if spec.params:
        ours = keras_preact.count_params(
            model, trainable_only=spec.params_convention == "trainable"
        )
        relative = 0.03 if spec.dataset == "cifar" else 0.01
        # A figure printed as "0.8M" only says 0.75M..0.85M: allow half its last digit.
        tolerance = max(relative * spec.params, spec.params_precision / 2)
        assert abs(ours - spec.params) <= tolerance, (
            f"{name}: {ours:,} params vs {spec.params:,} ({spec.params_source})"
        )


@pytest.mark.parametrize("name", list_models())
def test_depth_and_parameters_match_paper(name):
    _check_against_paper(name)


def _counts(name):
    """(count_params(), trainable parameters, multiply-adds per image) of the built network."""
    model = _built(name)
    assert model.input_shape[1:] == get_model_spec(name).input_shape
    return (model.count_params(), keras_preact.count_params(model, trainable_only=True),
            keras_preact.count_flops(model))


@functools.lru_cache(maxsize=None)
def _models_doc_rows():
    """{registry name: its row of docs/models.md's table, split into cells}."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| `")]
    return {cells[0].strip().strip("`"): [c.strip() for c in cells] for cells in rows}


@pytest.mark.parametrize("name", list_models())
def test_published_counts_are_the_built_networks(name):
    """registry.MEASURED, recomputed: parameters as keras.applications counts them
    (`model.count_params()`, BN statistics included), trainable parameters, and multiply-adds
    per image at the registered input size; and every place that prints them says the same:
    the named builder's docstring, describe_models() (`keras-preact list --all`),
    docs/models.md's table and bench/results/model_table.json."""
    params, trainable, multiply_adds = measured = _counts(name)
    assert measured == MEASURED[name], f"{name}: built {measured}, MEASURED says {MEASURED[name]}"
    row = next(r for r in keras_preact.describe_models() if r["name"] == name)
    assert (row["params"], row["multiply_adds"]) == (params, multiply_adds)
    doc = " ".join(inspect.getdoc(getattr(keras_preact, row["builder"])).split())
    assert f"{params:,} parameters ({trainable:,} trainable" in doc
    assert f"{multiply_adds:,} multiply-adds ({multiply_adds / 1e9:.2f}G)" in doc
    cells = _models_doc_rows()[name]
    assert (cells[3], cells[4]) == (f"{params:,}", f"{trainable:,}"), cells
    assert cells[5] in (f"{multiply_adds / 1e9:.2f}G", f"{multiply_adds / 1e6:.2f}M"), cells
    table = {r["name"]: r for r in json.loads(MODEL_TABLE.read_text())["models"]}
    assert sorted(table) == list_models()
    assert (table[name]["params"], table[name]["trainable_params"],
            table[name]["multiply_adds"]) == measured
    assert table[name]["depth"] == keras_preact.paper_depth(_built(name)) == int(cells[2]), cells


def test_readme_counts_of_the_two_resnet50_v2_layouts_are_the_built_networks():
    """README: `resnetv2_50` and `resnet50v2` differ ... (X vs Y trainable parameters)."""
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    stated = re.search(r"\(([\d,]+) vs ([\d,]+) trainable parameters\)", text)
    assert stated, "README no longer compares the two layouts' trainable parameters"
    assert "`resnetv2_50` and `resnet50v2`" in text[:stated.start()][-400:]
    assert stated.groups() == (f"{_counts('resnetv2_50')[1]:,}", f"{_counts('resnet50v2')[1]:,}")


def test_every_registered_network_has_measured_counts():
    assert sorted(MEASURED) == list_models()


def test_every_cifar_model_has_a_published_count():
    missing = [n for n in list_models() if get_model_spec(n).dataset == "cifar"
               and not get_model_spec(n).params]
    assert missing == []


@pytest.mark.parametrize(
    "name, gflops",
    [("resnet18", 1.8), ("resnet34", 3.6), ("resnet50", 3.8),
     ("resnet101", 7.6), ("resnet152", 11.3)],
)
def test_imagenet_multiply_adds_match_v1_table_1(name, gflops):
    flops = keras_preact.count_flops(_built(name))
    # Table 1 rounds to 0.1 GFLOPs; the original stride-in-1x1 ResNet-50 is 3.86e9.
    assert abs(flops / 1e9 - gflops) <= 0.1 * gflops, flops

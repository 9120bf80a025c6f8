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



# --- the papers' own numbers, read from ../shared/reference/papers.md ------------------------------

PAPERS = ROOT.parent / "shared" / "reference" / "papers.md"


def _number(text):
    """'0.27M' -> (270000, 10000): the count and the unit of its last digit."""
    decimals = len(text.removesuffix("M").partition(".")[2])
    return round(float(text.removesuffix("M")) * 1e6), 10 ** (6 - decimals)


def _listed_counts(line, prefix):
    """{registry name: count} of a list like 'ResNet-18 11,689,512; 34 21,797,672' or
    'DenseNet121 8,062,504; 169 ...; ResNet50V2 25,613,800; 101V2 ...'."""
    found = {}
    for item in line.rstrip(".").split(";"):
        label, count = re.fullmatch(r"\s*(.*?)(?: \(k=\d+\))? ([\d,]{7,})\s*", item).groups()
        named = re.fullmatch(r"(ResNet|DenseNet)-?(\d+\w*)", label)
        if named:
            prefix, label = named[1].lower(), named[2]
        found[f"{prefix}{label.lower()}"] = int(count.replace(",", ""))
    return found


def _papers_numbers():
    """{registry name: (error %, published params, their precision)} and {registry name: exact
    count} (torchvision's and keras.applications' counts), parsed from papers.md's tables."""
    text = PAPERS.read_text(encoding="utf-8")

    def table(header):
        block = text.split(header, 1)[1].split("\n\n", 1)[0]
        return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()
                if line.startswith("|") and not line.startswith("|---")]

    found = {}
    depths, params, errors = (row[1:] for row in table("## ResNet v1 — CIFAR-10 (Table 6")[:3])
    for depth, count, error in zip(depths, params, errors):
        found[f"resnet_{depth}"] = (float(error.split()[0]), *_number(count))
        if int(depth) <= 56:  # the v2 paper's 20-56 are v1 Table 6's layers; no error of their own
            found[f"resnetv2_{depth}"] = (None, *_number(count))
    units = {row[0]: row[1:] for row in table("Table 2 — activation placement")}
    table3 = {row[1]: row[3] for row in table("Table 3 — original vs pre-activation") if row[0] == "CIFAR-10"}
    found["resnetv2_110"] = (float(units["full pre-activation"][0]), *_number(params[depths.index("110")]))
    found["resnetv2_164"] = (float(table3["ResNet-164 (1.7M params)"]), *_number("1.7M"))
    assert float(units["full pre-activation"][1]) == found["resnetv2_164"][0]
    found["resnetv2_1001"] = (float(table3["ResNet-1001 (10.2M params)"].split()[0]), *_number("10.2M"))
    for depth in (152, 200):
        error = re.search(rf"ResNet-{depth} original [^;]*?, pre-act ([\d.]+)/", text)[1]
        found[f"resnetv2_{depth}"] = (float(error), None, 0)
    dense = table("Table 2 — CIFAR / SVHN error")
    for row in dense[1:]:
        m = re.fullmatch(r"DenseNet(-BC)? L=(\d+), k=(\d+)", row[0])
        found[f"densenet{'_bc' if m[1] else ''}_{m[2]}_{m[3]}"] = (
            float(row[dense[0].index("C10+")]), *_number(row[dense[0].index("params")]))
    imagenet = " ".join(text.split("Table 3 — ImageNet top-1 / top-5", 1)[1].split("\n\n", 1)[0].split())
    for depth, error in re.findall(r"(?:DenseNet-)?(\d{3}) ([\d.]+)/[\d.]+, [\d.]+/[\d.]+", imagenet):
        found[f"densenet{depth}"] = (float(error), None, 0)
    counts = {
        "torchvision": {**_listed_counts(re.search(r"Params \(torchvision\): (ResNet-.*)", text)[1], "resnet"),
                        **_listed_counts(re.search(r"Params \(torchvision\): (1\d\d .*?)\. keras", imagenet)[1],
                                  "densenet")},
        "keras.applications": _listed_counts(re.search(r"keras\.applications: (.*?) \(all with", imagenet)[1], ""),
    }
    return found, counts


@pytest.mark.skipif(not PAPERS.is_file(), reason=f"no {PAPERS} (the shared reference beside the checkout)")
@pytest.mark.parametrize("name", list_models())
def test_registry_paper_numbers_are_the_papers(name):
    """The paper errors and published parameter counts the registry carries (docs/models.md's
    "published" and "paper error" columns, the builders' docstrings, the zoo's paper column in
    README and the cards) are those ../shared/reference/papers.md quotes from the papers' tables."""
    spec = get_model_spec(name)
    found, counts = _papers_numbers()
    error, params, precision = found.get(name, (None, None, 0))
    if spec.params_source in counts:
        params, precision = counts[spec.params_source][name], 0
    assert (spec.error, spec.params, spec.params_precision) == (error, params, precision), spec.params_source

"""README's and docs' figures, each recomputed from its source of truth.

The zoo: README's and docs/zoo.md's tables (one row per card on disk, each number equal to the
card's), the gaps to the papers, the training epochs and hours (the cards' run records and the
committed run.json of earlier cycles), and how many zoo models the wheel carries. The cards' own
numbers are re-measured from the shipped weights in tests/test_zoo.py (CI slice; the full split
with -m slow), so a figure changed in the cards and in README alike still fails there.

README's prose: what `keras-preact predict` prints for docs/samples/cat.jpg (computed from the
shipped weights), the training-speed paragraph (the step times in bench/results/cpu_training.json,
the epoch time in a card), the memory-efficient DenseNet's batches (bench/results/densenet_memory.json,
also for docs/hardware.md), the JPEG quality of the data (bench/results/jpeg_copy.json), the
install figures (setup.cfg), the keras.applications networks (the registry) and a quoted error
message (the builder). The wheel's size is checked where the wheel is built (tests/test_package.py).
docs/deployment.md: the zoo models' numbers in each runtime (the cards' `runtimes`)."""

import configparser
import json
import pathlib
import re
import statistics

import pytest

from keras_preact.models.registry import get_model_spec
from keras_preact.zoo import PACKAGED_ZOO, cards

ROOT = pathlib.Path(__file__).resolve().parents[1]
CARDS = {p.parent.name: json.loads(p.read_text()) for p in sorted(PACKAGED_ZOO.glob("*/model_card.json"))}
ROW = re.compile(r"^\| \[`(?P<name>[a-z0-9_]+)`\]\((?P<link>[^)]+)\) \| (?P<cells>.*) \|$", re.M)
NUMBER_WORDS = {3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}


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


# --- README's prose figures, each recomputed from what it was measured on -------------------------

def _text(path="README.md"):
    return " ".join((ROOT / path).read_text(encoding="utf-8").split())


def _json(path):
    return json.loads((ROOT / path).read_text(encoding="utf-8"))


def _setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    return parser


def _pin(extra, package):
    """'2.21' for `package==2.21.*` in setup.cfg's extra `extra`."""
    lines = _setup_cfg()["options.extras_require"][extra].splitlines()
    pins = [m[1] for m in (re.fullmatch(rf"{re.escape(package)}==(\d+\.\d+)\.\*", s.strip()) for s in lines) if m]
    assert len(pins) == 1, (extra, package, lines)
    return pins[0]


def test_readme_prints_what_predict_prints_for_the_sample_cat():
    """`keras-preact predict --model resnetv2_20_cifar10 docs/samples/cat.jpg`'s first line and
    runner-up, and the Python example's `# [1, 10]` and `# cat`, from the shipped weights. In
    process: the zoo model with the bytes signature's decoding (serving.decode_images) and
    softmax (export.probabilities_fn), which `predict` runs through the exported SavedModel."""
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_preact import serving
    from keras_preact.export import TOP_K, probabilities_fn
    from keras_preact.zoo import get_card, load_model

    name, image = "resnetv2_20_cifar10", ROOT / "docs" / "samples" / "cat.jpg"
    text = _text()
    assert f"keras-preact predict --model {name} docs/samples/cat.jpg" in text
    model, classes = load_model(name), get_card(name)["class_names"]
    pixels = serving.decode_images(tf.constant([image.read_bytes()]), height=32, width=32)
    probabilities = keras.ops.convert_to_numpy(probabilities_fn(model)(model(pixels, training=False)))[0]
    first, second = np.argsort(-probabilities)[:2]
    assert (f"It prints the photo's top-{TOP_K} classes (`1. {classes[first]} "
            f"{100 * probabilities[first]:.2f}%`, then {classes[second]}, ...)") in text
    # The Python example: keras.utils.load_img's own resize, model.predict's probabilities.
    pixels = np.array(keras.utils.load_img(image, target_size=(32, 32)))[None].astype("float32")
    probabilities = keras.ops.convert_to_numpy(model(pixels, training=False))
    assert np.allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5), "the model no longer ends in softmax"
    assert f'keras_preact.ResNetV2_20(weights="{name}")' in text
    assert f"probabilities = model.predict(image[None]) # {list(probabilities.shape)}" in text
    assert f'["class_names"][probabilities.argmax()]) # {classes[probabilities.argmax()]}' in text


def test_readme_training_speed_is_the_cpu_training_bench():
    """The speed paragraph's ratios, machine and PyTorch version: medians of the step times in
    bench/results/cpu_training.json (as the bench computes its ratios), the machine it records,
    and the `bench` extra's torch pin."""
    bench = _json("bench/results/cpu_training.json")
    assert bench["command"] == "python -m bench.cpu_training"
    steps = {m["model"]: {r["name"]: statistics.median(r["step_seconds"]) for r in m["rows"] if r["step_seconds"]}
             for m in bench["models"]}
    over_before = {m: steps[m]["before"] / steps[m]["ours"] for m in ("resnetv2_20", "resnetv2_56")}
    over_torch = {m: steps[m]["torch"] / steps[m]["ours"] for m in ("resnetv2_20", "resnetv2_56")}
    machine = bench["machine"]
    assert machine["avx512"], "the bench's machine has no AVX-512"
    text = _text()
    assert (f"which made its step {over_before['resnetv2_20']:.1f}x (ResNetV2-20) and "
            f"{over_before['resnetv2_56']:.1f}x (ResNetV2-56) faster; it is {over_torch['resnetv2_20']:.1f}x and "
            f"{over_torch['resnetv2_56']:.1f}x faster than a plain PyTorch network built to the same layers, "
            f"measured side by side by `{bench['command']}` on a {machine['cores']}-core {machine['cpu']} "
            f"with AVX-512, with PyTorch {_pin('bench', 'torch')} (the `bench` extra;") in text


def test_readme_epoch_time_is_the_zoo_cards():
    """'about X minutes for ResNetV2-56 there': the median epoch (training with augmentation, then
    evaluation) of the card's last cycle, trained with the fused batch norm on the bench's machine."""
    card = CARDS["resnetv2_56_cifar10"]
    recipe, machine = card["recipe"], _json("bench/results/cpu_training.json")["machine"]
    assert recipe["config"].get("fused_batch_norm") is True
    assert (recipe["hardware"]["cpu"], recipe["hardware"]["cpu_count"], recipe["hardware"]["cpu_flags"]["avx512"]) \
        == (machine["cpu"], machine["cores"], machine["avx512"])
    assert card["dataset"] == "cifar10-jpeg-q75"
    minutes = statistics.median(e["seconds"] for e in recipe["epochs"]) / 60
    assert (f"An epoch of the CIFAR-10 (JPEG q75 copy), augmentation and evaluation included, takes about "
            f"{minutes:.1f} minutes for ResNetV2-56 there (the median epoch of the zoo's "
            f"`{card['name']}` in its last training cycle, from its model card)") in _text()


def _largest_densenet_bc_190_batches(bench):
    """{memory_efficient: largest DenseNet-BC-190 batch whose peak RSS fits the budget}, from the runs."""
    budget = bench["bc190_budget_gib"] * 2**30
    fits = {}
    for run in bench["runs"]:
        if run["model"] == "densenet_bc_190_40" and "error" not in run and run["peak_rss_bytes"] <= budget:
            fits[run["memory_efficient"]] = max(fits.get(run["memory_efficient"], 0), run["batch"])
    return fits


def test_readme_and_hardware_doc_memory_figures_are_the_densenet_memory_bench():
    bench = _json("bench/results/densenet_memory.json")
    fits, budget = _largest_densenet_bc_190_batches(bench), f"{bench['bc190_budget_gib']:g}"
    assert (f"`DenseNet_BC_190_40(memory_efficient=True)` trains batch {fits[True]} in {budget} GiB "
            f"where the plain model fits {fits[False]}") in _text()
    # docs/hardware.md: the DenseNet-BC-100 batch-128 step (mean of each implementation's runs).
    runs = [r for r in bench["runs"] if r["model"] == "densenet_bc_100_12" and r["batch"] == 128]
    mean = {(key, efficient): statistics.mean(r[key] for r in runs if r["memory_efficient"] == efficient)
            for key in ("step_memory_bytes", "step_seconds") for efficient in (False, True)}
    memory = mean["step_memory_bytes", True] / mean["step_memory_bytes", False]
    time = mean["step_seconds", True] / mean["step_seconds", False]
    assert (f"a DenseNet-BC-100 training step takes {memory:.2f}x the memory of the plain model at "
            f"{time:.2f}x its step time; DenseNet-BC-190 fits batch {fits[True]} instead of {fits[False]} "
            f"in {budget} GiB") in _text("docs/hardware.md")


def test_readme_names_the_jpeg_quality_the_copy_stores():
    """'CIFAR-10 (JPEG q75 copy)': the quality bench.jpeg_copy read from every file of the copy."""
    splits = _json("bench/results/jpeg_copy.json")["splits"]
    qualities = {q for split in splits.values() for q in split["quality"]}
    assert len(qualities) == 1, qualities
    quality = qualities.pop()
    text = _text()
    assert f"CIFAR-10 (JPEG q{quality} copy)" in text and f"stores each image as a quality-{quality} JPEG" in text
    assert {c["dataset"] for c in CARDS.values()} == {f"cifar10-jpeg-q{quality}"}
    assert set(re.findall(r"JPEG q(\d+)", text)) == {quality}


def test_readme_install_figures_are_setup_cfgs():
    """Python version, TensorFlow pins, the wheel file's version, the serving-API pin."""
    setup = _setup_cfg()
    text = _text()
    python = re.fullmatch(r">=(\d+\.\d+)", setup["options"]["python_requires"])[1]
    assert f"Python {python} or newer." in text
    tf = _pin("tf-cpu", "tensorflow-cpu")
    assert _pin("tf", "tensorflow") == _pin("test", "tensorflow-cpu") == tf
    assert f"`tf-cpu` (TensorFlow {tf}, CPU), `tf` (TensorFlow {tf} with GPU support)" in text
    assert f'pip install -q --no-deps "tensorflow-serving-api=={tf}.*"' in text
    assert f'"keras_preact-{setup["metadata"]["version"]}-py3-none-any.whl[tf-cpu]"' in text


def test_readme_names_the_nine_keras_applications_networks():
    """'(ResNet50/101/152, ResNet50V2/101V2/152V2, DenseNet121/169/201)' and 'the nine networks':
    the registry's networks whose weights="imagenet" are keras.applications'."""
    from keras_preact.models.registry import imagenet_weight_sources

    text = _text()
    listed = re.search(r"where keras\.applications has the same network \(([^)]+)\)", text)[1]
    names = []
    for group in listed.split(", "):
        first, *rest = group.split("/")
        prefix = re.match(r"[A-Za-z]+", first)[0]
        names += [first] + [prefix + r for r in rest]
    sources = sorted(imagenet_weight_sources().values())
    assert sorted(names) == sources
    assert f"for the {NUMBER_WORDS[len(sources)]} networks that are keras.applications' own" in text


def test_readme_quotes_the_builders_error_and_the_evaluate_limit():
    import keras_preact

    text = _text()
    quoted = re.search(r'\(`ResNetV2\((\d+), block="bottleneck"\)`: "([^"]+)"\)', text)
    with pytest.raises(ValueError) as raised:
        keras_preact.ResNetV2(int(quoted[1]), block="bottleneck")
    assert quoted[2] in str(raised.value)
    limit = re.search(r"--limit (\d+)` measures a zoo model on ([\d,]+) test images", text)
    assert limit[2] == f"{int(limit[1]):,}"


# --- docs/zoo.md: the shipped models' figures are their cards' -------------------------------------

def _cycles(card):
    """The card's training cycles, first to last: each its run record's `wall_time_s`, `epochs`
    and, where the cycle's run.json is committed, its per-epoch log (else the card's own)."""
    cycles, recipe = [], card["recipe"]
    previous = recipe.get("init_from")
    while previous:
        record = ROOT / previous["model_dir"] / "run.json"
        log = json.loads(record.read_text())["epochs"] if record.is_file() else None
        cycles.insert(0, {"wall_time_s": previous["wall_time_s"], "epochs": previous["epochs"], "log": log})
        previous = previous.get("init_from")
    return cycles + [{"wall_time_s": recipe["wall_time_s"], "epochs": len(recipe["epochs"]), "log": recipe["epochs"]}]


def _zoo_doc_rows():
    text = (ROOT / "docs" / "zoo.md").read_text(encoding="utf-8")
    return {m["name"]: (m["link"], [c.strip() for c in m["cells"].split(" | ")]) for m in ROW.finditer(text)}


def test_zoo_doc_counts_the_cards():
    assert f"The zoo's {NUMBER_WORDS[len(CARDS)]} models were trained" in _text("docs/zoo.md")
    assert sorted(_zoo_doc_rows()) == sorted(CARDS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_zoo_doc_row_is_the_card(name):
    """Top-1, top-5, the paper's number, the epochs and the hours (each cycle's, and at the
    median epoch times where the row states them) of docs/zoo.md's table."""
    card = CARDS[name]
    link, (top1, top5, recipe, paper) = _zoo_doc_rows()[name]
    assert link == f"../keras_preact/zoo/models/{name}/README.md"
    assert (top1, top5) == (_percent(card["top1"]), _percent(card["top5"]))
    assert f" {_paper_accuracy(card):.2f}% (" in f" {paper}", (paper, _paper_accuracy(card))
    cycles = _cycles(card)
    epochs = sum(c["epochs"] for c in cycles)
    assert epochs == int(str(cards._epoch_count(card)).split()[0])
    hours = [c["wall_time_s"] / 3600 for c in cycles]
    assert f"{epochs} epochs" in recipe and f"{sum(hours):.1f} h " in recipe, recipe
    if len(cycles) > 1:
        assert f"({' + '.join(f'{h:.1f} h' for h in hours)};" in recipe, recipe
    if "median epoch times" in recipe:
        medians = [statistics.median(e["seconds"] for e in c["log"]) for c in cycles]
        at_medians = [m * c["epochs"] / 3600 for m, c in zip(medians, cycles)]
        assert (f"at the median epoch times, {', '.join(f'{m:.0f} s' for m in medians[:-1])} and "
                f"{medians[-1]:.0f} s, {' + '.join(f'{h:.1f} h' for h in at_medians)};") in recipe, recipe


@pytest.mark.parametrize("name", ["resnetv2_56_cifar10", "densenet_bc_100_12_cifar10"])
def test_zoo_doc_section_is_the_card(name):
    """The section that introduces `name`: its accuracy, error, gap to the paper, trainable
    parameters (registry's MEASURED, rebuilt in test_param_counts) and flip figure."""
    from keras_preact.models.registry import MEASURED

    card = CARDS[name]
    section = _text("docs/zoo.md").split(f"`{name}` is ", 1)[1].split(" ## ", 1)[0]
    top1, paper = 100 * card["top1"], _paper_accuracy(card)
    for fragment in (f"**{top1:.2f}%** top-1 ({100 * card['top5']:.2f}% top-5)", f"{100 - top1:.2f}% error",
                     f"{paper - top1:.2f} points short", f"{MEASURED[card['architecture']][1]:,} trainable parameters"):
        assert fragment in section, fragment
    if "test-time flip" in section:
        assert f"With test-time flip (`--flip`) it is {100 * card['flip']['top1']:.2f}%" in section


def test_zoo_doc_compares_the_resnets_with_their_cards():
    """The ResNet-20 section's gaps and second-cycle gains, the ResNet-56 section's comparisons."""
    r20, v2_20, v2_56 = (CARDS[n] for n in ("resnet_20_cifar10", "resnetv2_20_cifar10", "resnetv2_56_cifar10"))
    text = _text("docs/zoo.md")
    gaps = [_paper_accuracy(c) - 100 * c["top1"] for c in (r20, v2_20)]
    assert f"both end about {min(gaps):.1f}-{max(gaps):.1f} points short" in text
    gains = [(100 * c["recipe"]["init_from"]["test_top1"], 100 * c["top1"]) for c in (r20, v2_20)]
    assert (f"added {gains[0][1] - gains[0][0]:.2f} (ResNet-20, {gains[0][0]:.2f}% -> {gains[0][1]:.2f}%) and "
            f"{gains[1][1] - gains[1][0]:.2f} points (pre-activation, {gains[1][0]:.2f}% -> {gains[1][1]:.2f}%)") in text
    top1 = 100 * v2_56["top1"]
    assert f"## Pre-activation ResNet-56: {top1:.2f}% after" in text
    assert f"{top1 - 90:.2f} points over the 90% this model was trained for" in text
    assert f"its 91% stretch is missed by {91 - top1:.2f})" in text
    assert f"{top1 - 100 * v2_20['top1']:.2f} points ahead of `resnetv2_20_cifar10`" in text
    assert f"puts ResNet-56 {_paper_accuracy(v2_56) - _paper_accuracy(v2_20):.2f} points ahead of ResNet-20" in text
    hours = v2_56["recipe"]["wall_time_total_s"] / 3600
    assert f"In all it took {hours:.1f} h of wall time on the 2-core AVX-512 CPU, about {2 * hours:.0f} CPU-core-hours" in text
    assert v2_56["recipe"]["hardware"]["cpu_count"] == 2 and v2_56["recipe"]["hardware"]["cpu_flags"]["avx512"]


# --- docs/deployment.md: each zoo model in each runtime, as its card records it --------------------

RUNTIME_COLUMNS = ("saved_model", "onnx", "openvino", "litert")


def _runtime_row(card):
    runtimes = card["runtimes"]
    cells = [f"`{card['name']}`", _percent(card["top1"])]
    for fmt in RUNTIME_COLUMNS:
        diff = runtimes[fmt]["max_abs_diff"]
        cells.append(f"{_percent(runtimes[fmt]['top1'])} ({'0' if diff == 0 else f'{diff:.1e}'})")
    default = runtimes["openvino"]["default_precision"]
    cells.append(f"{_percent(default['top1'])} ({default['max_abs_diff']:.1e}; top-1 differs on "
                 f"{default['top1_differs']} images)")
    return "| " + " | ".join(cells) + " |"


def test_deployment_doc_runtime_table_is_the_cards():
    """The full-split table of `python -m bench.runtime_cards`: one row per card on disk, each the
    card's `runtimes` (re-measured on the CI slice by tests/test_zoo_runtimes.py), and the runtime
    versions the cards name."""
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    table = text.split("| model | Keras (card) |", 1)[1].split("\n\n", 1)[0]
    rows = sorted(line for line in table.splitlines() if line.startswith("| `"))
    assert rows == sorted(_runtime_row(card) for card in CARDS.values())
    versions = {card["runtimes"][fmt]["runtime"] for card in CARDS.values() for fmt in RUNTIME_COLUMNS}
    assert len(versions) == len(RUNTIME_COLUMNS), versions
    onnx, openvino, litert, tf = (next(v for v in versions if v.startswith(p))
                                  for p in ("onnxruntime ", "openvino ", "ai-edge-litert ", "tensorflow"))
    text = " ".join(text.split())
    assert f"Measured with {onnx}, {openvino}, {litert} and {tf} on" in text
    assert "In the f32 columns no image's top-1 class differs from Keras'." in text
    assert {card["runtimes"][fmt]["top1_differs"] for card in CARDS.values() for fmt in RUNTIME_COLUMNS} == {0}

"""README's and docs' figures, each recomputed from its source of truth.

The zoo: README's and docs/zoo.md's tables (one row per card on disk, each number equal to the
card's), the gaps to the papers, the training epochs and hours (the cards' run records and the
committed run.json of earlier cycles), and how many zoo models the wheel carries. The cards' own
full-split numbers are recomputed from the images each model misses in tests/test_zoo_misses.py,
whose CI-slice part tests/test_zoo.py re-measures from the shipped weights (every miss with -m
slow), so a figure changed in the cards and in README alike still fails there. docs/zoo.md's
training story (each cycle's accuracies, times and gains, the JPEG-quality runs, the data) comes
from the committed run.json files, jpeg_quality's runs and bench/results/jpeg_copy.json.
BENCHMARKS.md: its machine table, from every bench JSON's machine record.

README's prose: what `keras-preact predict` prints for docs/samples/cat.jpg (computed from the
shipped weights), the training-speed paragraph (the step times in bench/results/cpu_training.json,
the epoch time in a card), the memory-efficient DenseNet's batches (bench/results/densenet_memory.json,
also for docs/hardware.md), the JPEG quality of the data (bench/results/jpeg_copy.json), the
install figures (setup.cfg), the keras.applications networks (the registry) and a quoted error
message (the builder), the bottleneck units of resnetv2_50 / resnet50v2 (the registry's specs). The
wheel's size is checked where the wheel is built (tests/test_package.py).
docs/deployment.md: the zoo models' numbers in each runtime (the cards' `runtimes`), the latency
table and its prose (bench/results/serving_latency.json), the input limits, tolerances and int8
figures (keras_preact.serving, runtimes, quantization, the tests' own settings).
docs/hardware.md: the performance summary and the machines (bench/results/train_speed*.json,
serving_latency.json, input_pipeline.json, densenet_memory.json, every bench's machine record).
docs/reproductions.md: the identity-mappings grid's findings (its committed run.json and gates.json).
docs/training.md: the CPU recipes (configs.py, the ResNetV2-56 run.json), the fused batch norm's
speed-up (cpu_training.json), checkpoint and carry sizes (MEASURED). docs/gpu.md: sizes and
estimates that follow from the data (jpeg_copy.json) and the networks (MEASURED); its one-off
measurements, with no committed record, are dated."""

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


@pytest.mark.parametrize("name", ["resnetv2_56_cifar10", "resnetv2_164_cifar10", "densenet_bc_100_12_cifar10"])
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


def _run(model_dir):
    return _json(f"{model_dir}/run.json")


def _pct(fraction, digits=2):
    return f"{100 * fraction:.{digits}f}%"


def test_zoo_doc_data_section_is_the_jpeg_copy_bench():
    """'all 60,000 carry libjpeg's quality-75 tables and 4:2:0 ... in 2.31 bits per pixel':
    bench/results/jpeg_copy.json, every file of both splits."""
    splits = _json("bench/results/jpeg_copy.json")["splits"].values()
    files = sum(s["files"] for s in splits)
    [quality] = {q for s in splits for q in s["quality"]}
    assert {k for s in splits for k in s["subsampling"]} == {"4:2:0"}
    assert {k for s in splits for k in s["sizes"]} == {"32x32"}  # 4:2:0 at 32x32: colour at 16x16
    bits = sum(s["bits_per_pixel"] * s["files"] for s in splits) / files
    text = _text("docs/zoo.md")
    assert (f"all {files:,} carry libjpeg's quality-{quality} tables and 4:2:0 chroma subsampling (the colour "
            f"planes stored at 16x16), in {bits:.2f} bits per pixel of coded data against the original's 24") in text
    assert f"quality {quality}, colour at 16x16, {bits:.2f} coded bits per pixel" in text


def test_zoo_doc_resnet_20_story_is_the_run_records():
    """The ResNet-20 section's figures that are not the cards': the 12-epoch model, the training
    accuracy of each cycle's last epoch, and the paper-recipe run (training/results/*/run.json)."""
    text = _text("docs/zoo.md")
    short = _run("training/results/resnetv2_20_cifar_cpu_short")
    assert (f"the {len(short['epochs'])}-epoch pre-activation model ({_pct(short['final']['test_top1'])}) stays in "
            "`training/results/resnetv2_20_cifar_cpu_short/`") in text
    last = {cycle: [_run(f"training/results/{m}_cifar_cpu_{cycle}")["epochs"][-1]["accuracy"] * 100
                    for m in ("resnet_20", "resnetv2_20")] for cycle in ("long", "anneal")}
    assert f"Training accuracy rose from {_span(last['long'], 1)}% to {_span(last['anneal'], 1)}%" in text
    paper = _run("training/results/resnet_20_resnet_cifar")
    epochs, final = paper["epochs"], paper["final"]
    zoo_top1 = 100 * CARDS["resnet_20_cifar10"]["top1"]
    first_decay = paper["schedule"]["boundaries"][0] // paper["steps_per_epoch"] + 1  # the first epoch after it
    after = epochs[first_decay - 1:]  # epochs first_decay .. the end
    assert first_decay == 83
    assert (f"ends at **{_pct(final['test_top1'])}** top-1 ({_pct(final['test_top5'])} top-5) on the test split of "
            f"CIFAR-10 (JPEG q75 copy), {zoo_top1 - 100 * final['test_top1']:.2f} points *below* the zoo model's "
            f"{zoo_top1:.2f}%") in text
    assert (f"({_span([100 * e['accuracy'] for e in epochs[-5:]], 1)}% accuracy on the augmented training batches of "
            "its last epochs)") in text
    assert len({f"{e['val_loss']:.2f}" for e in after[:4]}) == 1
    assert (f"its test loss rises from {after[0]['val_loss']:.2f} after the first decay (epochs 83-86) to "
            f"{epochs[-1]['val_loss']:.2f} at the end while test accuracy stays within "
            f"{_span([100 * e['val_accuracy'] for e in after], 1)}%") in text
    assert f"({paper['wall_time_s'] / 3600:.1f} h of training in its run.json" in text
    stopped = _run("training/results/resnetv2_20_resnet_cifar")
    assert stopped["status"].startswith("interrupted")
    assert f"was stopped after {len(stopped['epochs'])} epochs and is not continued" in text


def test_zoo_doc_jpeg_quality_paragraph_is_the_jpeg_quality_runs():
    """'How much does the JPEG copy cost?': test errors, seeds, PSNR and training accuracy of the
    re-encoded runs and the q75 baseline, collected from their run.json files (as the report is)."""
    from training.experiments import grid, jpeg_quality

    rows = {r["quality"]: r for r in jpeg_quality.collect(str(ROOT / jpeg_quality.RESULTS), grid.Setting(),
                                                          str(ROOT / grid.DEFAULT_RESULTS_DIR))}
    assert sorted(rows) == [25, 50, 75, 90]

    def error(q):
        row = rows[q]
        std = "" if row["test_error_std"] is None else f" ± {row['test_error_std']:.2f}"
        seeds = "one seed" if row["seeds"] == 1 else f"{row['seeds']} seeds"
        return f"{row['test_error_mean']:.2f}{std}% ({seeds})"

    psnr = {q: rows[q]["psnr_db_vs_q75"] for q in (90, 50, 25)}
    train = [f"{rows[q]['train_accuracy_last_epoch']:.2f}%" for q in (75, 50, 25)]
    text = _text("docs/zoo.md")
    assert (f"re-encoding both splits of the copy at q50 ({psnr[50]:.1f} dB PSNR against the copy) raises "
            f"pre-activation ResNet-20's 10-epoch test error from {error(75)} to {error(50)}, and at q25 "
            f"({psnr[25]:.1f} dB) to {error(25)}, with training accuracy falling too ({' -> '.join(train)}); "
            f"the control, a q90 re-encode that adds little ({psnr[90]:.1f} dB), gives "
            f"{rows[90]['test_error_mean']:.2f}%") in text
    assert f"At this scale a JPEG distortion of {psnr[25]:.0f}-{psnr[50]:.0f} dB PSNR" in text


def test_zoo_doc_resnet_56_cycles_are_the_run_records():
    """Each cycle's test accuracy at the epochs the text names, its training accuracy, time and
    the gains between cycles (training/results/resnetv2_56_cifar_cpu_*/run.json)."""
    text = _text("docs/zoo.md")
    deep, anneal, cutout, ema = (_run(f"training/results/resnetv2_56_cifar_cpu_{c}")
                                 for c in ("deep", "anneal", "cutout", "anneal_ema"))

    def at(run, epoch, digits=1):
        return _pct(run["epochs"][epoch - 1]["val_accuracy"], digits)

    def top1(run):
        return 100 * run["final"]["test_top1"]

    assert len(deep["epochs"]) == 60 and deep["final"]["test_top1"] == deep["epochs"][-1]["val_accuracy"]
    assert f"stretched to 60 epochs, the number planned from the measured epoch time; it ended at {top1(deep):.2f}%" in text
    assert (f"({at(deep, 42)} at epoch 42, {at(deep, 56)} at 56, {at(deep, 60, 2)} at 60) while training accuracy "
            f"on augmented batches reached {_pct(deep['epochs'][-1]['accuracy'], 1)}") in text
    assert len(anneal["epochs"]) == 30
    high = [100 * e["val_accuracy"] for e in anneal["epochs"][1:] if e["lr"] > 0.03]
    assert (f"falls to {at(anneal, 1, 0)} after its first epoch and stays at {min(high):.0f}-{max(high):.0f}% while "
            "the lr is above 0.03") in text
    v2_20 = CARDS["resnetv2_20_cifar10"]
    assert (f"{at(anneal, 21)} at epoch 21, {at(anneal, 27)} at 27, {at(anneal, 30, 2)} at 30, "
            f"+{top1(anneal) - top1(deep):.2f} points over the first cycle (ResNet-20: "
            f"+{100 * (v2_20['top1'] - v2_20['recipe']['init_from']['test_top1']):.2f}), with training "
            f"accuracy at {_pct(anneal['epochs'][-1]['accuracy'], 1)}") in text
    assert f"fit its augmented training set ({_pct(anneal['epochs'][-1]['accuracy'], 1)})" in text
    median = statistics.median(e["seconds"] for e in cutout["epochs"])
    assert (f"restart (warm-up to lr 0.05, linear decay to 0) over {len(cutout['epochs'])} epochs" in text
            and f"It ran in one sitting, {cutout['wall_time_s'] / 3600:.1f} h ({median:.0f} s a median epoch" in text)
    high = sorted(100 * e["val_accuracy"] for e in cutout["epochs"][1:] if e["lr"] > 0.02)
    assert (f"Test accuracy fell to {at(cutout, 1)} after the first epoch, was {high[1]:.0f}-{high[-1]:.0f}% "
            f"({high[0]:.0f}% once) while the lr was above 0.02") in text
    assert (f"{at(cutout, 26)} at epoch 26, {at(cutout, 30)} at 30, {at(cutout, 34, 2)} at 34, "
            f"**{at(cutout, 36, 2)}** at 36, +{top1(cutout) - top1(anneal):.2f} points over the second cycle, "
            f"with training accuracy (on cut-out batches) at {_pct(cutout['epochs'][-1]['accuracy'], 1)} instead of "
            f"{_pct(anneal['epochs'][-1]['accuracy'], 1)}") in text
    assert top1(cutout) == 100 * CARDS["resnetv2_56_cifar10"]["top1"]  # the zoo file is this cycle's
    median = statistics.median(e["seconds"] for e in ema["epochs"])
    assert f"`cifar_cpu_anneal` with `--epochs={len(ema['epochs'])} --learning_rate=0.03 --ema_momentum=0.999`" in text
    assert (f"{ema['wall_time_s'] / 3600:.1f} h ({median:.0f} s a median epoch). It ended at **{top1(ema):.2f}%** "
            f"({_pct(ema['final']['test_top5'])} top-5), {top1(anneal) - top1(ema):.2f} points *below* the second "
            f"cycle, while training accuracy on augmented batches reached {_pct(ema['epochs'][-1]['accuracy'], 1)}") in text


def test_zoo_doc_resnet_164_story_is_its_run_record():
    """The flagship's heading, its gaps to issue 35's targets and to ResNetV2-56, its epoch times,
    the monitoring evaluations in the session table and the last epoch's training accuracy
    (training/results/resnetv2_164_cifar_cpu_resnetv2_164/run.json, the run the card was published from)."""
    card, v2_56 = CARDS["resnetv2_164_cifar10"], CARDS["resnetv2_56_cifar10"]
    run = _run("training/results/resnetv2_164_cifar_cpu_resnetv2_164")
    assert run["wall_time_s"] == card["recipe"]["wall_time_s"] and run["final"]["test_top1"] == card["top1"]
    epochs, top1 = run["epochs"], 100 * card["top1"]
    text = _text("docs/zoo.md")
    assert f"## Pre-activation ResNet-164: {top1:.2f}% after one {len(epochs)}-epoch cycle" in text
    assert (f"It is {top1 - 100 * v2_56['top1']:.2f} points ahead of `resnetv2_56_cifar10` "
            f"({str(cards._epoch_count(v2_56)).split()[0]} epochs), and it misses issue 35's 92.0% by {92 - top1:.2f} "
            f"points (its 93.0% goal by {93 - top1:.2f})") in text
    median = statistics.median(e["seconds"] for e in epochs)
    hours = len(epochs) * median / 3600
    assert (f"It took {len(epochs)} epochs, {median:.0f} s a median epoch: about {hours:.1f} h of the 2-core "
            f"CPU at that pace (about {2 * hours:.0f} CPU-hours, the issue's budget), "
            f"{run['wall_time_s'] / 3600:.1f} h of wall time") in text
    assert f"{len(epochs) / 164:.0%} of the paper's 164" in text
    assert f"the last epoch's accuracy on Cutout batches was {_pct(epochs[-1]['accuracy'])}" in text
    monitored = {e["epoch"]: _pct(e["val_accuracy"]) for e in epochs if "val_accuracy" in e}
    assert sorted(monitored) == list(range(5, len(epochs) + 1, 5))
    for epoch, accuracy in monitored.items():
        assert f"epoch {epoch}: {accuracy}" in text, (epoch, accuracy)
    assert f"recomputed once more: {top1:.2f}%" in text
    assert "training/carry/r164.npz` between machines, removed once published" in text
    assert not (ROOT / "training/carry/r164.npz").exists()  # published: the carry file is gone


def test_zoo_doc_densenet_story_is_its_run_record():
    """The last epochs of the grid's DenseNet-BC-100 run and what 300 epochs would take at its
    epoch times (its committed run.json)."""
    card = CARDS["densenet_bc_100_12_cifar10"]
    run = _run("training/experiments/results/cpu_d20_e10/densenet_bc_100_12/seed0")
    assert run["wall_time_s"] == card["recipe"]["wall_time_s"]  # the run the card was published from
    epochs = run["epochs"]
    minutes = [e["seconds"] / 60 for e in epochs]
    paper_epochs = 300
    assert len(epochs) == 10 and run["final"]["test_top1"] == card["top1"]
    text = _text("docs/zoo.md")
    assert (f"accuracy on the augmented training batches was {_pct(epochs[-1]['accuracy'])} in the last epoch "
            f"(test accuracy {' -> '.join(_pct(e['val_accuracy']) for e in epochs[-3:])} over epochs 8-10") in text
    assert (f"The paper trains {paper_epochs // len(epochs)} times as many epochs, which would take "
            f"{paper_epochs * min(minutes) / 1440:.0f}-{paper_epochs * max(minutes) / 1440:.0f} days of these CPUs "
            f"({min(minutes):.0f}-{max(minutes):.0f} min an epoch in this run's `train.log`)") in text


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


# --- docs/hardware.md: the performance summary, from the benches' step times ----------------------

def _step(config):
    """A configuration's median step (s) over every timed step, as the bench takes it."""
    return statistics.median(config["step_seconds"])


def _config(pair, role, **fields):
    """The one configuration of `pair` in role `role` whose fields equal `fields`."""
    found = [c for c in pair["configs"] if c["role"] == role and all(c.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (pair["pair"], role, fields, len(found))
    return found[0]


def _pairs(bench):
    return {p["pair"]: p for p in bench["pairs"]}


def _day(bench):
    return bench["date"][:10]


def _avx2_only(bench):
    machine = bench["machine"]
    return machine["cpu"] == "AMD EPYC" and machine["cores"] == 2 and machine["avx2"] and not machine["avx512"]


def _span(values, digits):
    return f"{min(values):.{digits}f}-{max(values):.{digits}f}"


def test_hardware_doc_training_step_ratios_are_the_train_speed_bench():
    """Ours ÷ theirs of the four pairs (theirs' median step over ours'), the bench's date and
    machine, and the Keras example's multiply-adds over the paper network's (ours, whose count
    is registry's MEASURED, rebuilt by tests/test_param_counts.py)."""
    from keras_preact.models.registry import MEASURED

    bench = _json("bench/results/train_speed.json")
    pairs = _pairs(bench)
    assert _avx2_only(bench) and not bench["quick"]
    ratio = {name: _step(_config(p, "theirs")) / _step(_config(p, "ours")) for name, p in pairs.items()}
    assert {pairs[n]["size"] for n in ("resnet50v2", "densenet121")} == {224}
    example, ours = _config(pairs["cifar_resnetv2"], "theirs"), _config(pairs["cifar_resnetv2"], "ours")
    assert example["impl"] == {"kind": "keras_example_resnet_v2", "depth": 164, "widths": "example"}
    assert ours["multiply_adds"] == MEASURED["resnetv2_164"][2]
    text = _text("docs/hardware.md")
    assert (f"**Training step** ({_day(bench)}, AVX2), ours ÷ theirs, each with its defaults: ResNet50V2 "
            f"{ratio['resnet50v2']:.2f}x and DenseNet121 {ratio['densenet121']:.2f}x against keras.applications "
            f"at 224x224; pre-act ResNet-164 {ratio['cifar_resnetv2']:.2f}x against the Keras example's "
            f"`resnet_v2` (whose bottlenecks, 16/64/128 wide instead of the paper's 16/32/64, take "
            f"{example['multiply_adds'] / ours['multiply_adds']:.1f}x the paper network's multiply-adds) and "
            f"DenseNet-BC-100 {ratio['cifar_densenet']:.2f}x against titu1994/DenseNet on CIFAR.") in text
    # The widths the sentence names are the reference model's (bench/reference_models.py).
    source = (ROOT / "bench" / "reference_models.py").read_text(encoding="utf-8")
    assert 'widths: "example" (bottleneck widths 16, 64, 128' in source


def test_hardware_doc_memory_figures_name_the_bench_day():
    bench = _json("bench/results/densenet_memory.json")
    assert _avx2_only(bench)
    assert f"(`memory_efficient=True`; {_day(bench)}, AVX2): a DenseNet-BC-100" in _text("docs/hardware.md")


def test_hardware_doc_serving_figures_are_the_serving_latency_bench():
    """Batch 1, p50: keras.applications' `model.predict(preprocess_input(x))` over our SavedModel
    (uint8 pixels), and ours over their exported SavedModel plus Python preprocessing (uint8
    against uint8, JPEG bytes against PIL decoding), for both networks."""
    bench = _json("bench/results/serving_latency.json")
    assert bench["machine"]["avx512_bf16"] and not bench["quick"]
    faster, slower = [], []
    for model in bench["models"]:
        stats = next(b for b in model["batches"] if b["batch"] == 1)["stats"]
        faster.append(stats["theirs_predict"]["p50_ms"] / stats["ours_uint8"]["p50_ms"])
        slower += [stats["ours_uint8"]["p50_ms"] / stats["theirs_savedmodel"]["p50_ms"],
                   stats["ours_bytes"]["p50_ms"] / stats["theirs_pil_savedmodel"]["p50_ms"]]
    assert sorted(m["model"] for m in bench["models"]) == ["densenet121", "resnet50v2"]
    assert (f"**Serving** ({_day(bench)}, AVX-512): the exported SavedModel (uint8 or JPEG bytes in, "
            f"preprocessing inside) answers a batch-1 request of ResNet50V2 or DenseNet121 {_span(faster, 1)}x "
            f"faster than keras.applications' documented `model.predict(preprocess_input(x))`, and in "
            f"{_span(slower, 2)}x the time of their exported model plus Python preprocessing.") in _text("docs/hardware.md")


def test_hardware_doc_input_pipeline_figure_is_the_input_pipeline_bench():
    """The default pipeline's images/s over the synthetic step's (batch / median step)."""
    bench = _json("bench/results/input_pipeline.json")
    assert _avx2_only(bench)
    alone = next(a for a in bench["pipeline_alone"] if a["variant"] == "in memory (default cache=auto), prefetch")
    step = next(s for s in bench["training_step"] if s["feed"].startswith("synthetic"))
    step_images_per_second = bench["batch"] / statistics.median(step["step_seconds"])
    ratio = alone["batches"] * bench["batch"] / alone["seconds"] / step_images_per_second
    assert (bench["model"], bench["batch"], bench["dataset"]) == ("resnetv2_20", 128, "CIFAR-10 (JPEG q75 copy)")
    assert (f"**Input pipeline** ({_day(bench)}, AVX2): the CIFAR-10 (JPEG q75 copy) pipeline delivers "
            f"{ratio:.0f}x the images/s the pre-act ResNet-20 training step consumes (batch 128).") in _text("docs/hardware.md")


def _option_ratios(bench):
    """{(pair, policy, jit): ours' step under that option ÷ ours' default step (float32, no XLA)},
    and {the same key: per-round ratios}."""
    ratios, rounds = {}, {}
    for name, pair in _pairs(bench).items():
        base = _config(pair, "ours")
        assert (base["policy"], base["jit"]) == ("float32", False)
        for option in (c for c in pair["configs"] if c["role"] == "ours_option"):
            key = (name, option["policy"], option["jit"])
            ratios[key] = _step(option) / _step(base)
            rounds[key] = [o / b for o, b in zip(option["round_medians"], base["round_medians"])]
    return ratios, rounds


def test_hardware_doc_precision_sweeps_are_the_train_speed_sweeps():
    """The 'Defaults' bullet and the CPU-recipes paragraph: each option's step over float32
    without XLA in the AVX2 sweep (every one slower, so float32 without XLA is recommended for
    all four pairs) and bfloat16 without XLA in the AVX512_BF16 sweep."""
    avx2, bf16 = _json("bench/results/train_speed_sweep.json"), _json("bench/results/train_speed_sweep_avx512.json")
    assert _avx2_only(avx2) and bf16["machine"]["avx512_bf16"] and not bf16["machine"]["amx"]
    ratios, _ = _option_ratios(avx2)
    assert len(_pairs(avx2)) == 4 and min(ratios.values()) > 1
    assert all((p["recommended"]["policy"], p["recommended"]["jit_compile"]) == ("float32", False)
               for p in avx2["pairs"] + bf16["pairs"])
    xla = [r for (_, policy, jit), r in ratios.items() if (policy, jit) == ("float32", True)]
    bf16_plain = [r for (_, policy, jit), r in ratios.items() if (policy, jit) == ("mixed_bfloat16", False)]
    bf16_xla = [r for (_, policy, jit), r in ratios.items() if (policy, jit) == ("mixed_bfloat16", True)]
    assert len(xla) == len(bf16_plain) == len(bf16_xla) == 4
    on_bf16, rounds = _option_ratios(bf16)
    r164, dense = (on_bf16[pair, "mixed_bfloat16", False] for pair in ("cifar_resnetv2", "cifar_densenet"))
    # "not faster in every round": in some round of each pair bf16 was not faster than float32.
    assert all(max(rounds[pair, "mixed_bfloat16", False]) >= 1 for pair in ("cifar_resnetv2", "cifar_densenet"))
    text = _text("docs/hardware.md")
    assert (f"on the AVX2 CPU float32 without XLA is the fastest training setting for all four models above "
            f"({_day(avx2)} sweep): XLA made the step {_span(xla, 2)}x slower, `mixed_bfloat16` "
            f"{_span(bf16_plain, 1)}x slower without XLA and {_span(bf16_xla, 2)}x with it (no bfloat16 hardware "
            f"there). Measured again on {_day(bf16)} on a CPU with AVX512_BF16: `mixed_bfloat16` without XLA ran "
            f"pre-act ResNet-164 at {r164:.2f}x and DenseNet-BC-100 at {dense:.2f}x the float32 step time, not "
            f"faster in every round, so float32 stays the default.") in text
    assert f"bf16 without XLA is several times slower there (the sweep above: {_span(bf16_plain, 1)}x)" in text
    assert (f"On a CPU with AVX512_BF16 ({_day(bf16)}, BENCHMARKS.md \"The sweep again on an AVX512_BF16 CPU\") "
            f"bf16 without XLA was within {_span([r164, dense], 2)}x of float32") in text


def test_hardware_doc_machines_are_the_benches_machines():
    """'until 2026-11-25 AVX2/FMA only, on 2026-11-29 AVX-512 with AVX512_BF16 (..., 2.4-2.8x
    faster training steps)': the benches' recorded machines and dates, and our float32 step
    in the two sweeps of the CIFAR pairs (AVX2 over AVX512_BF16)."""
    benches = [_json(p.relative_to(ROOT)) for p in sorted((ROOT / "bench" / "results").glob("*.json"))]
    dated = [(_day(b), b["machine"]) for b in benches if "machine" in b and "date" in b]
    last_avx2 = max(day for day, m in dated if m["avx2"] and m["fma"] and not m["avx512"])
    first_bf16 = min(day for day, m in dated if m["avx512_bf16"])
    amd, intel = ([m for _, m in dated if m["cpu"].startswith(v)] for v in ("AMD EPYC", "Intel(R) Xeon(R)"))
    assert len(amd) + len(intel) == len(dated) and all(m["cores"] == 2 for _, m in dated)
    assert not any(m["amx"] for m in amd) and all(m["amx"] and m["avx512"] for m in intel)
    first_intel = min(day for day, m in dated if m in intel)
    hardware = CARDS["densenet_bc_100_12_cifar10"]["recipe"]["hardware"]
    assert hardware["cpu"].startswith("Intel(R) Xeon(R)") and hardware["cpu_flags"]["amx"]
    avx2, bf16 = (_pairs(_json(f"bench/results/{n}.json")) for n in ("train_speed_sweep", "train_speed_sweep_avx512"))
    faster = [_step(_config(avx2[p], "ours")) / _step(_config(bf16[p], "ours")) for p in bf16]
    assert (f"until {last_avx2} AVX2/FMA only (Zen 3), on {first_bf16} AVX-512 with AVX512_BF16 (Zen 4, "
            f"{_span(faster, 1)}x faster training steps). Neither has AMX. Some sessions ran on a 2-core Intel "
            f"Xeon with AVX-512 and AMX instead (from {first_intel}): it trained epochs 9-10 of the zoo's "
            f"DenseNet-BC-100") in _text("docs/hardware.md")


def _benchmarks_machines_table():
    """BENCHMARKS.md's machine table: one row per machine the JSONs of bench/results/ record (as
    each result block names it, bench.common.machine_line), its results and days, first used first."""
    from bench.common import machine_line

    machines = {}
    for path in sorted((ROOT / "bench" / "results").glob("*.json")):
        bench = _json(path.relative_to(ROOT))
        if "machine" in bench and "date" in bench:
            machines.setdefault(machine_line(bench["machine"]), []).append((_day(bench), path.stem))
    rows = ["| machine (as its result blocks name it) | results (`bench/results/*.json`) | measured |",
            "|---|---|---|"]
    for line, runs in sorted(machines.items(), key=lambda item: min(item[1])):
        days = sorted(day for day, _ in runs)
        names = ", ".join(f"`{stem}`" for _, stem in sorted(runs))
        rows.append(f"| {line} | {names} | {days[0]}{'' if days[0] == days[-1] else f' to {days[-1]}'} |")
    return "\n".join(rows)


def test_benchmarks_machine_section_is_the_benches_machines():
    """BENCHMARKS.md's 'Machine' section: which machine measured which result, and what they share
    (memory, kernel, Python and library versions), from every JSON's machine record."""
    benches = [_json(p.relative_to(ROOT)) for p in sorted((ROOT / "bench" / "results").glob("*.json"))]
    machines = [b["machine"] for b in benches if "machine" in b]
    shared = {(m["memory_gib"], m["cores"], m["python"], m["platform"].split("-")[1],
               *(m["versions"][k] for k in ("tensorflow", "keras", "jax", "numpy"))) for m in machines}
    assert len(shared) == 1, shared
    memory, cores, python, kernel, tensorflow, keras, jax, numpy = shared.pop()
    text = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")
    section = text.split("\n## Machine\n", 1)[1].split("\n## ", 1)[0]
    assert _benchmarks_machines_table() in section
    assert (f"Every machine had {cores} cores, {memory} GiB of memory and the same software: Linux "
            f"{'.'.join(kernel.split('.')[:2])} (x86_64), Python {python}, tensorflow-cpu {tensorflow}, "
            f"Keras {keras}, JAX {jax} (CPU), NumPy {numpy}") in " ".join(section.split())


# --- docs/deployment.md: latency (bench/results/serving_latency.json), limits, agreement -----------

LATENCY_COLUMNS = ("saved_model", "onnx", "openvino", "litert")


def _ms(value):
    """Three significant figures, as the latency table writes them (0.78, 30.1, 291)."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def test_deployment_doc_latency_table_is_the_serving_latency_bench():
    """Each zoo model's row at batch 1 and 32: the median ms in each runtime and, in brackets,
    the SavedModel's median over it; the machine, load and threads; and the prose's ranges."""
    bench = _json("bench/results/serving_latency.json")
    rows, batch1, batch32, batch32_p90, overhead = [], [], [], [], []
    for result in bench["runtimes"]:
        assert result["settings"]["litert"] == {"num_threads": 2}
        assert result["settings"]["onnx"] == {"intra_op_num_threads": "default"}
        for batch in result["batches"]:
            stats = batch["stats"]
            base = stats["saved_model"]
            cells = [f"`{result['zoo_model']}`", str(batch["batch"]), _ms(base["p50_ms"])]
            for fmt in LATENCY_COLUMNS[1:]:
                ratio = base["p50_ms"] / stats[fmt]["p50_ms"]
                cells.append(f"{_ms(stats[fmt]['p50_ms'])} ({ratio:.2f}x)")
                (batch1 if batch["batch"] == 1 else batch32).append(ratio)
                if batch["batch"] == 32:
                    batch32_p90.append(base["p90_ms"] / stats[fmt]["p90_ms"])
            if batch["batch"] == 1 and result["zoo_model"] in ("resnet_20_cifar10", "resnetv2_20_cifar10"):
                overhead.append(base["p50_ms"] - min(stats[fmt]["p50_ms"] for fmt in LATENCY_COLUMNS[1:]))
            rows.append("| " + " | ".join(cells) + " |")
    raw = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    table = raw.split("| model | batch | TF SavedModel | ONNX Runtime | OpenVINO, f32 | LiteRT |", 1)[1].split("\n\n", 1)[0]
    assert sorted(line for line in table.splitlines() if line.startswith("| `")) == sorted(rows)
    later = ("resnetv2_56_cifar10", "resnetv2_164_cifar10")  # published after the bench ran
    assert sorted(r["zoo_model"] for r in bench["runtimes"]) == sorted(n for n in CARDS if n not in later)
    assert (f"`{later[0]}` and `{later[1]}` were published after this run and are not in it"
            in " ".join(raw.split()))
    cpu, loads = bench["cpu_detail"], [r["loadavg"][0] for r in bench["runtimes"]]
    assert cpu["cpus"] == 2 and "Zen 5" in cpu["text"]
    text = " ".join(raw.split())
    assert (f"measured {_day(bench)} on an AMD EPYC (family {cpu['family']}, Zen 5) with {cpu['cpus']} CPUs, shared "
            f"(load average {min(loads):.1f}-{max(loads):.1f}), default threads (LiteRT: 2):") in text
    # The prose: batch 1 ratios (whole x), TensorFlow's per-call overhead, batch 32's p50 and p90.
    assert (f"At batch 1 the three are {min(batch1):.0f}-{max(batch1):.0f}x faster than TensorFlow, whose "
            f"per-call overhead (about {statistics.mean(overhead):.0f} ms here: the ResNet-20s' SavedModel median "
            f"less the fastest runtime's) is most of a small model's time; at batch 32 the arithmetic dominates and "
            f"they are within {_span(batch32, 1)}x of it (p90 at batch 32, in BENCHMARKS.md, is noisier: "
            f"{_span(batch32_p90, 1)}x).") in text
    over_tf = {(r["zoo_model"], b["batch"], fmt): b["stats"][fmt]["p50_ms"] / b["stats"]["saved_model"]["p50_ms"]
               for r in bench["runtimes"] for b in r["batches"] for fmt in LATENCY_COLUMNS[1:]}
    slowest = max(over_tf, key=over_tf.get)
    assert slowest == ("densenet_bc_100_12_cifar10", 32, "onnx"), slowest
    assert (f"ONNX Runtime's default thread pool suffers most: at batch 32 it took {over_tf[slowest]:.1f}x "
            f"TensorFlow's time on DenseNet-BC, the slowest of all the rows") in text


def test_deployment_doc_agreement_and_precision_figures_are_the_cards():
    """The tolerance the export and tests/test_runtimes.py hold each format to, the largest f32
    difference over the cards' full-split runtimes, and what OpenVINO's default precision did."""
    from keras_preact.runtimes import AGREEMENT_TOLERANCE

    runtimes = [card["runtimes"] for card in CARDS.values()]
    largest = max(r[fmt]["max_abs_diff"] for r in runtimes for fmt in RUNTIME_COLUMNS)
    default = [r["openvino"]["default_precision"] for r in runtimes]
    text = _text("docs/deployment.md")
    assert (f"probability to be within {AGREEMENT_TOLERANCE:.0e} of Keras' (`keras_preact.runtimes.AGREEMENT_TOLERANCE`)"
            ).replace("e-0", "e-") in text
    assert (f"On the full test split the largest |probability difference| of any f32 export from Keras is "
            f"{largest:.1e} and no image's top-1 class differs (the table below).") in text
    assert (f"the default changed the probabilities by up to {max(d['max_abs_diff'] for d in default):.3f} and the "
            f"top-1 class of {min(d['top1_differs'] for d in default)}-{max(d['top1_differs'] for d in default)} "
            f"of the 10,000 test images (table below).") in text
    assert {r[fmt]["num_examples"] for r in runtimes for fmt in RUNTIME_COLUMNS} == {10_000}
    # "written by TensorFlow 2.21 (the version in each card's `versions`)"
    tf = _pin("tf-cpu", "tensorflow-cpu")
    assert {c["versions"]["publish"]["tensorflow"].rsplit(".", 1)[0] for c in CARDS.values()} == {tf}
    assert f"The SavedModels are written by TensorFlow {tf} (the version in each card's" in text


def test_deployment_doc_input_limits_are_the_servings():
    """The pixel limit (and an example over it), its decoded size, the error it quotes, the
    top-k, and how many inputs the fuzz test tries (its hypothesis settings)."""
    from keras_preact import serving
    from keras_preact.export import TOP_K

    limit = serving.DEFAULT_MAX_PIXELS
    text = _text("docs/deployment.md")
    example = re.search(rf"more than {limit:,} \(e\.g\. (\d+) x (\d+)\)", text)
    assert example and int(example[1]) * int(example[2]) > limit, example
    assert f"the limit is 1 to {limit} pixels`, before any pixel is decoded" in text
    assert (f"`keras_preact.serving.DEFAULT_MAX_PIXELS`: at 3 bytes a pixel it bounds an image's decoded pixels at "
            f"{3 * limit / 1e6:.0f} MB.") in text
    fuzz = (ROOT / "tests" / "test_serving.py").read_text(encoding="utf-8")
    examples = int(re.search(r"@settings\(max_examples=(\d+),[^)]*\)\s*@given\(data=fuzz_inputs\)", fuzz)[1])
    assert f"The decode path is fuzz-tested with {examples:,} random and mutated files (tests/test_serving.py)." in text
    assert f"k is {TOP_K}, or the class count when a model has fewer than {TOP_K} classes." in text


# --- docs/reproductions.md: the identity-mappings grid's findings, from its committed run.json ------

GRID = ROOT / "training" / "experiments" / "results" / "cpu_d20_e10"


def _grid_errors(experiment):
    """Test error (%) of each finished seed of a grid experiment, from its run.json."""
    records = [json.loads(p.read_text()) for p in sorted((GRID / experiment).glob("seed*/run.json"))]
    return [100 * r["final"]["test_error"] for r in records if r["status"] == "finished"]


def _pm(experiment):
    errors = _grid_errors(experiment)
    return f"{statistics.mean(errors):.2f} ± {statistics.stdev(errors):.2f}%"


def _two_standard_errors(a, b):
    a, b = _grid_errors(a), _grid_errors(b)
    return 2 * (statistics.variance(a) / len(a) + statistics.variance(b) / len(b)) ** 0.5


def _gates(experiment):
    """Each finished seed's mean gate per unit (its gates.json)."""
    return [json.loads(p.read_text())["units"] for p in sorted((GRID / experiment).glob("seed*/gates.json"))]


def test_reproductions_doc_table1_findings_are_the_grid_runs():
    from training.experiments import grid as G

    experiments = G.build_grid(G.Setting())
    records = [json.loads(p.read_text()) for p in GRID.glob("*/seed*/run.json")]
    assert len(records) == sum(len(e.seeds) for e in experiments)
    assert {r["status"] for r in records} == {"finished"} and {len(r["epochs"]) for r in records} == {10}
    mean = {e.name: statistics.mean(_grid_errors(e.name)) for e in experiments}
    table1 = [e.name for e in experiments if any(row.table == "table1" for row in e.rows)]
    assert min(table1, key=mean.get) == "original_identity"
    gates = _gates("shortcut_only_gating_m6")
    assert len(gates) == len(_grid_errors("shortcut_only_gating_m6")) == 3
    near = statistics.mean(g for seed in gates for g in seed.values())
    assert abs(mean["shortcut_only_gating_m6"] - mean["original_identity"]) < _two_standard_errors(
        "shortcut_only_gating_m6", "original_identity")  # "ties it"
    closed = [sum(g < 0.01 for g in _gates(name)[0].values())
              for name in ("exclusive_gating_m6", "exclusive_gating_m7")]
    assert {len(_gates(name)[0]) for name in ("exclusive_gating_m6", "exclusive_gating_m7")} == {9}
    assert min(mean["exclusive_gating_m6"], mean["exclusive_gating_m7"]) > G.FAIL_THRESHOLD
    text = _text("docs/reproductions.md")
    assert f"(ResNet-20, 10 epochs a run, CIFAR-10 (JPEG q75 copy); all {len(records)} of the grid's runs)" in text
    assert (f"v2 Table 1: the identity shortcut has the lowest error ({_pm('original_identity')}, "
            f"{len(_grid_errors('original_identity'))} seeds), as in the paper; shortcut-only gating at bias -6, "
            f"whose gates stay near {near:.3f} so it is nearly the identity, ties it ({_pm('shortcut_only_gating_m6')}). "
            f"Exclusive gating at bias -6/-7 fails ({mean['exclusive_gating_m6']:.2f}%, {mean['exclusive_gating_m7']:.2f}%; "
            f"{closed[0]} and {closed[1]} of 9 units keep their gate below 0.01)") in text


def test_reproductions_doc_table2_findings_are_the_grid_runs():
    text = _text("docs/reproductions.md")
    preact = statistics.mean(_grid_errors("full_preactivation"))
    for ahead in ("relu_before_addition", "original_identity"):
        assert preact - statistics.mean(_grid_errors(ahead)) > _two_standard_errors("full_preactivation", ahead)
    assert (f"Full pre-activation ({_pm('full_preactivation')}) is behind ReLU-before-addition "
            f"({_pm('relu_before_addition')}) and the original unit ({_pm('original_identity')}), beyond two "
            f"standard errors") in text


def test_reproductions_doc_densenet_findings_are_the_grid_runs():
    """The DenseNet pairs: errors from the run.json files; trainable parameters and multiply-adds
    of the registered networks from MEASURED (rebuilt in test_param_counts), DenseNet-BC-52's
    from the built network (as the report counts them)."""
    from keras_preact.models.registry import MEASURED
    from training.experiments import grid as G

    experiments = {e.name: e for e in G.build_grid(G.Setting())}
    assert experiments["full_preactivation"].model == "resnetv2_20"
    assert dict(experiments["full_preactivation"].kwargs) == {"unit": "full_preactivation", "shortcut": "identity"}
    bc52 = experiments["densenet_bc_52_12"]
    cost = {name: MEASURED[name][1:] for name in ("resnetv2_20", "resnetv2_56", "densenet_bc_100_12")}
    cost["densenet_bc_52_12"] = G.model_stats(bc52.model, bc52.kwargs)
    params = {name: c[0] for name, c in cost.items()}
    error = {name: statistics.mean(_grid_errors(name)) for name in
             ("full_preactivation", "densenet_bc_52_12", "resnetv2_56", "densenet_bc_100_12")}
    assert [len(_grid_errors(n)) for n in error] == [3, 3, 1, 1]
    assert abs(error["densenet_bc_52_12"] - error["resnetv2_56"]) < 2 * statistics.stdev(
        _grid_errors("densenet_bc_52_12"))  # "matches"
    text = _text("docs/reproductions.md")
    assert (f"at matched parameters DenseNet-BC-52 (k=12, {params['densenet_bc_52_12']:,} params) beats ResNetV2-20 "
            f"({params['resnetv2_20']:,}) by {error['full_preactivation'] - error['densenet_bc_52_12']:.2f} points "
            f"({_pm('densenet_bc_52_12')} vs {_pm('full_preactivation')}, 3 seeds each), and it matches ResNetV2-56 "
            f"({params['resnetv2_56']:,} params, {error['resnetv2_56']:.2f}%, one seed) with "
            f"{params['densenet_bc_52_12'] / params['resnetv2_56']:.2f}x the parameters, at "
            f"{cost['densenet_bc_52_12'][1] / cost['resnetv2_20'][1]:.1f}x ResNetV2-20's multiply-adds. At the "
            f"paper's own size, DenseNet-BC-100 (k=12, {params['densenet_bc_100_12']:,} params) beats ResNetV2-56 by "
            f"{error['resnetv2_56'] - error['densenet_bc_100_12']:.2f} points ({error['densenet_bc_100_12']:.2f}% vs "
            f"{error['resnetv2_56']:.2f}%) with {params['densenet_bc_100_12'] / params['resnetv2_56']:.2f}x the "
            f"parameters and {cost['densenet_bc_100_12'][1] / cost['resnetv2_56'][1]:.1f}x the multiply-adds; one seed "
            f"each") in text


def test_readme_counts_the_bottleneck_units_of_resnetv2_50_and_resnet50v2():
    """'`resnetv2_50` and `resnet50v2` have the same 16 bottleneck units': the units per stage
    each registered spec builds (the builder's own resolve_depth), 3 convs a unit plus stem and
    classifier making the depth."""
    from keras_preact.models.residual import CONVS_PER_UNIT, resolve_depth

    layouts = []
    for name in ("resnetv2_50", "resnet50v2"):
        kwargs = get_model_spec(name).kwargs
        block, units = resolve_depth(kwargs["depth"], kwargs.get("blocks"), kwargs.get("block"), kwargs["stem"])
        assert CONVS_PER_UNIT[block] * sum(units) + 2 == kwargs["depth"]
        layouts.append((block, tuple(units)))
    assert layouts[0] == layouts[1] and layouts[0][0] == "bottleneck"
    assert (f"So `resnetv2_50` and `resnet50v2` have the same {sum(layouts[0][1])} bottleneck units, but differ in "
            f"where a stage strides") in _text()


# --- docs/training.md: recipes, fused batch norm, checkpoint and carry sizes ----------------------

def _recipe_row(text, name):
    return re.search(rf"^\| `{name}` \| (.*) \|$", text, re.M)[1]


def test_training_doc_recipe_figures_are_the_configs():
    """The CPU recipes' epochs, warm-up, peak learning rate, decay and Cutout size (configs.py),
    and cifar_cpu_deep's time: 60 median epochs of the zoo ResNetV2-56's first cycle, which
    trained with that recipe on the 2-core AVX-512 CPU (its committed run.json)."""
    from keras_preact.training import configs

    text = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    short, long_, deep, anneal, cutout = (configs.get_config(n) for n in (
        "cifar_cpu_short", "cifar_cpu_long", "cifar_cpu_deep", "cifar_cpu_anneal", "cifar_cpu_cutout"))
    assert {c.lr_schedule for c in (short, long_, deep, anneal, cutout)} == {"onecycle"}
    assert (f"{short.epochs} epochs one-cycle ({short.warmup_epochs:g}-epoch warm-up to {short.learning_rate:g}, "
            f"linear decay to 0), Nesterov, wd {short.weight_decay:.0e}, label smoothing {short.label_smoothing:g}"
            ).replace("e-04", "e-4") in _recipe_row(text, "cifar_cpu_short") and short.nesterov
    for config in (long_, deep):
        assert (config.warmup_epochs, config.learning_rate, config.weight_decay) == (
            short.warmup_epochs, short.learning_rate, short.weight_decay)
        assert _recipe_row(text, config.name).startswith(f"the same schedule over {config.epochs} epochs")
    assert (f"{anneal.warmup_epochs:g}-epoch warm-up to {anneal.learning_rate:g}, linear decay to 0 over "
            f"{anneal.epochs} epochs") in _recipe_row(text, "cifar_cpu_anneal")
    assert cutout.augment == "cifar_cutout" and cutout.learning_rate == anneal.learning_rate
    assert _recipe_row(text, "cifar_cpu_cutout").startswith(
        f"`cifar_cpu_anneal`'s cycle over {cutout.epochs} epochs with Cutout (one {configs.CUTOUT_SIZE}x"
        f"{configs.CUTOUT_SIZE} mean-pixel square")
    first = CARDS["resnetv2_56_cifar10"]["recipe"]["init_from"]
    while first.get("init_from"):
        first = first["init_from"]
    run = _json(f"{first['model_dir']}/run.json")
    assert run["config"]["name"] == "cifar_cpu_deep" and len(run["epochs"]) == deep.epochs
    assert run["hardware"]["cpu_count"] == 2 and run["hardware"]["cpu_flags"]["avx512"]
    median = statistics.median(e["seconds"] for e in run["epochs"])
    assert (f"(about {deep.epochs * median / 3600:.1f} hours for ResNetV2-56 alone on the 2-core AVX-512 CPU: "
            f"{median:.0f} s a median epoch, evaluation included)") in _recipe_row(text, "cifar_cpu_deep")


def test_training_doc_fused_batch_norm_speedup_is_the_cpu_training_bench():
    """'1.4-1.6x faster CPU steps': the composite batch norm's median step over the fused one's,
    for every model of bench/results/cpu_training.json."""
    bench = _json("bench/results/cpu_training.json")
    ratios = []
    for model in bench["models"]:
        rows = {r["name"]: r for r in model["rows"]}
        assert "--nofused_batch_norm" in rows["before"]["what"] and "fused batch norm" in rows["ours"]["what"]
        before, fused = (statistics.median(rows[name]["step_seconds"]) for name in ("before", "ours"))
        ratios.append(before / fused)
    assert len(ratios) == 4
    assert f"(default: on; same function and weights, {_span(ratios, 1)}x faster CPU steps)" in _text("docs/training.md")


def test_training_doc_checkpoint_and_carry_sizes_follow_from_the_parameter_counts():
    """ResNetV2-56's checkpoint: 4 bytes for each variable (weights and batch-norm statistics)
    and for each trainable one's momentum buffer; its carry file: 2 bytes (float16) for each
    variable, which savez_compressed barely shrinks (random float16 mantissas). The counts are
    registry's MEASURED, rebuilt by test_param_counts."""
    from keras_preact.models.registry import MEASURED

    total, trainable, _ = MEASURED["resnetv2_56"]
    text = _text("docs/training.md")
    assert (f"A checkpoint holds float32 weights and momentum buffers ({4 * (total + trainable) / 1e6:.0f} MB for "
            f"ResNetV2-56)") in text
    assert f"training/carry/r56.npz # {2 * total / 1e6:.1f} MB for ResNetV2-56" in text
    source = (ROOT / "training" / "carry.py").read_text(encoding="utf-8")
    assert "a.astype(np.float16) if a.dtype == np.float32" in source and "np.savez_compressed" in source


# --- docs/gpu.md: what follows from the data and the networks; dated measurements stay dated -------

def test_gpu_doc_sizes_follow_from_the_data_and_the_parameter_counts():
    """The raw pixels and JPEG bytes of the copy (bench/results/jpeg_copy.json: every file's
    size and shape), the multiply-adds and checkpoint sizes of the two networks (MEASURED;
    train_jax's checkpoint: 4 bytes for every variable and every momentum buffer), DenseNet-BC's
    steps and batch norms, and the estimates' arithmetic from the images/s they assume."""
    import math

    from keras_preact.models.registry import MEASURED
    from keras_preact.training import configs

    splits = _json("bench/results/jpeg_copy.json")["splits"]
    assert all(set(s["sizes"]) == {"32x32"} for s in splits.values())
    images = sum(s["files"] for s in splits.values())
    jpeg_bytes = sum(s["files"] * s["mean_bytes"] for s in splits.values())
    train = splits["train"]["files"]
    text = _text("docs/gpu.md")
    assert f"the {images:,} JPEG files of CIFAR-10 (JPEG q75 copy) concatenated" in text
    assert (f"Raw uint8 pixels are {images * 32 * 32 * 3 / 1e6:.0f} MB ({images * 32 * 32 * 3 / 2**20:.1f} MiB)."
            ) in text
    assert f"The JPEG files themselves are {jpeg_bytes / 2**20:.1f} MiB" in text

    source = (ROOT / "training" / "gpu" / "train_jax.py").read_text(encoding="utf-8")
    assert re.search(r"arrays = \{f\"t\{i\}\".*\n.*f\"n\{i\}\".*\n.*f\"m\{i\}\"", source), "checkpoint layout changed"
    checkpoint = {n: 4 * (MEASURED[n][0] + MEASURED[n][1]) / 1e6 for n in ("resnetv2_164", "densenet_bc_100_12")}
    assert f"a ResNet-164 checkpoint is about {checkpoint['resnetv2_164']:.0f} MB" in text
    assert f"`checkpoint.npz` (about {checkpoint['resnetv2_164']:.0f} MB)" in text
    assert (f"(checkpoint about {checkpoint['densenet_bc_100_12']:.0f} MB) must be kept somewhere that outlives a "
            f"session: committed ({checkpoint['densenet_bc_100_12']:.0f} MB of history per call)") in text
    outputs = re.search(r'RUN_JSON, CKPT, FINAL, PREDICTIONS, LOG = \(([^)]*)\)', source)[1]
    files = re.findall(r'"([^"]+)"', outputs)
    assert len(files) == 5 and all(f"`{f}`" in text for f in files if f != "train.log")
    assert f"plus `$OUT/log.txt`: {len(files) + 1} files." in text

    # ResNet-164: multiply-adds, and the estimate's epochs from the images/s and overhead it assumes.
    budget, overhead = 540, (150, 200)
    r164 = re.search(r"ResNet-164 takes ([\d.]+) G multiply-adds per image forward; at ([\d,]+)-([\d,]+) training "
                     r"images/s in bf16 an epoch takes (\d+)-(\d+) s, and of the (\d+) s about (\d+)-(\d+) go to "
                     r"start-up.* so \*\*about (\d+)-(\d+) epochs\*\*", text)
    slow, fast = (int(r164[i].replace(",", "")) for i in (2, 3))
    epoch = (train / fast, train / slow)
    assert r164[1] == f"{MEASURED['resnetv2_164'][2] / 1e9:.2f}"
    assert (r164[4], r164[5]) == (f"{epoch[0]:.0f}", f"{epoch[1]:.0f}")
    assert (int(r164[6]), int(r164[7]), int(r164[8])) == (budget, *overhead) and f"--budget_s {budget}" in text
    assert (r164[9], r164[10]) == (f"{(budget - overhead[1]) / epoch[1]:.0f}",
                                   f"{(budget - overhead[0]) / epoch[0]:.0f}")

    # DenseNet-BC-100: multiply-adds, batch norms, steps, and the estimate's epochs and calls.
    dense, recipe = MEASURED["densenet_bc_100_12"], configs.get_config("densenet_cifar")
    per_block = (100 - 4) // 6  # bottleneck layers per dense block (DenseNet-BC, depth 100)
    batch_norms = 3 * per_block * 2 + 2 + 1  # two per bottleneck layer, one per transition, the final one
    assert (f"DenseNet-BC-100 is {dense[2] / 1e9:.2f} G multiply-adds per image but far more memory traffic "
            f"(concatenations, {batch_norms} BatchNorms) and runs at batch {recipe.batch_size} "
            f"({train // recipe.batch_size} steps an epoch)") in text
    found = re.search(r"at ([\d,]+)-([\d,]+) images/s an epoch takes (\d+)-(\d+) s, and of the (\d+) s about "
                      r"(\d+)-(\d+) go to start-up, compiling and the files, so a call trains about (\d+)-(\d+) "
                      r"epochs and the (\d+) epochs take \*\*(\d+)-(\d+) calls\*\*", text)
    slow, fast = (int(found[i].replace(",", "")) for i in (1, 2))
    epoch = (train / fast, train / slow)
    assert (found[3], found[4]) == (f"{epoch[0]:.0f}", f"{epoch[1]:.0f}")
    assert (int(found[5]), int(found[6]), int(found[7])) == (budget, *overhead)
    per_call = ((budget - overhead[1]) / epoch[1], (budget - overhead[0]) / epoch[0])
    assert (found[8], found[9]) == (f"{per_call[0]:.0f}", f"{per_call[1]:.0f}")
    assert int(found[10]) == recipe.epochs
    assert (int(found[11]), int(found[12])) == (math.ceil(recipe.epochs / per_call[1]),
                                                math.ceil(recipe.epochs / per_call[0]))

    # The CPU test's tolerance for the published weights' logits.
    route = (ROOT / "tests" / "test_gpu_route.py").read_text(encoding="utf-8")
    assert "atol=1e-4 * scale)" in route and "(logits.argmax(-1) == predictions[\"logits\"].argmax(-1)).all()" in route
    assert "(within 1e-4 of the largest logit, and the same top class)" in text


def test_gpu_doc_bundle_wheels_are_what_prepare_downloads():
    """The wheels row: the packages and CPython versions training/gpu/prepare.py carries."""
    source = (ROOT / "training" / "gpu" / "prepare.py").read_text(encoding="utf-8")
    names = lambda key: re.findall(r'"([^"]+)"', re.search(rf"^{key} = \(([^)]*)\)", source, re.M)[1])  # noqa: E731
    pure, binary, pythons = names("PURE"), names("BINARY"), names("PYTHONS")
    simplejpeg = re.search(r'^SIMPLEJPEG = "simplejpeg==([\d.]+)"', source, re.M)[1]
    row = re.search(r"^\| `wheels/` \| (.*) \|$", (ROOT / "docs" / "gpu.md").read_text(encoding="utf-8"), re.M)[1]
    listed = re.search(r"keras [\d.]+ and its pure-Python dependencies \(([^)]+)\), and for CPython ([^ ]+), "
                       r"([^ ]+) and ([^ ]+) (\w+) [\d.]+ and simplejpeg ([\d.]+)", row)
    assert ["keras", *listed[1].split(", ")] == pure
    assert [listed[2], listed[3], listed[4]] == pythons and [listed[5]] == binary and listed[6] == simplejpeg


def test_gpu_doc_one_off_measurements_are_dated():
    """Sizes and timings with no committed record read as measurements of their day."""
    text = _text("docs/gpu.md")
    for dated in ("the sizes below are those of 2026-12-01", "| size (2026-12-01) |", "What travelled on 2026-12-01",
                  "measured once (2026-12-01) on the test split", "(both splits; measured 2026-12-01)",
                  "(0.4 MB per Python version then)", "added 4.7 MiB per Python version on 2026-12-01",
                  "(measured here on 2026-12-01)", "(about 85 s on 2 shared cores when written)",
                  "As its documentation said when this page was written (2026-12-01)"):
        assert dated in text, dated


def test_deployment_doc_int8_figures_are_the_quantizer_and_its_test():
    """The calibration sample's default size and what tests/test_int8.py quantizes on and requires."""
    from keras_preact.quantization import DEFAULT_COUNT

    source = (ROOT / "tests" / "test_int8.py").read_text(encoding="utf-8")
    count = int(re.search(r"^CALIBRATION_COUNT = (\d+)$", source, re.M)[1])
    agreement = float(re.search(r"^MIN_AGREEMENT = ([\d.]+)$", source, re.M)[1])
    text = _text("docs/deployment.md")
    assert f"(`--calibration_count`, default {DEFAULT_COUNT})" in text
    assert (f"tests/test_int8.py quantizes `resnetv2_20_cifar10` on {count} images in each runtime and requires "
            f"{100 * agreement:.0f}% top-1 agreement with Keras on the CI slice") in text

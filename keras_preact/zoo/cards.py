"""Model cards for people: each zoo model's README.md and the zoo table, next to the papers' numbers."""

import json
from pathlib import Path

from keras_preact.formats import RUNTIME_NAMES
from keras_preact.models.registry import SAME_NETWORK_KWARGS, get_model_spec
from keras_preact.store import CARD_FILE


def _percent(fraction):
    return f"{100 * fraction:.2f}%"


def _millions(count):
    return f"{count / 1e6:.2f}M"


def architecture_overrides(model_kwargs):
    """The card's builder arguments that change the registry's network, e.g. {"depth": 52}."""
    return {k: v for k, v in (model_kwargs or {}).items() if k not in SAME_NETWORK_KWARGS}


def paper_numbers(architecture, dataset_label, model_kwargs=None):
    """(paper test error % or None, paper params or None, source) for a card's model.

    From the registry's ModelSpec: its `error` is CIFAR-10 (with augmentation)
    for CIFAR architectures and ImageNet top-1 for ImageNet ones, so a model
    trained on another dataset (say CIFAR-100) gets no paper error, and neither
    does one whose `model_kwargs` change the network (`architecture_overrides`:
    a depth-52 `densenet_bc_100_12` is not the paper's DenseNet-BC-100).
    """
    try:
        spec = get_model_spec(architecture)
    except ValueError:
        return None, None, ""
    if architecture_overrides(model_kwargs):
        return None, None, spec.paper
    label = dataset_label.lower()
    same_task = "imagenet" in label if spec.dataset == "imagenet" else (
        "cifar10" in label and "cifar100" not in label
    )
    return (spec.error if same_task else None), spec.params, spec.paper


def _network(card):
    """`arch`, or `arch` with the overrides that make it another network."""
    overrides = architecture_overrides(card.get("model_kwargs"))
    changed = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
    return f"`{card['architecture']}` ({changed})" if overrides else f"`{card['architecture']}`"


def _duration(seconds):
    if not seconds:
        return "?"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _epoch_count(card):
    """Epochs trained; '70 (40 + 30)' for a run that continued others (--init_from)."""
    recipe = card["recipe"]
    cycles = [epochs for _, epochs in _cycles(recipe)]
    if len(cycles) == 1:
        return cycles[0]
    return f"{recipe.get('epochs_total') or sum(cycles)} ({' + '.join(str(c) for c in cycles)})"


def _training_time(card):
    recipe = card["recipe"]
    return _duration(recipe.get("wall_time_total_s") or recipe.get("wall_time_s"))


def _cycles(recipe):
    """[(config name, epochs), ...] of a run and the runs it continued (--init_from), oldest first."""
    cycles, record = [], recipe
    while record:
        config, epochs = record.get("config"), record.get("epochs")
        cycles.insert(0, ((config.get("name") or "?") if isinstance(config, dict) else config or "?",
                          len(epochs) if isinstance(epochs, list) else epochs or "?"))
        record = record.get("init_from")
    return cycles


def averaging(config):
    """What the published weights are: the last epoch's, or the weight average the recipe fixed."""
    momentum = config.get("ema_momentum") or 0.0
    if not momentum:
        return "the last epoch's weights (no weight averaging)"
    batches = config.get("ema_batch_norm_batches", 0)
    statistics = (f"batch-norm statistics recomputed for the average on {batches} training batches"
                  if batches else "the live weights' batch-norm statistics")
    return (f"an exponential moving average of the trainable weights (momentum {momentum}, "
            f"Keras' `SGD(use_ema=True)`), {statistics}")


def _training_section(card):
    """Recipe(s), hardware, wall time and the averaging behind the published weights."""
    recipe = card["recipe"]
    cycles = _cycles(recipe)
    chain = " then ".join(f"`{name}` ({epochs} epochs)" for name, epochs in cycles)
    if len(cycles) > 1:
        chain += ", each cycle started from the one before's weights (`--init_from`)"
    hardware = recipe.get("hardware") or {}
    # Each epoch record names its CPU (runs resumed across sessions change machines); older
    # records have only the hardware of the process that finished the run.
    epochs = recipe.get("epochs") if isinstance(recipe.get("epochs"), list) else []
    cpus = sorted({epoch["cpu"] for epoch in epochs if epoch.get("cpu")})
    where = (" and ".join(cpus) if cpus else
             f"{hardware.get('cpu', '?')} (the machine of its last epoch; the record names no other)")
    if hardware.get("cpu_count"):
        where += f", {hardware['cpu_count']} cores"
    replicas = recipe.get("replicas") or 1
    where += f", {replicas} replicas" if replicas > 1 else ""
    return (
        "\n## Training\n\n"
        f"Recipe: {chain}; {_training_time(card)} of wall time in all. "
        f"{'The last cycle ran on' if len(cycles) > 1 else 'It ran on'} {where}: `{recipe.get('command', '?')}`.\n"
        f"Published weights: {averaging(recipe.get('config') or {})}.\n"
    )


def _flip_line(card):
    """The test-time-flip numbers, labelled as such, or '' for a card without them."""
    flip = card.get("flip")
    if not flip:
        return ""
    return (f"With test-time flip (mean over the image and its horizontal mirror; off by default, "
            f"`--flip`): top-1 {_percent(flip['top1'])}, top-5 {_percent(flip['top5'])}.\n")


def _runtimes_section(card):
    """The "Other runtimes" section: the card's "runtimes" key (bench/runtime_cards.py), or ''."""
    entries = card.get("runtimes")
    if not entries:
        return ""
    first = next(iter(entries.values()))
    rows = ["| runtime | input | top-1 | top-5 | max \\|probability difference\\| vs Keras | top-1 differs from Keras |",
            "|---|---|---|---|---|---|"]
    notes = []
    for fmt, entry in entries.items():
        if entry.get("precision") == "int8":  # "onnx_int8": `--format onnx --int8` (bench/runtime_cards.py --int8)
            base = fmt[:-len("_int8")]
            label = f"{RUNTIME_NAMES.get(base, base)}, int8 (`--format {base} --int8`, {entry['runtime']})"
            calibration = entry["calibration"]
            notes.append(
                f"{RUNTIME_NAMES.get(base, base)} int8 ({entry['quantizer']}): top-1 "
                f"{100 * (entry['top1'] - entry['float32_top1']):+.2f} points from the float32 export's "
                f"{100 * entry['float32_top1']:.2f}%, same top-1 class as it on "
                f"{100 * entry['top1_agreement_with_float32']:.2f}% of the images, file "
                f"{entry['size_ratio']:.2f}x its size ({entry['file_bytes'] / 1e6:.2f} MB); calibrated on "
                f"{calibration['count']} `{calibration['split']}` images of `{calibration['dataset']}` (seed "
                f"{calibration['seed']}, file list sha256 `{calibration.get('files_sha256', '')[:16]}...`).")
        else:
            label = f"{RUNTIME_NAMES.get(fmt, fmt)} (`--format {fmt}`, {entry['runtime']})"
        rows.append(f"| {label} "
                    f"| {entry['input']} | {100 * entry['top1']:.2f}% | {100 * entry['top5']:.2f}% "
                    f"| {entry['max_abs_diff']:.1e} | {entry['top1_differs']} of {entry['num_examples']} |")
    default = entries.get("openvino", {}).get("default_precision")
    if default:
        notes.append(
            f"OpenVINO is compiled with `INFERENCE_PRECISION_HINT=f32`; with the CPU plugin's default on a CPU "
            f"with bfloat16 ({default['cpu']}) it runs in {default['INFERENCE_PRECISION_HINT']}: top-1 "
            f"{100 * default['top1']:.2f}%, max difference {default['max_abs_diff']:.1e}, top-1 differs on "
            f"{default['top1_differs']} images.")
    return (
        "\n## Other runtimes\n\n"
        f"`keras-preact export --model {card['name']} --format FORMAT --out DIR` (FORMAT: `onnx`, `openvino`, "
        "`litert`; `pip install \"keras-preact[FORMAT]\"`) writes a model that takes uint8 RGB pixels and "
        "returns probabilities, normalization inside (docs/deployment.md). Measured on "
        f"{first['dataset']} ({first['num_examples']} images) by `{first['command']}`:\n\n"
        + "\n".join(rows) + "\n" + ("\n" + "\n".join(notes) + "\n" if notes else "")
    )


def render_model_readme(card):
    """A short README.md for one zoo model, from its card."""
    name, arch = card["name"], card["architecture"]
    network = _network(card)
    paper_error, _, source = paper_numbers(arch, card["dataset"], card.get("model_kwargs"))
    if paper_error is not None:
        paper_line = (f"The paper reports {paper_error:.2f}% test error ({source}); ours is "
                      f"{100 * (1 - card['top1']):.2f}% on {card['dataset']}.\n")
    elif architecture_overrides(card.get("model_kwargs")):
        paper_line = (f"No paper number: {network} is not the registry's network, and the paper "
                      "measured only that one.\n")
    else:
        paper_line = ""
    evaluation = card["evaluation"]
    limit = evaluation.get("limit")
    measured_on = (f"the first {evaluation['num_examples']} images of the `{evaluation['split']}` split of "
                   f"{card['dataset']} (published with `--limit {limit}`: not a full-split number)"
                   if limit is not None else
                   f"the full `{evaluation['split']}` split of {card['dataset']} "
                   f"({evaluation['num_examples']} images)")
    height, width, _ = card["input"]["shape"]
    arguments = "".join(f", {key}={value!r}" for key, value in card["model_kwargs"].items())
    # get_model builds only the registered network; build_variant takes architecture overrides.
    builder = "build_variant" if architecture_overrides(card.get("model_kwargs")) else "get_model"
    return f"""# {name}

{network} ({card['family']}; {card['paper']}) trained on {card['dataset']}, {card['classes']} classes.

| top-1 | top-5 | params | FLOPs (mult-adds) | input | epochs | training time |
|---|---|---|---|---|---|---|
| {_percent(card['top1'])} | {_percent(card['top5'])} | {_millions(card['params'])} | {_millions(card['flops'])} | {height}x{width} RGB | {_epoch_count(card)} | {_training_time(card)} |

Top-1/top-5 on {measured_on}, single crop.
{_flip_line(card)}{paper_line}Reproduce: `{evaluation['command']}`

## Use it

```python
import keras_preact
model = keras_preact.{builder}("{arch}", weights="{name}"{arguments})
probabilities = model.predict(images)  # float32 [N, {height}, {width}, 3] RGB pixels 0..255
```

```shell
keras-preact predict --model {name} photo.jpg
```

For TF Serving: `keras-preact export --model {name} --out serving/{name}/1` writes its SavedModel
(preprocessing inside; the deployment guide, docs/deployment.md, has the server command).
Weights sha256: `{card['weights']['sha256']}`. Everything else: `model_card.json`.
{_training_section(card)}{_runtimes_section(card)}"""


def _limited(card):
    """', first N test images' for a card published with --limit, else ''."""
    evaluation = card["evaluation"]
    if evaluation.get("limit") is None:
        return ""
    return f", first {evaluation['num_examples']} {evaluation['split']} images"


def render_zoo_readme(cards):
    """A zoo directory's README.md: every model's numbers next to the paper's, from the cards."""
    lines = [
        "# keras-preact model zoo",
        "",
        "Generated from the model cards by `keras-preact zoo-readme --zoo_dir DIR`; do not edit by hand.",
        "Top-1/top-5 are single-crop, measured on the full test split of the dataset named; \"top-1",
        "with flip\" averages each image's prediction with its mirror's (`--flip`, off by default). Each card's",
        "command (`keras-preact evaluate --model NAME --dataset ... --check`) reproduces them, and",
        "`python -m pytest -m slow tests/test_zoo.py -k full_test_split` checks every card (CI",
        "checks each card's numbers on its first 500 test images).",
        "`cifar10-jpeg-q75` is the CIFAR-10 JPEG (quality 75) copy: its numbers are on that copy's",
        "test set, not the original binary release. Paper error is the paper's test error for the",
        "same architecture on the same task with standard augmentation (CIFAR-10+ or ImageNet",
        "single-crop top-1), as recorded in the registry (`keras_preact.get_model_spec(arch)`).",
        "",
    ]
    if not cards:
        lines += [
            "No models yet. Publish a training run with",
            "`keras-preact publish --model_dir RUN_DIR --name NAME --dataset folder:PATH --zoo_dir DIR`.",
            "",
        ]
    else:
        lines += [
            "| model | architecture | dataset | top-1 | top-5 | error | top-1 with flip | paper error "
            "| params | paper params | FLOPs | epochs |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        sources = {}
        for card in cards:
            paper_error, paper_params, source = paper_numbers(card["architecture"], card["dataset"],
                                                              card.get("model_kwargs"))
            sources[card["architecture"]] = source
            lines.append(
                f"| [{card['name']}]({card['name']}/README.md) | {_network(card)} "
                f"| {card['dataset']}{_limited(card)} | {_percent(card['top1'])} | {_percent(card['top5'])} "
                f"| {100 * (1 - card['top1']):.2f}% "
                f"| {_percent(card['flip']['top1']) if card.get('flip') else '–'} "
                f"| {f'{paper_error:.2f}%' if paper_error is not None else '–'} "
                f"| {_millions(card['params'])} "
                f"| {_millions(paper_params) if paper_params else '–'} "
                f"| {_millions(card['flops'])} | {_epoch_count(card)} |"
            )
        lines += ["", "Paper numbers:", ""]
        lines += [f"- `{arch}`: {source or 'not in the registry'}" for arch, source in
                  sorted(sources.items())]
        lines.append("")
        lines += _int8_table(cards)
    lines += [
        "Each model: `<name>/model_card.json`, `<name>/README.md` and its weights (beside the card,",
        "or downloaded from the card's URL) for `keras_preact.get_model(arch, weights=\"<name>\")`.",
        "`keras-preact export --model <name> --out DIR` builds its SavedModel for TF Serving on demand.",
        "",
    ]
    return "\n".join(lines)


def _int8_table(cards):
    """The zoo README's int8 rows (bench/runtime_cards.py --int8 wrote them into the cards), or []."""
    rows = [(card["name"], fmt, entry) for card in cards for fmt, entry in (card.get("runtimes") or {}).items()
            if entry.get("precision") == "int8"]
    if not rows:
        return []
    lines = [
        "int8 exports (`keras-preact export --model NAME --format FORMAT --int8`), measured like the float32",
        "ones on the full test split; calibrated on training images (each card names them). Latency:",
        "BENCHMARKS.md.",
        "",
        "| model | runtime | float32 top-1 | int8 top-1 | change (points) | same top-1 as float32 | size vs float32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, fmt, entry in rows:
        base = fmt[:-len("_int8")]
        lines.append(
            f"| {name} | {RUNTIME_NAMES.get(base, base)} | {_percent(entry['float32_top1'])} "
            f"| {_percent(entry['top1'])} | {100 * (entry['top1'] - entry['float32_top1']):+.2f} "
            f"| {_percent(entry['top1_agreement_with_float32'])} | {entry['size_ratio']:.2f}x |")
    return lines + [""]


def write_zoo_readme(zoo_dir):
    """Regenerate `<zoo_dir>/README.md` from the cards in that zoo directory; return its path."""
    root = Path(zoo_dir)
    root.mkdir(parents=True, exist_ok=True)
    cards = [json.loads(card.read_text()) for card in sorted(root.glob(f"*/{CARD_FILE}"))
             if not card.parent.name.startswith(".")]
    path = root / "README.md"
    path.write_text(render_zoo_readme(cards))
    return path

"""The zoo: publishing a run, model cards, `weights="<zoo name>"`, and the real zoo's cards."""

import json
import shlex
import shutil

import numpy as np
import pytest

import keras_preact
from keras_preact import store, zoo
from keras_preact.data import portable_dataset
from keras_preact.zoo import cards, evaluation, publish
from test_zoo_support import (  # noqa: F401 (fixtures)
    ARCHITECTURE,
    CIFAR_MISSING,
    CLASS_NAMES,
    IMAGES_PER_CLASS,
    MODEL_KWARGS,
    REPO,
    ZOO_NAME,
    cifar_folder,
    image_folder,
    random_pixels,
    run_dir,
    tiny_zoo,
    trained_model,
    zoo_copy,
)
from zoo_misses import misses as _misses, load as _load_misses

# The zoo that ships in the wheel (keras_preact/zoo/models).
REAL_ZOO = zoo.PACKAGED_ZOO
REAL_MODELS = sorted(p.parent.name for p in REAL_ZOO.glob("*/model_card.json"))

CARD_KEYS = ("name", "architecture", "dataset", "top1", "top5", "params", "flops", "input",
             "preprocessing", "recipe", "weights", "versions", "classes", "class_names",
             "model_kwargs", "evaluation")


def test_publish_writes_the_zoo_layout(tiny_zoo):
    folder = tiny_zoo / ZOO_NAME
    assert not (folder / "saved_model").exists(), "SavedModels are exported on demand, not stored"
    assert (folder / f"{ZOO_NAME}.weights.h5").is_file()
    assert (folder / "README.md").is_file()
    card = json.loads((folder / "model_card.json").read_text())
    for key in CARD_KEYS:
        assert key in card, key
    assert card["architecture"] == ARCHITECTURE and card["classes"] == len(CLASS_NAMES)
    assert card["class_names"] == CLASS_NAMES
    assert card["dataset"] == "tiny-test-jpeg"
    assert card["evaluation"]["num_examples"] == len(CLASS_NAMES) * IMAGES_PER_CLASS
    # The card's numbers, recomputed here without the evaluation code: each test JPEG decoded,
    # the trained model's arg-max compared with its folder's class. Three classes: the label is
    # always among the best min(5, 3), so top-5 is 1.0 (top-k itself is tested on hand-made
    # probabilities with 7 classes in test_top_k_hits_on_hand_made_probabilities).
    assert (card["top1"], card["top5"]) == (round(_tiny_zoo_top1(), zoo.DECIMALS), 1.0)
    assert card["weights"]["sha256"] == zoo.sha256_of(folder / f"{ZOO_NAME}.weights.h5")
    assert card["weights"]["source"] == "local" and "url" not in card["weights"]
    assert card["input"]["shape"] == [32, 32, 3]
    assert card["preprocessing"]["inside_model"] is True
    assert card["recipe"]["wall_time_s"] == 1.5 and card["recipe"]["hardware"]
    assert card["versions"]["publish"]["tensorflow"]
    assert card["evaluation"]["saved_model_agreement"]["max_abs_probability_difference"] <= 1e-5
    # The explicit zoo directory's models come with the packaged ones.
    assert zoo.list_zoo() == sorted([ZOO_NAME, *REAL_MODELS])
    assert zoo.model_dir(ZOO_NAME) == folder
    assert not [p for p in tiny_zoo.iterdir() if p.name.startswith(".")], "staging left behind"


def _tiny_zoo_top1():
    """Top-1 of the tiny run's model on the test split of image_folder(), computed directly."""
    import tensorflow as tf

    images, labels = [], []
    for label, class_name in enumerate(CLASS_NAMES):
        for path in sorted((image_folder() / "test" / class_name).glob("*.jpg")):
            images.append(tf.io.decode_jpeg(path.read_bytes(), channels=3).numpy())
            labels.append(label)
    probabilities = trained_model().predict(np.stack(images).astype("float32"), verbose=0)
    return float(np.mean(probabilities.argmax(-1) == np.array(labels)))


def test_top_k_hits_on_hand_made_probabilities():
    """evaluate_predictions' top-1 / top-5 on 7 classes, where top-5 can miss."""
    import tensorflow as tf

    probabilities = np.array([
        [.40, .10, .10, .10, .10, .10, .10],  # label 0 best: top-1 and top-5 hit
        [.30, .05, .05, .35, .05, .10, .10],  # label 0 2nd best: top-5 hit only
        [.20, .19, .18, .17, .05, .00, .10],  # label 6 5th best: top-5 hit only
        [.20, .02, .18, .17, .16, .15, .12],  # label 1 7th: both miss
    ])
    labels = np.array([0, 0, 6, 1])
    # Each image carries its row's index in its pixels; predict looks the row up.
    images = np.repeat(np.arange(4, dtype=np.uint8) * 50, 2 * 2 * 3).reshape(4, 2, 2, 3)

    def predict(batch):
        return probabilities[np.round(batch[:, 0, 0, 0] / 50).astype(int)]

    data = tf.data.Dataset.from_tensor_slices((images, labels))
    result = evaluation.evaluate_predictions(predict, data, height=2, width=2, total=4,
                                             batch_size=3, progress=False)
    np.testing.assert_array_equal(result.top1_hits, [True, False, False, False])
    np.testing.assert_array_equal(result.top5_hits, [True, True, True, False])
    assert result.summary() == {"num_examples": 4, "top1": 0.25, "top5": 0.75}
    assert result.summary(limit=2) == {"num_examples": 2, "top1": 0.5, "top5": 1.0}


def test_list_zoo_is_the_cards_on_disk(tmp_path, monkeypatch):
    """list_zoo() names each folder that holds a model card, and the card names its folder."""
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(tmp_path))
    on_disk = {p.parent.name: json.loads(p.read_text())["name"]
               for p in (zoo.PACKAGED_ZOO).glob("*/model_card.json")}
    assert on_disk and all(folder == name for folder, name in on_disk.items())
    assert keras_preact.list_zoo() == sorted(on_disk)
    (tmp_path / "no_card_here").mkdir()
    (tmp_path / "mine").mkdir()
    first = next(iter(sorted(on_disk)))
    card = json.loads((zoo.PACKAGED_ZOO / first / "model_card.json").read_text())
    (tmp_path / "mine" / "model_card.json").write_text(json.dumps({**card, "name": "mine"}))
    assert keras_preact.list_zoo() == sorted([*on_disk, "mine"])


def test_card_params_and_flops_match_the_model(tiny_zoo):
    card = zoo.get_card(ZOO_NAME)
    model = trained_model()
    assert card["params"] == keras_preact.count_params(model)
    assert card["flops"] == keras_preact.count_flops(model)


@pytest.mark.parametrize("runtime", ["keras", "saved_model"])
def test_card_numbers_are_reproduced_by_evaluate(tiny_zoo, runtime):
    measured = evaluation.evaluate(ZOO_NAME, f"folder:{image_folder()}", runtime=runtime,
                            progress=False).summary()
    card = zoo.get_card(ZOO_NAME)
    assert (measured["top1"], measured["top5"]) == (card["top1"], card["top5"])
    assert evaluation.check_against_card(ZOO_NAME, measured) == []


def test_evaluate_refuses_a_dataset_with_other_classes(tiny_zoo, tmp_path):
    for split in ("train", "test"):
        for name in ("airplane", "dog", "ship"):
            (tmp_path / split / name).mkdir(parents=True)
            shutil.copy(next((image_folder() / "test" / "cat").iterdir()), tmp_path / split / name)
    with pytest.raises(ValueError, match="are not the model's"):
        evaluation.evaluate(ZOO_NAME, f"folder:{tmp_path}", progress=False)


def test_evaluation_slice_is_the_first_examples(tiny_zoo):
    measured = evaluation.evaluate(ZOO_NAME, f"folder:{image_folder()}", limit=5, progress=False)
    assert measured.summary()["num_examples"] == 5
    problems = evaluation.check_against_card(ZOO_NAME, measured.summary())
    assert problems and "5 examples" in problems[0]


def test_weights_by_zoo_name_load_the_trained_model(tiny_zoo):
    model = keras_preact.get_model(ARCHITECTURE, weights=ZOO_NAME, **MODEL_KWARGS)
    images = np.stack([random_pixels(seed) for seed in range(3)]).astype("float32")
    np.testing.assert_allclose(model.predict(images, verbose=0),
                               trained_model().predict(images, verbose=0), atol=1e-6)


def test_zoo_weights_headless_for_features(tiny_zoo):
    model = keras_preact.get_model(ARCHITECTURE, weights=ZOO_NAME, include_top=False,
                                   pooling="avg")
    assert model.output_shape == (None, 64)


def test_resolve_weights_errors_name_the_problem(zoo_copy):
    with pytest.raises(ValueError, match=f"Unknown zoo model 'nope'.*{ZOO_NAME}"):
        zoo.resolve_weights("nope", architecture=ARCHITECTURE, classes=3, include_top=True)
    with pytest.raises(ValueError, match="architecture 'resnet_20'.*'densenet_40_12'"):
        zoo.resolve_weights(ZOO_NAME, architecture="densenet_40_12", classes=3, include_top=True)
    with pytest.raises(ValueError, match="has 3 classes.*classes=10"):
        zoo.resolve_weights(ZOO_NAME, architecture=ARCHITECTURE, classes=10, include_top=True)
    # Class count does not matter without the head.
    assert zoo.resolve_weights(ZOO_NAME, architecture=ARCHITECTURE, classes=10, include_top=False)


def test_damaged_zoo_weights_are_refused(zoo_copy):
    path = zoo_copy / ZOO_NAME / f"{ZOO_NAME}.weights.h5"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="is damaged: its sha256"):
        zoo.resolve_weights(ZOO_NAME, architecture=ARCHITECTURE, classes=3, include_top=True)
    with pytest.raises(ValueError, match="damaged"):
        keras_preact.get_model(ARCHITECTURE, weights=ZOO_NAME, **MODEL_KWARGS)
    path.unlink()
    with pytest.raises(ValueError, match="is incomplete: its weight file .* and its card names no URL"):
        zoo.resolve_weights(ZOO_NAME, architecture=ARCHITECTURE, classes=3, include_top=True)


def test_builder_refuses_a_zoo_model_with_another_class_count(tiny_zoo):
    with pytest.raises(ValueError, match="has 3 classes"):
        keras_preact.get_model(ARCHITECTURE, weights=ZOO_NAME, classes=10)


def test_builder_refuses_a_zoo_model_of_another_architecture(tiny_zoo):
    with pytest.raises(ValueError) as error:
        keras_preact.get_model("resnet_32", weights=ZOO_NAME, classes=3)
    assert "resnet_20" in str(error.value) and "resnet_32" in str(error.value)


def test_weight_files_for_another_model_or_truncated_are_clear_errors(tiny_zoo, tmp_path):
    zoo_weights = tiny_zoo / ZOO_NAME / f"{ZOO_NAME}.weights.h5"
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(zoo_weights.read_bytes()[: zoo_weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="damaged or truncated"):
        keras_preact.get_model("resnet_20", weights=str(truncated))
    # resnet_20 weights must not load into resnet_32 (Keras alone would load them partly).
    with pytest.raises(ValueError, match="different architecture"):
        keras_preact.get_model("resnet_32", weights=str(zoo_weights), classes=3)


def test_failed_weight_load_leaves_the_model_untouched(tiny_zoo, tmp_path):
    from keras_preact.models import weights

    model = keras_preact.get_model("resnet_32", classes=3)
    before = [w.copy() for w in model.get_weights()]
    zoo_weights = tiny_zoo / ZOO_NAME / f"{ZOO_NAME}.weights.h5"
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(zoo_weights.read_bytes()[:4096])
    for bad in (truncated, zoo_weights):
        with pytest.raises(ValueError):
            weights.load_weights(model, str(bad))
        for old, new in zip(before, model.get_weights()):
            np.testing.assert_array_equal(old, new)


def test_publish_refuses_to_overwrite_bad_names_and_unfinished_runs(zoo_copy, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="already exists"):
        publish.publish(run_dir(), ZOO_NAME, f"folder:{image_folder()}")
    monkeypatch.delenv("KERAS_PREACT_ZOO")
    with pytest.raises(ValueError, match="Pass --zoo_dir DIR"):
        publish.publish(run_dir(), "other_name", f"folder:{image_folder()}")
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(zoo_copy))
    with pytest.raises(ValueError, match="Invalid zoo name"):
        publish.publish(run_dir(), "../escape", f"folder:{image_folder()}")
    unfinished = tmp_path / "run"
    shutil.copytree(run_dir(), unfinished)
    record = json.loads((unfinished / "run.json").read_text())
    (unfinished / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    with pytest.raises(ValueError, match="status 'interrupted'"):
        publish.publish(unfinished, "other_name", f"folder:{image_folder()}")
    assert sorted(p.name for p in zoo_copy.iterdir() if p.is_dir()) == [ZOO_NAME]


def test_a_changed_network_gets_no_paper_number(tiny_zoo):
    """depth=, unit=, ... make a network the paper did not measure (the ablation grid's depth-52
    DenseNet-BC is a densenet_bc_100_12 with depth=52): its READMEs say so instead of printing
    the registered network's paper error next to it."""
    card = json.loads(json.dumps(zoo.get_card(ZOO_NAME)))
    card["dataset"] = "cifar10-jpeg-q75"
    assert "The paper reports 8.75% test error" in cards.render_model_readme(card)  # resnet_20 as registered
    card["model_kwargs"] = dict(card["model_kwargs"], depth=8)
    readme = cards.render_model_readme(card)
    assert "8.75%" not in readme and "No paper number: `resnet_20` (depth=8)" in readme
    assert readme.startswith(f"# {ZOO_NAME}\n\n`resnet_20` (depth=8) (")
    row = next(line for line in cards.render_zoo_readme([card]).splitlines() if line.startswith(f"| [{ZOO_NAME}]"))
    assert "| `resnet_20` (depth=8) |" in row and "8.75%" not in row
    # the class count, input size and regularisers leave the paper's network as it is
    assert cards.architecture_overrides({"classes": 3, "input_shape": (64, 64, 3), "drop_path_rate": 0.1}) == {}
    assert cards.paper_numbers("resnet_20", "cifar10-jpeg-q75", {"classes": 3})[0] == 8.75


def test_a_card_measured_on_a_slice_says_so_everywhere(zoo_copy):
    """publish --limit (for tests) must not produce a card that claims the full split."""
    full = zoo.get_card(ZOO_NAME)
    assert "limit" not in full["evaluation"]
    assert f"on the full `test` split of tiny-test-jpeg ({full['evaluation']['num_examples']} images)" in \
        cards.render_model_readme(full)
    publish.publish(run_dir(), "sliced", f"folder:{image_folder()}", limit=4, progress=False)
    card = zoo.get_card("sliced")
    assert card["evaluation"]["limit"] == 4 and card["evaluation"]["num_examples"] == 4
    assert card["evaluation"]["command"].endswith("--split test --limit 4 --check")
    readme = (zoo_copy / "sliced" / "README.md").read_text()
    assert "on the first 4 images of the `test` split" in readme and "full `test` split" not in readme
    row = next(line for line in (zoo_copy / "README.md").read_text().splitlines() if line.startswith("| [sliced]"))
    assert ", first 4 test images |" in row
    # and its own command reproduces it
    measured = evaluation.evaluate("sliced", f"folder:{image_folder()}", limit=4, progress=False).summary()
    assert evaluation.check_against_card("sliced", measured) == []


def test_zoo_readme_is_generated_from_the_cards(zoo_copy):
    card_path = zoo_copy / ZOO_NAME / "model_card.json"
    card = json.loads(card_path.read_text())
    card["dataset"] = "cifar10-jpeg-q75"
    card_path.write_text(json.dumps(card))
    text = cards.write_zoo_readme(zoo_copy).read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| [{ZOO_NAME}]"))
    assert f"{100 * card['top1']:.2f}%" in row
    assert "8.75%" in row, "the paper's ResNet-20 CIFAR-10 error belongs next to ours"
    assert "keras-preact export --model <name> --out DIR" in text
    assert [line for line in text.splitlines() if line.startswith("| [")] == [row], "only this directory's cards"


def test_empty_zoo_readme_says_how_to_publish(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(tmp_path))
    monkeypatch.setattr(store, "PACKAGED_ZOO", tmp_path / "no_packaged_models")
    assert zoo.list_zoo() == []
    assert "keras-preact publish" in cards.write_zoo_readme(tmp_path).read_text()


def test_card_names_the_dataset_by_a_path_that_works_on_other_machines(tmp_path, monkeypatch):
    # Published from a checkout at tmp/repo with the documented ../shared beside it, here a
    # symlink (as on CI). Installed code knows no repository: paths are taken relative to the
    # working directory.
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "elsewhere" / "datasets").mkdir(parents=True)
    (tmp_path / "shared").symlink_to(tmp_path / "elsewhere")
    monkeypatch.chdir(repo)
    # Inside the working directory or beside it: relative to it, the symlink kept as written.
    assert portable_dataset(f"folder:{repo / 'data' / 'c10'}") == "folder:data/c10"
    beside = tmp_path / "shared" / "datasets" / "c10.tar.gz"
    assert portable_dataset(f"folder:{beside}") == "folder:../shared/datasets/c10.tar.gz"
    assert (portable_dataset("folder:../shared/datasets/c10.tar.gz")
            == "folder:../shared/datasets/c10.tar.gz")
    # Anywhere else there is no portable form: the absolute path, and tfds names untouched.
    assert portable_dataset("folder:/opt/c10") == "folder:/opt/c10"
    assert portable_dataset("cifar10") == "cifar10"


def test_card_recipe_names_the_training_command_a_user_can_type(tmp_path, monkeypatch):
    # run.json records the command as started, from whichever route and with our machine's
    # paths; the card names `keras-preact train` with the paths made portable, in every cycle.
    repo = tmp_path / "repo"
    repo.mkdir()
    monkeypatch.chdir(repo)
    flags = (f"--model=resnet_20 --dataset=folder:{tmp_path / 'shared' / 'c10.tar.gz'} "
             f"--model_dir={repo / 'runs' / 'r20'} '--model_kwargs={{}}' --seed=0")
    typed = ("keras-preact train --model=resnet_20 --dataset=folder:../shared/c10.tar.gz "
             "--model_dir=runs/r20 '--model_kwargs={}' --seed=0")
    for program in (f"{repo}/.venv/bin/keras-preact train", f"{repo}/keras_preact/training/train.py",
                    f"{repo}/training/train.py", "keras-preact train"):
        assert publish.portable_command(f"{program} {flags}") == typed, program
    assert publish.portable_command("/opt/x.py --data=/opt/c10") == "/opt/x.py --data=/opt/c10"
    earliest = {"command": f"{repo}/training/train.py --model_dir=/opt/r0", "model_dir": "/opt/r0",
                "init_from": None}
    recipe = publish.portable_recipe({
        "training_dataset": f"folder:{repo / 'data'}", "command": f"{repo}/training/train.py {flags}",
        "seed": 0, "init_from": {"command": f"{repo}/training/train.py {flags}",
                                 "model_dir": str(repo / "runs" / "r20a"), "init_from": earliest}})
    assert recipe["training_dataset"] == "folder:data" and recipe["command"] == typed
    assert recipe["seed"] == 0
    assert recipe["init_from"]["command"] == typed and recipe["init_from"]["model_dir"] == "runs/r20a"
    # Outside the checkout and beside it there is no portable form: kept absolute, not invented.
    assert recipe["init_from"]["init_from"] == {"command": "keras-preact train --model_dir=/opt/r0",
                                                "model_dir": "/opt/r0", "init_from": None}


# --- The real zoo: every card's CI-slice numbers, and (slow) its full-split numbers ---------



@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_zoo_readmes_are_rendered_from_their_cards(name):
    card = json.loads((REAL_ZOO / name / "model_card.json").read_text())
    assert (REAL_ZOO / name / "README.md").read_text() == cards.render_model_readme(card)
    readme = cards.render_zoo_readme([json.loads(p.read_text()) for p in sorted(REAL_ZOO.glob("*/model_card.json"))])
    assert (REAL_ZOO / "README.md").read_text() == readme


@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_zoo_card_counts_are_the_built_networks(name):
    """The card's parameters and multiply-adds (its README's "params" and "multiply-adds"
    columns) are registry.MEASURED's for its network, which tests/test_param_counts.py
    recomputes from the built network: the card's model_kwargs build the registered one."""
    from keras_preact.models.registry import MEASURED, get_model_spec

    card = json.loads((REAL_ZOO / name / "model_card.json").read_text())
    assert card["model_kwargs"] == {"classes": get_model_spec(card["architecture"]).classes}
    params, _, multiply_adds = MEASURED[card["architecture"]]
    assert (card["params"], card["flops"], card["flops_unit"]) == (params, multiply_adds, "multiply-adds per image")


@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_zoo_cards_name_no_path_of_our_machine(name):
    card = json.loads((REAL_ZOO / name / "model_card.json").read_text())
    readme = (REAL_ZOO / name / "README.md").read_text()
    source = card["evaluation"]["dataset"]
    assert not source.startswith("folder:/"), source  # an absolute path means nothing elsewhere
    assert f"--dataset {source} " in card["evaluation"]["command"]
    assert f"--dataset {source} " in readme and "folder:/" not in readme
    cycle = card["recipe"]  # how it was trained, and every cycle it continued
    while cycle:
        assert not cycle.get("training_dataset", "").startswith("folder:/"), cycle["training_dataset"]
        assert cycle["command"].startswith("keras-preact train "), cycle["command"]
        assert not any(word.partition("=")[2].startswith(("/", "folder:/")) or word.startswith("/")
                       for word in shlex.split(cycle["command"])), cycle["command"]
        cycle = cycle.get("init_from")


def _real_card_dataset(card, monkeypatch):
    """The card's dataset source, pointing at wherever CIFAR is on this machine."""
    source = card["evaluation"]["dataset"]
    if source.startswith("folder:") and "cifar10" in card["dataset"]:
        root = cifar_folder()
        if root is None:
            pytest.skip(CIFAR_MISSING)
        return f"folder:{root}"
    return source


@pytest.mark.parametrize("name", REAL_MODELS)
@pytest.mark.parametrize("runtime, flip", [("keras", False), ("saved_model", False), ("keras", True)],
                         ids=["keras", "saved_model", "keras-flip"])
def test_real_zoo_card_reproduces_on_the_ci_slice(name, runtime, flip, monkeypatch):
    """Single-crop top-1/top-5 (card's evaluation.ci_slice) and flip-averaged top-1/top-5
    (card's flip.ci_slice), re-measured from the shipped weights on the first test images; and
    which of those images are missed, against tests/zoo_misses.json (the record the card's
    full-split numbers are recomputed from in tests/test_zoo_misses.py)."""
    card = json.loads((REAL_ZOO / name / "model_card.json").read_text())
    dataset = _real_card_dataset(card, monkeypatch)
    expected = (card["flip"] if flip else card["evaluation"])["ci_slice"]
    hits = evaluation.evaluate(name, dataset, runtime=runtime, flip=flip,
                               limit=expected["num_examples"], progress=False)
    measured = hits.summary()
    assert measured == expected
    assert evaluation.check_against_card(name, measured, flip=flip) == []
    recorded = _load_misses()["models"][name]["flip" if flip else "single"]["misses"]
    assert _misses(hits) == {k: [i for i in v if i < expected["num_examples"]]
                                       for k, v in recorded.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL_MODELS)
@pytest.mark.parametrize("flip", [False, True], ids=["single", "flip"])
def test_real_zoo_card_reproduces_on_the_full_test_split(name, flip, monkeypatch):
    """The card's full-split top-1/top-5 (with flip: its flip.top1/top5) and every miss of
    tests/zoo_misses.json, re-measured from the shipped weights."""
    card = json.loads((REAL_ZOO / name / "model_card.json").read_text())
    dataset = _real_card_dataset(card, monkeypatch)
    measured = evaluation.evaluate(name, dataset, flip=flip, progress=False)
    assert evaluation.check_against_card(name, measured.summary(), flip=flip) == []
    recorded = _load_misses()["models"][name]["flip" if flip else "single"]
    assert _misses(measured) == recorded["misses"]


def test_copying_a_zoo_folder_keeps_it_valid(zoo_copy, tmp_path, monkeypatch):
    """A zoo folder is self-contained: moved elsewhere, it still loads and verifies."""
    moved = tmp_path / "elsewhere"
    shutil.copytree(zoo_copy, moved)
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(moved))
    assert zoo.resolve_weights(ZOO_NAME, architecture=ARCHITECTURE, classes=3, include_top=True)


def test_readmes_show_every_cycle_of_a_warm_started_run(tiny_zoo):
    """A run continued with training.train --init_from shows its epochs and time over all cycles."""
    card = json.loads(json.dumps(zoo.get_card(ZOO_NAME)))
    card["recipe"].update(
        epochs=[{"epoch": e} for e in range(1, 31)], wall_time_s=5400.0, epochs_total=70,
        wall_time_total_s=13320.0,
        init_from={"model_dir": "training/results/x_cifar_cpu_long", "epochs": 40, "epochs_total": 40,
                   "wall_time_total_s": 7920.0, "init_from": None})
    row = [line for line in cards.render_model_readme(card).splitlines() if line.startswith("| ")][-1]
    assert row.endswith("| 70 (40 + 30) | 3.7 h |"), row
    zoo_row = [line for line in cards.render_zoo_readme([card]).splitlines() if ZOO_NAME in line][0]
    assert zoo_row.endswith("| 70 (40 + 30) |"), zoo_row
    # A single run still shows a plain count.
    assert cards._epoch_count(zoo.get_card(ZOO_NAME)) == 1


def test_card_readme_names_the_recipe_hardware_and_averaging(tiny_zoo):
    """Issue 35: each card says which recipe(s) made the weights, on which CPU, and whether the
    published weights are the last epoch's or a weight average (and whose batch-norm statistics)."""
    card = json.loads(json.dumps(zoo.get_card(ZOO_NAME)))
    card["recipe"]["epochs"] = [{"epoch": 1, "cpu": "Test CPU A"}, {"epoch": 2, "cpu": "Test CPU B"}]
    card["recipe"]["config"].update(name="recipe_b", ema_momentum=0.0)
    card["recipe"]["init_from"] = {"config": {"name": "recipe_a"}, "epochs": 40, "init_from": None}
    section = cards.render_model_readme(card).split("## Training\n\n")[1].split("\n## ")[0]
    assert "`recipe_a` (40 epochs) then `recipe_b` (2 epochs)" in section
    assert "The last cycle ran on Test CPU A and Test CPU B" in section
    assert "Published weights: the last epoch's weights (no weight averaging)." in section
    card["recipe"]["config"].update(ema_momentum=0.999, ema_batch_norm_batches=100)
    section = cards.render_model_readme(card).split("## Training\n\n")[1]
    assert "moving average of the trainable weights (momentum 0.999" in section
    assert "batch-norm statistics recomputed for the average on 100 training batches" in section
    card["recipe"]["config"]["ema_batch_norm_batches"] = 0
    assert "the live weights' batch-norm statistics" in cards.render_model_readme(card)


@pytest.mark.parametrize("name", REAL_MODELS)
def test_real_zoo_readmes_name_each_cycle_of_the_run(name):
    """The cycles the Training section lists add up to the epochs the card's runs recorded."""
    card = json.loads((REAL_ZOO / name / "model_card.json").read_text())
    cycles, record = [], card["recipe"]
    while record:
        cycles.insert(0, (record["config"]["name"] if isinstance(record["config"], dict) else record["config"],
                          len(record["epochs"]) if isinstance(record["epochs"], list) else record["epochs"]))
        record = record.get("init_from")
    assert sum(epochs for _, epochs in cycles) == (card["recipe"].get("epochs_total") or cycles[-1][1])
    readme = (REAL_ZOO / name / "README.md").read_text()
    assert " then ".join(f"`{config}` ({epochs} epochs)" for config, epochs in cycles) in readme


def test_zoo_readme_has_an_int8_row_per_runtime_of_each_card(tiny_zoo):
    """Issue 37: bench/runtime_cards.py --int8 writes "<format>_int8" entries; the zoo README lists each."""
    card = json.loads(json.dumps(zoo.get_card(ZOO_NAME)))
    assert "int8 exports" not in cards.render_zoo_readme([card])
    card["runtimes"] = {"onnx_int8": {"precision": "int8", "top1": 0.8821, "float32_top1": 0.8805,
                                      "top1_agreement_with_float32": 0.9879, "size_ratio": 0.2712}}
    row = next(line for line in cards.render_zoo_readme([card]).splitlines()
               if line.startswith(f"| {ZOO_NAME} | ONNX Runtime |"))
    assert row == f"| {ZOO_NAME} | ONNX Runtime | 88.05% | 88.21% | +0.16 | 98.79% | 0.27x |"

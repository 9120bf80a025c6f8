"""The `keras-preact` command line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import keras_preact
from keras_preact import cli, store, zoo
from test_zoo_support import (  # noqa: F401 (fixtures)
    CLASS_NAMES,
    ZOO_NAME,
    encode_image,
    image_folder,
    random_pixels,
    run_dir,
    tiny_zoo,
    zoo_copy,
)


def console_script():
    """The installed `keras-preact` script, or `python -m keras_preact.cli`."""
    script = Path(sys.executable).parent / "keras-preact"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "keras_preact.cli"]


def test_bare_command_shows_usage_and_the_packaged_zoo(tmp_path):
    env = dict(os.environ, KERAS_PREACT_ZOO=str(tmp_path / "empty"))
    result = subprocess.run(console_script(), capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "usage: keras-preact" in result.stdout
    card = zoo.get_card("resnetv2_20_cifar10")
    row = next(line for line in result.stdout.splitlines() if line.startswith("resnetv2_20_cifar10 "))
    assert f"{100 * card['top1']:.2f}%" in row


def test_an_empty_zoo_says_how_to_publish(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(tmp_path / "empty"))
    monkeypatch.setattr(store, "PACKAGED_ZOO", tmp_path / "no_packaged_models")
    assert cli.main(["list"]) == 0
    output = capsys.readouterr().out
    assert "has no models" in output and "keras-preact publish --model_dir" in output


def test_list_shows_zoo_models(tiny_zoo, capsys):
    assert cli.main(["list"]) == 0
    output = capsys.readouterr().out
    card = zoo.get_card(ZOO_NAME)
    assert ZOO_NAME in output and f"{100 * card['top1']:.2f}%" in output


def test_list_all_tells_the_layouts_apart(capsys):
    assert cli.main(["list", "--all"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert len(rows) == len(keras_preact.list_models())
    # name, builder, input, layout, depth, params, mult-adds, paper error, ...
    assert rows["resnet50v2"][1:5] == ["ResNet50V2", "224x224", "keras.applications", "50"]
    assert rows["resnetv2_50"][1:5] == ["ResNetV2_50", "224x224", "paper", "50"]
    assert rows["resnetv2_164"][1:5] + rows["resnetv2_164"][7:8] == ["ResNetV2_164", "32x32", "paper", "164", "5.46%"]
    assert cli.main(["list", "--architectures", "--family", "densenet"]) == 0
    assert all(line.startswith("densenet") for line in capsys.readouterr().out.splitlines()[1:])


def test_predict_prints_top_classes_for_jpeg_and_png_of_any_size(tiny_zoo, tmp_path, capsys):
    jpeg = tmp_path / "big.jpg"
    jpeg.write_bytes(encode_image(random_pixels(1, 300, 200), "JPEG"))
    png = tmp_path / "small.png"
    png.write_bytes(encode_image(random_pixels(2, 20, 24), "PNG"))
    assert cli.main(["predict", "--model", ZOO_NAME, str(jpeg), str(png)]) == 0
    output = capsys.readouterr().out
    assert str(jpeg) in output and str(png) in output
    ranked = [line for line in output.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert len(ranked) == 2 * len(CLASS_NAMES)
    assert all(any(name in line for name in CLASS_NAMES) and line.endswith("%") for line in ranked)


def test_predict_reports_bad_files_and_goes_on(tiny_zoo, tmp_path, capsys):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    good = tmp_path / "good.png"
    good.write_bytes(encode_image(random_pixels(3), "PNG"))
    status = cli.main(["predict", "--model", ZOO_NAME, str(text), str(tmp_path / "missing.png"),
                       str(good)])
    captured = capsys.readouterr()
    assert status == cli.EXIT_USAGE
    assert "notes.jpg: cannot classify" in captured.err and "not a JPEG or PNG" in captured.err
    assert "missing.png: cannot classify" in captured.err
    assert str(good) in captured.out


def test_evaluate_check_passes_and_prints_json(tiny_zoo, capsys):
    status = cli.main(["evaluate", "--model", ZOO_NAME, "--dataset", f"folder:{image_folder()}",
                       "--check", "--quiet"])
    output = capsys.readouterr().out
    assert status == 0, output
    result = json.loads(output.splitlines()[0])
    card = zoo.get_card(ZOO_NAME)
    assert (result["top1"], result["top5"]) == (card["top1"], card["top5"])
    assert "OK: matches the model card" in output


def test_evaluate_check_fails_on_a_wrong_card(zoo_copy, capsys):
    card_path = zoo_copy / ZOO_NAME / "model_card.json"
    card = json.loads(card_path.read_text())
    card["top1"] = round(1.0 - card["top1"] + 0.01, 4) if card["top1"] < 0.5 else 0.0
    card_path.write_text(json.dumps(card))
    status = cli.main(["evaluate", "--model", ZOO_NAME, "--dataset", f"folder:{image_folder()}",
                       "--check", "--quiet"])
    assert status == cli.EXIT_MISMATCH
    assert "MISMATCH" in capsys.readouterr().err


def test_unknown_model_is_a_one_line_error(tiny_zoo, capsys):
    status = cli.main(["evaluate", "--model", "resnet_9000", "--dataset", "folder:/nowhere"])
    err = capsys.readouterr().err
    assert status == cli.EXIT_USAGE
    assert "Unknown zoo model 'resnet_9000'" in err and ZOO_NAME in err
    assert "Traceback" not in err


def test_export_of_a_zoo_model_and_of_its_run_serve_the_keras_answers(tiny_zoo, tmp_path, capsys):
    """`export --model NAME` (on demand, from the verified weights) and `export --model_dir RUN`
    write SavedModels whose outputs equal the Keras model's, in a TF Serving version folder."""
    import keras_preact

    by_name, by_run = tmp_path / "serving" / ZOO_NAME / "1", tmp_path / "from_run"
    assert cli.main(["export", "--model", ZOO_NAME, "--out", str(by_name)]) == 0
    assert cli.main(["export", "--model_dir", str(run_dir()), "--out", str(by_run)]) == 0
    assert "serving_bytes" in capsys.readouterr().out
    pixels = np.stack([random_pixels(seed) for seed in range(2)])
    card = zoo.get_card(ZOO_NAME)
    model = keras_preact.get_model(card["architecture"], weights=ZOO_NAME, **card["model_kwargs"])
    expected = model.predict(pixels.astype("float32"), verbose=0)
    for path in (by_name, by_run):
        served = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(pixels))
        np.testing.assert_allclose(served["probabilities"].numpy(), expected, atol=1e-5)


def test_export_refuses_to_write_over_a_folder_and_needs_one_source(tiny_zoo, tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "saved_model.pb").write_bytes(b"a model of the user's")
    assert cli.main(["export", "--model", ZOO_NAME, "--out", str(taken)]) == cli.EXIT_USAGE
    assert "is not empty" in capsys.readouterr().err
    assert (taken / "saved_model.pb").read_bytes() == b"a model of the user's"
    assert cli.main(["export", "--out", str(tmp_path / "x")]) == cli.EXIT_USAGE
    assert "exactly one of --model NAME" in capsys.readouterr().err
    assert cli.main(["export", "--model", "resnet_9000", "--out", str(tmp_path / "y")]) == cli.EXIT_USAGE
    assert "Unknown zoo model 'resnet_9000'" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_export_of_a_non_run_directory_is_a_clear_error(tmp_path, capsys):
    status = cli.main(["export", "--model_dir", str(tmp_path), "--out", str(tmp_path / "x")])
    assert status == cli.EXIT_USAGE
    assert "no run.json" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["predict"], ["evaluate", "--model", "x"], ["bogus"]])
def test_missing_arguments_exit_with_usage(argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2

"""The GPU route (docs/gpu.md), dry-run here on the CPU under JAX at tiny scale.

The end-to-end test does what a lent GPU machine and this machine do between them: write a
bundle (a few images per class of the CIFAR-10 JPEG copy, or a synthetic image folder when
the archive is absent), train `resnetv2_20` with training/gpu/train_jax.py under
KERAS_BACKEND=jax in a subprocess that cannot import TensorFlow (batch 16, 2 epochs of 4
steps), cut after the first epoch, resume from the returned run folder in a second call,
then publish the run with TensorFlow (`keras-preact publish`, --limit 20) and check that the
published weights give, in TensorFlow, the logits the JAX run recorded.

The smaller tests check the pieces the device relies on: the schedule reimplemented without
TensorFlow against the trainer's, the epoch planning, the wheel bootstrap and the data file.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from test_zoo_support import CIFAR_ARCHIVE, encode_image, random_pixels
from training.gpu import bootstrap, bundle, prepare
from training.gpu.train_jax import cutout_squares, plan_epochs

REPO = Path(__file__).resolve().parent.parent
TRAIN_JAX = REPO / "training" / "gpu" / "train_jax.py"


# ----------------------------------------------------------------------------- schedule


def _probe_steps(spec, total):
    steps = {0, 1, total - 1, total, total // 2, spec.warmup_steps, max(0, spec.warmup_steps - 1)}
    for b in spec.boundaries:
        steps.update({b - 1, b, b + 1})
    return sorted(s for s in steps if 0 <= s <= total)


@pytest.mark.parametrize("steps_per_epoch,epochs", [(390, None), (4, 2), (781, 3)])
def test_host_schedule_is_the_in_graph_schedule(steps_per_epoch, epochs):
    """The JAX route evaluates ScheduleSpec.lr_at on the host; the TensorFlow trainer the
    in-graph PaperSchedule: equal at every recipe's boundaries and a sample of steps."""
    from keras_preact.training import configs, schedules

    for name in configs.list_configs():
        cfg = configs.get_config(name)
        if epochs is not None:
            cfg = cfg.replace(epochs=epochs, total_steps=None)
        total = cfg.total_steps or cfg.epochs * steps_per_epoch
        spec = schedules.resolve(cfg, steps_per_epoch, total)
        in_graph = spec.keras_schedule()
        for step in _probe_steps(spec, total) + list(range(0, total, max(1, total // 97))):
            # float32 in the graph: equal up to float32 rounding of the step fraction.
            assert float(in_graph(step)) == pytest.approx(spec.lr_at(step), rel=1e-5, abs=1e-6 * spec.base_lr), \
                (name, step)


def test_schedules_import_without_tensorflow():
    code = ("import sys; sys.modules['tensorflow'] = None; "
            "from keras_preact.training import configs, schedules; "
            "s = schedules.resolve(configs.get_config('cifar_cpu_deep'), 390, 390 * 60); "
            "print(s.lr_at(780), 'tensorflow' in sys.modules and sys.modules['tensorflow'] is not None)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       env=dict(os.environ, KERAS_BACKEND="jax"), timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.split() == ["0.2", "False"]


def test_cutout_on_the_accelerator_cuts_what_the_tf_pipeline_cuts():
    jax = pytest.importorskip("jax")
    from keras_preact.training.configs import CUTOUT_SIZE

    masks = np.asarray(cutout_squares(jax.random.PRNGKey(0), 200, 32))
    assert masks.shape == (200, 32, 32) and masks.dtype == bool
    rows, cols = masks.any(2).sum(1), masks.any(1).sum(1)
    assert (masks.sum((1, 2)) == rows * cols).all()  # each mask is one rectangle...
    assert rows.max() == cols.max() == CUTOUT_SIZE  # ...a whole square when inside the image,
    assert rows.min() <= CUTOUT_SIZE // 2 + 1 and cols.min() <= CUTOUT_SIZE // 2 + 1  # clipped at borders
    assert rows.min() >= CUTOUT_SIZE // 2 and (masks.sum((1, 2)) > 0).all()  # centre always inside


# ----------------------------------------------------------------------------- planning


def test_a_fresh_run_plans_what_fits_and_a_spanning_run_keeps_its_plan():
    common = dict(budget_s=540, elapsed_s=100, epoch_s=10, final_s=40, done=0, planned=None, stop_after=None)
    assert plan_epochs(requested=200, span_calls=False, **common) == (40, 40, 40)
    assert plan_epochs(requested=12, span_calls=False, **common) == (12, 12, 40)
    assert plan_epochs(requested=300, span_calls=True, **common) == (300, 40, 40)
    # A resumed run keeps the plan of its checkpoint and trains what is left of it.
    resumed = dict(common, done=290, planned=300)
    assert plan_epochs(requested=300, span_calls=True, **resumed) == (300, 10, 40)
    assert plan_epochs(requested=5, span_calls=False, **dict(common, stop_after=1)) == (5, 1, 40)
    # Nothing fits: a fresh run still plans one epoch, and this call trains none.
    assert plan_epochs(requested=5, span_calls=False, **dict(common, budget_s=120)) == (1, 0, 0)


# ----------------------------------------------------------------------------- bootstrap


def _wheel(folder, filename, files):
    path = folder / filename
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def test_bootstrap_unpacks_the_fitting_wheels_of_missing_packages_only(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "kp_fake_pkg-1.0-py3-none-any.whl",
           {"kp_fake_pkg/__init__.py": "VALUE = 7\n", "kp_fake_pkg-1.0.dist-info/METADATA": "Name: kp-fake-pkg\n",
            "kp_fake_pkg-1.0.data/purelib/kp_fake_extra.py": "X = 1\n"})
    _wheel(wheels, "numpy-0.0.1-py3-none-any.whl", {"numpy/__init__.py": "raise ImportError\n"})
    _wheel(wheels, "kp_fake_bin-1.0-cp39-cp39-manylinux2014_x86_64.whl", {"kp_fake_bin.py": ""})
    major, minor = sys.version_info[:2]
    _wheel(wheels, f"kp_fake_ext-2.0-cp{major}{minor}-cp{major}{minor}-manylinux_2_17_{os.uname().machine}"
                   f".manylinux2014_{os.uname().machine}.whl",
           {"kp_fake_ext.py": "Y = 2\n", "kp_fake_ext-2.0.dist-info/METADATA": ""})
    target = tmp_path / "site"
    report = bootstrap.ensure(str(wheels), str(target), add_to_path=False)
    assert sorted(report["unpacked"]) == sorted([
        "kp_fake_pkg-1.0-py3-none-any.whl",
        next(f.name for f in wheels.iterdir() if f.name.startswith("kp_fake_ext"))])
    assert report["present"] == ["numpy-0.0.1-py3-none-any.whl"]  # numpy is importable: not replaced
    assert report["unusable"] == ["kp_fake_bin-1.0-cp39-cp39-manylinux2014_x86_64.whl"]
    assert (target / "kp_fake_pkg" / "__init__.py").is_file()
    assert (target / "kp_fake_extra.py").is_file() and not (target / "kp_fake_pkg-1.0.data").exists()
    again = bootstrap.ensure(str(wheels), str(target), add_to_path=False)
    assert again["unpacked"] == []  # idempotent


def test_keras_is_pinned_to_this_projects_minor_version():
    assert bootstrap.PINNED == {"keras": "3.15."}
    tags = bootstrap.parse_wheel("keras-3.15.1-py3-none-any.whl")
    assert tags["name"] == "keras" and bootstrap.fits_interpreter(tags, (3, 12), "x86_64")
    assert not bootstrap.fits_interpreter(
        bootstrap.parse_wheel("optree-0.20.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        (3, 12), "x86_64")


# ----------------------------------------------------------------------------- the data file


def test_the_data_file_round_trips_jpeg_bytes_labels_and_paths(tmp_path):
    blobs = [encode_image(random_pixels(seed), "JPEG", quality=75) for seed in range(5)]
    path = tmp_path / bundle.DATA_FILE
    bundle.write(str(path), {"train": (blobs[:3], [0, 1, 1], ["train/a/0.jpg", "train/b/0.jpg", "train/b/1.jpg"]),
                             "test": (blobs[3:], [1, 0], ["test/b/0.jpg", "test/a/0.jpg"])},
                 ["a", "b"], {"source": "synthetic"})
    jpeg, offsets, labels, paths, names = bundle.read_raw(str(path), "train")
    assert names == ["a", "b"] and labels.tolist() == [0, 1, 1] and paths[2] == "train/b/1.jpg"
    assert [jpeg[offsets[i]:offsets[i + 1]].tobytes() for i in range(3)] == blobs[:3]
    x, y, info = bundle.load_split(str(path), "test", decoder="pillow")
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8 and y.tolist() == [1, 0]
    assert info["matches_reference"] is False  # no reference recorded: not claimed equal
    assert bundle.read_meta(str(path))["source"] == "synthetic"


# ----------------------------------------------------------------------------- the documented commands


def test_the_device_commands_in_the_docs_fit_the_tool_and_parse():
    """docs/gpu.md's device commands: at most 2,000 characters, and flags train_jax.py accepts."""
    import shlex

    from training.gpu.train_jax import parse_args

    text = (REPO / "docs" / "gpu.md").read_text()
    commands = re.findall(r"<!-- device-command -->\n```bash\n(.*?)\n```", text, re.S)
    assert len(commands) == 2
    for command in commands:
        assert len(command) <= 2000 and "\n" not in command
        words = shlex.split(command.split("train_jax.py", 1)[1].split("2>&1")[0].replace("$OUT", "/out"))
        args = parse_args(words)
        assert args.budget_s <= 570 and args.out == "/out/run" and args.bundle == "gpu_bundle"


# ----------------------------------------------------------------------------- end to end


def _synthetic_folder(root, classes=10, per_class=7):
    for split in ("train", "test"):
        for label in range(classes):
            folder = root / split / f"class_{label}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = random_pixels(seed=10_000 * (split == "train") + 100 * label + i)
                (folder / f"{i:04d}.jpg").write_bytes(encode_image(pixels, "JPEG", quality=75))
    return root


def _train(bundle_dir, out, cache, *extra):
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONUNBUFFERED="1")
    cmd = [sys.executable, str(TRAIN_JAX), "--model", "resnetv2_20", "--config", "cifar_cpu_long",
           "--epochs", "2", "--batch_size", "16", "--limit_train", "64", "--limit_test", "40",
           "--bundle", str(bundle_dir), "--wheels", "none", "--out", str(out), "--budget_s", "600",
           "--warmup_s", "0", "--compile_cache", str(cache), *extra]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_gpu_route_dry_run_on_cpu(tmp_path):
    from keras_preact import cli
    from keras_preact.training.run_dir import read_run
    from training.gpu import finalize

    if CIFAR_ARCHIVE.is_file():
        source = str(CIFAR_ARCHIVE)
    else:  # no archive on this machine: the same route on a synthetic folder
        source = str(_synthetic_folder(tmp_path / "images"))
    bundle_dir = tmp_path / "gpu_bundle"
    manifest = prepare.prepare(str(bundle_dir), source, per_class=7, wheels=False, check=True)
    for split in bundle.SPLITS:
        checked = manifest["meta"]["pixels"][split]
        assert checked["n"] == 70 and checked["shape"] == [32, 32, 3]
        decoders = checked["decoders"]
        if decoders["simplejpeg"]["available_here"]:
            assert decoders["simplejpeg"]["equal"], decoders  # TensorFlow's pixels, exactly
        if decoders["pillow"]["available_here"]:
            assert decoders["pillow"]["max_abs_diff"] <= 8, decoders  # measured 5 on CIFAR-10 test
    assert manifest["sizes"]["travels_total"] == manifest["sizes"]["working_tree"] + manifest["sizes"]["bundle_total"]

    # Call 1: cut after the first epoch (as a call's budget would), on "the device".
    first, cache = tmp_path / "call1" / "run", tmp_path / "jax_cache"
    out = _train(bundle_dir, first, cache, "--stop_after_epochs", "1")
    assert out.splitlines()[0].startswith("ESTIMATE "), out
    assert "plan 2 epoch(s), 0 done, this call trains 1" in out.splitlines()[0]
    record = json.loads((first / "run.json").read_text())
    assert record["status"] == "paused" and len(record["epochs"]) == 1
    assert (first / "checkpoint.npz").is_file() and not (first / "final.weights.h5").exists()
    with pytest.raises(ValueError, match="final.weights.h5"):
        read_run(first)

    # Call 2, "on another machine": resume from the returned folder into a new --out.
    second = tmp_path / "call2" / "run"
    out = _train(bundle_dir, second, cache, "--resume_from", str(first))
    assert "plan 2 epoch(s), 1 done, this call trains 1" in out.splitlines()[0]
    record = json.loads((second / "run.json").read_text())
    assert record["status"] == "finished"
    assert [e["iteration"] for e in record["epochs"]] == [4, 8] and record["total_steps"] == 8
    assert record["schedule"]["kind"] == "onecycle" and record["hardware"]["platform"] == "cpu"
    assert record["data"]["pixels"]["decoder"] in bundle.DECODERS
    assert "tensorflow" not in record["versions"]
    run = read_run(second)
    assert run.architecture == "resnetv2_20" and run.model_kwargs == {"classes": 10}

    # Here, with TensorFlow: publish (rebuilds the model, loads final.weights.h5, evaluates).
    zoo_dir = tmp_path / "zoo"
    status = cli.main(["publish", "--model_dir", str(second), "--name", "resnetv2_20_gpu_route",
                       "--dataset", f"folder:{source}", "--zoo_dir", str(zoo_dir), "--limit", "20", "--quiet"])
    assert status == 0
    card = json.loads((zoo_dir / "resnetv2_20_gpu_route" / "model_card.json").read_text())
    assert card["architecture"] == "resnetv2_20" and card["evaluation"]["num_examples"] == 20
    assert card["recipe"]["hardware"]["strategy"].startswith("jax")

    # The published weights give in TensorFlow the logits the JAX run recorded.
    import keras_preact

    predictions = np.load(second / "predictions.npz")
    tf_model = keras_preact.build_variant(
        "resnetv2_20", classifier_activation=None, classes=10,
        weights=str(zoo_dir / "resnetv2_20_gpu_route" / "resnetv2_20_gpu_route.weights.h5"))
    logits = np.asarray(tf_model.predict_on_batch(predictions["images"].astype("float32")))
    scale = max(1.0, float(np.abs(predictions["logits"]).max()))
    np.testing.assert_allclose(logits, predictions["logits"], atol=1e-4 * scale)
    assert (logits.argmax(-1) == predictions["logits"].argmax(-1)).all()

    # Without h5py there, final.weights.h5 is written here from the checkpoint, the same weights.
    copy = tmp_path / "no_h5py_run"
    shutil.copytree(second, copy)
    (copy / "final.weights.h5").unlink()
    finalize.finalize(str(copy))
    rebuilt = keras_preact.build_variant("resnetv2_20", classes=10, weights=str(copy / "final.weights.h5"))
    from training.gpu.train_jax import weights_digest

    assert weights_digest([np.asarray(w) for w in rebuilt.get_weights()]) == record["final"]["weights_sha256"]

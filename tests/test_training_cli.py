"""training.train / training.evaluate command lines: errors, a full tiny run, NaN stop."""

import json
import functools
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from image_folders import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model=resnet_20", "--config=smoke", "--batch_size=8"]


make_folder = functools.partial(make_image_folder, classes=("cat", "dog", "fox"), n_train=8, n_test=3)


def run(module, *args, timeout=240):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    p = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """(dataset root, model_dir) of one finished 1-epoch TINY run, trained once for this module.

    Tests that change the run work on a copy (`copy_run`)."""
    base = tmp_path_factory.mktemp("finished")
    root = make_folder(base / "ds")
    md = str(base / "run")
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={md}")
    assert rc == 0, err[-3000:]
    return root, md


def copy_run(model_dir, destination):
    import shutil

    shutil.copytree(model_dir, destination)
    return str(destination)


def assert_clean_error(rc, out, err, *needles):
    assert rc != 0
    assert "Traceback" not in out + err, err[-3000:]
    line = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1, err[-3000:]
    for n in needles:
        assert n in line[0], line[0]


def test_unknown_model_lists_valid_names(tmp_path):
    rc, out, err = run("keras_preact.training.train", "--model=resnet_21", f"--dataset=folder:{tmp_path}",
                       f"--model_dir={tmp_path}/m")
    assert_clean_error(rc, out, err, "resnet_21", "resnet_20", "resnetv2_20", "densenet_bc_100_12")


def test_unknown_config_and_dataset(tmp_path):
    root = make_folder(tmp_path / "ds", n_train=1, n_test=1)
    rc, out, err = run("keras_preact.training.train", "--model=resnet_20", f"--dataset=folder:{root}", "--config=nope",
                       f"--model_dir={tmp_path}/m")
    assert_clean_error(rc, out, err, "nope", "resnet_cifar", "cifar_cpu_short")
    rc, out, err = run("keras_preact.training.train", "--model=resnet_20", "--dataset=cifar11", f"--data_dir={tmp_path}",
                       f"--model_dir={tmp_path}/m")
    assert_clean_error(rc, out, err, "cifar11", "folder:PATH", "cifar10")


def test_offline_cifar10_fails_fast_with_hint(tmp_path):
    t0 = time.time()
    rc, out, err = run("keras_preact.training.train", "--model=resnet_20", "--dataset=cifar10", f"--data_dir={tmp_path}/tfds",
                       f"--model_dir={tmp_path}/m")
    assert time.time() - t0 < 60  # TensorFlow import included; tfds would retry for minutes
    assert_clean_error(rc, out, err, "--data_dir", "folder:")


def test_bad_folder_reported_before_training(tmp_path):
    root = make_folder(tmp_path / "ds", n_train=2, n_test=1)
    os.makedirs(os.path.join(root, "train", "owl"))
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={tmp_path}/m")
    assert_clean_error(rc, out, err, "empty class folder", "owl", "only in train")
    assert not os.path.exists(tmp_path / "m" / "checkpoint")


def test_full_tiny_run_outputs_contract_and_evaluate(tmp_path):
    root = make_folder(tmp_path / "ds")
    bad = os.path.join(root, "train", "dog", "broken.jpg")
    with open(bad, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    md = str(tmp_path / "run")
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={md}", "--epochs=2")
    assert rc == 0, err[-3000:]
    assert "broken.jpg" in err
    for name in ("run.json", "model.keras", "final.weights.h5", "curves.png", "train.log"):
        assert os.path.getsize(os.path.join(md, name)) > 0, name
    assert os.listdir(os.path.join(md, "tensorboard"))
    with open(os.path.join(md, "run.json")) as f:
        r = json.load(f)
    for key in ("model", "model_kwargs", "dataset", "class_names", "input_shape", "config", "replicas", "epochs",
                "final", "versions", "hardware", "wall_time_s"):
        assert key in r, key
    assert r["model"] == "resnet_20" and r["model_kwargs"] == {"classes": 3}
    assert r["class_names"] == ["cat", "dog", "fox"] and r["input_shape"] == [32, 32, 3]
    assert r["replicas"] == 1 and r["status"] == "finished"
    assert [e["epoch"] for e in r["epochs"]] == [1, 2]
    for e in r["epochs"]:
        for k in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
            assert k in e
    assert r["data"]["skipped_count"] == 1 and r["data"]["train"]["skipped_files"] == [bad]
    assert r["final"]["test_examples"] == 9 and 0 <= r["final"]["test_top1"] <= 1
    assert r["versions"]["tensorflow"] and r["versions"]["keras"]
    # The CPU's instruction sets, read from /proc/cpuinfo as the benches read them.
    from keras_preact.training.environment import cpu_summary

    flags = cpu_summary()
    assert r["hardware"]["cpu_flags"] == {k: flags[k] for k in ("avx2", "fma", "avx512", "amx", "avx512_bf16")}
    # Each epoch names the CPU that trained it: a run resumed elsewhere keeps the earlier machines.
    assert [e["cpu"] for e in r["epochs"]] == [flags["cpu"]] * 2
    assert len([ln for ln in open(os.path.join(md, "train.log"))]) == 2
    # The export/zoo tests stand in a hand-written run directory for a real one: it may hold
    # only what the trainer writes, and the trainer's run must be what export/publish read.
    from keras_preact.training.run_dir import read_run
    from test_zoo_support import run_dir

    fixture = json.loads((run_dir() / "run.json").read_text())
    assert set(fixture) <= set(r), set(fixture) - set(r)
    assert read_run(md).architecture == "resnet_20"

    out_json = str(tmp_path / "eval.json")
    rc, out, err = run("keras_preact.training.evaluate", f"--model_dir={md}", f"--output={out_json}")
    assert rc == 0, err[-3000:]
    assert "top-1" in out and "top-5" in out
    with open(out_json) as f:
        ev = json.load(f)
    assert ev["examples"] == 9
    assert ev["top1"] == pytest.approx(r["final"]["test_top1"], abs=1e-6)
    # Running the finished command again does not train again.
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={md}", "--epochs=2")
    assert rc == 0, err[-3000:]
    with open(os.path.join(md, "run.json")) as f:
        assert [e["epoch"] for e in json.load(f)["epochs"]] == [1, 2]


def test_nan_loss_stops_and_keeps_last_good_checkpoint(finished_run, tmp_path):
    root, finished = finished_run
    md = copy_run(finished, tmp_path / "run")
    ckpt = os.path.join(md, "checkpoint", "ckpt.npz")
    before = open(ckpt, "rb").read()
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={md}", "--epochs=3",
                       "--learning_rate=1e30")
    assert rc == 3
    assert_clean_error(rc, out, err, "loss became", "epoch 2", "last good checkpoint (epoch 1)")
    assert open(ckpt, "rb").read() == before
    with open(os.path.join(md, "run.json")) as f:
        r = json.load(f)
    assert "non-finite" in r["status"] and len(r["epochs"]) == 1


def test_init_from_starts_from_a_finished_run_and_keeps_the_totals(finished_run, tmp_path):
    root, first = finished_run
    second = str(tmp_path / "second")
    with open(os.path.join(first, "run.json")) as f:
        r1 = json.load(f)

    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={second}",
                       f"--init_from={first}", "--epochs=2")
    assert rc == 0, err[-3000:]
    with open(os.path.join(second, "run.json")) as f:
        r2 = json.load(f)
    init = r2["init_from"]
    assert init["model_dir"] == first and init["weights_sha256"] == r1["final"]["weights_sha256"]
    assert (init["config"], init["epochs"], init["epochs_total"]) == ("smoke", 1, 1)
    assert r2["epochs_total"] == 3 and len(r2["epochs"]) == 2
    assert r2["wall_time_total_s"] == pytest.approx(r1["wall_time_s"] + r2["wall_time_s"], abs=0.2)
    # A third cycle chains the totals of both before it.
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={tmp_path}/third",
                       f"--init_from={second}")
    assert rc == 0, err[-3000:]
    with open(tmp_path / "third" / "run.json") as f:
        r3 = json.load(f)
    assert r3["init_from"]["epochs_total"] == 3 and r3["epochs_total"] == 4
    assert r3["init_from"]["init_from"]["model_dir"] == first
    # Resuming needs the same --init_from: it is part of the checkpoint's identity.
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={second}", "--epochs=2")
    assert_clean_error(rc, out, err, "checkpoint of a different run", "init_from:", "None now")

    # Weights that are not the ones run.json recorded are refused (so the load really happens):
    # the first run's record with the second run's weights.
    import shutil

    altered = copy_run(first, tmp_path / "altered")
    shutil.copy(os.path.join(second, "final.weights.h5"), os.path.join(altered, "final.weights.h5"))
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={tmp_path}/x",
                       f"--init_from={altered}")
    assert_clean_error(rc, out, err, "is not the weights its run.json recorded")


def test_init_from_errors(finished_run, tmp_path):
    root, finished = finished_run
    md = copy_run(finished, tmp_path / "v1")
    rc, out, err = run("keras_preact.training.train", "--model=resnetv2_20", "--config=smoke", "--batch_size=8",
                       f"--dataset=folder:{root}", f"--model_dir={tmp_path}/v2", f"--init_from={md}")
    assert_clean_error(rc, out, err, "another model", "'resnet_20' there", "'resnetv2_20' now")
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={tmp_path}/y",
                       f"--init_from={tmp_path}/missing")
    assert_clean_error(rc, out, err, "must be the model_dir of a finished training run")
    with open(os.path.join(md, "run.json")) as f:
        r = json.load(f)
    r["status"] = "running"
    with open(os.path.join(md, "run.json"), "w") as f:
        json.dump(r, f)
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={tmp_path}/z",
                       f"--init_from={md}")
    assert_clean_error(rc, out, err, "is not a finished run", "'running'")


def test_carry_moves_a_run_across_machines_in_float16(finished_run, tmp_path):
    """training/carry.py: a float16 weights-only file (issue 28's runs longer than a session)
    restores into a checkpoint the trainer resumes, at the next epoch and the same iteration."""
    import numpy as np

    from keras_preact.training import state
    from training import carry

    root, md = finished_run
    original = state.load_checkpoint(md)
    out = tmp_path / "carry" / "run.npz"
    carry.save(md, str(out))
    with np.load(out) as z:
        assert {z[k].dtype for k in z.files if k[0] == "m" and k[1:].isdigit() and z[k].ndim} == {np.dtype("float16")}
        assert not [k for k in z.files if k.startswith("o") and z[k].ndim]  # no momentum buffers
    float32_bytes = sum(a.nbytes for a in original.model_values + original.opt_values)
    assert out.stat().st_size < float32_bytes / 3
    resumed_dir = tmp_path / "resumed"
    carry.restore(str(out), str(resumed_dir))
    with pytest.raises(SystemExit, match="already holds a checkpoint"):
        carry.restore(str(out), str(resumed_dir))
    back = state.load_checkpoint(str(resumed_dir))
    assert back.meta["epoch"] == original.meta["epoch"] == 1
    assert back.meta["iteration"] == original.meta["iteration"] > 0
    assert back.meta["identity"] == original.meta["identity"]
    before = json.loads(open(os.path.join(md, "run.json")).read())
    assert json.loads((resumed_dir / "run.json").read_text())["wall_time_s"] == before["wall_time_s"] > 0
    for a, b in zip(back.model_values, original.model_values):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    for a, b in zip(back.opt_values, original.opt_values):
        assert a.shape == b.shape
        if a.ndim:
            assert not a.any()
        else:
            assert a == b
    rc, out_, err = run("keras_preact.training.train", *TINY, "--epochs=2", f"--dataset=folder:{root}",
                        f"--model_dir={resumed_dir}")
    assert rc == 0, err[-3000:]
    assert "1 epoch(s) done" in err
    done = json.loads((resumed_dir / "run.json").read_text())
    assert [e["epoch"] for e in done["epochs"]] == [1, 2]
    assert done["wall_time_s"] > before["wall_time_s"]  # the earlier session's time is counted


def test_ema_run_evaluates_exports_and_carries_the_weights_average(finished_run, tmp_path):
    """--ema_momentum: the exported weights are the optimizer's moving average of the weights with
    batch-norm statistics recomputed for them, the checkpoint keeps the live ones to train on (two
    replicas here), and a carry file keeps both."""
    import keras_preact
    from keras_preact.training import state
    from keras_preact.training.run_dir import build_trained_model, read_run
    from training import carry

    root, first = finished_run
    md = str(tmp_path / "ema")
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={md}",
                       f"--init_from={first}", "--ema_momentum=0.5", "--ema_batch_norm_batches=5",
                       "--cpu_devices=2")
    assert rc == 0, err[-3000:]
    ckpt = state.load_checkpoint(md)
    names = ckpt.meta["optimizer_variables"]
    averages = [a for a, name in zip(ckpt.opt_values, names) if name.endswith(carry.AVERAGE_SUFFIX)]
    exported = build_trained_model(read_run(md))
    assert len(averages) == len(exported.trainable_variables) > 0
    for weight, average in zip(exported.trainable_variables, averages):
        np.testing.assert_array_equal(np.asarray(weight), average)
    live = keras_preact.build_variant("resnet_20", classes=3)
    for weight, value in zip(live.weights, ckpt.model_values):
        weight.assign(value)
    assert any(not np.array_equal(np.asarray(w), a) for w, a in zip(live.trainable_variables, averages))
    # The average gets batch-norm statistics of its own (training.batch_norm_statistics): the exported
    # ones are not the live weights' that the checkpoint keeps training with.
    assert "recomputed for the averaged weights on 5 batches" in err
    moving = [(np.asarray(a), np.asarray(b)) for a, b in zip(exported.non_trainable_variables,
                                                              live.non_trainable_variables)]
    assert moving and all(a.shape == b.shape and not np.allclose(a, b) for a, b in moving)
    assert json.loads(open(os.path.join(md, "run.json")).read())["config"]["ema_momentum"] == 0.5

    carried = tmp_path / "ema.npz"
    carry.save(md, str(carried))
    carry.restore(str(carried), str(tmp_path / "restored"))
    back = state.load_checkpoint(str(tmp_path / "restored"))
    back_averages = [a for a, name in zip(back.opt_values, names) if name.endswith(carry.AVERAGE_SUFFIX)]
    for a, b in zip(back_averages, averages):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)

    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={tmp_path}/x",
                       "--ema_momentum=1")
    assert_clean_error(rc, out, err, "ema_momentum must be in [0, 1)", "got 1.0")
    rc, out, err = run("keras_preact.training.train", *TINY, f"--dataset=folder:{root}", f"--model_dir={tmp_path}/x",
                       "--ema_momentum=0.5", "--ema_batch_norm_batches=-1")
    assert_clean_error(rc, out, err, "ema_batch_norm_batches must be >= 0", "got -1")

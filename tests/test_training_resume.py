"""Interruption and resume: SIGTERM and kill -9 mid-epoch, atomic files, checkpoint fallback."""

import json
import functools
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from keras_preact.training import state
from image_folders import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


make_folder = functools.partial(make_image_folder, classes=("a", "b"), n_train=80, n_test=4)


def start(args, log_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, "-m", "keras_preact.training.train", *args], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT), log


def wait_for(log_path, needle, proc, timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        with open(log_path) as f:
            if needle in f.read():
                return
        if proc.poll() is not None:
            raise AssertionError(f"process ended before {needle!r}:\n" + open(log_path).read()[-3000:])
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {needle!r}")


def epochs_done(md):
    with open(os.path.join(md, "run.json")) as f:
        return [e["epoch"] for e in json.load(f)["epochs"]]


def test_sigterm_and_kill9_mid_epoch_then_resume(tmp_path):
    root = make_folder(tmp_path / "ds")
    md = str(tmp_path / "run")
    args = ["--model=resnet_20", "--config=smoke", "--batch_size=8", "--epochs=4", f"--dataset=folder:{root}",
            f"--model_dir={md}"]
    # 1) SIGTERM in the middle of epoch 2 (20 steps per epoch).
    p, log = start(args, tmp_path / "1.log")
    wait_for(tmp_path / "1.log", "epoch 1/4", p)
    time.sleep(0.3)
    p.send_signal(signal.SIGTERM)
    rc = p.wait(timeout=120)
    log.close()
    text = open(tmp_path / "1.log").read()
    assert rc == 128 + signal.SIGTERM, text[-3000:]
    assert "run the same command again to resume" in text and "Traceback" not in text
    assert epochs_done(md) == [1]
    with open(os.path.join(md, "run.json")) as f:
        assert json.load(f)["status"] == "interrupted by SIGTERM"
    # 2) Same command: resumes after epoch 1; kill -9 in the middle of epoch 3.
    p, log = start(args, tmp_path / "2.log")
    wait_for(tmp_path / "2.log", "epoch 2/4", p)
    time.sleep(0.3)
    p.kill()
    p.wait(timeout=60)
    log.close()
    text = open(tmp_path / "2.log").read()
    assert "Resumed from" in text and "1 epoch(s) done" in text
    assert "epoch 1/4" not in text  # finished epochs are not redone
    assert epochs_done(md) == [1, 2]
    # 3) Same command again: resumes after epoch 2 and finishes.
    p, log = start(args, tmp_path / "3.log")
    rc = p.wait(timeout=240)
    log.close()
    text = open(tmp_path / "3.log").read()
    assert rc == 0, text[-3000:]
    assert "2 epoch(s) done" in text and "epoch 2/4" not in text
    with open(os.path.join(md, "run.json")) as f:
        r = json.load(f)
    assert [e["epoch"] for e in r["epochs"]] == [1, 2, 3, 4] and r["status"] == "finished"
    assert r["final"]["iterations"] == 4 * 20
    assert not [n for n in os.listdir(md) + os.listdir(os.path.join(md, "checkpoint")) if n.startswith(".tmp-")]


def test_atomic_write_keeps_old_file_when_writer_dies(tmp_path):
    path = str(tmp_path / "run.json")
    state.atomic_write_json(path, {"v": 1})

    def dying_writer(tmp):
        with open(tmp, "w") as f:
            f.write('{"v": 2, "trunc')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        state.atomic_write(path, dying_writer)
    assert json.load(open(path)) == {"v": 1}
    assert os.listdir(tmp_path) == ["run.json"]


def test_checkpoint_falls_back_to_previous_when_newest_is_damaged(tmp_path):
    md = str(tmp_path)
    w1 = [np.ones((2, 2), np.float32)]
    state.save_checkpoint(md, w1, [np.array(1)], {"epoch": 1})
    state.save_checkpoint(md, [w1[0] * 2], [np.array(2)], {"epoch": 2})
    ck = state.load_checkpoint(md)
    assert ck.meta["epoch"] == 2 and ck.model_values[0][0, 0] == 2
    # A damaged newest file (e.g. a disk error) never loads wrong: the previous one is used.
    with open(os.path.join(md, state.CKPT_DIR, state.CKPT), "r+b") as f:
        f.truncate(100)
    open(os.path.join(md, state.CKPT_DIR, ".tmp-123-ckpt.npz"), "wb").write(b"partial")
    ck = state.load_checkpoint(md)
    assert ck.meta["epoch"] == 1 and ck.model_values[0][0, 0] == 1
    assert ".tmp-123-ckpt.npz" not in os.listdir(os.path.join(md, state.CKPT_DIR))


def test_restore_rejects_mismatched_shapes():
    import keras

    v = keras.Variable(np.zeros((3,), np.float32))
    with pytest.raises(ValueError, match="shape"):
        state.restore([v], [np.zeros((4,), np.float32)], "model")

"""MirroredStrategy over 2 logical CPUs and MultiWorkerMirroredStrategy with 2 local workers."""

import json
import functools
import os
import re
import socket
import subprocess
import sys

import numpy as np
from PIL import Image
from image_folders import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


make_folder = functools.partial(make_image_folder, classes=("a", "b"), n_train=16, n_test=5)


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_mirrored_two_cpu_devices(tmp_path):
    root = make_folder(tmp_path / "ds")
    md = str(tmp_path / "run")
    p = subprocess.run([sys.executable, "-m", "keras_preact.training.train", "--model=resnet_20", "--config=smoke",
                        "--batch_size=8", "--epochs=2", "--cpu_devices=2", f"--dataset=folder:{root}",
                        f"--model_dir={md}"],  # --strategy=auto picks mirrored for --cpu_devices=2
                       cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    with open(os.path.join(md, "run.json")) as f:
        r = json.load(f)
    assert r["replicas"] == 2 and r["strategy"] == "mirrored"
    assert len(r["hardware"]["devices"]) == 2
    assert [e["epoch"] for e in r["epochs"]] == [1, 2]
    assert r["final"]["iterations"] == 2 * (32 // 8)
    assert r["final"]["test_examples"] == 10  # every test image once, none padded in


def test_multi_worker_two_processes_identical_weights(tmp_path):
    root = make_folder(tmp_path / "ds")
    md = str(tmp_path / "run")
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        log = open(tmp_path / f"w{i}.log", "w")
        procs.append((subprocess.Popen(
            [sys.executable, "-m", "keras_preact.training.train", "--model=resnet_20", "--config=smoke", "--batch_size=8",
             "--epochs=2", "--strategy=multi_worker", f"--dataset=folder:{root}", f"--model_dir={md}"],
            cwd=ROOT, env=_env(TF_CONFIG=tf_config), stdout=log, stderr=subprocess.STDOUT), log))
    try:
        rcs = [p.wait(timeout=300) for p, _ in procs]
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
            log.close()
    logs = [open(tmp_path / f"w{i}.log").read() for i in range(2)]
    assert rcs == [0, 0], "\n\n".join(x[-2000:] for x in logs)
    digests = [re.findall(r"weights sha256 ([0-9a-f]{64}) \(worker:(\d)\)", x) for x in logs]
    assert digests[0] and digests[1]
    assert digests[0][0][1] == "0" and digests[1][0][1] == "1"
    assert digests[0][0][0] == digests[1][0][0], "workers ended with different weights"
    with open(os.path.join(md, "run.json")) as f:
        r = json.load(f)
    assert r["replicas"] == 2 and r["workers"] == 2 and r["strategy"] == "multi_worker"
    assert r["final"]["weights_sha256"] == digests[0][0][0]
    assert r["final"]["iterations"] == 2 * (32 // 8)
    assert r["final"]["test_examples"] == 10

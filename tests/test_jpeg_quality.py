"""The JPEG-quality dose-response experiment (training/experiments/jpeg_quality.py, issue 4)."""

import io
import json
import os

import pytest
from PIL import Image

from bench import jpeg_copy
from training.experiments import grid as G
from training.experiments import jpeg_quality as JQ
from image_folders import make_image_folder

DEFAULT = G.Setting()  # cpu_d20_e10


def _jpeg_folder(root):
    # Pillow's defaults: quality 75, 4:2:0 -- the CIFAR-10 copy's settings
    return make_image_folder(root, classes=("cat", "dog"), n_train=3, n_test=2, fmt="jpg")


def test_reencode_writes_the_same_layout_at_the_asked_quality_and_reuses_a_finished_folder(tmp_path):
    src = _jpeg_folder(tmp_path / "copy")
    out = JQ.requal_dir(src, 30)
    assert out == src + "-requal30"
    rec = JQ.reencode_folder(src, out, 30)
    known = jpeg_copy.ijg_quality_by_tables()
    for split, n in (("train", 6), ("test", 4)):
        names = sorted(os.path.relpath(os.path.join(r, f), out) for r, _, fs in os.walk(os.path.join(out, split))
                       for f in fs)
        assert names == sorted(os.path.relpath(os.path.join(r, f), src)
                               for r, _, fs in os.walk(os.path.join(src, split)) for f in fs)
        assert len(names) == n and rec["splits"][split]["files"] == n
        for name in names:
            with Image.open(os.path.join(out, name)) as im:
                assert known[jpeg_copy._table_key(im)] == 30
                assert im.size == (32, 32)
        s = rec["splits"][split]
        assert s["bpp"] < s["source_bpp"]  # fewer bits than the q75 source
        assert 5.0 < s["psnr_db_pooled"] < 60.0
    assert rec["quality"] == 30 and rec["subsampling"] == "4:2:0"
    # a finished folder is read back, not re-encoded
    stamp = os.path.getmtime(os.path.join(out, "requal.json"))
    assert JQ.reencode_folder(src, out, 30) == rec
    assert os.path.getmtime(os.path.join(out, "requal.json")) == stamp


def test_reencode_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no train/ and test/ folders"):
        JQ.reencode_folder(str(tmp_path / "missing"), str(tmp_path / "out"), 50)
    pngs = make_image_folder(tmp_path / "png", classes=("cat",), n_train=1, n_test=1, fmt="png")
    with pytest.raises(ValueError, match=r"no JPEG files \(.jpg/.jpeg\) under"):
        JQ.reencode_folder(pngs, str(tmp_path / "out2"), 50)


@pytest.mark.parametrize("argv,message", [
    (["run"], "run needs --quality"),
    (["prepare"], "prepare needs --quality"),
    (["run", "--quality", "0"], "IJG quality in 1..100, got 0"),
    (["run", "--quality", "101"], "IJG quality in 1..100, got 101"),
])
def test_cli_rejects_a_missing_or_impossible_quality(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        JQ.main(argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_run_trains_the_grids_reference_network_on_the_reencoded_folder(tmp_path):
    out = io.StringIO()
    assert JQ.main(["run", "--quality", "50", "--dry_run", "--source", str(tmp_path / "copy"),
                    "--results_dir", str(tmp_path / "res")], out=out) == 0
    cmd = out.getvalue()
    assert "--model=resnetv2_20" in cmd and '"unit": "full_preactivation"' in cmd
    assert "--config=cifar_cpu_short" in cmd and "--epochs=10" in cmd and "--seed=0" in cmd
    assert f"--dataset=folder:{tmp_path / 'copy'}-requal50" in cmd
    assert f"--model_dir={tmp_path / 'res' / 'cpu_d20_e10' / 'requal50' / 'seed0'}" in cmd


def _write_run(path, error, status="finished", requal=None, train_accuracy=None):
    os.makedirs(path, exist_ok=True)
    last = {"epoch": 1} if train_accuracy is None else {"epoch": 1, "accuracy": train_accuracy}
    rec = {"model": "resnetv2_20", "status": status, "epochs": [last], "epochs_planned": 10, "wall_time_s": 1990.0,
           "final": {"test_error": error / 100} if status == "finished" else None}
    with open(os.path.join(path, "run.json"), "w") as f:
        json.dump(rec, f)
    if requal:
        with open(os.path.join(path, "requal.json"), "w") as f:
            json.dump(requal, f)


def test_report_compares_each_quality_with_the_q75_baseline_seeds(tmp_path):
    base, res = tmp_path / "grid", tmp_path / "res"
    for seed, err in enumerate((16.0, 16.2, 16.1)):
        _write_run(base / "cpu_d20_e10" / "full_preactivation" / f"seed{seed}", err, train_accuracy=0.85 + seed / 100)
    meta = lambda bpp, psnr: {"splits": {"test": {"bpp": bpp, "psnr_db_pooled": psnr}}}
    _write_run(res / "cpu_d20_e10" / "requal50" / "seed0", 17.5, requal=meta(1.77, 28.7))
    _write_run(res / "cpu_d20_e10" / "requal25" / "seed0", 0, status="running", requal=meta(1.2, 25.0))
    rows = JQ.collect(str(res), DEFAULT, str(base))
    assert [r["quality"] for r in rows] == [75, 50]  # the unfinished q25 run is left out
    assert rows[0]["test_error_mean"] == pytest.approx(16.1) and rows[0]["test_error_std"] == pytest.approx(0.1)
    text = JQ.report_text(rows, DEFAULT, base_bpp=2.312)
    assert "| q75 (the copy) | 2.312 | - | 3 | 16.10 ± 0.10 | 16.00, 16.20, 16.10 | 86.0 |" in text
    assert "| q50 (re-encoded) | 1.77 | 28.7 | 1 | 17.50 | 17.50 | - |" in text
    assert "q75 → q50: test error +1.40 points (16.10 → 17.50; the q75 seeds' standard deviation is 0.10)." in text
    assert "CIFAR-10 (JPEG q75 copy)" in text
    assert "Reproduce (33 min a run on one thread)" in text and "for q in 50; do" in text
    assert "No re-encoded run has finished yet." in JQ.report_text(rows[:1], DEFAULT, None)
    # the command writes the markdown and the JSON beside it
    out = io.StringIO()
    assert JQ.main(["report", "--results_dir", str(res), "--baseline_dir", str(base),
                    "--report", str(tmp_path / "jq.md")], out=out) == 0
    assert out.getvalue() == (tmp_path / "jq.md").read_text() + "\n"
    assert "| q50 (re-encoded) | 1.77 | 28.7 | 1 | 17.50 | 17.50 | - |" in out.getvalue()
    data = json.loads((tmp_path / "jq.json").read_text())
    assert data["setting"] == "cpu_d20_e10" and [r["quality"] for r in data["rows"]] == [75, 50]


def test_the_committed_report_is_what_the_committed_runs_give(tmp_path):
    """reports/jpeg_quality.md is regenerated, not edited: the same command over the same run.json
    files writes the same text (a finished run not yet in the report fails this until regenerated)."""
    ours = tmp_path / "jq.md"
    assert JQ.main(["report", "--report", str(ours)], out=io.StringIO()) == 0
    with open(os.path.join(G.ROOT, JQ.REPORT)) as f:
        committed = f.read()
    assert ours.read_text() == committed
    assert "| q75 (the copy) | 2.312 |" in committed  # the copy's measured bits per pixel (bench.jpeg_copy)

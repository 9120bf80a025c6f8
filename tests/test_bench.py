"""The bench/ commands: each `--quick` run exits 0 in a fresh process within 60 s of
CPU time, prints its markdown table and writes a JSON of the documented schema;
bench.report fills BENCHMARKS.md from those files; the reconstructed reference models
have the architecture their docstrings claim.

The time limit is on CPU seconds (user + system of the command and its workers), not
wall time, so a busy machine slows these tests down without failing them.
"""

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_LIMIT_S = 60
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_quick(module, tmp_path, *extra, cpu_limit=CPU_LIMIT_S):
    out = tmp_path / "result.json"
    before = _cpu_seconds()
    proc = subprocess.run([sys.executable, "-m", module, "--quick", "--out", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    cpu = _cpu_seconds() - before
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert cpu < cpu_limit, f"{module} --quick took {cpu:.0f} s of CPU (limit {cpu_limit} s)"
    result = json.loads(out.read_text())
    check_common(result, module, proc.stdout)
    return proc.stdout, result


def check_common(result, module, stdout):
    assert result["command"].startswith(f"python -m {module} --quick")
    assert DATE.match(result["date"])
    machine = result["machine"]
    assert isinstance(machine["cores"], int) and machine["cores"] >= 1
    assert isinstance(machine["avx2"], bool)
    assert isinstance(machine["avx512"], list) and isinstance(machine["amx"], list)
    assert {"tensorflow", "keras"} <= set(machine["versions"])
    for key in ("loadavg_start", "loadavg_end"):
        assert len(result[key]) == 3 and all(isinstance(x, (int, float)) for x in result[key])
    assert result["quick"] is True
    assert result["markdown"].strip() in stdout  # the JSON holds exactly the printed table


def table_rows(stdout, header_cells):
    """The rows of the printed markdown table whose header contains `header_cells`."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and all(h in cells for h in header_cells):
            assert re.match(r"^\|(---\|)+$", lines[i + 1]), lines[i + 1]
            rows = []
            for row in lines[i + 2:]:
                if not row.startswith("| "):
                    break
                rows.append([c.strip() for c in row.strip().strip("|").split("|")])
                assert len(rows[-1]) == len(cells), row
            return rows
    raise AssertionError(f"no table with columns {header_cells} in:\n{stdout}")


@pytest.mark.slow  # 38 s: a bench smoke run; bench/ commands are run by hand, not timed in CI
def test_train_speed_quick(tmp_path):
    stdout, result = run_quick("bench.train_speed", tmp_path)
    assert [p["pair"] for p in result["pairs"]] == ["cifar_resnetv2", "cifar_densenet"]
    for pair in result["pairs"]:
        roles = [c["role"] for c in pair["configs"]]
        assert roles == ["theirs", "ours", "control"]
        for config in pair["configs"]:
            assert config["error"] is None
            assert config["images_per_second"] > 0
            assert config["median_step_seconds"] > 0 and len(config["step_seconds"]) == 1
            assert config["params"] > 0 and config["multiply_adds"] > 0
            assert config["ours_over_this"] > 0
        ours = pair["configs"][1]
        assert ours["impl"]["kind"] == "keras_preact" and ours["harness"] == "trainer"
        assert ours["policy"] == "float32"
    for summary in result["summary"]:
        assert summary["ours_over_theirs"] > 0 and summary["ours_over_control"] > 0
        assert len(summary["ours_over_theirs_range"]) == 2
    rows = table_rows(stdout, ["model", "implementation", "images/s", "ours ÷ this (per-round range)"])
    assert len(rows) == 6
    assert any("Keras example resnet_v2(11)" in r[1] for r in rows)
    assert any("titu1994 DenseNet-BC-16" in r[1] for r in rows)
    summary_rows = table_rows(stdout, ["model", "ours >= 1.0x?"])
    assert len(summary_rows) == 2


@pytest.mark.slow
def test_train_speed_quick_applications_and_sweep(tmp_path):
    """keras.applications pairs and --sweep (XLA compiles): slower than the 60 s budget."""
    stdout, result = run_quick("bench.train_speed", tmp_path, "--pairs", "resnet50v2,densenet121", "--sweep",
                               cpu_limit=900)
    for pair in result["pairs"]:
        roles = [c["role"] for c in pair["configs"]]
        assert roles[:3] == ["theirs", "ours", "control"] and "ours_option" in roles
        assert pair["recommended"]["policy"] in ("float32", "mixed_bfloat16")
    assert "Recommended CPU training settings" in stdout


@pytest.mark.slow  # 14 s: a bench smoke run
def test_input_pipeline_quick(tmp_path):
    stdout, result = run_quick("bench.input_pipeline", tmp_path)
    assert result["train_images"] == 48 and result["batch"] == 8 and result["model"] == "resnet_20"
    assert [a["variant"].split(" (")[0].split(",")[0] for a in result["pipeline_alone"]] == [
        "stream", "stream + tf.data cache", "in memory"]
    for alone in result["pipeline_alone"]:
        assert alone["images_per_second"] > 0 and alone["over_training_step"] > 0
    feeds = [f["feed"] for f in result["training_step"]]
    assert feeds[0].startswith("synthetic") and any("no prefetch" in f for f in feeds)
    assert result["training_step"][0]["over_synthetic"] == pytest.approx(1.0)
    for fed in result["training_step"]:
        assert fed["images_per_second"] > 0 and len(fed["over_synthetic_round_range"]) == 2
    assert isinstance(result["bottleneck"], bool)
    assert len(table_rows(stdout, ["pipeline alone", "images/s"])) == 4
    assert len(table_rows(stdout, ["training step fed by", "÷ synthetic (per-round range)"])) == 4


def test_jpeg_copy_quick_reads_quality_and_subsampling_from_the_files(tmp_path):
    """--quick writes train/ at quality 75 with 4:2:0 chroma (as the CIFAR-10 copy) and test/
    at quality 90 with 4:4:4; the bench must tell them apart from the files alone."""
    stdout, result = run_quick("bench.jpeg_copy", tmp_path)
    train, test = result["splits"]["train"], result["splits"]["test"]
    assert train["quality"] == {"75": 6} and train["subsampling"] == {"4:2:0": 6}
    assert test["quality"] == {"90": 6} and test["subsampling"] == {"4:4:4": 6}
    for split in (train, test):
        assert split["sizes"] == {"32x32": 6} and split["files"] == 6
        assert 0 < split["mean_coded_bytes"] < split["mean_bytes"]
    assert train["bits_per_pixel"] < test["bits_per_pixel"] < 24
    rows = table_rows(stdout, ["split", "IJG quality (files)", "chroma subsampling (files)"])
    assert [r[:4] for r in rows] == [["train", "6", "75 (6)", "4:2:0 (6)"], ["test", "6", "90 (6)", "4:4:4 (6)"]]


def test_jpeg_copy_counts_coded_bytes_and_refuses_what_is_not_a_jpeg(tmp_path):
    import io

    from PIL import Image

    from bench import jpeg_copy

    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buffer, format="JPEG", quality=75)
    data = buffer.getvalue()
    sos = data.index(b"\xff\xda")
    header = int.from_bytes(data[sos + 2:sos + 4], "big")
    assert jpeg_copy.coded_bytes(data) == len(data) - (sos + 2 + header) - 2
    with pytest.raises(ValueError, match="no start-of-scan"):
        jpeg_copy.coded_bytes(data[:sos])
    folder = tmp_path / "split" / "class0"
    folder.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(folder / "a.png")
    with pytest.raises(ValueError, match=r"a\.png is PNG, not a JPEG file"):
        jpeg_copy.describe_split(str(tmp_path / "split"), jpeg_copy.ijg_quality_by_tables())


@pytest.mark.slow  # 45 s of CPU with four runtimes: a bench smoke run
def test_serving_latency_quick(tmp_path):
    stdout, result = run_quick("bench.serving_latency", tmp_path)
    (model,) = result["models"]
    assert model["model"] == "resnet50v2" and model["size"] == 32
    # The same function: our SavedModel vs keras.applications' with the same weights.
    assert model["max_abs_diff_vs_theirs_savedmodel"]["ours_uint8"] < 1e-4
    assert [b["batch"] for b in model["batches"]] == [1, 2]
    for batch in model["batches"]:
        assert set(batch["stats"]) == {"ours_uint8", "ours_bytes", "theirs_savedmodel",
                                       "theirs_pil_savedmodel", "theirs_predict"}
        for name, stats in batch["stats"].items():
            assert 0 < stats["p50_ms"] <= stats["p99_ms"] and stats["requests"] == 3
            if name.startswith("theirs"):
                assert stats["theirs_p50_over_ours_p50"] > 0 and stats["compared_with"].startswith("ours_")
    rows = table_rows(stdout, ["model", "batch", "path", "p50 ms", "p99 ms"])
    assert len(rows) == 10


@pytest.mark.slow  # 30 s: a bench smoke run; bench/ commands are run by hand, not timed in CI
def test_scaling_quick(tmp_path):
    stdout, result = run_quick("bench.scaling", tmp_path)
    rows = result["rows"]
    assert [(r["backend"], r.get("strategy"), r.get("devices")) for r in rows[:3]] == [
        ("tensorflow", "default", 1), ("tensorflow", "mirrored", 1), ("tensorflow", "mirrored", 2)]
    assert [r["replicas"] for r in rows[:3]] == [1, 1, 2]
    assert all(r["images_per_second"] > 0 for r in rows[:3])
    assert rows[1]["efficiency"] == pytest.approx(1.0)
    assert rows[2]["efficiency"] == pytest.approx(rows[2]["speedup"] / 2)
    jax_row = rows[3]
    assert jax_row["backend"] == "jax"
    assert jax_row.get("skipped") or jax_row.get("images_per_second", 0) > 0
    assert len(table_rows(stdout, ["configuration", "replicas", "images/s", "efficiency"])) == 4


@pytest.mark.slow  # 25 s: a bench smoke run (tests/test_densenet_memory.py checks the model)
def test_densenet_memory_quick(tmp_path):
    if "--quick" not in (ROOT / "bench" / "densenet_memory.py").read_text():
        pytest.skip("bench/densenet_memory.py has no --quick mode yet")
    stdout, result = run_quick("bench.densenet_memory", tmp_path)
    assert [(r["memory_efficient"], r["batch"]) for r in result["runs"]] == [(False, 8), (True, 8)]
    for run in result["runs"]:
        assert run["step_memory_bytes"] > 0 and run["step_seconds"] > 0
    assert result["memory_ratio"] > 0 and result["time_ratio"] > 0
    assert len(table_rows(stdout, ["implementation", "step memory (GiB)", "step time (s)"])) == 3


# ----------------------------------------------------------------------------- bench.report


def test_optimizer_update_quick_times_each_update_beside_the_whole_step(tmp_path):
    stdout, result = run_quick("bench.optimizer_update", tmp_path)
    (row,) = result["rows"]
    assert row["variables"] == 25  # pre-act ResNet-8: 8 convs + 8 batch norms x 2 + dense kernel and bias
    assert set(row["ms"]) == {"step", "keras", "keras_ema", "fused"} and all(v > 0 for v in row["ms"].values())
    (printed,) = table_rows(stdout, ["model", "trainable variables", "training step ms"])
    share = 100 * row["ms"]["keras"] / row["ms"]["step"]
    assert printed[3] == f"{row['ms']['keras']:,.1f} ({share:.1f}%)"


def _fake_results(root, quick=False):
    results = root / "bench" / "results"
    results.mkdir(parents=True)
    (results / "scaling.json").write_text(json.dumps({
        "command": "python -m bench.scaling", "date": "2026-01-01T00:00:00Z", "quick": quick,
        "machine": {"cpu": "AMD EPYC", "cores": 2, "avx2": True, "avx512": [], "amx": []},
        "loadavg_start": [0.1, 0.2, 0.3], "markdown": "| configuration | images/s |\n|---|---|\n| x | 1.0 |",
        "rows": [{"backend": "tensorflow", "strategy": "mirrored", "devices": 2, "speedup": 0.9,
                  "efficiency": 0.45, "images_per_second": 9.0},
                 {"backend": "jax", "skipped": "no GPU visible to JAX"}]}))


def test_report_fills_blocks_and_targets(tmp_path):
    from bench import report

    _fake_results(tmp_path)
    doc = "a\n<!-- result: scaling -->\nold\n<!-- /result -->\n<!-- result: serving_latency -->\n<!-- /result -->\n" \
          "<!-- result: targets -->\n<!-- /result -->\n"
    new = report.update(doc, str(tmp_path))
    assert "Command: `python -m bench.scaling`; measured 2026-01-01T00:00:00Z on AMD EPYC, 2 cores, AVX2" in new
    assert "| x | 1.0 |" in new and "\nold\n" not in new
    assert "not measured yet: run `python -m bench.serving_latency`" in new
    assert "2 logical CPUs: speed-up 0.90x, efficiency 0.45; JAX: no GPU visible to JAX" in new
    assert report.update(new, str(tmp_path)) == new  # idempotent


def _sweep_pair(title, ours_policy, ours_jit, recommended):
    ours = {"role": "ours", "policy": ours_policy, "jit": ours_jit, "ours_over_this": 1.0}
    xla = {"role": "ours_option", "policy": "float32", "jit": True, "ours_over_this": 1.3}
    return {"title": title, "configs": [ours, xla],
            "recommended": {"policy": recommended[0], "jit_compile": recommended[1], "speedup_over_float32": 1.2}}


def test_report_sweep_status_met_and_missed():
    """The targets row says MISSED when a recipe's default is not what the sweep measured fastest."""
    from bench import report

    met = report._sweep_status({"pairs": [_sweep_pair("A", "float32", False, ("float32", False))]}, None)
    assert met.startswith("met: the recipe's setting is the fastest measured for A")
    assert "float32 with XLA 1.30–1.30x" in met
    missed = report._sweep_status({"pairs": [_sweep_pair("A", "float32", False, ("float32", False)),
                                             _sweep_pair("B", "float32", False, ("mixed_bfloat16", True))]}, None)
    assert missed.startswith("MISSED: B: the recipe runs float32 without XLA, the sweep recommends "
                             "mixed_bfloat16 with XLA (1.20x over float32 without XLA)")
    assert "fastest measured for A" in missed
    assert report._sweep_status(None, None).startswith("not measured yet")


def test_machine_line_names_the_bfloat16_instructions():
    """Captions tell an AVX2-only CPU, AVX-512 without bf16 and AVX-512 with AVX512_BF16 apart:
    the project's machines have been each, and mixed_bfloat16's speed depends on it."""
    from bench import common

    base = {"cpu": "AMD EPYC", "cores": 2, "avx2": True, "amx": []}
    assert common.machine_line(dict(base, avx512=[])) == "AMD EPYC, 2 cores, AVX2, no AVX-512, no AMX"
    assert common.machine_line(dict(base, avx512=["avx512f"], avx512_bf16=False)) == (
        "AMD EPYC, 2 cores, AVX2, AVX-512 without AVX512_BF16, no AMX")
    assert common.machine_line(dict(base, avx512=["avx512_bf16", "avx512f"], avx512_bf16=True, amx=["amx_bf16"])) == (
        "AMD EPYC, 2 cores, AVX2, AVX-512 with AVX512_BF16, AMX")


def test_report_ignores_quick_results(tmp_path):
    from bench import report

    _fake_results(tmp_path, quick=True)
    assert report.render("scaling", str(tmp_path)).startswith("not measured yet (the JSON is from a --quick")


def test_report_check_of_benchmarks_md():
    """BENCHMARKS.md is what bench/results/ gives (run `python -m bench.report` after a bench)."""
    proc = subprocess.run([sys.executable, "-m", "bench.report", "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = (ROOT / "BENCHMARKS.md").read_text()
    from bench import report

    # Every section has a block the report fills (a name the block pattern cannot match would
    # leave its block silently empty, and --check would still pass).
    assert {m.group("name") for m in report.BLOCK.finditer(text)} >= set(report.SECTIONS)
    for command in ("python -m bench.train_speed", "python -m bench.input_pipeline",
                    "python -m bench.serving_latency", "python -m bench.scaling", "python -m bench.densenet_memory"):
        assert f"`{command}" in text


# ----------------------------------------------------------------------------- references


def _conv_filters(model):
    import keras

    return [layer.filters for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]


def test_keras_example_resnet_v2_widths():
    import keras_preact
    from bench.reference_models import keras_example_resnet_v2

    example = keras_example_resnet_v2(11)
    # Stem, then per stage: 1x1, 3x3, 1x1 and the projection (the example's widths 16/64/128).
    assert _conv_filters(example) == [16, 16, 16, 64, 64, 64, 64, 128, 128, 128, 128, 256, 256]
    paper = keras_example_resnet_v2(11, widths="paper")
    assert _conv_filters(paper) == [16, 16, 16, 64, 64, 32, 32, 128, 128, 64, 64, 256, 256]
    ours = keras_preact.ResNetV2(11, block="bottleneck")
    biases = sum(f for f in _conv_filters(paper))  # the example's convs keep Keras' default bias
    assert keras_preact.count_params(paper, trainable_only=True) == \
        keras_preact.count_params(ours, trainable_only=True) + biases


def test_titu1994_densenet_is_densenet_bc():
    import keras_preact
    from bench.reference_models import titu1994_densenet

    theirs = titu1994_densenet(16)
    ours = keras_preact.DenseNet(16, bottleneck=True, compression=0.5)
    assert keras_preact.count_params(theirs) == keras_preact.count_params(ours)
    assert keras_preact.count_flops(theirs) == keras_preact.count_flops(ours)

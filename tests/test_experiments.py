"""training/experiments (issue 6): the identity-mappings grid, plan/status/run, and the report
generator on synthetic and real (smoke-size) run.json files."""

import io
import json
import functools
import os
import re
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from PIL import Image

import keras_preact
from keras_preact.models.residual import SHORTCUTS, UNIT_LAYOUTS
from reports import make_identity_mappings as R
from training.experiments import grid as G
from training.experiments import identity_mappings as IM
from keras_preact.training import train as T
from image_folders import make_image_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = G.Setting()  # cpu_d20_e10


def fake_stats(model, kwargs):
    """(params, multiply-adds) without building: every net costs what ResNetV2-20 costs,
    DenseNets 2.6x (their real ratio is 2.59 for DenseNet-BC-52)."""
    return (264_586, 105_819_852) if model.startswith("densenet") else (272_282, 40_813_184)


make_folder = functools.partial(make_image_folder, classes=("cat", "dog", "fox"), n_train=8, n_test=3)


def write_run(results, setting, name, seed, *, error=None, epochs=10, planned=10, status="finished"):
    """A run.json as training.train writes it (the keys the report reads)."""
    path = os.path.join(str(results), setting.tag, name, f"seed{seed}")
    os.makedirs(path, exist_ok=True)
    final_err = error if error is not None else 10.0
    hist = []
    for e in range(1, epochs + 1):
        frac = e / planned
        hist.append({"epoch": e, "loss": 2.0 - 1.3 * frac, "accuracy": 0.4 + 0.5 * frac,
                     "val_loss": 1.5 - frac, "val_accuracy": 1 - (final_err / 100 + (1 - frac) * 0.3)})
    rec = {"model": "resnetv2_20", "model_kwargs": {"classes": 10}, "status": status, "epochs": hist,
           "epochs_planned": planned, "seed": seed, "config": {"name": "cifar_cpu_short", "label_smoothing": 0.1},
           "wall_time_s": 3300.0 * epochs / planned,
           "final": {"test_error": final_err / 100, "test_top1": 1 - final_err / 100} if status == "finished" else None}
    with open(os.path.join(path, "run.json"), "w") as f:
        json.dump(rec, f)
    return path


# --------------------------------------------------------------------------- the grid
def test_grid_covers_every_shortcut_and_unit_and_each_builds():
    grid = G.build_grid(G.Setting(depth=8))  # 6n+2 with n=1: the same variants, built in a blink
    t1 = [e for e in grid if any(r.table == "table1" for r in e.rows)]
    t2 = [e for e in grid if any(r.table == "table2" for r in e.rows)]
    assert {e.kwargs["shortcut"] for e in t1} == set(SHORTCUTS)  # all 6 of Figure 2
    assert {e.kwargs["unit"] for e in t1} == {"original"}  # Table 1 is on the original unit
    assert {e.kwargs["unit"] for e in t2} == set(UNIT_LAYOUTS)  # all 5 of Figure 4
    assert len([r for e in grid for r in e.rows if r.table == "table1"]) == 11
    assert len([r for e in grid for r in e.rows if r.table == "table2"]) == 5
    assert len({e.name for e in grid}) == len(grid)
    for e in t1 + t2:
        assert e.model == "resnetv2_20" and e.kwargs["depth"] == 8
        model = keras_preact.build_variant(e.model, **e.kwargs)
        assert model.output.shape == (None, 10), e.name
        assert keras_preact.paper_depth(model) == 8, e.name
        keras.backend.clear_session()


def test_shared_runs_seeds_and_paper_numbers():
    grid = {e.name: e for e in G.build_grid(DEFAULT)}
    ident = grid["original_identity"]
    assert ident.kwargs == {"unit": "original", "shortcut": "identity"} and ident.model == "resnetv2_20"
    assert {r.table for r in ident.rows} == {"table1", "table2", "table3"}
    full = grid["full_preactivation"]
    assert {r.table for r in full.rows} == {"table2", "table3", "densenet"} and full.pair.startswith("P1")
    # several seeds where the paper's gap is small, one where it is large
    for name in ("original_identity", "shortcut_only_gating_m6", "bn_after_addition", "relu_before_addition",
                 "relu_only_preactivation", "full_preactivation", "densenet_bc_52_12"):
        assert grid[name].seeds == (0, 1, 2), name
    for name in ("constant_scaling_0_1", "dropout_shortcut", "conv1x1", "exclusive_gating_0"):
        assert grid[name].seeds == (0,), name
    # the paper numbers themselves: test_grid_paper_numbers_are_papers_md
    paper = {r.row: r.primary_error for e in grid.values() for r in e.rows}
    assert paper["dropout shortcut (ratio 0.5)"] == G.FAIL
    assert grid["exclusive_gating_m7"].kwargs["gate_bias_init"] == -7.0
    assert grid["constant_scaling_0_1"].kwargs["shortcut_scale"] == 0.0
    # --seeds replaces every experiment's seeds; the order puts first seeds first, P2 last
    assert {e.seeds for e in G.build_grid(DEFAULT, seeds=[4, 5])} == {(4, 5)}
    order = G.run_order(list(grid.values()))
    first_second = next(i for i, (_, s) in enumerate(order) if s == 1)
    assert all(s == 0 for _, s in order[:first_second])
    assert order[-1][0].name == "densenet_bc_100_12"
    # P2's DenseNet is the paper's own DenseNet-BC-100 (k=12), so it carries the paper's 4.51%
    assert grid["densenet_bc_100_12"].kwargs == {} and paper["DenseNet-BC-100 (k=12)"] == 4.51


PAPERS = os.path.join(os.path.dirname(ROOT), "shared", "reference", "papers.md")


@pytest.mark.skipif(not os.path.isfile(PAPERS), reason=f"no {PAPERS} (the shared reference beside the checkout)")
def test_grid_paper_numbers_are_papers_md():
    """Every paper number of the grid (reports/identity_mappings.md's paper columns) is the one
    ../shared/reference/papers.md quotes: v2 Tables 1-3 and DenseNet Table 2 (C10+), parsed."""
    with open(PAPERS, encoding="utf-8") as f:
        text = f.read()

    def table(header):
        block = text.split(header, 1)[1].split("\n\n", 1)[0]
        return [[c.strip() for c in line.strip("|").split("|")] for line in block.splitlines()
                if line.startswith("|") and not line.startswith("|---")][1:]

    def value(cell):
        return G.FAIL if cell == "fail" else float(cell.split()[0])

    papers = {("table1", row.replace("gate bias", "bias")): {"ResNet-110": value(err)}
              for row, err in table("Table 1 — shortcut variants")}
    for row, e110, e164 in table("Table 2 — activation placement"):
        papers[("table2", row)] = {"ResNet-110": value(e110), "ResNet-164": value(e164)}
    table3 = {net: (value(orig), value(pre)) for data, net, orig, pre in table("Table 3 — original vs pre-activation")
              if data == "CIFAR-10" and "1-layer" not in net}
    for i, row in enumerate(("original", "pre-activation")):
        papers[("table3", row)] = {net.split(" (")[0]: errors[i] for net, errors in table3.items()}
    dense = table("Table 2 — CIFAR / SVHN error")
    for row in dense:
        m = re.fullmatch(r"DenseNet-BC L=(\d+), k=(\d+)", row[0])
        if m:
            papers[("densenet", f"DenseNet-BC-{m[1]} (k={m[2]})")] = {
                f"DenseNet-BC (L={m[1]}, k={m[2]}), {row[1]}": value(row[3])}
    rows = {(r.table, r.row): dict(r.paper) for e in G.build_grid(DEFAULT) for r in e.rows if r.paper}
    assert len(rows) >= 18
    for key, paper in rows.items():
        assert paper == papers[key], (key, paper, papers[key])


CPU_PAIR_MODELS = [("resnetv2_20", "{}"), ("resnetv2_56", "{}"),
                   ("densenet_bc_100_12", '{"depth": 52, "growth_rate": 12}'),
                   ("densenet_bc_100_12", "{}")]


@pytest.mark.parametrize("model,kw", CPU_PAIR_MODELS)
def test_matched_parameter_pairs_are_computed_not_guessed(model, kw):
    m = keras_preact.build_variant(model, **json.loads(kw))
    assert keras_preact.count_params(m, trainable_only=True) == G.PAIR_PARAMS[(model, kw)]


@pytest.mark.slow
@pytest.mark.parametrize("model,kw", sorted(set(G.PAIR_PARAMS) - set(CPU_PAIR_MODELS)))
def test_paper_scale_pair_params(model, kw):
    m = keras_preact.build_variant(model, **json.loads(kw))
    assert keras_preact.count_params(m, trainable_only=True) == G.PAIR_PARAMS[(model, kw)]


def test_pairs_are_matched():
    for scale, pairs in G.PAIRS.items():
        for pair, rdepth, ddepth, k, _, _ in pairs:
            if ddepth is None:
                continue
            r = G.PAIR_PARAMS[(f"resnetv2_{rdepth}", "{}")]
            dkw = "{}" if (ddepth, k) == (100, 12) else json.dumps({"depth": ddepth, "growth_rate": k})
            d = G.PAIR_PARAMS[("densenet_bc_100_12", dkw)]
            assert abs(d - r) / r <= 0.11, (scale, pair)  # "matched": within the paper scale's 10%
    for scale, sc in G.SCALES.items():
        for e in G.build_grid(G.Setting(scale, sc["depth"], sc["epochs"])):
            if e.family == "densenet":  # the grid trains exactly the networks counted above
                assert (e.model, e.kwargs_json()) in G.PAIR_PARAMS, e.name


def test_registered_cifar_depths_match_the_registry():
    names = keras_preact.list_models("resnetv2")
    cifar = sorted(int(n.split("_")[1]) for n in names
                   if n.startswith("resnetv2_") and keras_preact.get_model_spec(n).dataset == "cifar")
    assert tuple(cifar) == G.REGISTERED_CIFAR_RESNETV2
    assert G.resnet_model(164) == ("resnetv2_164", {}) and G.resnet_model(38) == ("resnetv2_20", {"depth": 38})


def test_setting_tags_round_trip_and_select_errors():
    for s in (DEFAULT, G.Setting("paper", 110, None), G.Setting("cpu", 8, 1, 2, 1, 4)):
        assert G.Setting.from_tag(s.tag) == s
    assert DEFAULT.tag == "cpu_d20_e10" and not DEFAULT.smoke and G.Setting("cpu", 8, 1, 2).smoke
    grid = G.build_grid(DEFAULT)
    assert [e.name for e in G.select(grid, "all", "constant_scaling_*")] == [
        "constant_scaling_0_1", "constant_scaling_05_1", "constant_scaling_05_05"]
    dense = {e.name for e in G.select(grid, "densenet")}
    assert dense == {"full_preactivation", "densenet_bc_52_12", "resnetv2_56", "densenet_bc_100_12"}
    assert "original_identity" in {e.name for e in G.select(grid, "table2")}
    err = io.StringIO()
    sys_stderr, sys.stderr = sys.stderr, err
    try:
        assert IM.main(["plan", "--only", "nope"]) == 2
    finally:
        sys.stderr = sys_stderr
    assert "nope" in err.getvalue() and "original_identity" in err.getvalue()


# --------------------------------------------------------------------------- plan / status / run
def test_plan_prints_grid_params_and_cpu_hours():
    out = io.StringIO()
    assert IM.main(["plan", "--group", "table2", "--depth", "8"], out=out) == 0
    text = out.getvalue()
    assert "cpu_d8_e10" in text and "0.80 s per batch-128 step" in text
    for unit in UNIT_LAYOUTS:
        assert (unit if unit != "original" else "original_identity") in text
    assert "CPU hours" in text and "unit=bn_after_addition" in text and "0,1,2" in text
    # The estimate itself: ResNetV2-20 at the reference speed for 10 epochs of 390 steps
    # plus 10 test passes at 1/3 the cost per image.
    grid = G.build_grid(DEFAULT)
    full = next(e for e in grid if e.name == "full_preactivation")
    h = G.estimate_hours(full, DEFAULT, 40_813_184, 40_813_184)
    assert h == pytest.approx(10 * (390 * 0.8 + 10_000 / 3 * 0.8 / 128) / 3600)
    md = IM.plan_text(grid, DEFAULT, markdown=True, stats=fake_stats)
    assert md.count("\n|") == len(grid) + 2 and "CPU hours in all" in md


def test_run_skips_done_runs_resumes_partial_and_respects_locks(tmp_path):
    results = tmp_path / "results"
    ds = tmp_path / "ds"
    ds.mkdir()
    setting = G.Setting(depth=20, epochs=10)
    write_run(results, setting, "bn_after_addition", 0, error=9.0)
    write_run(results, setting, "bn_after_addition", 1, status="stopped: non-finite loss", epochs=2)
    write_run(results, setting, "bn_after_addition", 2, status="running", epochs=4)
    args = ["--only", "bn_after_addition,full_preactivation", "--results_dir", str(results),
            "--dataset", f"folder:{ds}"]
    out = io.StringIO()
    assert IM.main(["run", "--dry_run", *args], out=out) == 0
    text = out.getvalue()
    assert "2 of 6 runs done; 4 to go" in text
    assert "bn_after_addition seed 2:" in text and "bn_after_addition seed 0:" not in text
    assert '--model_kwargs={"shortcut": "identity", "unit": "bn_after_addition"}' in text.replace("'", "")
    assert "--epochs=10" in text and "--config=cifar_cpu_short" in text
    out = io.StringIO()
    assert IM.main(["status", *args], out=out) == 0
    st = out.getvalue()
    assert "finished  test error 9.00%" in st and "diverged" in st and "partial   4/10 epochs" in st
    assert "1 diverged, 1 finished, 1 partial, 3 pending" in st
    # a live runner's lock keeps a second runner off; a dead one's lock is taken over
    path = G.run_dir(str(results), setting, next(e for e in G.build_grid(setting) if e.name == "bn_after_addition"), 2)
    with open(os.path.join(path, G.LOCK), "w") as f:
        f.write(str(os.getpid()))
    assert G.run_state(path).state == "running" and not IM._take_lock(path)
    with open(os.path.join(path, G.LOCK), "w") as f:
        f.write("999999999")
    assert G.run_state(path).state == "partial" and IM._take_lock(path)
    IM._release_lock(path)
    assert IM.main(["run", "--only", "conv1x1", "--results_dir", str(results),
                    "--dataset", f"folder:{tmp_path}/missing"], out=io.StringIO()) == 2


def test_run_does_not_retrain_a_run_another_runner_finished_after_the_listing(tmp_path, monkeypatch):
    """The to-do list is made at start; a run finished by a second runner since then is skipped,
    not resumed again (which re-evaluated it and rewrote its run.json)."""
    results, ds, marker = tmp_path / "results", tmp_path / "ds", tmp_path / "trained"
    ds.mkdir()
    setting = G.Setting(depth=20, epochs=10)
    write_run(results, setting, "conv1x1", 0, status="running", epochs=5)
    monkeypatch.setattr(IM, "train_command", lambda *a: [sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    take_lock = IM._take_lock

    def another_runner_finishes_it_first(path):
        write_run(results, setting, "conv1x1", 0, error=12.0)
        return take_lock(path)

    monkeypatch.setattr(IM, "_take_lock", another_runner_finishes_it_first)
    out = io.StringIO()
    assert IM.main(["run", "--only", "conv1x1", "--results_dir", str(results), "--dataset", f"folder:{ds}"],
                   out=out) == 0
    assert "0 of 1 runs done; 1 to go" in out.getvalue()
    assert "another runner finished it meanwhile (finished)" in out.getvalue()
    assert not marker.exists()
    path = G.run_dir(str(results), setting, next(e for e in G.build_grid(setting) if e.name == "conv1x1"), 0)
    assert not os.path.exists(os.path.join(path, G.LOCK))


def test_run_forwards_sigterm_to_the_training_and_exits_128_plus_n(tmp_path, monkeypatch):
    """SIGTERM to the runner stops the training child (which checkpoints its finished epochs
    and exits 128+15), releases the lock and exits 143 -- without training anything here."""
    import signal
    import threading

    marker = tmp_path / "child_got_sigterm"
    ready = tmp_path / "child_ready"  # the child exists: the runner's handlers are installed
    child = ("import signal, sys, time\n"
             "def bye(*a):\n"
             f"    open({str(marker)!r}, 'w').close(); sys.exit(143)\n"
             "signal.signal(signal.SIGTERM, bye)\n"
             f"open({str(ready)!r}, 'w').close()\n"
             "time.sleep(60)\n")
    monkeypatch.setattr(IM, "train_command", lambda *a: [sys.executable, "-c", child])
    ds = tmp_path / "ds"
    ds.mkdir()
    before = signal.getsignal(signal.SIGTERM)
    sent = []

    def terminate_once_the_child_runs():
        # Not on a fixed timer: SIGTERM before the runner's handler is in place would
        # kill pytest itself (e.g. when a cold machine's first imports take longer).
        deadline = time.time() + 120
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.05)
        if ready.exists():
            sent.append(time.time())
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=terminate_once_the_child_runs, daemon=True).start()
    rc = IM.main(["run", "--only", "conv1x1", "--results_dir", str(tmp_path / "r"), "--dataset",
                  f"folder:{ds}"], out=io.StringIO())
    assert sent, "the training child never started"
    assert rc == 128 + signal.SIGTERM and time.time() - sent[0] < 30
    assert marker.exists()
    run = os.path.join(tmp_path, "r", DEFAULT.tag, "conv1x1", "seed0")
    assert not os.path.exists(os.path.join(run, G.LOCK))
    assert signal.getsignal(signal.SIGTERM) is before  # the runner's handlers are gone


def test_model_kwargs_flag_parsing():
    assert T.parse_model_kwargs('{"unit": "original", "gate_bias_init": -6.0}') == {"unit": "original",
                                                                                   "gate_bias_init": -6.0}
    for bad, needle in (("{unit", "not valid JSON"), ("[1]", "JSON object"),
                        ('{"classifier_activation": null}', "may not set")):
        with pytest.raises(ValueError, match=needle):
            T.parse_model_kwargs(bad)


def test_smoke_run_trains_one_experiment_and_skips_it_after(tmp_path):
    """One real run through the runner, 2 steps of batch 4 at depth 8 (~15-40 s on 2 busy cores)."""
    ds = make_folder(tmp_path / "ds")
    results = tmp_path / "results"
    args = ["--only", "shortcut_only_gating_m6", "--seeds", "0", "--depth", "8", "--epochs", "1",
            "--steps_per_epoch", "2", "--validation_steps", "1", "--batch_size", "4",
            "--results_dir", str(results), "--dataset", f"folder:{ds}"]
    t0 = time.time()
    out = io.StringIO()
    assert IM.main(["run", *args], out=out) == 0, out.getvalue()
    assert time.time() - t0 < 120
    assert "finished in" in out.getvalue()
    setting = G.Setting("cpu", 8, 1, 2, 1, 4)
    run_dir = os.path.join(results, setting.tag, "shortcut_only_gating_m6", "seed0")
    with open(os.path.join(run_dir, "run.json")) as f:
        rec = json.load(f)
    assert rec["status"] == "finished" and rec["model"] == "resnetv2_20" and rec["seed"] == 0
    assert rec["model_kwargs"] == {"classes": 3, "depth": 8, "unit": "original",
                                   "shortcut": "shortcut_only_gating", "gate_bias_init": -6.0}
    assert len(rec["epochs"]) == 1 and rec["config"]["name"] == "cifar_cpu_short"
    # the run's log names the ablation, not only the registry model it overrides
    with open(os.path.join(run_dir, "output.log")) as f:
        assert 'Training resnetv2_20 {"depth": 8, "gate_bias_init": -6.0' in f.read()
    # the builder really got the overrides: the exported model has the gates
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    assert any(layer.name.endswith("_gate_conv") for layer in model.layers)
    out = io.StringIO()
    assert IM.main(["run", *args], out=out) == 0
    assert "1 of 1 runs done; 0 to go" in out.getvalue()
    # the smoke setting only shows up in the report when asked for
    md = R.make_report(str(results), str(tmp_path / "r.md"), str(tmp_path / "fig"), DEFAULT, stats=fake_stats)
    assert setting.tag not in md
    md = R.make_report(str(results), str(tmp_path / "r.md"), str(tmp_path / "fig"), DEFAULT, include_smoke=True,
                       stats=fake_stats)
    assert f"Setting `{setting.tag}`" in md and "shortcut-only gating, bias init -6" in md
    assert os.path.exists(tmp_path / "fig" / f"{setting.tag}_table1_shortcuts.png")
    assert "Gates of" not in md  # nothing measured yet
    # gates: the trained run's mean g per unit over the test split, then in the report
    out = io.StringIO()
    assert IM.main(["gates", *args], out=out) == 0, out.getvalue()
    assert "shortcut_only_gating_m6 seed 0: mean g per unit" in out.getvalue()
    with open(os.path.join(run_dir, G.GATES_FILE)) as f:
        gates = json.load(f)
    assert list(gates["units"]) == ["conv2_block1", "conv3_block1", "conv4_block1"]  # depth 8: one unit a stage
    assert gates["images"] == 9 and gates["split"] == "test" and gates["gate_bias_init"] == -6.0
    assert gates["dataset"] == f"folder:{ds}"  # the images measured, not a label it may not deserve
    assert all(0.0 < g < 1.0 for g in gates["units"].values())
    md = R.make_report(str(results), str(tmp_path / "r.md"), str(tmp_path / "fig"), DEFAULT, include_smoke=True,
                       stats=fake_stats)
    assert "Gates of shortcut-only gating, bias init -6 (seed 0) after training, mean g per unit over the 9 test" in md
    # without the (never committed) final weights there is nothing to measure: say so, exit 2
    os.remove(os.path.join(run_dir, "final.weights.h5"))
    assert IM.main(["gates", *args], out=io.StringIO()) == 2


def test_trainer_rejects_bad_model_kwargs_in_one_line(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    p = subprocess.run([sys.executable, "-m", "keras_preact.training.train", "--model=resnetv2_20",
                        "--model_kwargs=[1]", f"--dataset=folder:{tmp_path}", f"--model_dir={tmp_path}/m"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.startswith("error:")] == [
        "error: --model_kwargs must be a JSON object, got '[1]'"]


# --------------------------------------------------------------------------- the report
def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_with_no_runs(tmp_path):
    md = R.make_report(str(tmp_path / "none"), str(tmp_path / "r.md"), str(tmp_path / "fig"), DEFAULT,
                       stats=fake_stats)
    assert md.count("not run yet") >= 11 + 5 + 2 + 4
    assert "### v2 paper Table 1" in md and "### v2 paper Table 2" in md and "### v2 paper Table 3" in md
    assert "DenseNet-BC vs pre-activation ResNet at matched parameters" in md
    assert "CIFAR-10 (JPEG q75 copy)" in md and "CPU hours in all" in md
    assert not os.path.exists(tmp_path / "fig") or not os.listdir(tmp_path / "fig")
    assert open(tmp_path / "r.md").read() == md


def test_report_on_synthetic_runs(tmp_path):
    res = tmp_path / "results"
    for seed, err in enumerate((9.0, 9.2, 9.1)):
        write_run(res, DEFAULT, "original_identity", seed, error=err)
    for seed, err in enumerate((8.5, 8.7)):
        write_run(res, DEFAULT, "full_preactivation", seed, error=err)
    write_run(res, DEFAULT, "full_preactivation", 2, status="running", epochs=3)
    write_run(res, DEFAULT, "dropout_shortcut", 0, status="stopped: non-finite loss", epochs=2)
    write_run(res, DEFAULT, "constant_scaling_0_1", 0, error=25.0)
    write_run(res, DEFAULT, "conv1x1", 0, error=8.0)  # beats identity: must be reported as such
    write_run(res, DEFAULT, "densenet_bc_52_12", 0, error=8.1)
    write_run(res, DEFAULT, "bn_after_addition", 0, status="running", epochs=4)
    other = G.Setting(depth=56, epochs=10)  # a second real setting on disk gets its own section
    write_run(res, other, "full_preactivation", 0, error=7.0)
    fig = tmp_path / "reports" / "figures"
    md = R.make_report(str(res), str(tmp_path / "reports" / "im.md"), str(fig), DEFAULT, stats=fake_stats)
    assert "**9.10 ± 0.10**" in md and "**8.60 ± 0.14**" in md
    assert "3/3 (0,1,2)" in md and "2/3 (0,1)" in md
    assert "diverged (1 of 1 seeds; fail)" in md and "**25.00** (fail: >20%)" in md
    assert "in progress (4/10 epochs)" in md and "not run yet" in md
    assert "Paper \"fail\" rows that also fail here (>20% or diverged): 2 of 2" in md
    assert "Not reproduced: 1 row(s) beat original (identity): 1x1 conv shortcut" in md
    assert "fail here (>20% or diverged) but not in the paper" not in md
    write_run(res, DEFAULT, "exclusive_gating_m7", 0, error=39.7)  # paper: 9.81
    md = R.make_report(str(res), str(tmp_path / "reports" / "im.md"), str(fig), DEFAULT, stats=fake_stats)
    assert ("Not reproduced: fail here (>20% or diverged) but not in the paper: "
            "exclusive gating, bias init -7 (39.70% vs the paper's 9.81%).") in md
    assert "pre-activation better, as in the paper" in md
    assert "P1 (~0.27M): DenseNet-BC-52 (k=12) vs ResNetV2-20" in md and "DenseNet-BC better" in md
    assert "(0.97x the parameters, 2.6x the multiply-adds per image)" in md
    # params, MAdds/image, ours, epochs, seeds, mean wall minutes of the finished seeds (3300 s each)
    assert "| DenseNet-BC-52 (k=12) | 264,586 | 106M | **8.10** | 10 | 1/3 (0) | 55 |" in md
    assert "| ResNetV2-56 | 272,282 | 41M | not run yet | 10 | 0/1 | – |" in md
    assert "Setting `cpu_d56_e10`" in md and "**7.00**" in md
    names = ["table1_shortcuts", "table2_units", "table3_original_vs_preact", "densenet_curves",
             "densenet_params_vs_error"]
    for n in names:
        p = fig / f"cpu_d20_e10_{n}.png"
        assert _png(p), p
        assert f"](figures/cpu_d20_e10_{n}.png)" in md
    # runs disappear -> their figures go too (the report is a function of the run.json files)
    md = R.make_report(str(tmp_path / "empty"), str(tmp_path / "reports" / "im.md"), str(fig), DEFAULT,
                       stats=fake_stats)
    assert not any(os.path.exists(fig / f"cpu_d20_e10_{n}.png") for n in names)


def test_curves_are_in_the_papers_style(tmp_path):
    """Dashed training loss and solid test error, one colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    captured = {}
    orig = plt.close

    def keep(fig):
        captured["fig"] = fig

    plt.close = keep
    try:
        ok = R.curves_figure(str(tmp_path / "c.png"), [("a", ([1, 2], [1.0, 0.5], [30.0, 20.0])),
                                                       ("b", ([1, 2], [1.2, 0.6], [35.0, None]))], "t", "ce")
    finally:
        plt.close = orig
    assert ok and _png(tmp_path / "c.png")
    ax_loss, ax_err = captured["fig"].axes
    assert {ln.get_linestyle() for ln in ax_loss.lines} == {"--"}
    assert {ln.get_linestyle() for ln in ax_err.lines} == {"-"}
    for dashed, solid in zip(ax_loss.lines, ax_err.lines):
        assert dashed.get_color() == solid.get_color()
    assert len({ln.get_color() for ln in ax_err.lines}) == 2
    orig(captured["fig"])


class _FakeResult:
    def __init__(self, error):
        self.error = error

    def has_result(self):
        return True

    def score(self):
        return self.error

    def mean_std(self):
        return self.error, 0.0, 1

    fails = R.Result.fails


def test_ordering_check_claims_no_best_row_from_a_single_run():
    one = R.ordering_check([("full pre-activation", _FakeResult(16.15), 6.37)], "full pre-activation")
    assert not any("also our best" in line for line in one)
    assert any("only one row" in line for line in one)
    two = R.ordering_check([("full pre-activation", _FakeResult(16.15), 6.37),
                            ("original", _FakeResult(17.0), 6.61)], "full pre-activation")
    assert any("also our best" in line for line in two)
    assert any("1 of 1 pairs" in line for line in two)


def test_gate_means_reads_every_units_gate():
    """With the gates' kernels zeroed, g = sigmoid(b_g) everywhere, whatever the image."""
    model = keras_preact.build_variant("resnetv2_20", classes=10, unit="original", shortcut="exclusive_gating",
                                   gate_bias_init=-6.0)
    gates = [layer for layer in model.layers if layer.name.endswith("_gate_conv")]
    for layer in gates:
        kernel, bias = layer.get_weights()
        layer.set_weights([np.zeros_like(kernel), bias])
    images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    means = keras_preact.models.analysis.gate_means(model, images)
    assert list(means) == [f"conv{s}_block{b}" for s in (2, 3, 4) for b in (1, 2, 3)]
    np.testing.assert_allclose(list(means.values()), 1 / (1 + np.exp(6.0)), rtol=1e-5)
    with pytest.raises(ValueError, match="no gate layers.*exclusive_gating"):
        keras_preact.models.analysis.gate_means(keras_preact.get_model("resnetv2_20", classes=10), images)


def test_report_says_which_gates_stayed_shut(tmp_path):
    res = tmp_path / "results"
    path = write_run(res, DEFAULT, "exclusive_gating_m6", 0, error=24.41)
    units = {"conv2_block1": 0.094, "conv3_block2": 0.006, "conv4_block1": 0.003}
    with open(os.path.join(path, G.GATES_FILE), "w") as f:
        json.dump({"seed": 0, "shortcut": "exclusive_gating", "gate_bias_init": -6.0, "initial_gate": 0.0025,
                   "split": "test", "images": 10000, "units": units}, f)
    md = R.make_report(str(res), str(tmp_path / "im.md"), str(tmp_path / "fig"), DEFAULT, stats=fake_stats)
    assert ("Gates of exclusive gating, bias init -6 (seed 0) after training, mean g per unit over the 10,000 test "
            "images: conv2: 0.094; conv3: 0.006; conv4: 0.003; at initialisation g = sigmoid(-6) = 0.0025. "
            "2 of 3 units still have g < 0.01") in md
    assert "pass almost none of their residual function" in md


def test_average_checkpoints_is_the_mean_of_every_model_variable():
    from keras_preact.training import state
    from training.experiments.average_checkpoints import average

    first = state.Checkpoint("a", [np.array([1.0, 2.0], np.float32), np.array(4.0, np.float32)], [], {"epoch": 1})
    second = state.Checkpoint("b", [np.array([3.0, 6.0], np.float32), np.array(0.0, np.float32)], [], {"epoch": 2})
    mean = average([first, second])
    np.testing.assert_array_equal(mean[0], [2.0, 4.0])
    assert mean[1] == 2.0 and mean[0].dtype == np.float32


def test_the_committed_identity_mappings_report_is_what_the_committed_runs_give(tmp_path):
    """reports/identity_mappings.md says it is generated: the same command over the committed
    run.json files (parameter counts from the built networks) writes the same text, so a number
    edited into the report, or a finished run not yet in it, fails this until regenerated."""
    out = tmp_path / "reports" / "identity_mappings.md"
    assert R.main(["--out", str(out), "--figures_dir", str(tmp_path / "reports" / "figures")]) == 0
    committed = os.path.join(G.ROOT, R.DEFAULT_OUT)
    with open(committed) as f:
        assert out.read_text() == f.read()
    assert "Runs finished: 32 of 32" in out.read_text()  # the real runs, not an empty grid

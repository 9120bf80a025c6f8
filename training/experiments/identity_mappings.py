r"""Reproduce the orderings of the v2 paper's Tables 1-3 and DenseNet-BC's parameter efficiency.

    python -m training.experiments.identity_mappings plan              # the grid, params, CPU hours
    python -m training.experiments.identity_mappings run               # train what is not done yet
    python -m training.experiments.identity_mappings status            # what is done
    python -m training.experiments.identity_mappings gates             # gating runs: mean g per unit
    python -m reports.make_identity_mappings                           # reports/identity_mappings.md

Options: ``--group table1|table2|densenet|all``, ``--only NAME[,NAME|GLOB]``, ``--scale cpu|paper``,
``--depth 20``, ``--epochs 10`` (``recipe``: the recipe's own length), ``--seeds 0,1,2`` (replaces
every experiment's seeds), ``--results_dir training/experiments/results``,
``--dataset folder:data/cifar10-jpeg``; for ``run``: ``--max_runs N``, ``--dry_run``, and the
smoke-size caps ``--steps_per_epoch``, ``--validation_steps``, ``--batch_size`` (which change the
setting tag, so smoke runs never mix with real ones).

What is trained (``grid.py`` holds the grid; ``plan`` prints it)
-----------------------------------------------------------------
* ``table1``: the 11 rows of the v2 paper's Table 1 (Figure 2): identity, constant scaling
  (0/1, 0.5/1, 0.5/0.5), exclusive gating (b_g = 0, -6, -7), shortcut-only gating (0, -6),
  1x1-conv and dropout (0.5) shortcuts -- all six shortcut kinds of ``ResNetV2(shortcut=)``,
  on the *original* (post-activation) unit as in the paper (its Figure 2 draws ReLU after the
  addition; the Table 1 identity row is the original ResNet-110, 6.61%).
* ``table2``: the five units of Table 2 / Figure 4 (``ResNetV2(unit=)``) with identity
  shortcuts. Its ``original`` row is the same network as Table 1's identity row, so one run
  serves both, and the original / full pre-activation pair also fills Table 3.
* ``densenet``: DenseNet-BC vs pre-activation ResNet at matched parameter counts (trainable
  parameters, computed with ``keras_preact.count_params``; ``grid.PAIRS`` lists them and a test
  recomputes them): P1 ResNetV2-20 (272,282) vs DenseNet-BC L=52, k=12 (264,586); P2
  ResNetV2-56 (855,578) vs the paper's DenseNet-BC L=100, k=12 (769,162, 0.90x). P1's ResNet is
  Table 2's full pre-activation run. The report also plots error against parameters, so
  "DenseNet-BC-52 (0.26M) vs ResNetV2-56 (0.86M)" answers the paper's "same accuracy with far fewer
  parameters" at this scale.

Defaults for a 2-core CPU (``--scale cpu``) and why
---------------------------------------------------
* Depth 20 (n = 3, 9 residual units). Measured cost: pre-activation ResNet-20 trains at
  ~0.80 s per batch-128 step on this CPU when nothing else runs (0.736 s measured,
  keras_preact/training/configs.py ``CifarCpuShort``), ~5.5 minutes per epoch with the test pass; ~1.9 s per
  step with one other training run on the cores. ResNet-56 costs ~3x that, ResNet-110 ~6x: at
  the paper's depth and 164 epochs one run would take ~4 days here, the 27 ResNet runs of
  Tables 1-2 ~15 weeks. Machines differ between sessions: on the 2026-11-29 one (AMD EPYC
  Zen 4, AVX-512) a 10-epoch ResNet-20 run took 34 min with one thread
  (``TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1``) while a second single-threaded
  training run shared the two cores (about 3.1 min, 280 images/s, per epoch each: the runs'
  ``run.json``).
* 10 epochs of ``cifar_cpu_short`` (one-cycle: 2-epoch warm-up to lr 0.2, linear decay to 0;
  Nesterov SGD, coupled L2 5e-4, label smoothing 0.1, the papers' pad/crop/flip): ~55 minutes
  per ResNet-20 run (measured: 57 min, its first 3 epochs sharing the cores with a CI run). Measured at 10 epochs: full pre-activation, seed 0,
  83.85% top-1 (16.15% error) on CIFAR-10 (JPEG q75 copy) -- far from the papers' 164-epoch
  errors, so the report compares orderings, not absolute errors. It is the project's measured CPU
  recipe and the only one whose schedule stretches with ``--epochs`` (the paper recipes decay
  at fixed iterations 32k/48k, which a 10-epoch run never reaches). Every experiment --
  DenseNet-BC included -- uses the same recipe, so each comparison differs only in the network.
* Seeds: three (0, 1, 2) where the paper's gap is small -- all five Table 2 units (6.37-8.17%),
  Table 1's identity vs shortcut-only gating b_g=-6 (6.61 vs 6.91), and the P1 pair -- one where
  it is large (Table 1's "fail" and ~9-13% rows; the expensive P2 pair). The run-to-run std of
  a CIFAR ResNet-20 is usually ~0.2-0.3 points (to be measured by the three-seed rows): below
  most Table 1 gaps, comparable to the Table 2 gaps.
* Run order: all first seeds before any second seed (the orderings are visible after one
  pass), the costly P2 pair last.
* Estimated total (``plan``): ~56 CPU hours on a quiet machine (about 2.3x that while another
  training run shares the cores): Table 1 ~14 h, Table 2 ~11 h, DenseNet pairs ~30 h (P2's
  DenseNet-BC-100 alone ~13 h by the cost model; DenseNet-BC-52 ran at ~0.70x its estimate:
  200 min per run (mean of 3 seeds), the report's "Training min/run", against 4.79 h).
  The first pass (every experiment's first seed, P2 excluded) is ~19 h. ``--epochs 6`` cuts everything by ~40%.

``--scale paper`` (on a GPU): ResNet-110 (``--depth 164`` gives Table 2's bottleneck column),
the papers' own recipes (``resnet_cifar_warmup``: 64k iterations with the 400-iteration
warm-up; ``densenet_cifar``: 300 epochs), and DenseNet-BC-100 (k=12) vs ResNetV2-56 (matched)
and vs ResNetV2-164 (the paper's comparison).

``gates`` loads each finished gating run's final weights (exclusive and shortcut-only gating)
and writes ``gates.json`` beside its run.json: the mean gate value g per residual unit over the
whole test split (``keras_preact.models.analysis.gate_means``). The weights stay local, so gates.json
is what the report reads to say whether a gate that starts nearly shut (b_g = -6: g = 0.0025)
opened during a short schedule.

Runs: ``<results_dir>/<setting tag>/<experiment>/seed<S>/``, each a plain
``training.train`` model_dir (the builder overrides go in through its ``--model_kwargs``), so ``run`` resumes a partial run through the trainer's own
checkpoint, and skips finished runs and runs that diverged (NaN: a result, the paper's
"fail"). A lock file keeps two ``run`` processes off the same run. Commit the results with
``git add training/experiments/results`` (its .gitignore keeps only run.json, train.log and
gates.json).

Exit status: 0 done; 2 bad arguments or a run that failed to start (its output.log says why);
128+N interrupted by signal N (the run in progress keeps its finished epochs; re-run to resume).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from typing import List, Optional, Sequence

from training.experiments import grid as G

ROOT = G.ROOT


# --------------------------------------------------------------------------- arguments
def _parse_epochs(text: str):
    if text == "recipe":
        return text
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError("--epochs must be >= 1 or 'recipe'")
    return v


def _parse_seeds(text: str) -> List[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"--seeds must be distinct non-negative integers, got {text!r}")
    return seeds


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return v


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.experiments.identity_mappings",
                                description="v2-paper Tables 1-3 and DenseNet-BC vs ResNetV2 on CIFAR-10.")
    p.add_argument("command", choices=("plan", "run", "status", "gates"))
    p.add_argument("--group", default="all", choices=("all",) + G.GROUPS)
    p.add_argument("--only", default=None, help="comma-separated experiment names or globs")
    p.add_argument("--scale", default="cpu", choices=tuple(G.SCALES))
    p.add_argument("--depth", type=_positive, default=None, help="ResNet depth of Tables 1-3 (cpu: 20, paper: 110)")
    p.add_argument("--epochs", type=_parse_epochs, default=None,
                   help="epochs per run, or 'recipe' (cpu: 10, paper: recipe)")
    p.add_argument("--seeds", type=_parse_seeds, default=None, help="replace every experiment's seeds, e.g. 0,1,2")
    p.add_argument("--results_dir", default=G.DEFAULT_RESULTS_DIR)
    p.add_argument("--dataset", default=G.DEFAULT_DATASET)
    p.add_argument("--steps_per_epoch", type=_positive, default=None, help="smoke runs only")
    p.add_argument("--validation_steps", type=_positive, default=None, help="smoke runs only")
    p.add_argument("--batch_size", type=_positive, default=None, help="smoke runs only")
    p.add_argument("--max_runs", type=_positive, default=None, help="run: stop after this many runs")
    p.add_argument("--dry_run", action="store_true", help="run: print the commands only")
    return p


def setting_from_args(a) -> G.Setting:
    sc = G.SCALES[a.scale]
    return G.Setting(scale=a.scale, depth=a.depth if a.depth is not None else sc["depth"],
                     epochs=sc["epochs"] if a.epochs is None else (None if a.epochs == "recipe" else a.epochs),
                     steps_per_epoch=a.steps_per_epoch, validation_steps=a.validation_steps,
                     batch_size=a.batch_size)


def _abs(path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(ROOT, path)


def _dataset(spec: str) -> str:
    if spec.startswith("folder:"):
        return "folder:" + _abs(spec[len("folder:"):])
    return spec


# --------------------------------------------------------------------------- plan
def _fmt_kwargs(kw) -> str:
    return ", ".join(f"{k}={v}" for k, v in kw.items()) or "-"


def _fmt_rows(e: G.Experiment) -> str:
    return "; ".join(f"{r.table}: {r.row}" for r in e.rows)


def plan_rows(exps: Sequence[G.Experiment], setting: G.Setting, stats=G.model_stats) -> List[dict]:
    """One dict per experiment: params, multiply-adds, estimated hours (`stats(model, kwargs)`
    gives (params, multiply-adds); tests pass a stand-in that builds nothing)."""
    ref = stats(G.REF_MODEL, {})[1]
    out = []
    for e in exps:
        params, flops = stats(e.model, e.kwargs)
        h = G.estimate_hours(e, setting, flops, ref)
        out.append(dict(exp=e, params=params, flops=flops, hours_per_run=h, hours=h * len(e.seeds),
                        first_pass=h if e.priority == 0 else 0.0))
    return out


def plan_text(exps: Sequence[G.Experiment], setting: G.Setting, markdown: bool = False, stats=G.model_stats) -> str:
    rows = plan_rows(exps, setting, stats)
    epochs = setting.epochs if setting.epochs is not None else "recipe"
    head = (f"Setting {setting.tag}: ResNet depth {setting.depth} for Tables 1-3, {epochs} epochs per run, "
            f"{G.DATASET_LABEL}.\nCost model: {G.REF_MODEL} = {G.REF_S_PER_STEP:.2f} s per batch-{G.REF_BATCH} "
            f"step (float32, quiet 2-core CPU), other nets scaled by multiply-adds x "
            f"{G.FAMILY_TIME_PER_FLOP['densenet']:.1f} for DenseNet; test pass 1/3 of a training step per "
            f"image; about 2.3x longer while another training run shares the cores.")
    cols = ["#", "experiment", "group", "model", "kwargs", "recipe", "params", "MAdds", "seeds", "h/run", "h total",
            "paper rows"]
    table = []
    for i, r in enumerate(rows, 1):
        e = r["exp"]
        table.append([str(i), e.name, e.group + (f" {e.pair}" if e.pair else ""), e.model, _fmt_kwargs(e.kwargs),
                      e.config, f"{r['params']:,}", f"{r['flops'] / 1e6:.0f}M", ",".join(map(str, e.seeds)),
                      f"{r['hours_per_run']:.2f}", f"{r['hours']:.1f}", _fmt_rows(e)])
    runs = sum(len(r["exp"].seeds) for r in rows)
    total = sum(r["hours"] for r in rows)
    first = sum(r["first_pass"] for r in rows)
    by_group = {}
    for r in rows:
        by_group[r["exp"].group] = by_group.get(r["exp"].group, 0.0) + r["hours"]
    foot = (f"{len(rows)} experiments, {runs} runs, about {total:.0f} CPU hours in all "
            f"({', '.join(f'{g} {h:.1f} h' for g, h in by_group.items())}); the first pass (every "
            f"experiment's first seed, stretch pairs excluded) about {first:.0f} h.")
    if markdown:
        lines = [head.replace("\n", " "), "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in table]
        return "\n".join(lines + ["", foot])
    widths = [max(len(c), *(len(row[j]) for row in table)) if table else len(c) for j, c in enumerate(cols)]
    widths[-1] = len(cols[-1])  # do not pad the last column
    fmt = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([head, "", fmt(cols)] + [fmt(row) for row in table] + ["", foot])


# --------------------------------------------------------------------------- status
def status_lines(exps, setting, results_dir) -> List[str]:
    lines = [f"Setting {setting.tag} in {results_dir}:"]
    counts = {}
    for e, s in G.run_order(exps):
        st = G.run_state(G.run_dir(results_dir, setting, e, s))
        counts[st.state] = counts.get(st.state, 0) + 1
        detail = ""
        if st.state == "finished":
            detail = f"test error {st.test_error:.2f}%"
        elif st.state in ("partial", "running", "diverged"):
            detail = f"{st.epochs_done}/{st.epochs_planned or '?'} epochs"
        if st.wall_time_s:
            detail += f", {st.wall_time_s / 3600:.2f} h"
        lines.append(f"  {e.name:<26} seed {s}  {st.state:<9} {detail}".rstrip())
    lines.append("  " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    return lines


# --------------------------------------------------------------------------- run
def train_command(e: G.Experiment, seed: int, setting: G.Setting, model_dir: str, dataset: str) -> List[str]:
    cmd = [sys.executable, "-m", "keras_preact.training.train", f"--model={e.model}",
           f"--model_kwargs={e.kwargs_json()}", f"--dataset={dataset}", f"--config={e.config}",
           f"--model_dir={model_dir}", f"--seed={seed}"]
    if setting.epochs is not None:
        cmd.append(f"--epochs={setting.epochs}")
    for flag in ("steps_per_epoch", "validation_steps", "batch_size"):
        v = getattr(setting, flag)
        if v:
            cmd.append(f"--{flag}={v}")
    return cmd


class _Stop(Exception):
    def __init__(self, signum):
        self.signum = signum


def _take_lock(path: str) -> bool:
    os.makedirs(path, exist_ok=True)
    lock = os.path.join(path, G.LOCK)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if G.lock_owner(path) is not None:
                return False
            try:
                os.remove(lock)  # stale: its runner is gone
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def _release_lock(path: str) -> None:
    try:
        os.remove(os.path.join(path, G.LOCK))
    except FileNotFoundError:
        pass


def run_all(exps, setting, results_dir, dataset, max_runs=None, dry_run=False, out=sys.stdout) -> int:
    if dataset.startswith("folder:") and not os.path.isdir(dataset[len("folder:"):]):
        print(f"error: dataset folder {dataset[len('folder:'):]} does not exist (pass --dataset=folder:PATH)",
              file=sys.stderr)
        return 2
    order = G.run_order(exps)
    todo = []
    for e, s in order:
        path = G.run_dir(results_dir, setting, e, s)
        st = G.run_state(path)
        if not st.done:
            todo.append((e, s, path, st))
    print(f"{len(order) - len(todo)} of {len(order)} runs done; {len(todo)} to go (setting {setting.tag}).",
          file=out, flush=True)

    def on_signal(signum, frame):
        raise _Stop(signum)

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = 0
    try:
        for i, (e, s, path, st) in enumerate(todo, 1):
            if max_runs is not None and started >= max_runs:
                print(f"--max_runs={max_runs} reached; {len(todo) - started} run(s) left.", file=out)
                break
            cmd = train_command(e, s, setting, path, dataset)
            what = f"[{i}/{len(todo)}] {e.name} seed {s}"
            if dry_run:
                print(f"{what}: {' '.join(shlex.quote(c) for c in cmd)}", file=out)
                continue
            if not _take_lock(path):
                print(f"{what}: skipped, another runner (pid {G.lock_owner(path)}) is training it", file=out)
                continue
            st = G.run_state(path)  # `todo` was listed at start: another runner may have finished it since
            if st.done:
                _release_lock(path)
                print(f"{what}: skipped, another runner finished it meanwhile ({st.state})", file=out, flush=True)
                continue
            started += 1
            resume = f" (resuming after epoch {st.epochs_done})" if st.epochs_done else ""
            print(f"{what}: training{resume}; log {os.path.join(path, 'output.log')}", file=out, flush=True)
            t0 = time.time()
            try:
                with open(os.path.join(path, "output.log"), "ab") as log:
                    log.write(f"\n$ {' '.join(shlex.quote(c) for c in cmd)}\n".encode())
                    log.flush()
                    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
                    p = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
                    try:
                        rc = p.wait()
                    except _Stop as stop:
                        p.send_signal(signal.SIGTERM)  # the trainer checkpoints nothing mid-epoch; it exits
                        try:
                            p.wait(timeout=120)
                        except subprocess.TimeoutExpired:
                            p.kill()
                            p.wait()
                        raise stop
            finally:
                _release_lock(path)
            mins = (time.time() - t0) / 60
            st = G.run_state(path)
            if rc == 0 and st.state == "finished":
                print(f"{what}: finished in {mins:.1f} min, test error {st.test_error:.2f}%", file=out, flush=True)
            elif rc == 3 or st.state == "diverged":
                print(f"{what}: diverged (non-finite loss) after {st.epochs_done} epoch(s): recorded as a "
                      f"failed run", file=out, flush=True)
            elif rc >= 128:
                print(f"{what}: stopped by signal {rc - 128}; re-run to resume", file=out, flush=True)
                return rc
            else:
                print(f"error: {what} exited with status {rc}; see {os.path.join(path, 'output.log')}",
                      file=sys.stderr, flush=True)
                return 2
    except _Stop as stop:
        print(f"interrupted by signal {stop.signum}: finished epochs are checkpointed; re-run to resume.",
              file=out, flush=True)
        return 128 + stop.signum
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    return 0


# --------------------------------------------------------------------------- gates
def is_gating(e: G.Experiment) -> bool:
    return str(e.kwargs.get("shortcut", "")).endswith("_gating")


def _test_images(dataset: str):
    """The whole test split as one float32 array (a 10,000-image CIFAR split is 123 MB)."""
    import numpy as np
    from keras_preact.data import load_split

    data, _ = load_split(dataset, "test")
    return np.stack([image for image, _ in data.as_numpy_iterator()]).astype("float32")


def measure_gates(exps, setting, results_dir, dataset, out=sys.stdout) -> int:
    """Write gates.json (mean g per unit over the test split) for every finished gating run."""
    from keras_preact.models.analysis import gate_means
    from keras_preact.training.run_dir import build_trained_model, read_run

    todo = [(e, s, G.run_dir(results_dir, setting, e, s)) for e, s in G.run_order([e for e in exps if is_gating(e)])]
    todo = [(e, s, path) for e, s, path in todo if G.run_state(path).state == "finished"]
    if not todo:
        print(f"no finished gating runs in setting {setting.tag}: nothing to measure.", file=out)
        return 0
    images = _test_images(dataset)
    for e, s, path in todo:
        try:
            model = build_trained_model(read_run(path))
        except ValueError as error:  # final.weights.h5 stays local: a fresh clone has none
            print(f"error: {e.name} seed {s}: {error}", file=sys.stderr)
            return 2
        means = gate_means(model, images)
        bias = float(e.kwargs["gate_bias_init"])
        record = {"experiment": e.name, "seed": s, "shortcut": e.kwargs["shortcut"], "gate_bias_init": bias,
                  "initial_gate": 1.0 / (1.0 + math.exp(-bias)), "split": "test", "images": int(len(images)),
                  "dataset": dataset.replace(ROOT + os.sep, ""), "units": means,
                  "command": "python -m training.experiments.identity_mappings gates"}
        with open(os.path.join(path, G.GATES_FILE), "w") as f:
            json.dump(record, f, indent=1)
        print(f"{e.name} seed {s}: mean g per unit " + " ".join(f"{v:.3f}" for v in means.values()), file=out)
    return 0


# --------------------------------------------------------------------------- main
def main(argv: Optional[Sequence[str]] = None, out=sys.stdout) -> int:
    a = parser().parse_args(argv)
    try:
        setting = setting_from_args(a)
        exps = G.select(G.build_grid(setting, a.seeds), a.group, a.only)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results_dir = _abs(a.results_dir)
    if a.command == "plan":
        print(plan_text(exps, setting), file=out)
        return 0
    if a.command == "status":
        print("\n".join(status_lines(exps, setting, results_dir)), file=out)
        return 0
    if a.command == "gates":
        return measure_gates(exps, setting, results_dir, _dataset(a.dataset), out)
    return run_all(exps, setting, results_dir, _dataset(a.dataset), a.max_runs, a.dry_run, out)


if __name__ == "__main__":
    sys.exit(main())

"""The declarative grid of the identity-mappings / DenseNet-BC experiments (issue 6).

Everything here is data plus small pure functions, importable without TensorFlow (only
:func:`model_stats` builds models). The command line is ``identity_mappings.py``; the
report generator (``reports/make_identity_mappings.py``) reads the same grid, so the two
never disagree about which run answers which paper row.

Layout of the results::

    <results_dir>/<setting tag>/<experiment name>/seed<S>/run.json   (+ train.log, committed)
                                                           checkpoint/, model.keras, ... (ignored)

The setting tag (``cpu_d20_e10``) names everything that changes a run's outcome besides the
experiment and the seed: scale, ResNet depth, epochs, and any smoke-size caps
(``_steps2_val1_b8``), so a smoke run never lands next to a real one and a run is never
resumed under a different schedule.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

FAIL = "fail"  # the v2 paper's Table 1 entry for "test error > 20%"
FAIL_THRESHOLD = 20.0  # %, the paper's definition of "fail"

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_RESULTS_DIR = os.path.join("training", "experiments", "results")
DEFAULT_DATASET = "folder:data/cifar10-jpeg"
DATASET_LABEL = "CIFAR-10 (JPEG q75 copy)"
TRAIN_IMAGES, TEST_IMAGES = 50_000, 10_000  # CIFAR-10, for the cost estimate

GROUPS = ("table1", "table2", "densenet")
TABLES = ("table1", "table2", "table3", "densenet")

# --------------------------------------------------------------------------- cost model
# Seconds per optimizer step of pre-activation ResNet-20 at batch 128, float32, no XLA, on
# this 2-core AMD EPYC (AVX2/FMA) with nothing else running: 0.736 s measured by
# `python -m bench.train_step` on a quiet machine (keras_preact/training/configs.py, CifarCpuShort
# docstring, "0.75-0.95 s/step"); we use 0.80 s. With one other training run sharing the
# cores it is ~1.9 s/step (epoch 1 of training/results/resnetv2_20_cifar_cpu_short: 751 s for
# 390 steps + test pass, 2026-11-24), i.e. multiply every estimate by ~2.3 on a busy machine.
REF_MODEL = "resnetv2_20"
REF_S_PER_STEP = 0.80
REF_BATCH = 128
# Other networks are scaled by multiply-adds (keras_preact.count_flops) relative to
# ResNetV2-20, times a per-family factor for time per multiply-add. DenseNet's concatenations
# and BN over wide inputs are memory-bound: measured here at batch 16 (niced, machine busy)
# DenseNet-BC-52/76/100 took 0.9-1.2x ResNet-20's time per multiply-add, while the
# configs.py DenseNet-BC-100 batch-64 figure (22.9 s/step under load 9.6) suggests ~4x;
# 2.0 is the middle of that bracket. A test pass costs ~1/3 of a training step per image.
FAMILY_TIME_PER_FLOP = {"resnetv2": 1.0, "resnet": 1.0, "densenet": 2.0}
EVAL_COST = 1.0 / 3.0


# --------------------------------------------------------------------------- grid types
@dataclasses.dataclass(frozen=True)
class PaperRow:
    """One row of a paper table that an experiment answers.

    ``paper`` holds (network, test error %) pairs: the table's columns for that row, e.g.
    (("ResNet-110", 6.61), ("ResNet-164", 5.93)); an error is a float, ``FAIL`` or None.
    """

    table: str  # one of TABLES
    row: str  # the paper's row label
    paper: Tuple[Tuple[str, Union[float, str, None]], ...]
    order: int = 0  # position in the paper's table

    @property
    def primary_error(self) -> Union[float, str, None]:
        return self.paper[0][1] if self.paper else None


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One network trained with one recipe, over several seeds; answers one or more paper rows."""

    name: str  # unique within a setting; the run folder
    group: str  # table1 | table2 | densenet (what --group selects)
    label: str  # legend / table label
    model: str  # keras_preact registry name
    kwargs: Mapping[str, object]  # builder overrides passed to get_model
    seeds: Tuple[int, ...]
    rows: Tuple[PaperRow, ...]
    config: str  # keras_preact/training/configs.py recipe name
    priority: int = 0  # run order: lower first (expensive stretch runs last)
    pair: Optional[str] = None  # densenet group: which matched-parameter pair

    @property
    def family(self) -> str:
        return "densenet" if self.model.startswith("densenet") else "resnetv2"

    def kwargs_json(self) -> str:
        return json.dumps(dict(self.kwargs), sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Setting:
    """Everything besides experiment and seed that changes a run (see the module docstring)."""

    scale: str = "cpu"  # cpu | paper
    depth: int = 20  # ResNet depth for Tables 1-3
    epochs: Optional[int] = 10  # None: the recipe's own length (paper scale)
    steps_per_epoch: Optional[int] = None
    validation_steps: Optional[int] = None
    batch_size: Optional[int] = None

    @property
    def tag(self) -> str:
        t = f"{self.scale}_d{self.depth}_e{self.epochs if self.epochs is not None else 'recipe'}"
        if self.steps_per_epoch:
            t += f"_steps{self.steps_per_epoch}"
        if self.validation_steps:
            t += f"_val{self.validation_steps}"
        if self.batch_size:
            t += f"_b{self.batch_size}"
        return t

    @property
    def smoke(self) -> bool:
        return bool(self.steps_per_epoch or self.validation_steps or self.batch_size)

    @classmethod
    def from_tag(cls, tag: str) -> "Setting":
        m = re.fullmatch(r"(cpu|paper)_d(\d+)_e(\d+|recipe)(?:_steps(\d+))?(?:_val(\d+))?(?:_b(\d+))?", tag)
        if not m:
            raise ValueError(f"not a setting tag: {tag!r} (expected e.g. cpu_d20_e10)")
        scale, depth, epochs, steps, val, batch = m.groups()
        return cls(scale=scale, depth=int(depth), epochs=None if epochs == "recipe" else int(epochs),
                   steps_per_epoch=int(steps) if steps else None, validation_steps=int(val) if val else None,
                   batch_size=int(batch) if batch else None)


SCALES = {
    # Defaults per scale: ResNet depth, epochs, recipes (module docstring of identity_mappings).
    "cpu": dict(depth=20, epochs=10, resnet_config="cifar_cpu_short", densenet_config="cifar_cpu_short"),
    "paper": dict(depth=110, epochs=None, resnet_config="resnet_cifar_warmup", densenet_config="densenet_cifar"),
}

# Seeds. Three where the paper's differences are small (Table 2: 6.37-8.17%; Table 1's
# identity vs shortcut-only gating -6: 6.61 vs 6.91; the matched-parameter DenseNet pair),
# one where the paper's gap is large (the "fail" and ~12% rows of Table 1).
SEEDS_SMALL_GAP = (0, 1, 2)
SEEDS_LARGE_GAP = (0,)


# --------------------------------------------------------------------------- the paper rows
def _t1(row, error, order):
    return PaperRow("table1", row, (("ResNet-110", error),), order)


# v2 paper Table 1 (ResNet-110, original units, CIFAR-10). name -> (label, kwargs, paper row)
TABLE1 = [
    ("original_identity", "identity (original)",
     dict(shortcut="identity"), _t1("original (identity)", 6.61, 0)),
    ("constant_scaling_0_1", "constant scaling 0 / 1",
     dict(shortcut="constant_scaling", shortcut_scale=0.0, residual_scale=1.0),
     _t1("constant scaling, shortcut 0 / F 1", FAIL, 1)),
    ("constant_scaling_05_1", "constant scaling 0.5 / 1",
     dict(shortcut="constant_scaling", shortcut_scale=0.5, residual_scale=1.0),
     _t1("constant scaling, 0.5 / 1", FAIL, 2)),
    ("constant_scaling_05_05", "constant scaling 0.5 / 0.5",
     dict(shortcut="constant_scaling", shortcut_scale=0.5, residual_scale=0.5),
     _t1("constant scaling, 0.5 / 0.5", 12.35, 3)),
    ("exclusive_gating_0", "exclusive gating, b_g=0",
     dict(shortcut="exclusive_gating", gate_bias_init=0.0),
     _t1("exclusive gating, bias init 0 to -5", FAIL, 4)),
    ("exclusive_gating_m6", "exclusive gating, b_g=-6",
     dict(shortcut="exclusive_gating", gate_bias_init=-6.0), _t1("exclusive gating, bias init -6", 8.70, 5)),
    ("exclusive_gating_m7", "exclusive gating, b_g=-7",
     dict(shortcut="exclusive_gating", gate_bias_init=-7.0), _t1("exclusive gating, bias init -7", 9.81, 6)),
    ("shortcut_only_gating_0", "shortcut-only gating, b_g=0",
     dict(shortcut="shortcut_only_gating", gate_bias_init=0.0),
     _t1("shortcut-only gating, bias init 0", 12.86, 7)),
    ("shortcut_only_gating_m6", "shortcut-only gating, b_g=-6",
     dict(shortcut="shortcut_only_gating", gate_bias_init=-6.0),
     _t1("shortcut-only gating, bias init -6", 6.91, 8)),
    ("conv1x1", "1x1 conv shortcut", dict(shortcut="conv1x1"), _t1("1x1 conv shortcut", 12.22, 9)),
    ("dropout_shortcut", "dropout shortcut 0.5",
     dict(shortcut="dropout", shortcut_dropout_rate=0.5), _t1("dropout shortcut (ratio 0.5)", FAIL, 10)),
]
SMALL_GAP_TABLE1 = {"original_identity", "shortcut_only_gating_m6"}

# v2 paper Table 2 (CIFAR-10, identity shortcuts): unit -> (label, ResNet-110, ResNet-164).
TABLE2 = [
    ("original", "original", 6.61, 5.93),
    ("bn_after_addition", "BN after addition", 8.17, 6.50),
    ("relu_before_addition", "ReLU before addition", 7.84, 6.14),
    ("relu_only_preactivation", "ReLU-only pre-activation", 6.71, 5.91),
    ("full_preactivation", "full pre-activation", 6.37, 5.46),
]

# v2 paper Table 3, CIFAR-10 rows with the 2-layer basic / 3-layer bottleneck units.
TABLE3 = {"original": (("ResNet-110", 6.61), ("ResNet-164", 5.93), ("ResNet-1001", 7.61)),
          "full_preactivation": (("ResNet-110", 6.37), ("ResNet-164", 5.46), ("ResNet-1001", 4.92))}

# DenseNet paper Table 2, C10+ (with augmentation); the claim the issue asks about.
DENSENET_CLAIM = ("DenseNet-BC L=100, k=12: 0.8M params, 4.51% vs pre-activation ResNet-164: 1.7M, 5.46% and "
                  "ResNet-1001: 10.2M, 4.62% (DenseNet paper Table 2, C10+; sec. 4.3 and Figure 4)")
DENSENET_PAPER = {
    "densenet_bc_100_12": ("DenseNet-BC (L=100, k=12), 0.8M", 4.51),
    "resnetv2_164": ("pre-act ResNet-164, 1.7M", 5.46),
    "resnetv2_1001": ("pre-act ResNet-1001, 10.2M", 4.62),
}

# Matched-parameter pairs (trainable parameters, 10 classes, computed by
# keras_preact.count_params(model, trainable_only=True); checked by tests/test_experiments.py):
#   cpu   P1 ResNetV2-20 272,282  vs DenseNet-BC L=52, k=12 264,586  (-2.8%)
#   cpu   P2 ResNetV2-56 855,578  vs DenseNet-BC L=100, k=12 769,162 (-10%, the paper's model)
#         (until 2026-11-30 P2 was DenseNet-BC L=76, k=16, 857,258: a configuration the paper did not
#         train and ~1.2x BC-100's multiply-adds; BC-100 gives the report a paper row, and its run is
#         the zoo's CPU-trained densenet_bc_100_12_cifar10 as well)
#   paper P1 ResNetV2-56 855,578  vs DenseNet-BC L=100, k=12 769,162 (-10%, the paper's model)
#   paper --  ResNetV2-164 1,703,258: the paper's own comparison (2.2x the DenseNet-BC-100's)
# Stated here, computed in tests: a change to a builder that moves a count fails the test.
PAIRS = {
    "cpu": [
        # (pair id, ResNetV2 depth, DenseNet-BC depth, growth rate, seeds, priority)
        ("P1 (~0.27M)", 20, 52, 12, SEEDS_SMALL_GAP, 0),
        ("P2 (~0.8M)", 56, 100, 12, SEEDS_LARGE_GAP, 1),
    ],
    "paper": [
        ("P1 (~0.8M)", 56, 100, 12, SEEDS_LARGE_GAP, 0),
        ("paper (DenseNet-BC-100 vs ResNet-164)", 164, None, None, SEEDS_LARGE_GAP, 0),
    ],
}
PAIR_PARAMS = {  # (model, kwargs json) -> trainable params; see PAIRS
    ("resnetv2_20", "{}"): 272_282,
    ("resnetv2_56", "{}"): 855_578,
    ("resnetv2_164", "{}"): 1_703_258,
    ("densenet_bc_100_12", '{"depth": 52, "growth_rate": 12}'): 264_586,
    ("densenet_bc_100_12", "{}"): 769_162,
}


# The CIFAR ResNetV2 registry names (keras_preact/models/resnet_v2.py CIFAR_NETS; a test checks the
# list), kept here so that building the grid does not import TensorFlow.
REGISTERED_CIFAR_RESNETV2 = (20, 32, 44, 56, 110, 164, 1001)


def resnet_model(depth: int) -> Tuple[str, Dict[str, object]]:
    """Registry name and overrides of the CIFAR ResNetV2 of `depth`: a registered one by name
    (resnetv2_164 and _1001 are bottleneck nets there), any other depth as resnetv2_20 with
    depth= (6n+2 basic units; the builder rejects invalid depths)."""
    if depth in REGISTERED_CIFAR_RESNETV2:
        return f"resnetv2_{depth}", {}
    return REF_MODEL, {"depth": int(depth)}


def build_grid(setting: Setting, seeds: Optional[Sequence[int]] = None) -> List[Experiment]:
    """Every experiment of `setting`, in the order `run` runs them (see run_order)."""
    sc = SCALES[setting.scale]
    rcfg, dcfg = sc["resnet_config"], sc["densenet_config"]
    d = setting.depth
    rmodel, rkw = resnet_model(d)
    exps: Dict[str, Experiment] = {}

    def add(exp: Experiment) -> None:
        if seeds is not None:
            exp = dataclasses.replace(exp, seeds=tuple(seeds))
        old = exps.get(exp.name)
        if old is None:
            exps[exp.name] = exp
            return
        assert (old.model, old.kwargs_json(), old.config) == (exp.model, exp.kwargs_json(), exp.config), exp.name
        exps[exp.name] = dataclasses.replace(
            old, rows=old.rows + exp.rows, seeds=tuple(sorted(set(old.seeds) | set(exp.seeds))),
            priority=min(old.priority, exp.priority), pair=old.pair or exp.pair)

    for name, label, kw, row in TABLE1:
        add(Experiment(name=name, group="table1", label=label, model=rmodel,
                       kwargs=dict(rkw, unit="original", **kw), config=rcfg, rows=(row,),
                       seeds=SEEDS_SMALL_GAP if name in SMALL_GAP_TABLE1 else SEEDS_LARGE_GAP))
    for i, (unit, label, e110, e164) in enumerate(TABLE2):
        name = "original_identity" if unit == "original" else unit
        rows = [PaperRow("table2", label, (("ResNet-110", e110), ("ResNet-164", e164)), i)]
        if unit in TABLE3:
            rows.append(PaperRow("table3", "original" if unit == "original" else "pre-activation", TABLE3[unit],
                                 0 if unit == "original" else 1))
        add(Experiment(name=name, group="table2", label=label if unit != "original" else "identity (original)",
                       model=rmodel, kwargs=dict(rkw, unit=unit, shortcut="identity"), config=rcfg,
                       rows=tuple(rows), seeds=SEEDS_SMALL_GAP))
    for order, (pair, rdepth, ddepth, k, pseeds, prio) in enumerate(PAIRS[setting.scale]):
        m, kw = resnet_model(rdepth)
        if rdepth == d:  # the Table 2 full pre-activation run is this pair's ResNet: share it
            rname, rkw_full = "full_preactivation", dict(kw, unit="full_preactivation", shortcut="identity")
        else:
            rname, rkw_full = f"resnetv2_{rdepth}", kw
        paper = DENSENET_PAPER.get(m if not kw else "")
        add(Experiment(name=rname, group="densenet", label=f"ResNetV2-{rdepth}", model=m, kwargs=rkw_full,
                       config=rcfg, seeds=pseeds, priority=prio, pair=pair,
                       rows=(PaperRow("densenet", f"ResNetV2-{rdepth}", ((paper[0], paper[1]),) if paper else (),
                                      2 * order),)))
        if ddepth is None:
            continue
        dkw = {} if (ddepth, k) == (100, 12) else {"depth": ddepth, "growth_rate": k}
        dname = f"densenet_bc_{ddepth}_{k}"
        paper = DENSENET_PAPER.get(dname)
        add(Experiment(name=dname, group="densenet", label=f"DenseNet-BC-{ddepth} (k={k})",
                       model="densenet_bc_100_12", kwargs=dkw, config=dcfg, seeds=pseeds, priority=prio, pair=pair,
                       rows=(PaperRow("densenet", f"DenseNet-BC-{ddepth} (k={k})",
                                      ((paper[0], paper[1]),) if paper else (), 2 * order + 1),)))
    return list(exps.values())


def select(grid: Sequence[Experiment], group: str = "all", only: Optional[str] = None) -> List[Experiment]:
    """Experiments of `group` ("all" or one of GROUPS); `only`: comma-separated names or globs.

    An experiment shared between groups (the identity/original run serves Tables 1-3) belongs
    to every group one of its rows belongs to."""
    import fnmatch

    if group != "all" and group not in GROUPS:
        raise ValueError(f"unknown --group={group!r}; valid: all, {', '.join(GROUPS)}")

    def in_group(e: Experiment) -> bool:
        if group == "all" or e.group == group:
            return True
        tables = {r.table for r in e.rows}
        return group in tables or (group == "table2" and "table3" in tables)

    out = [e for e in grid if in_group(e)]
    if only:
        pats = [p.strip() for p in only.split(",") if p.strip()]
        names = [e.name for e in grid]
        for p in pats:
            if not fnmatch.filter(names, p):
                raise ValueError(f"--only={p!r} matches no experiment; valid: {', '.join(names)}")
        out = [e for e in out if any(fnmatch.fnmatch(e.name, p) for p in pats)]
    return out


def run_order(exps: Sequence[Experiment]) -> List[Tuple[Experiment, int]]:
    """(experiment, seed) in the order `run` trains them: priority, then seed rank (every
    experiment's first seed before anyone's second: the orderings appear after one pass),
    then grid order."""
    items = []
    for i, e in enumerate(exps):
        for rank, s in enumerate(e.seeds):
            items.append(((e.priority, rank, i), e, s))
    return [(e, s) for _, e, s in sorted(items, key=lambda t: t[0])]


# --------------------------------------------------------------------------- runs on disk
def run_dir(results_dir: str, setting: Setting, exp: Experiment, seed: int) -> str:
    return os.path.join(results_dir, setting.tag, exp.name, f"seed{seed}")


LOCK = ".runner.lock"
GATES_FILE = "gates.json"  # written by identity_mappings gates, read by the report


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_owner(path: str) -> Optional[int]:
    """Pid of a live runner training in run folder `path`, or None."""
    try:
        with open(os.path.join(path, LOCK)) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and _pid_alive(pid) else None


def read_run(path: str) -> Optional[dict]:
    try:
        with open(os.path.join(path, "run.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@dataclasses.dataclass
class RunState:
    state: str  # pending | partial | running | finished | diverged
    epochs_done: int = 0
    epochs_planned: Optional[int] = None
    test_error: Optional[float] = None  # %, finished runs only
    wall_time_s: Optional[float] = None
    record: Optional[dict] = None

    @property
    def done(self) -> bool:
        return self.state in ("finished", "diverged")


def run_state(path: str) -> RunState:
    rec = read_run(path)
    running = lock_owner(path) is not None
    if rec is None:
        return RunState("running" if running else "pending")
    status = str(rec.get("status", ""))
    st = RunState("partial", len(rec.get("epochs") or []), rec.get("epochs_planned"), None,
                  rec.get("wall_time_s"), rec)
    if status == "finished" and rec.get("final"):
        st.state = "finished"
        st.test_error = 100.0 * float(rec["final"]["test_error"])
    elif status.startswith("stopped: non-finite"):
        st.state = "diverged"
    elif running:
        st.state = "running"
    return st


def model_stats(model: str, kwargs: Mapping[str, object]) -> Tuple[int, int]:
    """(trainable parameters, multiply-adds per image) of a 10-class CIFAR model."""
    return _model_stats(model, json.dumps(dict(kwargs), sort_keys=True))


_STATS_CACHE: Dict[Tuple[str, str], Tuple[int, int]] = {}


def _model_stats(model: str, kwargs_json: str) -> Tuple[int, int]:
    key = (model, kwargs_json)
    if key not in _STATS_CACHE:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras
        import keras_preact

        m = keras_preact.build_variant(model, **json.loads(kwargs_json))
        _STATS_CACHE[key] = (keras_preact.count_params(m, trainable_only=True), keras_preact.count_flops(m))
        del m
        keras.backend.clear_session()
    return _STATS_CACHE[key]


def estimate_hours(exp: Experiment, setting: Setting, flops: int, ref_flops: int) -> float:
    """Estimated hours of one run of `exp` on the quiet 2-core CPU (see the cost model above)."""
    from keras_preact.training import configs as configs_lib

    cfg = configs_lib.get_config(exp.config)
    batch = setting.batch_size or cfg.batch_size
    steps_per_epoch = TRAIN_IMAGES // batch
    if setting.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, setting.steps_per_epoch)
    if setting.epochs is None and cfg.total_steps:
        total_steps = cfg.total_steps
    else:
        total_steps = (setting.epochs if setting.epochs is not None else cfg.epochs) * steps_per_epoch
    epochs = -(-total_steps // steps_per_epoch)
    s_per_image = (REF_S_PER_STEP / REF_BATCH) * (flops / ref_flops) * FAMILY_TIME_PER_FLOP[exp.family]
    eval_images = TEST_IMAGES if not setting.validation_steps else min(TEST_IMAGES, setting.validation_steps * batch)
    secs = total_steps * batch * s_per_image + epochs * eval_images * s_per_image * EVAL_COST
    return secs / 3600.0

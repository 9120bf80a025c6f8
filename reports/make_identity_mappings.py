r"""Write reports/identity_mappings.md and its figures from the committed run.json files.

    python -m reports.make_identity_mappings [--results_dir training/experiments/results]
        [--out reports/identity_mappings.md] [--figures_dir reports/figures]
        [--scale cpu --depth 20 --epochs 10] [--include_smoke]

Reads every ``<results_dir>/<setting tag>/<experiment>/seed<S>/run.json`` (the layout of
``training/experiments/identity_mappings.py``), and writes, for the default setting (the
flags; always present, "not run yet" where nothing finished) and for every other real
setting found on disk: one table per paper table (our test error mean +- std over finished
seeds, the paper's error, depth, epochs, seeds, parameters), ordering checks against the
paper, and figures in the papers' style (training loss dashed, test error solid, one colour
per variant) under ``figures_dir``. Works with zero, some or all runs finished; partial runs
appear in the figures, not in the tables. Smoke settings (step/batch caps in the tag) are
skipped unless ``--include_smoke``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from training.experiments import grid as G
from training.experiments import identity_mappings as IM

DEFAULT_OUT = os.path.join("reports", "identity_mappings.md")
DEFAULT_FIGURES = os.path.join("reports", "figures")
COMMAND = "python -m reports.make_identity_mappings"


# --------------------------------------------------------------------------- collecting runs
class Result:
    """The runs of one experiment in one setting."""

    def __init__(self, exp: G.Experiment, setting: G.Setting, results_dir: str):
        self.exp = exp
        self.base = base = os.path.join(results_dir, setting.tag, exp.name)
        seeds = set(exp.seeds)
        if os.path.isdir(base):  # seeds run beyond the grid's (--seeds) count too
            for d in os.listdir(base):
                if d.startswith("seed") and d[4:].isdigit():
                    seeds.add(int(d[4:]))
        self.states = {s: G.run_state(os.path.join(base, f"seed{s}")) for s in sorted(seeds)}
        self.planned = tuple(exp.seeds)

    @property
    def finished(self) -> Dict[int, float]:
        return {s: st.test_error for s, st in self.states.items() if st.state == "finished"}

    @property
    def diverged(self) -> List[int]:
        return [s for s, st in self.states.items() if st.state == "diverged"]

    @property
    def in_progress(self) -> List[Tuple[int, G.RunState]]:
        return [(s, st) for s, st in self.states.items() if st.state in ("partial", "running")]

    def mean_std(self) -> Tuple[Optional[float], Optional[float], int]:
        errs = list(self.finished.values())
        if not errs:
            return None, None, 0
        m = sum(errs) / len(errs)
        sd = math.sqrt(sum((e - m) ** 2 for e in errs) / (len(errs) - 1)) if len(errs) > 1 else None
        return m, sd, len(errs)

    def has_result(self) -> bool:
        return bool(self.finished or self.diverged)

    def score(self) -> Optional[float]:
        """Error used to rank (a diverged run counts as a failure: +inf)."""
        if self.diverged and not self.finished:
            return math.inf
        return self.mean_std()[0]

    def fails(self) -> bool:
        """The paper's "fail": error above 20%, or diverged."""
        s = self.score()
        return s is not None and (math.isinf(s) or s > G.FAIL_THRESHOLD)

    def gates(self) -> List[dict]:
        """gates.json of the finished seeds (``identity_mappings gates``), by seed."""
        out = []
        for s, st in self.states.items():
            path = os.path.join(self.base, f"seed{s}", G.GATES_FILE)
            if st.state == "finished" and os.path.isfile(path):
                with open(path) as f:
                    out.append(json.load(f))
        return out

    def records(self) -> List[dict]:
        return [st.record for st in self.states.values() if st.record]

    def epochs_cell(self, setting: G.Setting) -> str:
        done = sorted({len(st.record.get("epochs") or []) for st in self.states.values()
                       if st.state == "finished" and st.record})
        if done:
            return "/".join(map(str, done))
        return str(setting.epochs) if setting.epochs is not None else "recipe"

    def minutes_cell(self) -> str:
        walls = [st.record.get("wall_time_s") for st in self.states.values()
                 if st.state == "finished" and st.record and st.record.get("wall_time_s")]
        return f"{sum(walls) / len(walls) / 60:.0f}" if walls else "–"

    def seeds_cell(self) -> str:
        fin = sorted(self.finished) + sorted(self.diverged)
        return f"{len(fin)}/{len(self.planned)}" + (f" ({','.join(map(str, sorted(fin)))})" if fin else "")

    def ours_cell(self) -> str:
        m, sd, n = self.mean_std()
        parts = []
        if n:
            cell = f"**{m:.2f}**" if n == 1 else f"**{m:.2f} ± {sd:.2f}**"
            if self.fails():
                cell += " (fail: >20%)"
            parts.append(cell)
        if self.diverged:
            parts.append(f"diverged ({len(self.diverged)} of {len(self.diverged) + n} seeds; fail)")
        if not parts:
            prog = self.in_progress
            if prog:
                s, st = max(prog, key=lambda t: t[1].epochs_done)
                return f"in progress ({st.epochs_done}/{st.epochs_planned or '?'} epochs)"
            return "not run yet"
        return "; ".join(parts)

    def curves(self) -> Optional[Tuple[List[int], List[float], List[Optional[float]]]]:
        """Per-epoch mean over seeds: (epochs, training loss, test error %)."""
        by_epoch: Dict[int, Tuple[List[float], List[float]]] = {}
        for rec in self.records():
            for e in rec.get("epochs") or []:
                loss, acc = e.get("loss"), e.get("val_accuracy")
                slot = by_epoch.setdefault(int(e["epoch"]), ([], []))
                if loss is not None and math.isfinite(loss):
                    slot[0].append(float(loss))
                if acc is not None:
                    slot[1].append(100.0 * (1.0 - float(acc)))
        if not by_epoch:
            return None
        ep = sorted(by_epoch)
        loss = [sum(by_epoch[k][0]) / len(by_epoch[k][0]) if by_epoch[k][0] else math.nan for k in ep]
        err = [sum(by_epoch[k][1]) / len(by_epoch[k][1]) if by_epoch[k][1] else None for k in ep]
        return ep, loss, err


def _fmt_paper(v) -> str:
    if v is None:
        return "–"
    if v == G.FAIL:
        return "fail (>20%)"
    return f"{v:.2f}"


def _error_text(score: float, unit: str = "%") -> str:
    return "diverged" if math.isinf(score) else f"{score:.2f}{unit}"


def _paper_key(v) -> float:
    return math.inf if v == G.FAIL else float(v)


# --------------------------------------------------------------------------- ordering checks
def _noise(a: Result, b: Result) -> Optional[float]:
    ma, sa, na = a.mean_std()
    mb, sb, nb = b.mean_std()
    if na < 2 or nb < 2:
        return None
    return 2.0 * math.sqrt(sa ** 2 / na + sb ** 2 / nb)


def _compare(a: Result, b: Result) -> str:
    """'a vs b' in words: difference of our errors and whether it is beyond noise."""
    sa, sb = a.score(), b.score()
    if sa is None or sb is None:
        return "not run yet"
    if math.isinf(sa) or math.isinf(sb):
        return f"{_error_text(sa)} vs {_error_text(sb)}"
    d = sa - sb
    noise = _noise(a, b)
    if noise is None:
        tag = "single seed on at least one side: not a measurement of the gap"
    elif abs(d) > noise:
        tag = f"beyond 2 standard errors ({noise:.2f})"
    else:
        tag = f"within noise (2 standard errors = {noise:.2f})"
    return f"{sa:.2f}% vs {sb:.2f}%: {d:+.2f} points, {tag}"


def ordering_check(results: Sequence[Tuple[str, Result, object]], best_label: str) -> List[str]:
    """Lines comparing our ranking with the paper's. `results`: (row label, result, paper error)."""
    label = {id(r): lab for lab, r, _ in results}
    have = [(r, p) for _, r, p in results if r.has_result() and p is not None]
    if not have:
        return ["Ordering: not run yet."]
    ours = sorted(have, key=lambda t: t[0].score())
    lines = ["Our ranking (lowest error first): " + ", ".join(
        f"{label[id(r)]} {_error_text(r.score(), unit='')}" for r, _ in ours) + "."]
    agree = total = 0
    for i in range(len(have)):
        for j in range(i + 1, len(have)):
            (ra, pa), (rb, pb) = have[i], have[j]
            ka, kb = _paper_key(pa), _paper_key(pb)
            if ka == kb:
                continue  # both "fail" in the paper, or a tie
            total += 1
            sa, sb = ra.score(), rb.score()
            if (sa < sb) == (ka < kb) and sa != sb:
                agree += 1
    if total:
        lines.append(f"Pairwise agreement with the paper's order: {agree} of {total} pairs of the rows run so far.")
    best = [r for r, _ in have if label[id(r)] == best_label]
    if len(have) < 2:
        # One finished row ranks nothing: claiming it "is also our best" would be vacuous.
        lines.append("No comparison yet: only one row of this table has finished.")
    elif best:
        b = best[0]
        beaten = [r for r, _ in ours if r is not b and r.score() < b.score()]
        if not beaten:
            runner = [r for r, _ in ours if r is not b]
            margin = f" (next: {label[id(runner[0])]}, {_compare(runner[0], b)})" if runner else ""
            lines.append(f"The paper's best row, {best_label}, is also our best{margin}.")
        else:
            lines.append(f"Not reproduced: {len(beaten)} row(s) beat {best_label}: " + "; ".join(
                f"{label[id(r)]} ({_compare(r, b)})" for r in beaten) + ".")
    fails = [(r, p) for r, p in have if p == G.FAIL]
    if fails:
        ok = [r for r, _ in fails if r.fails()]
        lines.append(f"Paper \"fail\" rows that also fail here (>20% or diverged): {len(ok)} of {len(fails)}" +
                     (f" ({', '.join(label[id(r)] for r in ok)})" if ok else "") + ".")
    new_fails = [(r, p) for r, p in have if p != G.FAIL and r.fails()]
    if new_fails:
        lines.append("Not reproduced: fail here (>20% or diverged) but not in the paper: " + "; ".join(
            f"{label[id(r)]} ({_error_text(r.score())} vs the paper's {p:.2f}%)"
            for r, p in new_fails) + ".")
    return lines


def gate_lines(results: Sequence[Tuple[str, Result]]) -> List[str]:
    """Where training left the gates of the gating rows: mean g per unit, stage by stage."""
    lines = []
    for label, r in results:
        for g in r.gates():
            stages: Dict[str, List[float]] = {}
            for unit, value in g["units"].items():
                stages.setdefault(unit.split("_block")[0], []).append(value)
            per_stage = "; ".join(f"{stage}: {' '.join(f'{v:.3f}' for v in vs)}" for stage, vs in stages.items())
            shut = [v for v in g["units"].values() if v < 0.01]
            lines.append(
                f"Gates of {label} (seed {g['seed']}) after training, mean g per unit over the "
                f"{g['images']:,} {g['split']} images: {per_stage}; at initialisation g = "
                f"sigmoid({g['gate_bias_init']:g}) = {g['initial_gate']:.4f}. "
                + (f"{len(shut)} of {len(g['units'])} units still have g < 0.01"
                   + (", so they pass almost none of their residual function F (output (1-g)x + gF)."
                      if g["shortcut"] == "exclusive_gating" else
                      ", so their shortcut passes (1-g)x, nearly the identity.")
                   if shut else "Every unit's gate is at least 0.01."))
    if lines:
        lines.append(f"(Gate means: `python -m training.experiments.identity_mappings gates`, "
                     f"stored in each run's {G.GATES_FILE}.)")
    return lines


# --------------------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_figure(path: str, series: Sequence[Tuple[str, Tuple]], title: str, loss_label: str) -> bool:
    """The papers' training-curve style: training loss dashed (left axis), test error solid
    (right axis), one colour per variant. Returns False (and writes nothing) without data."""
    series = [(label, c) for label, c in series if c is not None]
    if not series:
        return False
    plt = _plt()
    fig, ax_loss = plt.subplots(figsize=(8, 5))
    ax_err = ax_loss.twinx()
    cmap = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
    for i, (label, (ep, loss, err)) in enumerate(series):
        color = cmap(i % cmap.N)
        ax_loss.plot(ep, loss, linestyle="--", color=color, linewidth=1.2)
        pts = [(e, v) for e, v in zip(ep, err) if v is not None]
        if pts:
            ax_err.plot([p[0] for p in pts], [p[1] for p in pts], linestyle="-", color=color, linewidth=2,
                        marker=".", label=label)
        else:
            ax_err.plot([], [], linestyle="-", color=color, linewidth=2, label=label)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(f"training loss (dashed; {loss_label})")
    ax_err.set_ylabel("test error % (solid)")
    ax_loss.grid(alpha=0.3)
    handles, labels = ax_err.get_legend_handles_labels()
    from matplotlib.lines import Line2D

    handles += [Line2D([], [], color="black", linestyle="-", linewidth=2),
                Line2D([], [], color="black", linestyle="--", linewidth=1.2)]
    labels += ["test error (solid)", "training loss (dashed)"]
    ax_err.legend(handles, labels, loc="upper right", fontsize=8)
    ax_loss.set_title(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True


def params_figure(path: str, points: Sequence[Tuple[str, str, int, float, Optional[float]]], title: str) -> bool:
    """DenseNet paper Figure 4 (middle) style: test error vs parameters, one marker per family.
    points: (family, label, params, mean error, std or None)."""
    points = [p for p in points if p[3] is not None and math.isfinite(p[3])]
    if not points:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    styles = {"densenet": ("tab:red", "o", "DenseNet-BC"), "resnetv2": ("tab:blue", "s", "ResNetV2 (pre-act)")}
    seen = set()
    for fam, label, params, err, sd in points:
        color, marker, name = styles[fam]
        ax.errorbar([params / 1e6], [err], yerr=[sd] if sd else None, color=color, marker=marker, capsize=3,
                    linestyle="none", label=name if fam not in seen else None)
        seen.add(fam)
        ax.annotate(label, (params / 1e6, err), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("test error %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True


# --------------------------------------------------------------------------- markdown
def _table(cols: Sequence[str], rows: Sequence[Sequence[str]]) -> List[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in r) + " |" for r in rows]
    return out


def _figure_md(ok: bool, path: str, out_dir: str, alt: str) -> List[str]:
    if not ok:
        return [f"*Figure: no epochs recorded yet ({os.path.basename(path)} is written once a run has finished an "
                f"epoch).*"]
    return [f"![{alt}]({os.path.relpath(path, out_dir)})"]


def _loss_label(results: Sequence[Result]) -> str:
    for r in results:
        for rec in r.records():
            ls = (rec.get("config") or {}).get("label_smoothing")
            if ls:
                return f"cross-entropy with label smoothing {ls}"
    return "cross-entropy"


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def section(setting: G.Setting, results_dir: str, figures_dir: str, out_dir: str,
            stats: Callable = G.model_stats) -> Tuple[List[str], dict]:
    exps = G.build_grid(setting)
    res = {e.name: Result(e, setting, results_dir) for e in exps}
    cost = {e.name: stats(e.model, e.kwargs) for e in exps}
    params = {name: p for name, (p, _) in cost.items()}
    madds = {name: m for name, (_, m) in cost.items()}
    tag = setting.tag
    d = setting.depth
    eps = setting.epochs if setting.epochs is not None else "recipe"
    recipes = sorted({e.config for e in exps})
    lines = [f"## Setting `{tag}`: ResNet-{d} for Tables 1-3, {eps} epochs per run, recipe "
             f"{', '.join(f'`{r}`' for r in recipes)}", ""]
    all_runs = [(r, s, st) for r in res.values() for s, st in r.states.items()]
    n_done = sum(st.done for _, _, st in all_runs)
    hours = sum((st.record or {}).get("wall_time_s", 0) or 0 for _, _, st in all_runs) / 3600
    lines += [f"Runs finished: {n_done} of {len(all_runs)} ({hours:.1f} hours of training recorded). "
              f"All errors: top-1 test error in % on the 10,000 test images of {G.DATASET_LABEL}; ours after "
              f"the last epoch of the schedule, mean ± sample std over finished seeds; paper numbers are "
              f"CIFAR-10 with augmentation.", ""]
    summary = {"tag": tag, "done": n_done, "runs": len(all_runs)}

    def rows_of(table):
        out = []
        for e in exps:
            for row in e.rows:
                if row.table == table:
                    out.append((row, res[e.name]))
        return sorted(out, key=lambda t: t[0].order)

    loss_label = _loss_label(list(res.values()))

    # Table 1
    t1 = rows_of("table1")
    lines += [f"### v2 paper Table 1: shortcuts (Figure 2), original units", ""]
    lines += _table(
        ["shortcut", "builder kwargs", "paper error (ResNet-110, 164 ep.)", f"ours (ResNet-{d})", "depth",
         "epochs", "seeds", "params"],
        [[row.row, IM._fmt_kwargs({k: v for k, v in r.exp.kwargs.items() if k not in ("unit", "depth")}),
          _fmt_paper(row.primary_error), r.ours_cell(), str(d), r.epochs_cell(setting), r.seeds_cell(),
          f"{params[r.exp.name]:,}"] for row, r in t1])
    lines += [""] + [f"- {ln}" for ln in ordering_check([(row.row, r, row.primary_error) for row, r in t1],
                                                          "original (identity)")] + [""]
    gates = gate_lines([(row.row, r) for row, r in t1 if IM.is_gating(r.exp)])
    if gates:
        lines += [f"- {ln}" for ln in gates] + [""]
    p1 = os.path.join(figures_dir, f"{tag}_table1_shortcuts.png")
    ok = curves_figure(p1, [(row.row, r.curves()) for row, r in t1],
                       f"Shortcuts (v2 Table 1), ResNet-{d}, {G.DATASET_LABEL}", loss_label)
    if not ok:
        _remove(p1)
    lines += _figure_md(ok, p1, out_dir, "Table 1 training curves") + [""]

    # Table 2
    t2 = rows_of("table2")
    lines += ["### v2 paper Table 2: activation placement (Figure 4), identity shortcuts", ""]
    lines += _table(
        ["unit", "paper ResNet-110", "paper ResNet-164", f"ours (ResNet-{d})", "depth", "epochs", "seeds", "params"],
        [[row.row, _fmt_paper(row.paper[0][1]), _fmt_paper(row.paper[1][1]), r.ours_cell(), str(d),
          r.epochs_cell(setting), r.seeds_cell(), f"{params[r.exp.name]:,}"] for row, r in t2])
    lines += [""] + [f"- {ln}" for ln in ordering_check([(row.row, r, row.primary_error) for row, r in t2],
                                                          "full pre-activation")] + [""]
    p2 = os.path.join(figures_dir, f"{tag}_table2_units.png")
    ok = curves_figure(p2, [(row.row, r.curves()) for row, r in t2],
                       f"Unit layouts (v2 Table 2), ResNet-{d}, {G.DATASET_LABEL}", loss_label)
    if not ok:
        _remove(p2)
    lines += _figure_md(ok, p2, out_dir, "Table 2 training curves") + [""]

    # Table 3
    t3 = rows_of("table3")
    orig = next(r for row, r in t3 if row.row == "original")
    pre = next(r for row, r in t3 if row.row == "pre-activation")
    lines += ["### v2 paper Table 3: original vs pre-activation (CIFAR-10 rows)", ""]
    paper_rows = [[f"paper {net}", _fmt_paper(eo), _fmt_paper(ep_), "–", "–"]
                  for (net, eo), (_, ep_) in zip(G.TABLE3["original"], G.TABLE3["full_preactivation"])]
    lines += _table(["network", "original", "pre-activation", "epochs", "seeds (orig. / pre-act)"],
                    paper_rows + [[f"ours ResNet-{d}", orig.ours_cell(), pre.ours_cell(), orig.epochs_cell(setting),
                                   f"{orig.seeds_cell()} / {pre.seeds_cell()}"]])
    verdict = _compare(pre, orig)
    if pre.has_result() and orig.has_result():
        better = pre.score() < orig.score()
        verdict = ("pre-activation better, as in the paper: " if better else
                   "Not reproduced, pre-activation not better: ") + verdict
    lines += ["", f"- Pre-activation vs original: {verdict}.", ""]
    p3 = os.path.join(figures_dir, f"{tag}_table3_original_vs_preact.png")
    ok = curves_figure(p3, [(f"original ResNet-{d}", orig.curves()), (f"pre-activation ResNet-{d}", pre.curves())],
                       f"Original vs pre-activation (v2 Table 3), ResNet-{d}", loss_label)
    if not ok:
        _remove(p3)
    lines += _figure_md(ok, p3, out_dir, "Table 3 training curves") + [""]

    # DenseNet
    td = rows_of("densenet")
    lines += ["### DenseNet paper Table 2 / Figure 4: DenseNet-BC vs pre-activation ResNet at matched parameters",
              "", f"The paper's claim: {G.DENSENET_CLAIM}.", ""]
    rows = []
    pairs: Dict[str, List[Tuple[str, Result]]] = {}
    for row, r in td:
        pairs.setdefault(r.exp.pair, []).append((row.row, r))
        paper = (row.paper[0][0] + ": " + _fmt_paper(row.paper[0][1]) if row.paper else
                 "– (no paper row at this size)")
        rows.append([r.exp.pair or "", row.row, f"{params[r.exp.name]:,}", f"{madds[r.exp.name] / 1e6:.0f}M",
                     r.ours_cell(), r.epochs_cell(setting), r.seeds_cell(), r.minutes_cell(), paper])
    lines += _table(["pair", "model", "params", "MAdds/image", "ours", "epochs", "seeds", "training min/run",
                     "paper C10+ error"], rows)
    lines += ["", "Training min/run: mean `wall_time_s` of the finished seeds' run.json files. The runs mostly "
              "went two side by side on the 2-core CPU, one training thread each, but not always, so the "
              "times compare only roughly; the multiply-adds are exact.", ""]
    for pair, members in pairs.items():
        dense = [m for m in members if m[1].exp.family == "densenet"]
        resn = [m for m in members if m[1].exp.family != "densenet"]
        if dense and resn:
            (dl, dn), (rl, rn) = dense[0], resn[0]
            ratio = params[dn.exp.name] / params[rn.exp.name]
            v = _compare(dn, rn)
            if dn.has_result() and rn.has_result():
                v = ("DenseNet-BC better: " if dn.score() < rn.score() else "DenseNet-BC not better: ") + v
            madds_ratio = madds[dn.exp.name] / madds[rn.exp.name]
            lines.append(f"- {pair}: {dl} vs {rl} ({ratio:.2f}x the parameters, {madds_ratio:.1f}x the multiply-adds "
                         f"per image): {v}.")
    dense_all = [(row.row, r) for row, r in td if r.exp.family == "densenet"]
    res_all = [(row.row, r) for row, r in td if r.exp.family != "densenet"]
    for dl, dn in dense_all:
        for rl, rn in res_all:
            if params[rn.exp.name] > 1.5 * params[dn.exp.name]:
                v = _compare(dn, rn)
                lines.append(f"- Fewer parameters: {dl} ({params[dn.exp.name] / 1e6:.2f}M) vs "
                             f"{rl} ({params[rn.exp.name] / 1e6:.2f}M): {v}.")
    lines.append("")
    pd = os.path.join(figures_dir, f"{tag}_densenet_curves.png")
    ok = curves_figure(pd, [(f"{row.row} ({params[r.exp.name] / 1e6:.2f}M)", r.curves()) for row, r in td],
                       f"DenseNet-BC vs ResNetV2 (DenseNet Figure 4 right), {G.DATASET_LABEL}", loss_label)
    if not ok:
        _remove(pd)
    lines += _figure_md(ok, pd, out_dir, "DenseNet vs ResNet training curves") + [""]
    pp = os.path.join(figures_dir, f"{tag}_densenet_params_vs_error.png")
    pts = []
    for row, r in td:
        m, sd, n = r.mean_std()
        pts.append((r.exp.family, row.row, params[r.exp.name], m, sd))
    ok = params_figure(pp, pts, f"Test error vs parameters (DenseNet Figure 4 middle), {G.DATASET_LABEL}")
    if not ok:
        _remove(pp)
    lines += _figure_md(ok, pp, out_dir, "error vs parameters") + [""]
    return lines, summary


CAVEATS = """\
## Where this differs from the papers (read before comparing numbers)

* **Depth.** The papers' Table 1 and 2 nets are ResNet-110 (54 residual units) and ResNet-164; the
  CPU setting uses ResNet-20 (9 units). The Table 1 failures are multiplicative effects along
  the shortcut path (e.g. a 0.5 scaling compounds to 0.5^54 over ResNet-110's units, 0.5^9 over
  ResNet-20's), so at depth 20 they are expected to show as degradation rather than outright
  failure. Rerun with `--depth 56` or `--scale paper` (ResNet-110) on a GPU for the paper's depth.
* **Schedule.** The papers train 164 epochs (64k iterations, lr 0.1 with steps at 32k/48k, weight decay
  1e-4, no label smoothing). The CPU setting trains every network for the same few epochs of the
  project's `cifar_cpu_short` one-cycle recipe (peak lr 0.2, Nesterov, weight decay 5e-4, label
  smoothing 0.1): a short schedule under-trains everything and may favour networks that are easy to
  optimise early, so expect absolute errors several points above the paper's; the training loss in
  the figures is the label-smoothed cross-entropy (it cannot reach 0).
* **Shortcuts at stage changes.** Our ResNetV2 uses 1x1 projection shortcuts (reading the
  pre-activated input in pre-activation units) wherever the shape changes, as the authors' v2 code
  does; the v1 paper's CIFAR nets (the Table 1 "original" 6.61%) used zero-padding (option A).
* **"fail".** The paper's "fail" means test error above 20%; we print the number and also
  mark it "fail". A run that stops on a non-finite loss is recorded as diverged (also a fail).
* **Seeds.** Three seeds where the paper's gap is small, one where it is large; gaps between
  single-seed rows are not measurements (the run-to-run std of a CIFAR ResNet-20 is usually a few
  tenths of a point; the three-seed rows measure it here).
* **DenseNet.** Both members of a pair use the same recipe (the ResNet one at CPU scale), not the
  DenseNet paper's batch 64 / wd 1e-4 / 300 epochs. P1's DenseNet-BC-52 (k=12) is a small
  configuration the paper did not train, so it has no paper error; P2's is the paper's own
  DenseNet-BC-100 (k=12), whose paper error (4.51%, 300 epochs) is shown for reference only.
* **Data.** A JPEG (quality 75) copy of CIFAR-10, not the original lossless images: every network
  sees the same JPEG artefacts, which may cost some accuracy relative to the papers' data.
"""


def make_report(results_dir: str, out: str, figures_dir: str, primary: G.Setting, include_smoke: bool = False,
                stats: Callable = G.model_stats) -> str:
    results_dir = os.path.abspath(results_dir)
    out = os.path.abspath(out)
    figures_dir = os.path.abspath(figures_dir)
    out_dir = os.path.dirname(out)
    settings = [primary]
    if os.path.isdir(results_dir):
        for tag in sorted(os.listdir(results_dir)):
            try:
                s = G.Setting.from_tag(tag)
            except ValueError:
                continue
            if s.tag != primary.tag and (include_smoke or not s.smoke):
                settings.append(s)
    rel_results = os.path.relpath(results_dir, G.ROOT) if results_dir.startswith(G.ROOT) else results_dir
    lines = ["# Identity mappings and DenseNet-BC: do our networks reproduce the papers' orderings?", "",
             f"Generated by `{COMMAND}` from the `run.json` files under `{rel_results}/` (issue 6); do not edit "
             f"by hand. The runs come from `python -m training.experiments.identity_mappings run` (grid, "
             f"defaults and their justification: `training/experiments/identity_mappings.py`, "
             f"`training/experiments/grid.py`). Every number of ours is measured on **{G.DATASET_LABEL}**.", "",
             "Papers: He et al. 2016, *Identity Mappings in Deep Residual Networks* (v2: Tables 1-3); "
             "Huang et al. 2017, *Densely Connected Convolutional Networks* (Table 2, Figure 4). Paper numbers "
             "from `../shared/reference/papers.md`.", "",
             "Figures follow the papers' style: training loss dashed (left axis), test error solid (right axis), "
             "one colour per variant, mean over the seeds that reached each epoch.", ""]
    summaries = []
    for s in settings:
        sec, summary = section(s, results_dir, figures_dir, out_dir, stats)
        lines += sec
        summaries.append(summary)
    lines += [CAVEATS]
    lines += ["## Planned grid and CPU-hour estimate", "",
              "Defaults (justified in the `training/experiments/identity_mappings.py` docstring): ResNet-20 "
              "for Tables 1-3 and 10 epochs of `cifar_cpu_short` for every network, because one ResNet-20 "
              "epoch costs ~5.5 minutes on the 2-core CPU (ResNet-110 would cost ~6x per epoch and the "
              "papers ran 164 epochs); three seeds where the paper's gap is small (all of Table 2, Table "
              "1's identity vs shortcut-only gating -6, the P1 DenseNet pair), one elsewhere; every "
              "experiment's first seed runs before any second seed, the costly P2 pair last. DenseNet-BC "
              "vs ResNetV2 pairs are matched on trainable parameters computed with "
              "`keras_preact.count_params` (P1: 264,586 vs 272,282; P2: 769,162 vs 855,578).", "",
              "`python -m training.experiments.identity_mappings plan` for the default setting:", ""]
    lines += [IM.plan_text(G.build_grid(primary), primary, markdown=True, stats=stats), ""]
    lines += ["## Regenerate", "", "```", "python -m training.experiments.identity_mappings status   # what is done",
              "python -m training.experiments.identity_mappings run      # resumes / continues the grid",
              f"{COMMAND}                     # this file and reports/figures/", "```", ""]
    text = "\n".join(lines)
    os.makedirs(out_dir, exist_ok=True)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, out)
    return text


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n\n")[0])
    p.add_argument("--results_dir", default=G.DEFAULT_RESULTS_DIR)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--figures_dir", default=DEFAULT_FIGURES)
    p.add_argument("--scale", default="cpu", choices=tuple(G.SCALES))
    p.add_argument("--depth", type=int, default=None)
    p.add_argument("--epochs", type=IM._parse_epochs, default=None)
    p.add_argument("--include_smoke", action="store_true")
    a = p.parse_args(argv)
    a.steps_per_epoch = a.validation_steps = a.batch_size = None
    primary = IM.setting_from_args(a)
    ab = lambda x: x if os.path.isabs(x) else os.path.join(G.ROOT, x)  # noqa: E731
    make_report(ab(a.results_dir), ab(a.out), ab(a.figures_dir), primary, a.include_smoke)
    print(f"wrote {a.out} and figures in {a.figures_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

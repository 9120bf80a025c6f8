"""How much test error JPEG compression costs at CIFAR scale: a dose-response measurement (issue 4).

The zoo's ResNet-20 models reach 88.18% / 88.05% on CIFAR-10 (JPEG q75 copy), about 3 points
under the v1 paper's 91.25% (He et al. 2015, Table 6, original images), and the paper's own
165-epoch recipe gave 87.13% here. The original images cannot be downloaded on these machines,
so the cost of the q75 copy's compression cannot be measured directly. What can be measured is
how the error responds to more compression of the same images: re-encode the q75 copy at a
lower (or, as a control, higher) quality, train the same network with the same recipe and seed, compare.

    python -m training.experiments.jpeg_quality prepare --quality 50   # data/cifar10-jpeg-requal50
    python -m training.experiments.jpeg_quality run --quality 50        # prepares if needed, then trains
    python -m training.experiments.jpeg_quality report                  # reports/jpeg_quality.md

The network and recipe are the identity-mappings grid's P1 reference run, `full_preactivation`
(pre-activation ResNet-20, `cifar_cpu_short`, 10 epochs), whose three seeds on the q75 copy
(`training/experiments/results/cpu_d20_e10/full_preactivation/seed{0,1,2}`) are the baseline;
a re-encoded run lands in `training/experiments/results/jpeg_quality/cpu_d20_e10/requal<Q>/seed<S>`.
Both splits are re-encoded (as the q75 copy compressed both), with Pillow's libjpeg, baseline,
4:2:0 chroma subsampling like the copy (`python -m bench.jpeg_copy`).

What this can and cannot say: it measures how the error responds to JPEG distortions of the
same images, of a known size (PSNR against the copy); a q90 re-encode, which adds little, is the
control. It cannot measure the q75 copy against the original images: a re-encoding stacks a second
quantization on the copy's, and going back *up* to the original would be an extrapolation, which
the report does not make.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
from typing import List, Optional, Sequence

import numpy as np

from training.experiments import grid as G
from training.experiments import identity_mappings as IM

SOURCE = os.path.join("data", "cifar10-jpeg")
RESULTS = os.path.join(G.DEFAULT_RESULTS_DIR, "jpeg_quality")
REPORT = os.path.join("reports", "jpeg_quality.md")
REFERENCE = "full_preactivation"  # the grid's experiment that gives network, recipe and baseline
SOURCE_QUALITY = 75
SPLITS = ("train", "test")


def requal_dir(source: str, quality: int) -> str:
    return f"{source.rstrip(os.sep)}-requal{quality}"


def _quality(text: str) -> int:
    v = int(text)
    if not 1 <= v <= 100:
        raise argparse.ArgumentTypeError(f"--quality must be an IJG quality in 1..100, got {v}")
    return v


def reencode_folder(source: str, out: str, quality: int) -> dict:
    """Re-encode every JPEG under source/{train,test} at `quality` (4:2:0) into `out`, same layout.

    Returns the coded bits per pixel of both folders and the PSNR of the re-encoded pixels
    against the source's decoded pixels. Written to `out`/requal.json; a finished folder
    (that file present) is reused; an unfinished one is re-encoded from the start.
    """
    import PIL
    from PIL import Image

    from bench.jpeg_copy import coded_bytes

    done = os.path.join(out, "requal.json")
    if os.path.exists(done):
        with open(done) as f:
            return json.load(f)
    if not all(os.path.isdir(os.path.join(source, s)) for s in SPLITS):
        raise FileNotFoundError(f"{source!r} has no train/ and test/ folders: unpack "
                                f"../shared/datasets/cifar10-jpeg.tar.gz there first (see docs/reproductions.md)")
    stats = {}
    for split in SPLITS:
        files = src_bits = out_bits = pixels = 0
        sq_err = 0.0
        psnrs = []
        for root, _, names in sorted(os.walk(os.path.join(source, split))):
            rel = os.path.relpath(root, source)
            os.makedirs(os.path.join(out, rel), exist_ok=True)
            for name in sorted(n for n in names if n.lower().endswith((".jpg", ".jpeg"))):
                with open(os.path.join(root, name), "rb") as f:
                    data = f.read()
                with Image.open(io.BytesIO(data)) as image:
                    rgb = image.convert("RGB")
                buffer = io.BytesIO()
                rgb.save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
                encoded = buffer.getvalue()
                with open(os.path.join(out, rel, name), "wb") as f:
                    f.write(encoded)
                a = np.asarray(rgb, dtype=np.float64)
                with Image.open(io.BytesIO(encoded)) as again:
                    b = np.asarray(again.convert("RGB"), dtype=np.float64)
                mse = float(np.mean((a - b) ** 2))
                sq_err += mse * a.shape[0] * a.shape[1]
                psnrs.append(99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse))
                files += 1
                pixels += a.shape[0] * a.shape[1]
                src_bits += 8 * coded_bytes(data)
                out_bits += 8 * coded_bytes(encoded)
        if not files:
            raise ValueError(f"no JPEG files (.jpg/.jpeg) under {os.path.join(source, split)!r}: this re-encodes "
                             f"the CIFAR-10 JPEG copy's train/<class>/*.jpg and test/<class>/*.jpg")
        stats[split] = {"files": files, "source_bpp": round(src_bits / pixels, 3),
                        "bpp": round(out_bits / pixels, 3),
                        "psnr_db_mean": round(float(np.mean(psnrs)), 2),
                        "psnr_db_pooled": round(10 * np.log10(255.0 ** 2 / (sq_err / pixels)), 2)}
    record = {"source": source, "source_quality": SOURCE_QUALITY, "quality": quality,
              "subsampling": "4:2:0", "encoder": "Pillow " + PIL.__version__, "splits": stats}
    with open(done, "w") as f:
        json.dump(record, f, indent=1)
    return record


def reference_experiment(setting: G.Setting) -> G.Experiment:
    (exp,) = G.select(G.build_grid(setting), only=REFERENCE)
    return exp


def run_dir(results_dir: str, setting: G.Setting, quality: int, seed: int) -> str:
    return os.path.join(results_dir, setting.tag, f"requal{quality}", f"seed{seed}")


def train(quality: int, seed: int, source: str, results_dir: str, setting: G.Setting, dry_run=False, out=sys.stdout):
    folder = requal_dir(source, quality)
    model_dir = IM._abs(run_dir(results_dir, setting, quality, seed))
    cmd = IM.train_command(reference_experiment(setting), seed, setting, model_dir, IM._dataset("folder:" + folder))
    if dry_run:
        print(" ".join(cmd), file=out, flush=True)
        return 0
    record = reencode_folder(source, folder, quality)
    print(f"re-encoded at q{quality}: " + ", ".join(
        f"{s} {v['bpp']} bpp (source {v['source_bpp']}), PSNR {v['psnr_db_pooled']} dB"
        for s, v in record["splits"].items()), file=out)
    print(" ".join(cmd), file=out, flush=True)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "requal.json"), "w") as f:  # committed: the data folder is not
        json.dump(record, f, indent=1)
    return subprocess.call(cmd, cwd=G.ROOT)


# --------------------------------------------------------------------------- report
def collect(results_dir: str, setting: G.Setting, baseline_dir: str = G.DEFAULT_RESULTS_DIR) -> List[dict]:
    """One row per JPEG quality: the q75 baseline seeds, then each re-encoded quality found."""
    exp = reference_experiment(setting)
    rows = []

    def row(quality, paths, bpp=None, psnr=None):
        finished = [(p, st) for p, st in zip(paths, map(G.run_state, paths)) if st.state == "finished"]
        paths, states = [p for p, _ in finished], [st for _, st in finished]
        errors = [st.test_error for st in states]
        train_acc = [100.0 * float(st.record["epochs"][-1]["accuracy"]) for st in states
                     if (st.record.get("epochs") or [{}])[-1].get("accuracy") is not None]
        if errors:
            rows.append({"quality": quality, "bpp_test": bpp, "psnr_db_vs_q75": psnr, "seeds": len(errors),
                         "test_error_mean": round(float(np.mean(errors)), 3),
                         "test_error_std": round(float(np.std(errors, ddof=1)), 3) if len(errors) > 1 else None,
                         "test_errors": errors,
                         "train_accuracy_last_epoch": round(float(np.mean(train_acc)), 2) if train_acc else None,
                         "wall_minutes_mean": round(float(np.mean([st.wall_time_s for st in states])) / 60, 1)
                         if all(st.wall_time_s for st in states) else None,
                         "runs": [_shown(p) for p in paths]})

    base = [G.run_dir(IM._abs(baseline_dir), setting, exp, s) for s in exp.seeds]
    row(SOURCE_QUALITY, base)
    tag_dir = os.path.join(IM._abs(results_dir), setting.tag)
    if os.path.isdir(tag_dir):
        names = [n for n in os.listdir(tag_dir) if n.startswith("requal") and n[len("requal"):].isdigit()]
        for name in sorted(names, key=lambda n: -int(n[len("requal"):])):
            seeds = sorted(os.path.join(tag_dir, name, s) for s in os.listdir(os.path.join(tag_dir, name))
                           if s.startswith("seed"))
            meta = _requal_test_stats(seeds)
            row(int(name[len("requal"):]), seeds, meta.get("bpp"), meta.get("psnr_db_pooled"))
    return sorted(rows, key=lambda r: -r["quality"])


def _requal_test_stats(run_dirs: Sequence[str]) -> dict:
    """The test split's re-encoding stats, from the first run folder that holds requal.json
    (every seed of one quality was trained on the same re-encoded folder)."""
    for path in run_dirs:
        try:
            with open(os.path.join(path, "requal.json")) as f:
                return json.load(f)["splits"]["test"]
        except (OSError, ValueError, KeyError):
            continue
    return {}


def _shown(path: str) -> str:
    """A path as the report prints it: relative to the repository when inside it."""
    rel = os.path.relpath(path, G.ROOT)
    return path if rel.startswith("..") else rel


def report_text(rows: Sequence[dict], setting: G.Setting, base_bpp: Optional[float]) -> str:
    exp = reference_experiment(setting)
    lines = [
        "# JPEG quality vs test error at CIFAR scale",
        "",
        "Generated by `python -m training.experiments.jpeg_quality report` from the committed `run.json` files;",
        f"every number is on {G.DATASET_LABEL} or a re-encoding of it (issue 4).",
        "",
        f"Network and recipe: {exp.label} (`{exp.model}`, {exp.kwargs_json()}), `{exp.config}`, "
        f"{setting.epochs} epochs, one thread per run on the 2-core CPU. q{SOURCE_QUALITY} is the copy itself "
        "(the identity-mappings grid's runs); the other qualities re-encode both splits of the copy with "
        "Pillow (4:2:0).",
        "",
        "| JPEG quality | coded bits/pixel (test) | PSNR vs q75 copy (dB) | seeds | test error % | per seed "
        "| train accuracy %, last epoch |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        err = f"{r['test_error_mean']:.2f}" + (f" ± {r['test_error_std']:.2f}" if r["test_error_std"] else "")
        bpp = r["bpp_test"] if r["bpp_test"] is not None else (base_bpp if r["quality"] == SOURCE_QUALITY else None)
        lines.append(f"| q{r['quality']}{' (the copy)' if r['quality'] == SOURCE_QUALITY else ' (re-encoded)'} "
                     f"| {bpp if bpp is not None else '-'} | {r['psnr_db_vs_q75'] if r['psnr_db_vs_q75'] else '-'} "
                     f"| {r['seeds']} | {err} | {', '.join(f'{e:.2f}' for e in r['test_errors'])} "
                     f"| {r['train_accuracy_last_epoch'] if r['train_accuracy_last_epoch'] is not None else '-'} |")
    base = next((r for r in rows if r["quality"] == SOURCE_QUALITY), None)
    reencoded = [r for r in rows if r["quality"] != SOURCE_QUALITY]
    lines += ["", "## What it says", ""]
    if base and reencoded:
        for r in reencoded:
            d = r["test_error_mean"] - base["test_error_mean"]
            noise = (f"; the q{SOURCE_QUALITY} seeds' standard deviation is {base['test_error_std']:.2f}"
                     if base["test_error_std"] else "")
            lines.append(f"- q{SOURCE_QUALITY} → q{r['quality']}: test error {d:+.2f} points "
                         f"({base['test_error_mean']:.2f} → {r['test_error_mean']:.2f}{noise}).")
        lines += [
            "- A re-encoding stacks a second quantization on the copy's: the PSNR column is the distortion it "
            "*adds* to the copy, not its distance from the original images.",
            "- Nothing here measures the q75 copy against the original CIFAR-10 images (not reachable from these "
            "machines). What it shows is what JPEG distortions of the same images, of the sizes in the PSNR "
            "column, cost at this scale; the copy's own distortion against the originals is of unknown size.",
        ]
    else:
        lines.append("- No re-encoded run has finished yet.")
    runs = [p for r in rows for p in r["runs"]]
    qualities = " ".join(str(r["quality"]) for r in reencoded) or "50"
    walls = [r["wall_minutes_mean"] for r in reencoded if r["wall_minutes_mean"]]
    span = sorted({f"{min(walls):.0f}", f"{max(walls):.0f}"}, key=float) if walls else []
    minutes = "-".join(span) + " min" if walls else "tens of minutes"
    lines += ["", "Runs: " + ", ".join(f"`{p}`" for p in runs), "",
              f"Reproduce ({minutes} a run on one thread): unpack `../shared/datasets/cifar10-jpeg.tar.gz` into "
              f"`{SOURCE}`, then `for q in {qualities}; do python -m training.experiments.jpeg_quality run "
              "--quality $q; done` and `python -m training.experiments.jpeg_quality report`.", ""]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None, out=sys.stdout) -> int:
    p = argparse.ArgumentParser(prog="python -m training.experiments.jpeg_quality",
                                description="Test error of pre-activation ResNet-20 vs JPEG quality (CIFAR-10 copy).")
    p.add_argument("command", choices=("prepare", "run", "report"))
    p.add_argument("--quality", type=_quality, default=None, help="IJG quality to re-encode at (prepare, run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", default=SOURCE, help="the unpacked q75 copy (train/ and test/ folders)")
    p.add_argument("--results_dir", default=RESULTS)
    p.add_argument("--baseline_dir", default=G.DEFAULT_RESULTS_DIR,
                   help="the identity-mappings grid's results (the q75 baseline seeds)")
    p.add_argument("--report", default=REPORT)
    p.add_argument("--epochs", type=IM._positive, default=None, help="default: the cpu grid's 10")
    p.add_argument("--steps_per_epoch", type=IM._positive, default=None, help="smoke runs only")
    p.add_argument("--validation_steps", type=IM._positive, default=None, help="smoke runs only")
    p.add_argument("--batch_size", type=IM._positive, default=None, help="smoke runs only")
    p.add_argument("--dry_run", action="store_true", help="run: print the training command only")
    a = p.parse_args(argv)
    setting = G.Setting(scale="cpu", depth=20, epochs=a.epochs or G.SCALES["cpu"]["epochs"],
                        steps_per_epoch=a.steps_per_epoch, validation_steps=a.validation_steps,
                        batch_size=a.batch_size)
    source = IM._abs(a.source)
    if a.command in ("prepare", "run") and a.quality is None:
        p.error(f"{a.command} needs --quality (an IJG quality in 1..100; the copy is q{SOURCE_QUALITY})")
    if a.command == "prepare":
        record = reencode_folder(source, requal_dir(source, a.quality), a.quality)
        print(json.dumps(record, indent=1), file=out)
        return 0
    if a.command == "run":
        return train(a.quality, a.seed, source, a.results_dir, setting, a.dry_run, out)
    rows = collect(a.results_dir, setting, a.baseline_dir)
    base_bpp = _copy_bpp()
    text = report_text(rows, setting, base_bpp)
    with open(IM._abs(a.report), "w") as f:
        f.write(text)
    with open(IM._abs(os.path.splitext(a.report)[0] + ".json"), "w") as f:
        json.dump({"setting": setting.tag, "rows": rows, "copy_bpp_test": base_bpp}, f, indent=1)
    print(text, file=out)
    return 0


def _copy_bpp() -> Optional[float]:
    """The q75 copy's coded bits per pixel on the test split, from bench/results/jpeg_copy.json."""
    try:
        with open(os.path.join(G.ROOT, "bench", "results", "jpeg_copy.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    try:
        return round(float(data["splits"]["test"]["bits_per_pixel"]), 3)
    except (KeyError, TypeError, ValueError):
        return None


if __name__ == "__main__":
    sys.exit(main())

"""Average a run's last epoch checkpoints and measure the average on a test split.

The averaging of timm's ``avg_checkpoints.py``: every model variable, batch-norm moving
statistics included, is the mean over the checkpoints. Issue 28 asked whether averaging
the end of a cycle would lift ResNetV2-56 past 90% on CIFAR-10 (JPEG q75 copy); docs/zoo.md
has the answer (no: within 0.06 points).

The trainer keeps only its last two checkpoints (``model_dir/checkpoint/ckpt.npz`` and
``ckpt.prev.npz``), so the epochs to average were copied aside while the run trained::

    while sleep 15; do cp -u runs/r56_anneal/checkpoint/ckpt.npz "runs/r56_anneal_epochs/$(date +%s).npz"; done

    python -m training.experiments.average_checkpoints --run_dir training/results/resnetv2_56_cifar_cpu_anneal \
        --checkpoints 'runs/r56_anneal_epochs/*.npz' --last 1,2,3,5 --dataset folder:data/cifar10-jpeg
"""

from __future__ import annotations

import argparse
import glob
import sys

import numpy as np


def average(checkpoints):
    """The mean of each model variable over `checkpoints` (training.state.Checkpoint objects)."""
    return [np.mean([c.model_values[i].astype(np.float64) for c in checkpoints], axis=0).astype(
        checkpoints[0].model_values[i].dtype) for i in range(len(checkpoints[0].model_values))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run_dir", required=True, help="the finished run (its run.json names the model)")
    parser.add_argument("--checkpoints", required=True, help="glob of checkpoint .npz files of that run")
    parser.add_argument("--last", default="1,3,5", help="comma-separated counts of last epochs to average")
    parser.add_argument("--dataset", required=True, help="folder:PATH or a tfds name")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)

    import keras_preact
    from keras_preact import data as data_lib
    from keras_preact.training import state
    from keras_preact.training.run_dir import read_run

    run = read_run(args.run_dir)
    files = sorted(glob.glob(args.checkpoints))
    if not files:
        raise SystemExit(f"error: no checkpoint matches {args.checkpoints!r}")
    checkpoints = sorted((state.read_checkpoint(f) for f in files), key=lambda c: c.meta["epoch"])
    model = keras_preact.build_variant(run.architecture, **run.model_kwargs)
    images, labels, _ = data_lib.materialize(args.dataset, args.split)
    print("| checkpoints averaged | epochs | top-1 |\n|---|---|---|")
    for count in (int(n) for n in args.last.split(",")):
        chosen = checkpoints[-count:]
        state.restore(model.weights, average(chosen), "model")
        top1 = float((model.predict(images, batch_size=500, verbose=0).argmax(-1) == labels).mean())
        print(f"| {len(chosen)} | {chosen[0].meta['epoch']}-{chosen[-1].meta['epoch']} | {top1:.2%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

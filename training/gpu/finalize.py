"""Write a JAX run's ``final.weights.h5`` here from its ``checkpoint.npz`` (any Keras backend).

    python -m training.gpu.finalize RUN_DIR

For a run that finished on a machine without h5py (run.json's final says so): the checkpoint
holds every model variable in the order of ``model.trainable_variables`` and
``model.non_trainable_variables``. They are loaded into the registry model built as
run.json says (softmax head, float32), checked against the ``weights_sha256`` run.json
recorded, and saved with Keras' ``save_weights``, as the trainers export it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from training.gpu.train_jax import CKPT, FINAL, RUN_JSON, load_checkpoint, weights_digest  # noqa: E402


def finalize(run_dir: str, overwrite: bool = False) -> str:
    import numpy as np

    import keras_preact

    path = os.path.join(run_dir, FINAL)
    if os.path.exists(path) and not overwrite:
        return path
    with open(os.path.join(run_dir, RUN_JSON)) as f:
        record = json.load(f)
    if record.get("status") != "finished":
        raise SystemExit(f"{run_dir}: status {record.get('status')!r}, not 'finished': resume it first")
    ckpt = load_checkpoint(os.path.join(run_dir, CKPT))
    if ckpt is None:
        raise SystemExit(f"{run_dir} has no {CKPT}")
    trainable, non_trainable, _, _ = ckpt
    model = keras_preact.build_variant(record["model"], **record["model_kwargs"])
    for v, a in zip(model.trainable_variables, trainable):
        v.assign(a)
    for v, a in zip(model.non_trainable_variables, non_trainable):
        v.assign(a)
    digest = weights_digest([np.asarray(w) for w in model.get_weights()])
    expected = (record.get("final") or {}).get("weights_sha256")
    if expected and digest != expected:
        raise SystemExit(f"{run_dir}: the checkpoint's weights (sha256 {digest[:12]}) are not the ones "
                         f"run.json recorded ({expected[:12]})")
    tmp = os.path.join(run_dir, f".tmp-{os.getpid()}-{FINAL}")
    model.save_weights(tmp)
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--overwrite", action="store_true")
    a = p.parse_args(argv)
    print(finalize(a.run_dir, a.overwrite))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train a registry model under JAX on one accelerator, within a time budget; resumable.

    KERAS_BACKEND=jax python training/gpu/train_jax.py --model resnetv2_164 --config cifar_cpu_long \\
        --epochs 200 --budget_s 540 --mixed_precision bf16 --out $OUT/run

Made for the lent GPU machine (docs/gpu.md): JAX, no TensorFlow, no network. Before Keras is
imported, the wheels in ``--bundle``/wheels that this interpreter lacks are unpacked into
``--site`` (`training.gpu.bootstrap`); the data is the bundle's JPEG file
(`training.gpu.bundle`), decoded once into host memory and then kept on the accelerator.

What a step does, as `keras_preact.training` does it with TensorFlow: the registry model
(`keras_preact.build_variant`, logits head; it normalizes raw 0..255 pixels inside), the
recipe's (``--config``) batch size, SGD with (Nesterov) momentum in Keras' own update
formula, coupled L2 weight decay ``0.5 * wd * sum ||W||^2`` on the kernels, label smoothing,
the papers' augmentation (4-pixel zero padding, random 32x32 crop, horizontal flip) --
here on the accelerator with jax.random -- and the recipe's learning-rate schedule
(`keras_preact.training.schedules`, TensorFlow-free until its in-graph schedule is used). One jitted, stateless step (``model.stateless_call``,
``jax.value_and_grad``; the state buffers donated) per call, or ``--scan_steps`` K of them
under ``lax.scan``.
``--mixed_precision bf16`` trains under Keras' ``mixed_bfloat16`` policy (float32 variables).

Time budget. The FIRST line printed (stdout) is the estimate: after compiling, a short
warm-up (on a copy of the state: its updates are discarded) measures training and evaluation
images/s, and from what is left of ``--budget_s`` (counted from the start of this process)
the number of epochs that fit. A fresh run then plans min(--epochs, fitting) epochs, so the
one-cycle schedule ends inside this call; with ``--span_calls`` it keeps --epochs as the plan
(DenseNet's 300 epochs) and this call trains what fits. After each epoch the measured time
decides again whether another one fits.

Files in ``--out`` (at most 5, for the device's $OUT limits): ``run.json`` (what
`keras_preact.training.run_dir.read_run` requires -- model, model_kwargs, dataset, class_names -- and
config, schedule, status, epochs history, final, hardware, versions, wall time), rewritten
after every epoch; ``checkpoint.npz`` (every model and optimizer variable and the history,
written atomically after every ``--checkpoint_every`` epochs and at the end of the call: a
second call with the same --out, or with ``--resume_from`` a returned run folder, continues);
``train.log``; and once the plan is done ``final.weights.h5`` (Keras' ``save_weights`` of the
float32 variables; the model's layers are named, so the file loads into the softmax-head
model that ``keras-preact publish`` builds; where h5py is missing or saving fails there,
``python -m training.gpu.finalize RUN`` writes it here from the checkpoint) and
``predictions.npz`` (the first ``--save_predictions`` test images with the float32 model's
logits under JAX, to compare with the published model in TensorFlow).

TensorFlow is made unimportable in this process (as on the device), so a run here proves the
script needs none.

Exit status: 0 the call ended normally (finished, or paused by the budget: status in run.json);
2 bad arguments or a checkpoint of another run; 3 the loss became NaN/inf; 4 no epoch fits.
"""

from __future__ import annotations

import time

T0 = time.time()  # the budget counts from here

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from training.gpu import bootstrap, bundle  # noqa: E402

RUN_JSON, CKPT, FINAL, PREDICTIONS, LOG = ("run.json", "checkpoint.npz", "final.weights.h5",
                                           "predictions.npz", "train.log")
KERNEL_LEAVES = ("kernel", "depthwise_kernel", "pointwise_kernel", "embeddings")
PRECISIONS = {"none": "float32", "float32": "float32", "fp32": "float32", "bf16": "mixed_bfloat16",
              "bfloat16": "mixed_bfloat16", "mixed_bfloat16": "mixed_bfloat16"}


class UsageError(Exception):
    pass


def _log(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


def block_tensorflow() -> None:
    """Make TensorFlow look absent, as it is on the device, so that a run on a machine that has it
    (tests, CI) proves the script needs none. (Keras' set_random_seed imports it when it can.)
    A None in sys.modules is what the import system reads as "not importable": `import`
    raises ModuleNotFoundError and importlib.util.find_spec returns None."""
    for name in ("tensorflow", "tensorflow_datasets"):
        if name not in sys.modules:
            sys.modules[name] = None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="registry name, e.g. resnetv2_164")
    p.add_argument("--model_kwargs", default="{}", help="JSON builder overrides (build_variant)")
    p.add_argument("--config", default="cifar_cpu_long", help="recipe in keras_preact.training.configs")
    p.add_argument("--epochs", type=int, default=None, help="epochs to plan (default: the recipe's)")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--learning_rate", type=float, default=None, help="peak / base lr (default: the recipe's)")
    p.add_argument("--eval_every", type=int, default=None, help="test evaluation every N epochs (0: end only)")
    p.add_argument("--out", required=True, help="run folder: run.json, checkpoint.npz, final.weights.h5")
    p.add_argument("--resume_from", default=None,
                   help="a run folder returned by an earlier call: copied into --out when it has no checkpoint")
    p.add_argument("--bundle", default=os.path.join(REPO, "gpu_bundle"))
    p.add_argument("--data", default=None, help="data file (default: BUNDLE/cifar10_jpeg.npz)")
    p.add_argument("--wheels", default=None, help="wheel folder (default: BUNDLE/wheels; 'none': use none)")
    p.add_argument("--site", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "keras_preact_site"),
                   help="where the needed wheels are unpacked")
    p.add_argument("--decoder", default=None, choices=bundle.DECODERS)
    p.add_argument("--budget_s", type=float, default=540.0, help="wall-clock seconds for this whole call")
    p.add_argument("--span_calls", action="store_true",
                   help="keep --epochs as the plan even if it does not fit: train what fits, resume later")
    p.add_argument("--stop_after_epochs", type=int, default=None, help="train at most N epochs in this call")
    p.add_argument("--mixed_precision", default="none", choices=sorted(PRECISIONS))
    p.add_argument("--scan_steps", type=int, default=1,
                   help="steps per jitted call: K > 1 runs K steps under lax.scan (fewer dispatches; "
                        "on XLA:CPU ~8x slower per step, measured here; not yet measured on a GPU)")
    p.add_argument("--eval_batch", type=int, default=1000)
    p.add_argument("--warmup_s", type=float, default=3.0,
                   help="seconds of timed warm-up steps (at least one jitted call after the compiling one)")
    p.add_argument("--reserve_s", type=float, default=15.0,
                   help="seconds kept free at the end besides the final evaluation and files")
    p.add_argument("--checkpoint_every", type=int, default=1, help="epochs between checkpoints")
    p.add_argument("--save_predictions", type=int, default=32, help="test images kept with their logits")
    p.add_argument("--limit_train", type=int, default=None, help="first N training images (tests)")
    p.add_argument("--limit_test", type=int, default=None, help="first N test images (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile_cache", default=None, help="JAX persistent compilation cache folder")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- planning


def plan_epochs(*, budget_s: float, elapsed_s: float, epoch_s: float, final_s: float, requested: int,
                done: int, planned: int | None, span_calls: bool, stop_after: int | None):
    """(epochs planned for the run, epochs this call trains, epochs that fit this call).

    `planned`: the plan of a resumed run (None for a fresh one). A fresh run plans
    min(requested, fitting) unless `span_calls`.
    """
    fit = max(0, int((budget_s - elapsed_s - final_s) // max(epoch_s, 1e-9)))
    if planned is None:
        planned = requested if span_calls else max(1, min(requested, fit))
    this_call = max(0, min(planned - done, fit))
    if stop_after is not None:
        this_call = min(this_call, stop_after)
    return planned, this_call, fit


# ----------------------------------------------------------------------------- files


def atomic_write(path: str, write) -> None:
    tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj) -> None:
    def w(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1, default=float)
            f.write("\n")
    atomic_write(path, w)


def save_checkpoint(path: str, trainable, non_trainable, momentum, meta: dict) -> None:
    import numpy as np

    arrays = {f"t{i}": np.asarray(a) for i, a in enumerate(trainable)}
    arrays.update({f"n{i}": np.asarray(a) for i, a in enumerate(non_trainable)})
    arrays.update({f"m{i}": np.asarray(a) for i, a in enumerate(momentum)})
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=float).encode(), np.uint8)

    def w(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    atomic_write(path, w)


def load_checkpoint(path: str):
    """(trainable, non_trainable, momentum, meta) lists of numpy arrays, or None if no file."""
    import numpy as np

    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode())
        get = lambda p: [z[f"{p}{i}"] for i in range(sum(1 for k in z.files if k[0] == p and k[1:].isdigit()))]
        return get("t"), get("n"), get("m"), meta


def cutout_squares(key, n: int, size: int):
    """Cutout's masks for `n` images: one CUTOUT_SIZE square each, True inside.

    As training.pipeline.cutout does per image: the centre is uniform over the image, so
    near a border only part of the square is inside.
    """
    import jax
    import jax.numpy as jnp

    from keras_preact.training.configs import CUTOUT_SIZE

    first = jax.random.randint(key, (n, 2), 0, size) - CUTOUT_SIZE // 2
    pos = jnp.arange(size)
    inside = (pos >= first[:, :, None]) & (pos < first[:, :, None] + CUTOUT_SIZE)
    return inside[:, 0, :, None] & inside[:, 1, None, :]


def weights_digest(values) -> str:
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for a in values:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def hardware() -> dict:
    import jax

    devices = jax.devices()
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"machine": platform.machine(), "system": platform.system(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "platform": jax.default_backend(),
            "gpus": [d.device_kind for d in devices if d.platform == "gpu"],
            "devices": [str(d) for d in devices], "strategy": "jax, one device", "replicas": 1}


def versions(decoder: str) -> dict:
    import importlib.metadata as md

    import jax
    import keras
    import numpy as np

    out = {"python": platform.python_version(), "jax": jax.__version__, "keras": keras.__version__,
           "numpy": np.__version__, "keras_backend": keras.backend.backend()}
    for dist in ("jaxlib", "keras_preact", {"simplejpeg": "simplejpeg", "pillow": "pillow"}[decoder], "h5py"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    if "keras_preact" not in out:
        import keras_preact

        out["keras_preact"] = getattr(keras_preact, "__version__", "unknown")
    return out


# ----------------------------------------------------------------------------- the trainer


class Stop:
    requested = False

    @classmethod
    def install(cls):
        def handler(signum, frame):
            cls.requested = True
            _log(f"signal {signum}: stopping after the current steps (the last checkpoint is kept)")
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, handler)


def main(argv=None) -> int:
    args = parse_args(argv)
    block_tensorflow()
    try:
        return run(args)
    except UsageError as e:
        _log(f"train_jax: {e}")
        return 2


def run(args) -> int:  # noqa: C901 - one straight sequence, commented by stage
    # -- the environment: carried wheels before Keras is imported
    backend = os.environ.setdefault("KERAS_BACKEND", "jax")
    if backend != "jax":
        raise UsageError(f"KERAS_BACKEND={backend}: this script trains under JAX (KERAS_BACKEND=jax)")
    wheels = args.wheels or os.path.join(args.bundle, "wheels")
    boot = bootstrap.ensure(wheels, args.site) if wheels != "none" else {}
    data_file = args.data or os.path.join(args.bundle, bundle.DATA_FILE)
    if not os.path.exists(data_file):
        raise UsageError(f"no data file {data_file}: run python -m training.gpu.prepare --out gpu_bundle/ "
                         "here, and carry gpu_bundle")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.resume_from and not os.path.exists(os.path.join(out, CKPT)):
        for name in (CKPT, RUN_JSON, LOG):
            src = os.path.join(args.resume_from, name)
            if os.path.exists(src):
                shutil.copyfile(src, os.path.join(out, name))
    try:
        import jax
        import jax.numpy as jnp
        import numpy as np
    except ImportError as e:
        raise UsageError(f"JAX is needed: {e}") from None
    if args.compile_cache:
        jax.config.update("jax_compilation_cache_dir", args.compile_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    import keras

    import keras_preact
    from keras_preact.training import configs, schedules

    # -- recipe
    try:
        cfg = configs.get_config(args.config)
        changes = {k: v for k, v in (("epochs", args.epochs), ("batch_size", args.batch_size),
                                     ("learning_rate", args.learning_rate), ("eval_every", args.eval_every))
                   if v is not None}
        cfg = cfg.replace(**changes)
        configs.validate(cfg)
        spec = keras_preact.get_model_spec(args.model)
        overrides = json.loads(args.model_kwargs)
    except (ValueError, KeyError) as e:
        raise UsageError(str(e)) from None
    if cfg.augment not in ("cifar", "cifar_cutout", "none"):
        raise UsageError(f"augment={cfg.augment!r}: this script does the CIFAR augmentation (cifar, "
                         "cifar_cutout) or none only")
    if cfg.ema_momentum:
        # Refused, not ignored: the card would credit a recipe this script did not run.
        raise UsageError(f"recipe {cfg.name} averages the weights (ema_momentum={cfg.ema_momentum}); this "
                         "script does not: train it with keras-preact train")
    if cfg.mixed_precision not in ("none", "mixed_bfloat16") and args.mixed_precision == "none":
        raise UsageError(f"recipe {cfg.name} asks for {cfg.mixed_precision}; pass --mixed_precision")
    policy = PRECISIONS[args.mixed_precision]

    # -- data (host, then accelerator)
    t = time.time()
    x_train, y_train, train_info = bundle.load_split(data_file, "train", args.decoder, args.limit_train)
    x_test, y_test, test_info = bundle.load_split(data_file, "test", args.decoder, args.limit_test)
    data_meta = bundle.read_meta(data_file)
    class_names = train_info["class_names"]
    n_train, n_test = len(y_train), len(y_test)
    size = int(cfg.image_size or spec.input_shape[0])
    if x_train.shape[1:3] != (size, size):
        raise UsageError(f"images are {x_train.shape[1:3]}, the model takes {size}x{size}: resize when preparing")
    batch = cfg.batch_size
    steps_per_epoch = n_train // batch
    if steps_per_epoch < 1:
        raise UsageError(f"{n_train} training images, fewer than one batch of {batch}")
    decode_s = time.time() - t
    dev_x, dev_y = jax.device_put(x_train), jax.device_put(y_train.astype(np.int32))
    num_classes = len(class_names)
    model_kwargs = configs.model_kwargs(spec, cfg, num_classes, size, overrides)
    dataset_label = f"folder:{data_meta.get('source')}"

    # -- resume?
    ckpt_path = os.path.join(out, CKPT)
    identity = {"model": args.model, "model_kwargs": json.loads(json.dumps(model_kwargs)),
                "dataset": dataset_label, "source_sha256": data_meta.get("source_sha256"),
                "num_classes": num_classes, "n_train": n_train, "config": cfg.name, "batch_size": batch}
    ckpt = load_checkpoint(ckpt_path)
    if ckpt is not None and ckpt[3].get("identity") != identity:
        theirs = ckpt[3].get("identity", {})
        diff = {k: (theirs.get(k), v) for k, v in identity.items() if theirs.get(k) != v}
        raise UsageError(f"{ckpt_path} is a checkpoint of another run ({diff}); use another --out")
    meta = ckpt[3] if ckpt else {}
    history = list(meta.get("history", []))
    done = int(meta.get("epoch", 0))
    iteration = int(meta.get("iteration", 0))
    if meta.get("status") == "finished" or (meta and done >= int(meta.get("epochs_planned", 0))):
        raise UsageError(f"{out} holds a finished run ({done} epochs); nothing to resume")

    # -- the model: logits head, under the policy. Its layers are named explicitly, so its weight
    # file loads into the softmax-head model that publish builds (the head has no other weights).
    t = time.time()
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(args.seed)
    try:
        model = keras_preact.build_variant(args.model, classifier_activation=None, **model_kwargs)
    except (TypeError, ValueError) as e:
        raise UsageError(f"model {args.model!r} does not accept {model_kwargs}: {e}") from None
    keras.mixed_precision.set_global_policy("float32")
    build_s = time.time() - t
    tv, ntv = model.trainable_variables, model.non_trainable_variables
    if cfg.weight_decay_scope == "all":
        decay_mask = [True] * len(tv)
    else:
        decay_mask = [(getattr(v, "path", None) or v.name).split("/")[-1].split(":")[0] in KERNEL_LEAVES
                      for v in tv]
    if ckpt is not None:
        trainable, non_trainable, momentum = ckpt[0], ckpt[1], ckpt[2]
        shapes = [tuple(v.shape) for v in tv] + [tuple(v.shape) for v in ntv]
        if [tuple(a.shape) for a in trainable + non_trainable] != shapes or len(momentum) != len(tv):
            raise UsageError(f"{ckpt_path} does not fit {args.model} {model_kwargs}")
    else:
        trainable = [np.asarray(v.value) for v in tv]
        non_trainable = [np.asarray(v.value) for v in ntv]
        momentum = [np.zeros(v.shape, np.float32) for v in tv]
    state = jax.device_put((list(trainable), list(non_trainable), list(momentum)))

    # -- the step
    mom, nesterov = float(cfg.momentum), bool(cfg.nesterov)
    wd, ls = float(cfg.weight_decay), float(cfg.label_smoothing)
    augment, cutout = cfg.augment != "none", cfg.augment == "cifar_cutout"

    def augment_batch(key, images):
        # training.pipeline's augmentation, batched: pad 4 / random crop / flip, then Cutout.
        if not augment:
            return images.astype(jnp.float32)
        k1, k2, k3 = jax.random.split(key, 3)
        padded = jnp.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
        offsets = jax.random.randint(k1, (images.shape[0], 2), 0, 9)
        crop = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (size, size, 3)))
        out_ = crop(padded, offsets)
        flip = jax.random.bernoulli(k2, 0.5, (images.shape[0],))
        out_ = jnp.where(flip[:, None, None, None], out_[:, :, ::-1, :], out_)
        if cutout:
            out_ = jnp.where(cutout_squares(k3, images.shape[0], size)[..., None],
                             jnp.asarray(configs.CUTOUT_FILL, out_.dtype), out_)
        return out_.astype(jnp.float32)

    def loss_fn(train_vars, non_train_vars, images, labels):
        logits, new_nt = model.stateless_call(train_vars, non_train_vars, images, training=True)
        logits = logits.astype(jnp.float32)
        logp = jax.nn.log_softmax(logits)
        onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
        target = onehot * (1.0 - ls) + ls / num_classes if ls > 0 else onehot
        ce = -jnp.sum(target * logp, axis=-1)
        loss = jnp.mean(ce)
        if wd:
            loss = loss + 0.5 * wd * sum(jnp.sum(jnp.square(w.astype(jnp.float32)))
                                         for w, m in zip(train_vars, decay_mask) if m)
        correct = jnp.sum((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
        return loss, (new_nt, jnp.sum(ce), correct)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def train_chunk(state_, x_all, y_all, key, idx, lrs, steps):
        """`idx.shape[0]` steps under lax.scan; returns the new state and (sum of CE, correct)."""

        def one_step(carry, inp):
            train_vars, non_train_vars, moms = carry
            idx_, lr, step = inp
            images = augment_batch(jax.random.fold_in(key, step), x_all[idx_])
            (_, (new_nt, ce_sum, correct)), grads = grad_fn(train_vars, non_train_vars, images, y_all[idx_])
            new_m, new_w = [], []
            for w, g, m in zip(train_vars, grads, moms):
                m = mom * m - lr * g  # keras.optimizers.SGD's update, Nesterov or not
                new_m.append(m)
                new_w.append(w + (mom * m - lr * g if nesterov else m))
            return (new_w, new_nt, new_m), jnp.stack([ce_sum, correct])

        if idx.shape[0] == 1:  # one step: no loop (XLA:CPU runs convolutions in a while loop ~8x slower)
            state_, sums = one_step(state_, (idx[0], lrs[0], steps[0]))
            return state_, sums
        state_, sums = jax.lax.scan(one_step, state_, (idx, lrs, steps))
        return state_, jnp.sum(sums, axis=0)

    train_chunk = jax.jit(train_chunk, donate_argnums=(0,))

    k_eval = min(5, num_classes)

    def eval_batch(train_vars, non_train_vars, images, labels, weights):
        logits, _ = model.stateless_call(train_vars, non_train_vars, images.astype(jnp.float32), training=False)
        logits = logits.astype(jnp.float32)
        ce = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=-1)[:, 0]
        top1 = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
        _, topk = jax.lax.top_k(logits, k_eval)
        top5 = jnp.any(topk == labels[:, None], axis=-1).astype(jnp.float32)
        sums = jnp.stack([jnp.sum(ce * weights), jnp.sum(top1 * weights), jnp.sum(top5 * weights),
                          jnp.sum(weights)])
        return sums, logits

    eval_batch = jax.jit(eval_batch)
    eb = min(args.eval_batch, n_test)
    n_eval_batches = -(-n_test // eb)
    pad = n_eval_batches * eb - n_test
    ex = jax.device_put(np.concatenate([x_test, np.zeros((pad,) + x_test.shape[1:], np.uint8)]))
    ey = jax.device_put(np.concatenate([y_test, np.zeros(pad, np.int64)]).astype(np.int32))
    ew = jax.device_put(np.concatenate([np.ones(n_test, np.float32), np.zeros(pad, np.float32)]))

    def evaluate(state_) -> dict:
        tot = None
        for b in range(n_eval_batches):
            s = slice(b * eb, (b + 1) * eb)
            r, _ = eval_batch(state_[0], state_[1], ex[s], ey[s], ew[s])
            tot = r if tot is None else tot + r
        tot = np.asarray(tot, np.float64)
        n = max(tot[3], 1.0)
        return {"val_loss": tot[0] / n, "val_accuracy": tot[1] / n, "val_top5_accuracy": tot[2] / n,
                "val_examples": int(tot[3])}

    # Chunks of K steps per jitted call; K divides the epoch so every call has one shape.
    K = max(d for d in range(1, max(1, min(args.scan_steps, steps_per_epoch)) + 1) if steps_per_epoch % d == 0)
    base_key = jax.random.PRNGKey(args.seed)
    shuffle_key, aug_key = jax.random.split(base_key)

    def epoch_indices(epoch: int):
        perm = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n_train)
        return perm[: steps_per_epoch * batch].reshape(steps_per_epoch // K, K, batch)

    # -- warm-up: compile, then time steps on a copy of the state (its updates are discarded)
    t = time.time()
    idx0 = epoch_indices(10**6)
    copy = jax.tree_util.tree_map(jnp.copy, state)
    lrs0 = jnp.full((K,), 1e-3, jnp.float32)
    steps0 = jnp.arange(K, dtype=jnp.int32) + 10**7
    copy, sums = train_chunk(copy, dev_x, dev_y, aug_key, idx0[0], lrs0, steps0)
    jax.block_until_ready(sums)
    compile_s = time.time() - t
    t = time.time()
    calls = 0
    while calls < 1 or (time.time() - t < args.warmup_s and calls < 50):
        copy, sums = train_chunk(copy, dev_x, dev_y, aug_key, idx0[(calls + 1) % idx0.shape[0]], lrs0, steps0)
        jax.block_until_ready(sums)
        calls += 1
    train_ips = calls * K * batch / (time.time() - t)
    del copy
    t = time.time()
    jax.block_until_ready(eval_batch(state[0], state[1], ex[:eb], ey[:eb], ew[:eb]))
    eval_compile_s = time.time() - t
    t = time.time()
    reps = 0
    while reps < 1 or (time.time() - t < min(1.0, args.warmup_s) and reps < 20):
        jax.block_until_ready(eval_batch(state[0], state[1], ex[:eb], ey[:eb], ew[:eb]))
        reps += 1
    eval_ips = reps * eb / (time.time() - t)

    # -- the plan
    eval_every = cfg.eval_every
    eval_s = n_test / eval_ips
    ckpt_bytes = 4 * (2 * sum(int(np.prod(v.shape)) for v in tv) + sum(int(np.prod(v.shape)) for v in ntv))
    ckpt_s = 0.5 + ckpt_bytes / 100e6
    epoch_s = (steps_per_epoch * batch / train_ips + (eval_s / eval_every if eval_every else 0.0)
               + ckpt_s / max(1, args.checkpoint_every) + 0.5)
    # At the end: evaluation, checkpoint + weights files, and (bf16 only) a float32 forward to compile.
    final_s = eval_s + 2 * ckpt_s + 5.0 + args.reserve_s + ((eval_compile_s + build_s) if policy != "float32" else 0.0)
    requested = int(cfg.epochs)
    planned, this_call, fit = plan_epochs(
        budget_s=args.budget_s, elapsed_s=time.time() - T0, epoch_s=epoch_s, final_s=final_s,
        requested=requested, done=done, planned=meta.get("epochs_planned"), span_calls=args.span_calls,
        stop_after=args.stop_after_epochs)
    total_steps = planned * steps_per_epoch
    sched = schedules.resolve(cfg, steps_per_epoch, total_steps)
    if meta.get("schedule") and meta["schedule"] != sched.to_dict():
        raise UsageError(f"the schedule differs from the checkpoint's ({meta['schedule']} vs {sched.to_dict()})")
    estimate = {"train_images_per_s": round(train_ips, 1), "eval_images_per_s": round(eval_ips, 1),
                "epoch_s": round(epoch_s, 2), "elapsed_s": round(time.time() - T0, 1),
                "budget_s": args.budget_s, "fit": fit, "requested": requested, "planned": planned,
                "done_before": done, "this_call": this_call, "compile_s": round(compile_s, 1),
                "eval_compile_s": round(eval_compile_s, 1), "decode_s": round(decode_s, 1),
                "build_s": round(build_s, 1), "scan_steps": K, "precision": policy,
                "platform": jax.default_backend()}
    print(f"ESTIMATE {train_ips:.0f} images/s training ({policy}, batch {batch}, {jax.default_backend()}), "
          f"{eval_ips:.0f} images/s evaluation; {epoch_s:.1f} s/epoch; {fit} epoch(s) fit the "
          f"{args.budget_s:.0f} s budget ({time.time() - T0:.0f} s used by start-up and compiling); "
          f"plan {planned} epoch(s), {done} done, this call trains {this_call}", flush=True)
    _log(json.dumps({"bootstrap": boot, "estimate": estimate,
                     "pixels": {"decoder": train_info["decoder"],
                                "train_matches_tf": train_info["matches_reference"],
                                "test_matches_tf": test_info["matches_reference"]}}))
    if this_call == 0:
        _log("train_jax: no epoch fits the budget; nothing trained")
        return 4

    # -- records
    session_start = time.time()
    prev_wall = 0.0
    run_json_path = os.path.join(out, RUN_JSON)
    if os.path.exists(run_json_path):
        try:
            with open(run_json_path) as f:
                prev_wall = float(json.load(f).get("wall_time_s", 0.0))
        except (OSError, ValueError):
            prev_wall = 0.0
    hw, vers = hardware(), versions(train_info["decoder"])
    calls_log = list(meta.get("calls", [])) + [{"estimate": estimate, "started": T0}]
    pixel_record = {"decoder": train_info["decoder"],
                    "matches_tensorflow": {"train": train_info["matches_reference"],
                                           "test": test_info["matches_reference"]},
                    "bundle_check": {s: {k: v for k, v in (data_meta.get("pixels") or {}).get(s, {}).items()
                                         if k != "reference"} for s in bundle.SPLITS}}

    def record(status: str, final=None) -> dict:
        cfg_dict = cfg.to_dict()
        cfg_dict["mixed_precision"] = "none" if policy == "float32" else policy
        return {
            "model": args.model, "model_kwargs": model_kwargs, "dataset": dataset_label,
            "class_names": class_names, "input_shape": [size, size, 3], "config": cfg_dict,
            "schedule": sched.to_dict(), "status": status, "strategy": "jax", "replicas": 1, "workers": 1,
            "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "epochs_planned": planned,
            "epochs": history, "final": final,
            "data": {"bundle": os.path.basename(data_file), "source": data_meta.get("source"),
                     "source_sha256": data_meta.get("source_sha256"),
                     "train": {"num_examples": n_train, "limit": args.limit_train},
                     "test": {"num_examples": n_test, "limit": args.limit_test},
                     "class_names": class_names, "pixels": pixel_record},
            "seed": args.seed, "command": " ".join(sys.argv), "trainer": "training/gpu/train_jax.py",
            "versions": vers, "hardware": hw, "calls": calls_log,
            "session_start": session_start, "wall_time_previous_s": prev_wall,
            "wall_time_s": round(prev_wall + time.time() - T0, 1),
        }

    def checkpoint_meta(status: str) -> dict:
        return {"epoch": done, "iteration": iteration, "history": history, "identity": identity,
                "config": cfg.to_dict(), "epochs_planned": planned, "schedule": sched.to_dict(),
                "calls": calls_log, "status": status, "time": time.time()}

    def log_line(entry: dict) -> None:
        line = (f"epoch {entry['epoch']}/{planned} loss={entry['loss']:.4f} acc={entry['accuracy']:.4f}"
                + (f" val_loss={entry['val_loss']:.4f} val_acc={entry['val_accuracy']:.4f}"
                   f" val_top5={entry['val_top5_accuracy']:.4f}" if "val_loss" in entry else "")
                + f" lr={entry['lr']:.5g} time={entry['seconds']:.1f}s ({entry['images_per_sec']:.0f} img/s)")
        print(line, flush=True)
        with open(os.path.join(out, LOG), "a") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")

    write_json(run_json_path, record("running"))
    Stop.install()

    # -- train
    status, final = "paused", None
    trained_this_call, saved_epoch = 0, done
    last_eval = None
    while done < planned and trained_this_call < this_call:
        t_epoch = time.time()
        idx = epoch_indices(done)
        tot = None
        for c in range(idx.shape[0]):
            steps = np.arange(iteration + c * K, iteration + (c + 1) * K)
            lrs = np.asarray([sched.lr_at(int(s_)) for s_ in steps], np.float32)
            state, sums = train_chunk(state, dev_x, dev_y, aug_key, idx[c], lrs, steps.astype(np.int32))
            tot = sums if tot is None else tot + sums
            if Stop.requested:
                break
        if Stop.requested:  # mid-epoch: the partial epoch is dropped, resume repeats it from saved_epoch
            break
        iteration += steps_per_epoch
        tot = np.asarray(tot, np.float64)
        train_s = time.time() - t_epoch
        examples = steps_per_epoch * batch
        if not np.all(np.isfinite(tot)):
            write_json(run_json_path, record("stopped: non-finite loss"))
            _log(f"train_jax: loss became {tot[0]} in epoch {done + 1}")
            return 3
        done += 1
        trained_this_call += 1
        entry = {"epoch": done, "loss": tot[0] / examples, "accuracy": tot[1] / examples,
                 "lr": sched.lr_at(iteration - 1), "steps": steps_per_epoch, "iteration": iteration,
                 "train_seconds": round(train_s, 2), "images_per_sec": round(examples / max(train_s, 1e-9), 1),
                 "device": hw["gpus"][0] if hw["gpus"] else hw["platform"], "precision": policy}
        last_eval = None
        if done == planned or (eval_every and done % eval_every == 0):
            last_eval = evaluate(state)
            entry.update(last_eval)
        entry["seconds"] = round(time.time() - t_epoch, 2)
        history.append(entry)
        log_line(entry)
        end_of_call = done == planned or trained_this_call >= this_call
        if done % max(1, args.checkpoint_every) == 0 or end_of_call:
            save_checkpoint(ckpt_path, *state, checkpoint_meta("running"))
            saved_epoch = done
        write_json(run_json_path, record("running"))
        # Does another epoch still fit? The measured epoch time, not the estimate, decides now.
        left = args.budget_s - (time.time() - T0)
        if not end_of_call and left < entry["seconds"] * 1.05 + final_s:
            _log(f"train_jax: {left:.0f} s left, an epoch takes {entry['seconds']:.0f} s: pausing after "
                 f"{done}/{planned} epochs")
            break
    if not Stop.requested and saved_epoch != done:  # at an epoch's end: keep it
        save_checkpoint(ckpt_path, *state, checkpoint_meta("running"))
        saved_epoch = done

    if done >= planned:
        # -- the end: final evaluation, final.weights.h5, predictions
        evaluation = last_eval or evaluate(state)
        for v, a in zip(list(tv) + list(ntv), list(state[0]) + list(state[1])):
            v.assign(np.asarray(a))
        # model.get_weights()'s order, read from the state's jax arrays: Keras' own Variable ->
        # numpy conversion takes a path NumPy 2 deprecates (__array__ without copy=).
        where = {id(v): (0, i) for i, v in enumerate(tv)}
        where.update({id(v): (1, i) for i, v in enumerate(ntv)})
        weights = [np.asarray(state[where[id(v)][0]][where[id(v)][1]]) for v in model.weights]
        final = {"test_top1": evaluation["val_accuracy"], "test_top5": evaluation["val_top5_accuracy"],
                 "test_loss": evaluation["val_loss"], "test_examples": evaluation["val_examples"],
                 "test_error": 1.0 - evaluation["val_accuracy"], "split": "test",
                 "validation_steps_cap": None, "epochs_done": done, "iterations": iteration,
                 "weights_sha256": weights_digest(weights), "test_limit": args.limit_test}
        # The checkpoint holds everything (finalize can make final.weights.h5 from it): first.
        save_checkpoint(ckpt_path, *state, checkpoint_meta("finished"))
        write_json(run_json_path, record("finished", final))
        n_pred = min(args.save_predictions, n_test, eb)
        try:  # a check for here, not the result: a failure must not cost the run
            if n_pred:
                # The float32 model's logits (the one final.weights.h5 holds), to compare with TensorFlow's.
                if policy == "float32":
                    _, logits = eval_batch(state[0], state[1], ex[:eb], ey[:eb], ew[:eb])
                else:  # the float32 model, as TensorFlow will run it
                    export = keras_preact.build_variant(args.model, classifier_activation=None, **model_kwargs)
                    export.set_weights(weights)
                    logits, _ = jax.jit(lambda t_, n_, x_: export.stateless_call(t_, n_, x_, training=False))(
                        [v.value for v in export.trainable_variables],
                        [v.value for v in export.non_trainable_variables], x_test[:n_pred].astype(np.float32))
                logits = np.asarray(logits, np.float32)[:n_pred]
                shifted = logits - logits.max(-1, keepdims=True)
                probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
                arrays = {"images": x_test[:n_pred], "labels": y_test[:n_pred], "logits": logits,
                          "probabilities": probabilities.astype(np.float32),
                          "paths": np.asarray(test_info["paths"][:n_pred])}

                def write_predictions(p):
                    with open(p, "wb") as f:
                        np.savez(f, **arrays)
                atomic_write(os.path.join(out, PREDICTIONS), write_predictions)
        except Exception as e:  # noqa: BLE001
            _log(f"train_jax: predictions.npz not written ({type(e).__name__}: {e})")
        try:
            import h5py  # noqa: F401

            # The temporary name ends in .weights.h5, as Keras requires.
            atomic_write(os.path.join(out, FINAL), model.save_weights)
        except Exception as e:  # noqa: BLE001 - no h5py, or Keras/NumPy versions there: the checkpoint has it all
            final["final_weights"] = (f"not written there ({type(e).__name__}: {e}): "
                                      "python -m training.gpu.finalize RUN writes it here from checkpoint.npz")
            _log(f"train_jax: final.weights.h5 not written ({type(e).__name__}: {e}); "
                 "run python -m training.gpu.finalize RUN here")
        status = "finished"
        print(f"FINAL test top-1 {final['test_top1']:.4f}, top-5 {final['test_top5']:.4f} on "
              f"{final['test_examples']} images after {done} epochs; weights sha256 {final['weights_sha256'][:16]}",
              flush=True)
    write_json(run_json_path, record(status, final))
    if status != "finished":
        print(f"PAUSED after {done}/{planned} epochs (checkpoint: epoch {saved_epoch}): run the same command "
              "again (with --resume_from a returned run folder on a new machine) to continue", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Model code is backend-agnostic: every CIFAR model runs a forward pass at
batch 2 under JAX as well as TensorFlow (in a subprocess: the backend is
fixed at import).

Under JAX on this 2-core CPU, building and running a Keras model compiles
op by op: minutes per DenseNet. CI runs one model of each residual family
under JAX (plus the TF-vs-JAX equality check), and the smallest CIFAR DenseNet
forward and through one training step; the full list of CIFAR models
on both backends is the slow suite (`pytest -m slow tests/test_backends.py`).
"""

import os
import subprocess
import sys

import pytest

from keras_preact.models.registry import get_model_spec, list_models

CIFAR = [n for n in list_models() if get_model_spec(n).dataset == "cifar"]
DEEPEST = ("resnet_1202", "resnetv2_1001")

# Both BN modes. Untrained, in inference mode, BN uses its initial moving statistics
# (mean 0, variance 1) and every residual unit roughly doubles the signal: the two
# deepest nets overflow float32 to NaN by construction (TensorFlow as well as JAX;
# see `zero_init_residual` in the builders' docstrings), so their inference pass is
# checked with residual branches that start at zero.
SCRIPT = """
import sys, numpy as np, keras, keras_preact
assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
x = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
DEEPEST = %r
for name in sys.argv[2:]:
    model = keras_preact.get_model(name)
    for training in (True, False):
        if not training and name in DEEPEST:
            model = keras_preact.get_model(name, zero_init_residual=True)
        y = np.asarray(model(x, training=training))
        assert y.shape == (2, 10) and np.isfinite(y).all(), (name, training, y)
        assert np.allclose(y.sum(-1), 1, atol=1e-4), (name, training)
    print("ok", name, flush=True)
""" % (DEEPEST,)


def _run(backend, names):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", SCRIPT, backend, *names], env=env,
                            capture_output=True, text=True, timeout=6 * 3600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("ok ") == len(names)


IN_CI = ("resnet_20", "resnetv2_20")


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_small_cifar_models_forward_on_backend(backend):
    _run(backend, list(IN_CI))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CIFAR if n not in IN_CI])
@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_every_cifar_model_forward_on_backend(backend, name):
    # One subprocess per model: a failure names its model, and `--durations`
    # shows what each costs on each backend.
    _run(backend, [name])


def test_jax_and_tensorflow_compute_the_same_function(tmp_path):
    """Same weights file, same input: the two backends agree within 1e-4."""
    script = """
import sys, numpy as np, keras, keras_preact
x = np.random.RandomState(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
keras.utils.set_random_seed(0)
path = sys.argv[1]
model = keras_preact.get_model("resnetv2_20", classifier_activation=None)
if keras.backend.backend() == "tensorflow":
    model.save_weights(path)
else:
    model.load_weights(path)
np.save(path + "." + keras.backend.backend() + ".npy", np.asarray(model(x, training=False)))
"""
    import numpy as np

    path = str(tmp_path / "w.weights.h5")
    for backend in ("tensorflow", "jax"):
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
        result = subprocess.run([sys.executable, "-c", script, path], env=env, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(path + ".jax.npy"), np.load(path + ".tensorflow.npy"), atol=1e-4)


DENSENET_STEP = """
import sys, numpy as np, keras, keras_preact
assert keras.backend.backend() == "jax", keras.backend.backend()
x = np.random.RandomState(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
y = np.array([0, 1, 2, 3])
model = keras_preact.get_model("densenet_40_12")
for training in (True, False):
    p = np.asarray(model(x, training=training))
    assert p.shape == (4, 10) and np.isfinite(p).all() and np.allclose(p.sum(-1), 1, atol=1e-4), training
model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
before = [np.array(w) for w in model.trainable_weights]
loss = float(model.train_on_batch(x, y))
changed = sum(not np.array_equal(a, np.asarray(b)) for a, b in zip(before, model.trainable_weights))
assert np.isfinite(loss) and changed == len(before), (loss, changed, len(before))
print("ok", loss, changed, flush=True)
"""


def test_densenet_forward_and_one_training_step_under_jax():
    """README says the models run under JAX: a CIFAR DenseNet (densenet_40_12: dense blocks,
    transitions) runs forward in both BN modes and takes one compiled training step that
    changes every trainable weight."""
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, "-c", DENSENET_STEP], env=env, capture_output=True,
                            text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok "), result.stdout


"""The GPU route: train a registry model under JAX on a lent accelerator machine (docs/gpu.md).

That machine runs one bash command over a copy of the working tree, with JAX but no
TensorFlow and no network. This package makes that possible:

* `prepare` (here, with TensorFlow): ``python -m training.gpu.prepare --out gpu_bundle/`` writes
  the CIFAR-10 JPEG copy as one numpy file of JPEG bytes, checks that the decoder it will use
  there gives exactly the pixels `keras_preact.data` (TensorFlow) gives, downloads the wheels
  the device may lack (Keras 3.15 and its dependencies, the JPEG decoder), and reports the
  size of what travels against the device's 64 MiB;
* `bootstrap` (there, stdlib only): unpacks the carried wheels the interpreter lacks into a
  folder on ``sys.path`` (no pip, no network);
* `bundle` (there, numpy only): reads the data file and decodes it;
* `schedule`: the recipes' learning-rate schedules without TensorFlow (the trainer's formula);
* `train_jax` (there): the JAX training script (jitted stateless train step, data and
  augmentation on the accelerator, the recipes' schedules, resumable checkpoints, a
  ``run.json`` that ``keras-preact publish`` accepts);
* `finalize` (here): ``final.weights.h5`` from a run's checkpoint, where the device had no h5py.
"""

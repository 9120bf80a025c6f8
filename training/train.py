"""Checkout alias of `keras-preact train` (the trainer lives in keras_preact/training/train.py).

    python -m training.train --model=resnetv2_20 --dataset=folder:data/cifar10-jpeg --model_dir=runs/r20
"""

from keras_preact.training.train import run_main

if __name__ == "__main__":
    run_main()

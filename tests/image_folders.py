"""Tiny random image trees in the `PATH/{train,test}/<class>/*.png` layout, for tests."""

import os

import numpy as np
from PIL import Image


def make_image_folder(root, *, classes, n_train, n_test, size=32, fmt="png", seed=0):
    """Write n_train / n_test random RGB images per class; return `root` as str."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = os.path.join(root, split, c)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
                    os.path.join(d, f"{i}.{fmt}"))
    return str(root)

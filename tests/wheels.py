"""The wheel of this checkout, for the tests that install it (test_package, test_extras)."""

import shutil
import subprocess
import sys
from test_zoo_support import REPO


def build_wheel(root):
    """Build keras-preact's wheel under `root` (a fresh folder) and return its path.

    Built from a copy of what the sdist holds: setuptools' build/ folder in the checkout could
    carry modules that no longer exist into the wheel.
    """
    source = root / "source"
    shutil.copytree(REPO / "keras_preact", source / "keras_preact",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                             "-w", str(root / "dist"), str(source)], cwd=root, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"pip wheel\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return next((root / "dist").glob("keras_preact-*.whl"))

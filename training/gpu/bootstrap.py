"""Make carried wheels importable on a machine without network or pip (standard library only).

    python training/gpu/bootstrap.py --wheels gpu_bundle/wheels --target /tmp/kp_site

`ensure(wheels_dir, target)` looks at every wheel in `wheels_dir`, keeps those whose tag fits
this interpreter (``py3-none-any``, or ``cpXY-cpXY-manylinux*_x86_64`` for this CPython), and
unpacks into `target` the ones whose top-level modules this interpreter cannot import yet --
except the packages named in `PINNED`, which are always used from the wheels when the
interpreter's own copy has another version (Keras: the run's weights must be written by
the same Keras that reads them back with TensorFlow). `target` is then put first on
``sys.path``. A wheel is a zip file: unpacking it is what ``pip install --target`` does for
these packages (their ``*.data/purelib`` and ``platlib`` folders are merged in too); no
console scripts are made.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import sys
import zipfile
from typing import Dict, List, Optional

# distribution name -> required version prefix: replaced when the interpreter has another.
PINNED = {"keras": "3.15."}
# distribution name -> the module it installs, where the two differ.
MODULES = {"absl_py": "absl", "markdown_it_py": "markdown_it", "pillow": "PIL",
           "typing_extensions": "typing_extensions", "ml_dtypes": "ml_dtypes",
           "pygments": "pygments"}

_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>.+)\.whl$")


def parse_wheel(filename: str) -> Optional[dict]:
    """{name, version, py, abi, plat} of a wheel file name (name normalized: lower case, '_')."""
    m = _WHEEL.match(os.path.basename(filename))
    if not m:
        return None
    d = m.groupdict()
    d["name"] = re.sub(r"[-_.]+", "_", d["name"]).lower()
    return d


def fits_interpreter(tags: dict, version=None, machine: Optional[str] = None) -> bool:
    """Whether a wheel with these tags installs on this CPython (`version`: (major, minor))."""
    major, minor = version or sys.version_info[:2]
    machine = machine or os.uname().machine
    pys = tags["py"].split(".")
    if tags["abi"] == "none" and tags["plat"] == "any":
        return any(p in ("py3", f"py{major}{minor}", f"cp{major}{minor}") for p in pys)
    cp = f"cp{major}{minor}"
    if cp not in pys:
        return False
    if tags["abi"] not in (cp, "abi3", "none"):
        return False
    return any(p.startswith(("manylinux", "linux")) and p.endswith(machine) for p in tags["plat"].split("."))


def module_name(dist: str) -> str:
    return MODULES.get(dist, dist)


def _installed_version(dist: str) -> Optional[str]:
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:  # noqa: BLE001 - not installed, or no metadata
        return None


def _needed(dist: str, version: str) -> bool:
    """Whether the wheel of `dist` must be unpacked (missing here, or a pinned package's other version)."""
    if importlib.util.find_spec(module_name(dist)) is None:
        return True
    if dist in PINNED:
        have = _installed_version(dist)
        return not (have or "").startswith(PINNED[dist])
    return False


def _unpacked_in(target: str) -> set:
    """{(normalized name, version)} of the distributions unpacked into `target` before."""
    out = set()
    for entry in os.listdir(target):
        if entry.endswith(".dist-info") and "-" in entry:
            name, version = entry[: -len(".dist-info")].rsplit("-", 1)
            out.add((re.sub(r"[-_.]+", "_", name).lower(), version))
    return out


def _unpack(wheel: str, target: str) -> None:
    with zipfile.ZipFile(wheel) as z:
        z.extractall(target)
    # Files a wheel keeps under NAME.data/{purelib,platlib} belong in site-packages itself.
    for entry in os.listdir(target):
        if entry.endswith(".data") and os.path.isdir(os.path.join(target, entry)):
            for sub in ("purelib", "platlib"):
                src = os.path.join(target, entry, sub)
                if os.path.isdir(src):
                    for item in os.listdir(src):
                        shutil.move(os.path.join(src, item), os.path.join(target, item))
            shutil.rmtree(os.path.join(target, entry), ignore_errors=True)


def ensure(wheels_dir: str, target: str, *, add_to_path: bool = True) -> Dict[str, List[str]]:
    """Unpack the wheels this interpreter needs from `wheels_dir` into `target`; put it on sys.path.

    Returns {"unpacked": [...], "present": [...], "unusable": [...]} (wheel file names; "present":
    the interpreter already had the package; "unusable": no wheel fits this interpreter).
    Idempotent: a `target` already holding a wheel's files (its ``.dist-info``) is reused.
    """
    report: Dict[str, List[str]] = {"unpacked": [], "present": [], "unusable": []}
    if not wheels_dir or not os.path.isdir(wheels_dir):
        return report
    by_dist: Dict[str, List[str]] = {}
    for f in sorted(os.listdir(wheels_dir)):
        tags = parse_wheel(f)
        if tags:
            by_dist.setdefault(tags["name"], []).append(f)
    os.makedirs(target, exist_ok=True)
    if add_to_path and target not in sys.path:
        sys.path.insert(0, target)  # before deciding: a reused target counts as installed
    importlib.invalidate_caches()
    for dist, files in sorted(by_dist.items()):
        fitting = [f for f in files if fits_interpreter(parse_wheel(f))]
        if not fitting:
            report["unusable"].extend(files)
            continue
        wheel = fitting[-1]
        tags = parse_wheel(wheel)
        if (dist, tags["version"]) in _unpacked_in(target) or not _needed(dist, tags["version"]):
            report["present"].append(wheel)
            continue
        _unpack(os.path.join(wheels_dir, wheel), target)
        report["unpacked"].append(wheel)
    importlib.invalidate_caches()
    if add_to_path:
        # A pinned package the interpreter has in another version may be imported already.
        for dist in PINNED:
            mod = module_name(dist)
            if mod in sys.modules and any(w.startswith(dist) for w in report["unpacked"]):
                raise RuntimeError(f"{mod} was imported before the carried wheel was unpacked; "
                                   "call bootstrap.ensure before importing it")
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wheels", required=True)
    p.add_argument("--target", required=True)
    a = p.parse_args(argv)
    print(json.dumps(ensure(a.wheels, a.target, add_to_path=False)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

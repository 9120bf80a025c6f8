"""The package's layout: imports only run downhill, and public paths stay where users find them."""

import ast
import importlib
import json
from pathlib import Path

import keras
import pytest

import keras_preact
from keras_preact.models import densenet_memory
from keras_preact.models import layers as model_layers
from keras_preact.store import PACKAGED_ZOO

PACKAGE = Path(keras_preact.__file__).resolve().parent
# The layers of the package, bottom to top. A module may import modules of its own layer and of
# the layers before it, never of one after it, not even inside a function. "pkg.*" is a package
# and every module in it; a plain name is that module alone, and wins over a "pkg.*" entry.
# `keras_preact` (the public names) and `keras_preact.zoo` (the zoo's names, the store's) are
# namespaces of the networks, so every layer above may use them; the zoo's modules are the zoo.
LAYERS = (
    ("store", ("keras_preact.store", "keras_preact._startup")),
    ("networks", ("keras_preact", "keras_preact.models.*", "keras_preact.layers", "keras_preact.zoo")),
    ("data", ("keras_preact.data",)),
    ("training", ("keras_preact.training.*",)),
    ("export", ("keras_preact.formats", "keras_preact.quantization", "keras_preact.serving",
                "keras_preact.export", "keras_preact.runtimes")),
    ("zoo", ("keras_preact.zoo.*",)),
    ("cli", ("keras_preact.cli",)),
)


def _modules():
    """{module name: its file} of every module in the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def layer_of(module):
    """(index, name) of `module`'s layer, or None when LAYERS does not place it."""
    exact = {name: i for i, (_, names) in enumerate(LAYERS) for name in names if not name.endswith(".*")}
    if module in exact:
        return exact[module], LAYERS[exact[module]][0]
    packages = [(name[:-2], i) for i, (_, names) in enumerate(LAYERS) for name in names if name.endswith(".*")]
    matches = [(len(package), i) for package, i in packages
               if module == package or module.startswith(package + ".")]
    if not matches:
        return None
    i = max(matches)[1]
    return i, LAYERS[i][0]


def _imported(module, path):
    """(line, keras_preact module) of every import of keras_preact in `path`, wherever it stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, `level` steps up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                # `from keras_preact import zoo` imports the module keras_preact.zoo.
                yield node.lineno, f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              in ("import_module", "__import__") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def test_every_module_has_a_layer():
    unplaced = sorted(module for module in MODULES if layer_of(module) is None)
    assert not unplaced, f"place these modules in LAYERS (tests/test_layout.py): {unplaced}"
    listed = {name[:-2] if name.endswith(".*") else name for _, names in LAYERS for name in names}
    assert listed <= set(MODULES), f"LAYERS names modules that do not exist: {sorted(listed - set(MODULES))}"


def test_no_module_imports_a_layer_above_its_own():
    uphill = []
    for module, path in MODULES.items():
        level, name = layer_of(module) or (len(LAYERS), "?")
        for line, imported in _imported(module, path):
            if imported != "keras_preact" and not imported.startswith("keras_preact."):
                continue
            their_level, their_name = layer_of(imported) or (len(LAYERS), "?")
            if their_level > level:
                uphill.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({name}) imports "
                              f"{imported} ({their_name})")
    order = " -> ".join(name for name, _ in LAYERS)
    assert not uphill, f"imports must run downhill ({order}):\n" + "\n".join(uphill)


def test_the_layer_check_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from keras_preact import export\n    import keras_preact.cli\n")
    assert list(_imported("keras_preact.example", source)) == [(2, "keras_preact.export"),
                                                                 (3, "keras_preact.cli")]
    assert layer_of("keras_preact.zoo")[1] == "networks" and layer_of("keras_preact.zoo.publish")[1] == "zoo"
    assert layer_of("keras_preact.models.resnet")[1] == "networks" and layer_of("keras_preact.nowhere") is None


CUSTOM_LAYERS = (
    model_layers.ImageNormalization,
    model_layers.ChannelZeroPad,
    densenet_memory.MemoryEfficientDenseLayer,
    densenet_memory.MemoryEfficientDenseBlock,
    densenet_memory.MemoryEfficientTransition,
)


@pytest.mark.parametrize("layer", CUSTOM_LAYERS, ids=lambda layer: layer.__name__)
def test_custom_layers_keep_the_names_saved_files_record(layer):
    # A .keras file finds a custom layer by this name, not by the module it was defined in, so
    # files saved before the networks moved into keras_preact/models/ load the same.
    assert keras.saving.get_registered_name(layer) == f"keras_preact>{layer.__name__}"
    assert keras.saving.get_registered_object(f"keras_preact>{layer.__name__}") is layer


def test_the_layer_the_zoo_cards_name_is_importable_there():
    cards = sorted(PACKAGED_ZOO.glob("*/model_card.json"))
    assert cards
    for card in cards:
        module, _, name = json.loads(card.read_text())["preprocessing"]["layer"].rpartition(".")
        assert getattr(importlib.import_module(module), name) is model_layers.ImageNormalization
    assert keras_preact.layers.ChannelZeroPad is model_layers.ChannelZeroPad

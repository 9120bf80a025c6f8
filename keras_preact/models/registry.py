"""Every named configuration of keras-preact, as timm's registry does it.

A `ModelSpec` is a generic builder plus the keyword arguments that make it
one network of a paper, plus the published numbers it should reproduce.
The family modules register their tables at import time, and give each
registered network a public builder (`ResNetV2_164`, `DenseNet121`, ...)
made by `named_builder`.

A registry name means one network. `get_model(name, **kwargs)` and the named
builders take only the arguments that keep it (`SAME_NETWORK_KWARGS`:
`classes=100`, `drop_path_rate=0.1`, `weights=...`); an argument that changes
it (`depth=`, `unit=`, `growth_rate=`, ...) raises a ValueError that points
to the generic builder and to `build_variant(name, **overrides)`, which builds
the registered network with architecture overrides (the v2 paper's unit and
shortcut ablations, a depth-52 DenseNet-BC) and keeps the registry name.
"""

import ast
import dataclasses
import difflib
import functools
import inspect
import linecache
import re
import textwrap
from typing import Callable, Mapping, Optional

from keras_preact import store

_REGISTRY = {}
# Registry name -> its public named builder (`named_builder`).
_NAMED_BUILDERS = {}

# How a published parameter count was counted: keras.applications' count
# includes BN moving statistics (`model.count_params()`); torchvision and the
# papers count learnable parameters only (trainable weights).
PARAM_CONVENTIONS = ("keras", "trainable")

# keras.applications' calling convention, in its order: every named builder
# takes these. None of them changes the network's layers: `include_top` and
# `pooling` pick which outputs of the same network the model returns (the
# body's layers and weights stay the registered ones), `weights` picks initial
# values, `input_tensor` / `input_shape` the input wiring and size, `classes`
# and `classifier_activation` the head's width and activation, `name` a label.
KERAS_APPLICATIONS_KWARGS = (
    "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
    "classifier_activation", "include_preprocessing", "name",
)
# Options that leave the network as the paper defines it: training-time
# regularisers (not in the papers) and how the same function is computed.
SAME_NETWORK_OPTIONS = ("dropout_rate", "drop_path_rate", "zero_init_residual", "memory_efficient")
# Builder arguments that keep a registered network the registered network. One
# set, not two: every consumer asks the same question -- does this argument
# build layers other than the registered network's? (the named builders and
# get_model refuse those, the zoo prints no paper number for them) -- and the
# answer is no for keras.applications' arguments as for the options above.
# Every other builder argument (depth, blocks, block, stem, unit, shortcut,
# growth_rate, compression, bottleneck, conv_bias, preprocessing_mode, ...)
# changes the network; `preprocessing_mode` too, because a registered
# keras.applications layout includes the input scaling its weights expect.
SAME_NETWORK_KWARGS = frozenset(KERAS_APPLICATIONS_KWARGS + SAME_NETWORK_OPTIONS)

# Exact counts of every registered network at its default input size:
# name -> (parameters as `model.count_params()` counts them, trainable
# parameters, multiply-adds per image). The output of `python -m
# bench.model_table` (bench/results/model_table.json), kept here because an
# installed package has no bench/; tests/test_param_counts.py rebuilds every
# network and recomputes them, tests/test_signatures.py keeps the JSON equal.
MEASURED = {
    "densenet121": (8_062_504, 7_978_856, 2_834_161_664),
    "densenet161": (28_900_936, 28_681_000, 7_727_907_072),
    "densenet169": (14_307_880, 14_149_480, 3_359_843_328),
    "densenet201": (20_242_984, 20_013_928, 4_291_365_888),
    "densenet264": (33_736_232, 33_337_704, 5_751_653_376),
    "densenet_100_12": (7_096_858, 6_979_642, 1_769_516_448),
    "densenet_100_24": (27_480_346, 27_249_082, 6_889_347_744),
    "densenet_40_12": (1_037_818, 1_019_722, 264_812_928),
    "densenet_bc_100_12": (793_150, 769_162, 287_929_692),
    "densenet_bc_190_40": (25_881_390, 25_624_430, 9_301_945_740),
    "densenet_bc_250_24": (15_582_382, 15_324_406, 5_418_785_724),
    "resnet101": (44_707_176, 44_601_832, 7_570_194_432),
    "resnet101v2": (44_675_560, 44_577_896, 7_194_476_544),
    "resnet152": (60_419_944, 60_268_520, 11_282_415_616),
    "resnet152v2": (60_380_648, 60_236_904, 10_906_697_728),
    "resnet18": (11_699_112, 11_689_512, 1_814_073_344),
    "resnet34": (21_814_696, 21_797_672, 3_663_761_408),
    "resnet50": (25_636_712, 25_583_592, 3_857_973_248),
    "resnet50v2": (25_613_800, 25_568_360, 3_482_255_360),
    "resnet_110": (1_736_058, 1_727_962, 252_887_680),
    "resnet_1202": (19_510_906, 19_421_274, 2_829_238_912),
    "resnet_20": (271_098, 269_722, 40_551_040),
    "resnet_32": (466_426, 464_154, 68_862_592),
    "resnet_44": (661_754, 658_586, 97_174_144),
    "resnet_56": (857_082, 853_018, 125_485_696),
    "resnetv2_1001": (10_476_922, 10_327_706, 1_490_995_712),
    "resnetv2_101": (44_639_144, 44_541_480, 7_801_405_440),
    "resnetv2_110": (1_738_618, 1_730_522, 253_149_824),
    "resnetv2_152": (60_328_872, 60_185_128, 11_513_626_624),
    "resnetv2_164": (1_727_482, 1_703_258, 247_646_720),
    "resnetv2_18": (11_695_528, 11_687_720, 1_814_073_344),
    "resnetv2_20": (273_658, 272_282, 40_813_184),
    "resnetv2_200": (64_834_472, 64_666_152, 15_007_481_856),
    "resnetv2_32": (468_986, 466_714, 69_124_736),
    "resnetv2_34": (21_811_112, 21_795_880, 3_663_761_408),
    "resnetv2_44": (664_314, 661_146, 97_436_288),
    "resnetv2_50": (25_594_792, 25_549_352, 4_089_184_256),
    "resnetv2_56": (859_642, 855_578, 125_747_840),
}


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One named network.

    Attributes:
        name: registry name, lower case (e.g. "resnetv2_164").
        builder: the generic builder (`ResNet`, `ResNetV2`, `DenseNet`).
        kwargs: the builder arguments that define this network.
        family: "resnet", "resnetv2" or "densenet".
        dataset: "cifar" (32x32x3, 10 classes by default) or "imagenet"
            (224x224x3, 1000 classes).
        paper: citation of the paper table the configuration reproduces.
        params: published parameter count, or None.
        params_source: where `params` comes from.
        params_convention: "keras" or "trainable" (see PARAM_CONVENTIONS).
        params_precision: the unit of the published figure's last digit
            (100_000 for "0.8M"; 0 when exact), so a check can allow for
            the paper's rounding.
        error: published test error in % (CIFAR-10 with augmentation, or
            ImageNet top-1 single crop), or None.
        imagenet_weights: the keras.applications model this network is,
            layer for layer (e.g. "ResNet50V2"), whose ImageNet weights
            `weights="imagenet"` loads; None for networks keras.applications
            has no weights of.
    """

    name: str
    builder: Callable
    kwargs: Mapping
    family: str
    dataset: str
    paper: str
    params: Optional[int] = None
    params_source: str = ""
    params_convention: str = "trainable"
    params_precision: int = 0
    error: Optional[float] = None
    imagenet_weights: Optional[str] = None

    @property
    def input_shape(self):
        return (32, 32, 3) if self.dataset == "cifar" else (224, 224, 3)

    @property
    def classes(self):
        return 10 if self.dataset == "cifar" else 1000

    @property
    def layout(self):
        """"keras.applications" for keras.applications' networks layer for layer, else "paper"."""
        return "keras.applications" if self.imagenet_weights else "paper"


def register(spec):
    """Add `spec` to the registry; names must be unique."""
    if spec.name in _REGISTRY:
        raise ValueError(f"Model {spec.name!r} is registered twice.")
    if spec.params_convention not in PARAM_CONVENTIONS:
        raise ValueError(f"Unknown params_convention {spec.params_convention!r}.")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(family=None):
    """Sorted registry names, optionally of one family ("resnet", "resnetv2", "densenet")."""
    return sorted(n for n, s in _REGISTRY.items() if family in (None, s.family))


def get_model_spec(name):
    """The ModelSpec registered as `name` (case-insensitive)."""
    key = str(name).lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"Unknown model {name!r}.{hint} Valid names: {', '.join(list_models())}."
        )
    return _REGISTRY[key]


def imagenet_weight_sources():
    """{registry name: keras.applications model name} of every network whose
    ImageNet weights `weights="imagenet"` loads from keras.applications."""
    return {name: spec.imagenet_weights for name, spec in sorted(_REGISTRY.items())
            if spec.imagenet_weights}


@functools.lru_cache(maxsize=None)
def network_changing_kwargs(builder):
    """The arguments of generic `builder` that change a registered network, in its order."""
    return tuple(p for p in inspect.signature(builder).parameters if p not in SAME_NETWORK_KWARGS)


def _build(spec, arguments):
    arguments = dict(spec.kwargs, **arguments)
    # A registered network, variant or not, keeps its registry name.
    arguments["name"] = arguments.get("name") or spec.name
    return spec.builder(**arguments)


def registered_architecture(spec):
    """{argument: value} of every network-changing argument of registered network `spec`:
    its registered value, or the generic builder's default."""
    parameters = inspect.signature(spec.builder).parameters
    return {k: spec.kwargs.get(k, parameters[k].default)
            for k in network_changing_kwargs(spec.builder)}


def _restates(value, registered):
    try:
        return bool(value == registered)
    except Exception:  # an array, say: not the registered value
        return False


def check_same_network(spec, kwargs, caller):
    """`kwargs`, checked to keep registered network `spec`.

    An argument that changes the network (`depth=20` for resnetv2_164) raises a
    ValueError naming it and what to call instead; one that restates the
    registered value (`depth=164`) changes nothing and is dropped. Arguments
    the generic builder does not take at all are left to it (a TypeError, as
    for any function).

    Args:
        spec: ModelSpec. The registered network.
        kwargs: dict. The caller's keyword arguments.
        caller: str. How the error names the call, e.g. "ResNetV2_164()".

    Returns:
        The dict of the other arguments.
    """
    registered = registered_architecture(spec)
    changes = {k: v for k, v in kwargs.items()
               if k in registered and not _restates(v, registered[k])}
    if changes:
        given = ", ".join(f"{k}={v!r}" for k, v in changes.items())
        generic = ", ".join(f"{k}={v!r}" for k, v in dict(spec.kwargs, **changes).items())
        raise ValueError(
            f"{caller} builds the registered network {spec.name}; {given} "
            f"change{'s' if len(changes) == 1 else ''} it. Use "
            f"keras_preact.{spec.builder.__name__}({generic}, ...) for another network, or "
            f"keras_preact.build_variant({spec.name!r}, {given}, ...) for {spec.name} with "
            "architecture overrides. The named builders and get_model take only arguments "
            f"that keep the network: {', '.join(sorted(SAME_NETWORK_KWARGS))}."
        )
    return {k: v for k, v in kwargs.items() if k not in registered}


def get_model(name, /, **kwargs):
    """Build registered model `name`, as registered.

    `kwargs` are the arguments that keep the network (`SAME_NETWORK_KWARGS`:
    keras.applications' `include_top`, `weights`, `input_tensor`,
    `input_shape`, `pooling`, `classes`, `classifier_activation`,
    `include_preprocessing`, `name`, and the family's `dropout_rate`,
    `drop_path_rate`, `zero_init_residual`, `memory_efficient`). An argument
    that changes the network (`depth=`, `unit=`, `growth_rate=`, ...; see
    `check_same_network`) raises a ValueError: use the generic builder
    (`keras_preact.ResNetV2(...)`) or `build_variant(name, **overrides)`.
    `name` is positional only, so `kwargs` may hold the model's `name=`.

    Example:
        >>> model = keras_preact.get_model("resnetv2_164", classes=100)
    """
    spec = get_model_spec(name)
    return _build(spec, check_same_network(spec, kwargs, f"get_model({spec.name!r})"))


def build_variant(name, /, **overrides):
    """Registered network `name` with any builder argument overridden, architecture included.

    The escape hatch from `get_model`'s rule: `overrides` may change the
    network (`depth=8`, `unit="original"`, `shortcut="conv1x1"`,
    `growth_rate=24`, ...), as the v2 paper's ablations and a run's recorded
    `model_kwargs` do. The model keeps the registry name (unless `name=` is
    given), so a training run, its checkpoint and its zoo card still say which
    registered network it started from; the paper's numbers do not apply to
    it.

    Example:
        >>> model = keras_preact.build_variant("resnetv2_20", unit="original",
        ...                                    shortcut="conv1x1")
    """
    return _build(get_model_spec(name), overrides)


def load_zoo_model(name, /):
    """Zoo model `name`: its card's architecture, built as the card says, with its weights.

    The card's `model_kwargs` may change the registered network (the grid's depth-52
    DenseNet-BC), so it is built with `build_variant`; the weight file is verified against
    the card's sha256 (`keras_preact.store`).

    Example:
        >>> model = keras_preact.zoo.load_model("resnetv2_20_cifar10")
    """
    card = store.get_card(name)
    return build_variant(card["architecture"], weights=name, **card["model_kwargs"])


# --- Named builders ------------------------------------------------------------


def _args_section(builder):
    """{argument: its Args entry as one line} from a Google-style docstring."""
    entries, current = {}, None
    lines = inspect.getdoc(builder).split("Args:\n", 1)[1].splitlines()
    for line in lines:
        start = re.match(r"^    (\w+): (.*)", line)
        if start:
            current = start.group(1)
            entries[current] = start.group(2)
        elif line.startswith("        ") and current:
            entries[current] += " " + line.strip()
        elif line.strip():
            break
    return entries


def _facts(spec):
    """The docstring paragraph of numbers: paper, depth, parameters, multiply-adds, error."""
    height, width, channels = spec.input_shape
    counts = ""
    if spec.name in MEASURED:
        params, trainable, macs = MEASURED[spec.name]
        counts = (f"{params:,} parameters ({trainable:,} trainable{{published}}); {macs:,} "
                  f"multiply-adds ({macs / 1e9:.2f}G) per {height}x{width}x{channels} image. ")
    published = ""
    if spec.params:
        counted = "with BN statistics" if spec.params_convention == "keras" else "learnable"
        published = f"; published: {spec.params:,} ({spec.params_source}, {counted})"
    task = "CIFAR-10 test error with augmentation" if spec.dataset == "cifar" else (
        "ImageNet top-1 error, single crop")
    error = f"{spec.error}% {task}" if spec.error is not None else f"none published ({task})"
    return (
        f"Reproduces {spec.paper}. Depth {spec.kwargs['depth']} (weighted layers as the paper "
        f"counts them); {counts.format(published=published)}Paper error: {error}."
    )


def _docstring(spec, summary, notes, parameters):
    args = _args_section(spec.builder)
    # The generic builder documents per-stem defaults; this network has one stem.
    specific = {
        "classes": f"Defaults to {spec.classes}.",
        "input_shape": f"Defaults to None: {spec.input_shape}.",
        "name": f'Defaults to None: "{spec.name}".',
    }
    for key, default in specific.items():
        args[key] = re.sub(r"Defaults to None:.*", default, args[key])
    weights = (f'weights="imagenet" loads keras.applications.{spec.imagenet_weights}\'s '
               "ImageNet weights. ") if spec.imagenet_weights else ""
    changing = network_changing_kwargs(spec.builder)
    refusal = (
        f"{weights}Every argument keeps the registered network `{spec.name}`; one that would "
        f"change it ({', '.join(changing)}) raises a ValueError. Build other networks with "
        f"`keras_preact.{spec.builder.__name__}(...)`, or this one with architecture overrides "
        f'with `keras_preact.build_variant("{spec.name}", ...)`.'
    )
    paragraphs = [summary, _facts(spec), *([notes] if notes else []), refusal]
    text = "\n\n".join(textwrap.fill(p, 76, break_on_hyphens=False) for p in paragraphs)
    entries = "\n".join(
        textwrap.fill(f"{p}: {args[p]}", 76, initial_indent="    ", subsequent_indent="        ",
                      break_on_hyphens=False)
        for p in parameters
    )
    return f"{text}\n\nArgs:\n{entries}\n\nReturns:\n    A `keras.Model`.\n"


def _build_named(name, arguments):
    return _build(_REGISTRY[name], arguments)


def named_builder(function_name, summary, notes=""):
    """The public builder `function_name` of the registered network `function_name.lower()`.

    A real function with keyword-only arguments and defaults, generated once
    from the registry, so `inspect.signature`, `help()` and notebooks show
    them: keras.applications' arguments and the family's options that keep the
    network (the generic builder's arguments in SAME_NETWORK_KWARGS, with its
    defaults; `classes` defaults to the network's 10 or 1000). As
    `dataclasses` writes `__init__`, its source is generated and compiled (and
    put in `linecache`, so `inspect.getsource` shows it). A thin wrapper
    (`functools.wraps`: `__wrapped__` is the generated function) turns an
    argument that changes the network into a ValueError naming it, where the
    generated function alone would raise Python's "unexpected keyword
    argument" TypeError, and drops one that restates the registered value
    (`check_same_network`); any other unknown argument still gets that
    TypeError.

    Args:
        function_name: str. E.g. "ResNetV2_164"; lower-cased, the registry name.
        summary: str. The docstring's first paragraph.
        notes: str. An optional paragraph after the numbers.

    Returns:
        The builder function.
    """
    spec = get_model_spec(function_name)
    generic = inspect.signature(spec.builder).parameters
    order = [k for k in KERAS_APPLICATIONS_KWARGS if k != "name"] + list(SAME_NETWORK_OPTIONS)
    names = [k for k in order if k in generic] + ["name"]
    defaults = {k: generic[k].default for k in names}
    defaults["classes"] = spec.classes
    # Written into the source below: they must read back as themselves.
    assert all(ast.literal_eval(repr(v)) == v for v in defaults.values()), defaults
    source = "".join(
        [f"def {function_name}(\n    *,\n"]
        + [f"    {k}={defaults[k]!r},\n" for k in names]
        + [f"):\n    return _build_named({spec.name!r}, locals())\n"]
    )
    filename = f"<keras_preact named builder {function_name}>"
    namespace = {"_build_named": _build_named}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - source built above
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    generated = namespace[function_name]
    generated.__module__ = spec.builder.__module__
    generated.__doc__ = _docstring(spec, summary, notes, names)

    @functools.wraps(generated)
    def builder(*args, **kwargs):
        return generated(*args, **check_same_network(spec, kwargs, f"{function_name}()"))

    builder.registry_name = spec.name
    _NAMED_BUILDERS[spec.name] = builder
    return builder


# --- The table of names -----------------------------------------------------------

# describe_models()'s keys, in table order.
MODEL_TABLE_COLUMNS = (
    "name", "builder", "family", "dataset", "input_size", "layout", "depth", "params",
    "multiply_adds", "paper_params", "paper_error", "paper",
)


def describe_models(family=None):
    """One row per registry name, to tell the names apart: a list of dicts.

    Keys (MODEL_TABLE_COLUMNS): name (registry name), builder (its named
    builder, e.g. "ResNetV2_164"), family, dataset ("cifar" or "imagenet"),
    input_size ("32x32"), layout ("paper", or "keras.applications" for the
    networks that are keras.applications' layer for layer and load
    `weights="imagenet"`: resnet50/101/152, resnet50v2/101v2/152v2,
    densenet121/169/201), depth (as the paper counts it), params (exact, with
    BN statistics, as `model.count_params()`), multiply_adds (per image at the
    input size), paper_params and paper_error (published; None if none),
    paper (citation). Nothing is built: the counts are `MEASURED`'s.

    Args:
        family: str. Only this family ("resnet", "resnetv2", "densenet").
            Defaults to None (all).
    """
    rows = []
    for name in list_models(family):
        spec = _REGISTRY[name]
        params, _, multiply_adds = MEASURED.get(name, (None, None, None))
        builder = _NAMED_BUILDERS.get(name)
        height, width, _ = spec.input_shape
        rows.append({
            "name": name,
            "builder": builder.__name__ if builder else None,
            "family": spec.family,
            "dataset": spec.dataset,
            "input_size": f"{height}x{width}",
            "layout": spec.layout,
            "depth": spec.kwargs.get("depth"),
            "params": params,
            "multiply_adds": multiply_adds,
            "paper_params": spec.params,
            "paper_error": spec.error,
            "paper": spec.paper,
        })
    return rows

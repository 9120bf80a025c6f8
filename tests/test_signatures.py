"""The named builders' signatures and docstrings, the rule that a registry name means one
network (get_model and the named builders refuse arguments that change it; build_variant
is the escape hatch), and the table that tells the names apart.

Fast: signatures and refusals build nothing; the escape hatch builds tiny CIFAR nets.
"""

import ast
import inspect
import pydoc
import re

import pytest

import keras_preact
from keras_preact.models import registry
from keras_preact.models.registry import (
    KERAS_APPLICATIONS_KWARGS,
    MODEL_TABLE_COLUMNS,
    SAME_NETWORK_KWARGS,
    SAME_NETWORK_OPTIONS,
    get_model_spec,
    list_models,
    network_changing_kwargs,
)

NAMED = {n: getattr(keras_preact, n) for n in dir(keras_preact)
         if hasattr(getattr(keras_preact, n), "registry_name")}
GENERIC = {"resnet": keras_preact.ResNet, "resnetv2": keras_preact.ResNetV2,
           "densenet": keras_preact.DenseNet}
GENERIC_NAMES = [builder.__name__ for builder in GENERIC.values()]


def test_one_named_builder_per_registry_name():
    assert sorted(f.registry_name for f in NAMED.values()) == list_models()
    assert len(NAMED) == 38
    assert all(name.lower() == f.registry_name for name, f in NAMED.items())


# --- signatures -------------------------------------------------------------------


# One test per property, each over every builder: nothing is built, so 38 parametrized cases
# would spend their time in the per-test session clearing of conftest.py.
def _each(names):
    for name in names:
        yield name, getattr(keras_preact, name)


def test_signature_is_keyword_only_with_defaults():
    for _, builder in _each(sorted(NAMED)):
        _check_signature(builder)


def _check_signature(builder):
    spec = get_model_spec(builder.registry_name)
    params = inspect.signature(builder).parameters
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), builder
    assert all(p.default is not inspect.Parameter.empty for p in params.values()), builder
    generic = inspect.signature(spec.builder).parameters
    options = [k for k in SAME_NETWORK_OPTIONS if k in generic]
    # keras.applications' arguments, the family's options that keep the network, nothing else.
    assert set(params) == set(KERAS_APPLICATIONS_KWARGS) | set(options), builder
    assert not set(params) & set(network_changing_kwargs(spec.builder)), builder
    assert params["classes"].default == spec.classes == (10 if spec.dataset == "cifar" else 1000)
    for key, param in params.items():
        if key != "classes":
            assert param.default == generic[key].default, (builder, key)


def test_builder_is_a_real_function_without_a_catch_all():
    """What `help()`, IPython and `inspect` read: a compiled function, not a `__signature__`."""
    for builder_name, builder in _each(sorted(NAMED)):
        _check_real_function(builder_name, builder)


def _check_real_function(builder_name, builder):
    function = inspect.unwrap(builder)
    assert inspect.isfunction(function) and not hasattr(function, "__signature__")
    assert function.__name__ == builder.__name__ == builder_name
    assert function.__module__ == builder.__module__ == get_model_spec(builder_name).builder.__module__
    code = function.__code__
    assert code.co_argcount == 0 and code.co_kwonlyargcount == len(inspect.signature(builder).parameters)
    assert not code.co_flags & (inspect.CO_VARARGS | inspect.CO_VARKEYWORDS)
    assert set(function.__kwdefaults__) == set(inspect.signature(builder).parameters)
    text = pydoc.render_doc(builder, renderer=pydoc.plaintext)
    assert f"{builder_name}(*, include_top=True, weights=None, input_tensor=None" in text
    assert "**" not in text.split("\n")[2]
    assert f'_build_named({builder.registry_name!r}, locals())' in inspect.getsource(builder)


def test_documented_defaults_match_the_signature():
    """Google style: every argument `name: type. ... Defaults to X.`, X the real default."""
    for builder_name, builder in _each(sorted(GENERIC_NAMES) + sorted(NAMED)):
        _check_documented_defaults(builder_name, builder)


def _check_documented_defaults(builder_name, builder):
    doc = inspect.getdoc(builder)
    for param in inspect.signature(builder).parameters.values():
        entry = re.search(rf"^    {param.name}: (\w.*?)(?=^    \w+: |^Returns:)", doc, re.M | re.S)
        assert entry, f"{builder_name}: `{param.name}` is not documented"
        default = re.search(r"Defaults\s+to\s+(\S+?)[.:]?(?:\s|$)", entry.group(1))
        assert default, f"{builder_name}.{param.name}: no 'Defaults to'"
        assert ast.literal_eval(default.group(1)) == param.default, (
            f"{builder_name}.{param.name}: documented {default.group(1)}, signature {param.default!r}")
    assert doc.rstrip().endswith("Returns:\n    A `keras.Model`.")


def test_docstring_names_the_paper_depth_params_and_multiply_adds():
    for _, builder in _each(sorted(NAMED)):
        _check_numbers_in_docstring(builder)


def _check_numbers_in_docstring(builder):
    # The counts (parameters, trainable, multiply-adds) are checked against the built network
    # in tests/test_param_counts.py, not against MEASURED, which the docstring is made from.
    spec = get_model_spec(builder.registry_name)
    doc = " ".join(inspect.getdoc(builder).split())  # unwrapped
    assert f"Reproduces {spec.paper}." in doc
    assert f"Depth {spec.kwargs['depth']} " in doc
    assert " parameters (" in doc and " multiply-adds (" in doc
    if spec.params:
        assert f"published: {spec.params:,}" in doc
    if spec.error is not None:
        assert f"Paper error: {spec.error}%" in doc
    assert f'keras_preact.build_variant("{spec.name}", ...)' in doc
    assert f"keras_preact.{spec.builder.__name__}(...)" in doc


def test_paper_and_keras_layouts_say_what_differs():
    for depth in (50, 101, 152):
        paper = " ".join(inspect.getdoc(getattr(keras_preact, f"ResNetV2_{depth}")).split())
        keras_layout = " ".join(inspect.getdoc(getattr(keras_preact, f"ResNet{depth}V2")).split())
        assert f"Not `resnet{depth}v2`" in paper and f"Not `resnetv2_{depth}`" in keras_layout
        for doc in (paper, keras_layout):
            for fact in ("first unit", "last unit", "1x1 max-pool", "bias", '"torch" mode',
                         '"tf" mode'):
                assert fact in doc, (depth, fact)
        assert f"loads keras.applications.ResNet{depth}V2's ImageNet weights" in keras_layout
        assert "ImageNet weights do not fit it" in paper


# --- a registry name means one network ---------------------------------------------------

# Per family: a registered CIFAR net, and for every argument of the generic builder that
# changes the network, overrides that build a small variant with it (the first key is the
# argument a named builder and get_model refuse).
RESIDUAL_STAGES = {
    "depth": {"depth": 8},
    "blocks": {"blocks": (1, 1, 1), "depth": 8},
    "block": {"block": "bottleneck", "depth": 11},
    "stem": {"stem": "imagenet", "depth": None, "blocks": (1, 1, 1, 1), "input_shape": (32, 32, 3)},
}
VARIANTS = {
    "resnet": ("resnet_20", {
        **RESIDUAL_STAGES,
        "shortcut_type": {"shortcut_type": "B", "depth": 8},
        "conv_bias": {"conv_bias": True, "depth": 8},
        "preprocessing_mode": {"preprocessing_mode": "tf", "depth": 8},
    }),
    "resnetv2": ("resnetv2_20", {
        **RESIDUAL_STAGES,
        "unit": {"unit": "original", "depth": 8},
        "shortcut": {"shortcut": "conv1x1", "depth": 8},
        "shortcut_scale": {"shortcut_scale": 0.3, "shortcut": "constant_scaling", "depth": 8},
        "residual_scale": {"residual_scale": 0.7, "shortcut": "constant_scaling", "depth": 8},
        "gate_bias_init": {"gate_bias_init": -2.0, "shortcut": "exclusive_gating", "depth": 8},
        "shortcut_dropout_rate": {"shortcut_dropout_rate": 0.3, "shortcut": "dropout", "depth": 8},
        "stride_in_last_unit": {"stride_in_last_unit": True, "depth": 8},
        "conv_bias": {"conv_bias": "all", "depth": 8},
        "preprocessing_mode": {"preprocessing_mode": "caffe", "depth": 8},
    }),
    "densenet": ("densenet_40_12", {
        "depth": {"depth": 7},
        "blocks": {"blocks": (1, 1, 1)},
        "growth_rate": {"growth_rate": 4, "depth": 7},
        "bottleneck": {"bottleneck": True, "depth": 10},
        "compression": {"compression": 0.5, "depth": 7},
        "stem": {"stem": "imagenet", "blocks": (1, 1, 1, 1), "input_shape": (32, 32, 3)},
        "init_features": {"init_features": 8, "depth": 7},
        "preprocessing_mode": {"preprocessing_mode": "tf", "depth": 7},
    }),
}
CASES = [(family, arg) for family, (_, table) in VARIANTS.items() for arg in table]


@pytest.mark.parametrize("family", sorted(VARIANTS))
def test_every_network_changing_argument_is_covered(family):
    """Each generic builder argument either keeps the network or is refused (and tested here)."""
    generic = inspect.signature(GENERIC[family]).parameters
    assert set(VARIANTS[family][1]) == set(network_changing_kwargs(GENERIC[family]))
    assert set(generic) - set(VARIANTS[family][1]) <= SAME_NETWORK_KWARGS


def test_same_network_kwargs_are_keras_applications_and_the_options():
    assert SAME_NETWORK_KWARGS == {
        "include_top", "weights", "input_tensor", "input_shape", "pooling", "classes",
        "classifier_activation", "include_preprocessing", "name",
        "dropout_rate", "drop_path_rate", "zero_init_residual", "memory_efficient"}


def test_named_builder_and_get_model_refuse_network_changes():
    for family, arg in CASES:  # nothing is built: one test, not a slow parametrization
        _check_refusal(family, arg)


def _check_refusal(family, arg):
    name, table = VARIANTS[family]
    builder = NAMED[next(n for n, f in NAMED.items() if f.registry_name == name)]
    generic = GENERIC[family].__name__
    value = table[arg][arg]
    with pytest.raises(ValueError) as refused:
        builder(**{arg: value})
    message = str(refused.value)
    assert message.startswith(
        f"{builder.__name__}() builds the registered network {name}; {arg}={value!r} changes it. ")
    assert f"keras_preact.{generic}(" in message and f"{arg}={value!r}" in message
    assert f"keras_preact.build_variant({name!r}, {arg}={value!r}, ...)" in message
    with pytest.raises(ValueError, match=re.escape(
            f"get_model({name!r}) builds the registered network {name}; {arg}={value!r} changes it")):
        keras_preact.get_model(name, **{arg: value})


@pytest.mark.parametrize("family, arg", CASES)
def test_build_variant_builds_the_changed_network(family, arg):
    name, table = VARIANTS[family]
    model = keras_preact.build_variant(name, classifier_activation=None, classes=10, **table[arg])
    assert model.name == name  # a variant keeps the registry name
    assert model.output_shape == (None, 10)


def test_refusal_names_every_changing_argument_and_suggests_the_generic_call():
    with pytest.raises(ValueError, match=re.escape(
            "ResNetV2_164() builds the registered network resnetv2_164; depth=20, unit='original' "
            "change it. Use keras_preact.ResNetV2(depth=20, block='bottleneck', unit='original', "
            "...) for another network, or keras_preact.build_variant('resnetv2_164', depth=20, "
            "unit='original', ...)")):
        keras_preact.ResNetV2_164(depth=20, unit="original")
    with pytest.raises(ValueError, match=r"DenseNet_BC_100_12\(\).*growth_rate=24 changes it"):
        keras_preact.DenseNet_BC_100_12(growth_rate=24)
    # Only what changes it: growth_rate=12 is densenet_bc_100_12's own (as recorded by the
    # identity-mappings grid's {"depth": 52, "growth_rate": 12}).
    with pytest.raises(ValueError, match=r"; depth=52 changes it\. Use keras_preact\.DenseNet\(depth=52, "
                                         r"growth_rate=12, bottleneck=True, compression=0\.5, \.\.\.\)"):
        keras_preact.get_model("densenet_bc_100_12", depth=52, growth_rate=12)


def test_restating_the_registered_architecture_changes_nothing():
    """depth=20 on resnet_20, unit="full_preactivation" (the generic default) on resnetv2_20."""
    from keras_preact.models.registry import check_same_network

    spec = get_model_spec("resnetv2_164")
    assert check_same_network(spec, {"depth": 164, "block": "bottleneck", "unit": "full_preactivation",
                                     "classes": 3}, "ResNetV2_164()") == {"classes": 3}
    assert keras_preact.ResNet_20(depth=20, stem="cifar", classes=3).name == "resnet_20"
    assert keras_preact.get_model("resnetv2_20", unit="full_preactivation").name == "resnetv2_20"


def test_unknown_arguments_are_type_errors_as_for_any_function():
    with pytest.raises(TypeError, match=r"ResNet_20\(\) got an unexpected keyword argument 'widths'"):
        keras_preact.ResNet_20(widths=(16, 32, 64))
    # ResNet v1 has no dropout between its convs: not an option of its named builders.
    with pytest.raises(TypeError, match="unexpected keyword argument 'dropout_rate'"):
        keras_preact.ResNet_20(dropout_rate=0.1)
    with pytest.raises(TypeError, match="positional"):
        keras_preact.ResNet_20(20)
    with pytest.raises(TypeError, match="unexpected keyword argument 'widths'"):
        keras_preact.get_model("resnet_20", widths=(16, 32, 64))


def test_same_network_arguments_pass_and_keep_the_name():
    model = keras_preact.get_model("resnet_20", classes=3, drop_path_rate=0.1, include_top=False,
                                   pooling="avg", input_shape=(40, 40, 3), name=None)
    assert model.name == "resnet_20" and model.output_shape == (None, 64)
    assert keras_preact.get_model("resnet_20", name="mine").name == "mine"  # `name` is the model's
    assert keras_preact.ResNetV2_20(classes=None).output_shape == (None, 10)  # None: the default


def test_the_callers_recorded_overrides_build_through_the_escape_hatch():
    """The identity-mappings runs' model_kwargs (training/experiments): ablations on a registry name."""
    model = keras_preact.build_variant("resnetv2_20", unit="original", shortcut="conv1x1", depth=8)
    assert model.name == "resnetv2_20" and keras_preact.paper_depth(model) == 8
    assert any(layer.name == "conv2_block1_0_conv" for layer in model.layers)  # conv1x1 shortcut
    model = keras_preact.build_variant("densenet_bc_100_12", depth=52, growth_rate=12)
    assert model.name == "densenet_bc_100_12" and keras_preact.paper_depth(model) == 52


# --- telling the names apart ---------------------------------------------------------


def test_describe_models_has_one_row_per_name_with_stable_keys():
    rows = keras_preact.describe_models()
    assert [r["name"] for r in rows] == list_models()
    for row in rows:
        assert tuple(row) == MODEL_TABLE_COLUMNS
        assert all(v is None or isinstance(v, (str, int, float)) for v in row.values()), row
        spec = get_model_spec(row["name"])
        assert row["builder"].lower() == row["name"] and row["family"] == spec.family
        assert row["input_size"] == ("32x32" if spec.dataset == "cifar" else "224x224")
        assert row["paper_error"] == spec.error  # params: against the built net, test_param_counts.py
    keras_layout = {r["name"] for r in rows if r["layout"] == "keras.applications"}
    assert keras_layout == {"resnet50", "resnet101", "resnet152", "resnet50v2", "resnet101v2",
                            "resnet152v2", "densenet121", "densenet169", "densenet201"}
    assert {r["layout"] for r in rows} == {"paper", "keras.applications"}
    assert [r["name"] for r in keras_preact.describe_models("densenet")] == list_models("densenet")


def test_resnetv2_50_and_resnet50v2_rows_differ_in_layout():
    rows = {r["name"]: r for r in registry.describe_models("resnetv2")}
    paper, keras_layout = rows["resnetv2_50"], rows["resnet50v2"]
    assert (paper["layout"], keras_layout["layout"]) == ("paper", "keras.applications")
    assert paper["depth"] == keras_layout["depth"] == 50
    assert paper["multiply_adds"] != keras_layout["multiply_adds"]
    assert (paper["builder"], keras_layout["builder"]) == ("ResNetV2_50", "ResNet50V2")

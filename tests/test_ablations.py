"""The v2 paper's ablations (Figure 2 / Table 1 shortcuts, Figure 4 / Table 2
units): every variant builds, trains a step without NaN, and the gated and
scaled variants have exactly the parameters the paper describes."""

import keras
import numpy as np
import pytest

import keras_preact
from keras_preact.models.residual import SHORTCUTS, UNIT_LAYOUTS

DEPTH = 8  # 6n+2 with n=1: one unit per stage, 16/32/64 filters


def _build(**kwargs):
    return keras_preact.ResNetV2(DEPTH, classes=10, **kwargs)


def _train_one_step(model):
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = rng.randint(0, 10, (8,))
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    loss = history.history["loss"][0]
    assert np.isfinite(loss), loss
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("unit", list(UNIT_LAYOUTS))
@pytest.mark.parametrize("shortcut", list(SHORTCUTS))
def test_every_variant_trains_a_step(unit, shortcut):
    _train_one_step(_build(unit=unit, shortcut=shortcut))


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_bottleneck_variants_build(block):
    depth = 11 if block == "bottleneck" else 8
    for unit in UNIT_LAYOUTS:
        model = keras_preact.ResNetV2(depth, block=block, unit=unit)
        assert model.output.shape == (None, 10)


def _unit_channels():
    """(in, out, stride) of the three units of the depth-8 CIFAR net."""
    return [(16, 16, 1), (16, 32, 2), (32, 64, 2)]


def test_exclusive_gating_adds_one_1x1_gate_conv_per_unit():
    base = keras_preact.count_params(_build())
    gated = _build(shortcut="exclusive_gating")
    # g(x) = sigmoid(W_g x + b_g): a 1x1 conv with bias per unit (paper sec. 3.1).
    expected = sum(cin * cout + cout for cin, cout, _ in _unit_channels())
    assert keras_preact.count_params(gated) - base == expected
    gate = gated.get_layer("conv2_block1_gate_conv")
    np.testing.assert_allclose(gate.bias.numpy(), -6.0)


def test_shortcut_only_gating_has_the_same_gate():
    base = keras_preact.count_params(_build())
    gated = _build(shortcut="shortcut_only_gating", gate_bias_init=0.0)
    expected = sum(cin * cout + cout for cin, cout, _ in _unit_channels())
    assert keras_preact.count_params(gated) - base == expected
    np.testing.assert_allclose(gated.get_layer("conv3_block1_gate_conv").bias.numpy(), 0.0)


@pytest.mark.parametrize("shortcut", ["constant_scaling", "dropout"])
def test_scaling_and_dropout_shortcuts_add_no_parameters(shortcut):
    assert keras_preact.count_params(_build(shortcut=shortcut)) == keras_preact.count_params(_build())


def test_conv1x1_shortcut_projects_every_unit():
    base = _build()
    conv = _build(shortcut="conv1x1")
    # The base net already projects where the shape changes (units 2 and 3);
    # conv1x1 adds the projection of the identity unit 16->16.
    assert keras_preact.count_params(conv) - keras_preact.count_params(base) == 16 * 16
    assert len([l for l in conv.layers if l.name.endswith("_0_conv")]) == 3


def test_constant_scaling_computes_lambda_x_plus_mu_f():
    # With F forced to zero (zero-initialised last conv), the unit is lambda*x.
    model = keras_preact.ResNetV2(
        DEPTH, shortcut="constant_scaling", shortcut_scale=0.5, residual_scale=1.0,
        zero_init_residual=True, include_top=False, include_preprocessing=False,
    )
    unit_in = model.get_layer("conv1_conv").output
    unit_out = model.get_layer("conv2_block1_out").output
    probe = keras.Model(model.input, [unit_in, unit_out])
    x = np.random.RandomState(0).normal(size=(2, 32, 32, 3)).astype("float32")
    before, after = probe(x, training=False)
    np.testing.assert_allclose(after, 0.5 * np.asarray(before), atol=1e-5)


def test_dropout_shortcut_halves_the_shortcut_at_inference():
    model = keras_preact.ResNetV2(
        DEPTH, shortcut="dropout", zero_init_residual=True, include_top=False,
        include_preprocessing=False,
    )
    probe = keras.Model(model.input, [model.get_layer("conv1_conv").output,
                                       model.get_layer("conv2_block1_out").output])
    x = np.random.RandomState(0).normal(size=(2, 32, 32, 3)).astype("float32")
    before, after = probe(x, training=False)
    np.testing.assert_allclose(after, 0.5 * np.asarray(before), atol=1e-5)


def test_exclusive_gate_closed_passes_the_shortcut():
    # b_g = -30: g ~ 0, so (1-g)x + gF ~ x whatever F is.
    model = keras_preact.ResNetV2(DEPTH, shortcut="exclusive_gating", gate_bias_init=-30.0,
                                  include_top=False, include_preprocessing=False)
    probe = keras.Model(model.input, [model.get_layer("conv1_conv").output,
                                       model.get_layer("conv2_block1_out").output])
    x = np.random.RandomState(0).normal(size=(2, 32, 32, 3)).astype("float32")
    before, after = probe(x, training=False)
    np.testing.assert_allclose(after, before, atol=1e-5)


@pytest.mark.parametrize(
    "unit, first_layers",
    [
        ("original", ["conv2_block1_1_conv", "conv2_block1_1_bn", "conv2_block1_1_relu"]),
        ("full_preactivation", ["conv2_block1_preact_bn", "conv2_block1_preact_relu", "conv2_block1_1_conv"]),
        ("relu_only_preactivation", ["conv2_block1_preact_relu", "conv2_block1_1_conv", "conv2_block1_1_bn"]),
    ],
)
def test_unit_layouts_put_bn_and_relu_where_figure_4_does(unit, first_layers):
    names = [l.name for l in _build(unit=unit).layers if l.name.startswith("conv2_block1_")]
    assert names[: len(first_layers)] == first_layers


def test_post_activation_units_end_with_relu_after_addition():
    names = [l.name for l in _build(unit="original").layers]
    assert names.index("conv2_block1_add") < names.index("conv2_block1_out")
    assert "post_bn" not in names  # only pre-activation nets end with BN-ReLU
    names = [l.name for l in _build(unit="bn_after_addition").layers]
    assert names.index("conv2_block1_add") < names.index("conv2_block1_post_bn")
    assert "post_bn" in [l.name for l in _build().layers]

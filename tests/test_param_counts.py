"""Every registered network against the published numbers.

CIFAR models: parameters within 3% of the papers' tables (ResNet v1 Table 6,
ResNet v2 Table 3, DenseNet Table 2). ImageNet models: within 1% of the
published counts (keras.applications counts BN statistics, torchvision only
learnable weights). Depth counted as the papers count it (convs + FC, no
projection shortcuts) equals the number in the name.
"""

import functools
import re

import pytest

import keras_preact
from keras_preact.registry import list_models, get_model_spec

DEEPEST = ("resnet_1202", "resnetv2_1001")  # ~30 s each to build: slow suite
# The deeper ImageNet nets of each family (5-15 s each to build) run in the slow suite; CI builds
# every CIFAR net and the shallowest ImageNet nets of each layout (the same stage code, fewer units).
DEEPER_IMAGENET = ("resnet101", "resnet152", "resnet101v2", "resnet152v2", "resnetv2_101",
                   "resnetv2_152", "resnetv2_200", "densenet161", "densenet169", "densenet201",
                   "densenet264")


def _param(name):
    """A pytest param for `name`, marked slow when it is one of the deeper or deepest nets."""
    slow = name in DEEPEST or name in DEEPER_IMAGENET
    return pytest.param(name, marks=pytest.mark.slow) if slow else name


@functools.lru_cache(maxsize=None)
def _built(name):
    """Each network is built once for this module (the depth, count and FLOPs checks share it)."""
    return keras_preact.get_model(name)


def _depth_in_name(name):
    numbers = [int(n) for n in re.findall(r"\d+", name)]
    # "densenet_bc_100_12" -> 100; "resnet50v2" -> 50; "resnetv2_164" -> 164
    return numbers[-1] if name.startswith("resnetv2_") else numbers[0]


def _check_against_paper(name):
    spec = get_model_spec(name)
    model = _built(name)
    # DenseNet-264's blocks (6, 12, 64, 48) make 265 weighted layers by the
    # paper's own rule; the paper keeps the name 264.
    expected_depth = 265 if name == "densenet264" else _depth_in_name(name)
    assert keras_preact.paper_depth(model) == expected_depth
    if spec.params:
        ours = keras_preact.count_params(
            model, trainable_only=spec.params_convention == "trainable"
        )
        relative = 0.03 if spec.dataset == "cifar" else 0.01
        # A figure printed as "0.8M" only says 0.75M..0.85M: allow half its last digit.
        tolerance = max(relative * spec.params, spec.params_precision / 2)
        assert abs(ours - spec.params) <= tolerance, (
            f"{name}: {ours:,} params vs {spec.params:,} ({spec.params_source})"
        )


@pytest.mark.parametrize("name", [_param(n) for n in list_models()])
def test_depth_and_parameters_match_paper(name):
    _check_against_paper(name)


def test_every_cifar_model_has_a_published_count():
    missing = [n for n in list_models() if get_model_spec(n).dataset == "cifar"
               and not get_model_spec(n).params]
    assert missing == []


@pytest.mark.parametrize(
    "name, gflops",
    [("resnet18", 1.8), ("resnet34", 3.6), ("resnet50", 3.8),
     pytest.param("resnet101", 7.6, marks=pytest.mark.slow),
     pytest.param("resnet152", 11.3, marks=pytest.mark.slow)],
)
def test_imagenet_multiply_adds_match_v1_table_1(name, gflops):
    flops = keras_preact.count_flops(_built(name))
    # Table 1 rounds to 0.1 GFLOPs; the original stride-in-1x1 ResNet-50 is 3.86e9.
    assert abs(flops / 1e9 - gflops) <= 0.1 * gflops, flops

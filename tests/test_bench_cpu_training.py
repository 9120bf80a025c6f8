"""bench/cpu_training.py and bench/profile_step.py (issue 27): the PyTorch references are the
Keras models' networks, the fused SGD update is Keras SGD's, the profile's kernel classification, the report's sections, and (slow) each
command's --quick smoke run.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from test_bench import check_common, run_quick, table_rows

ROOT = Path(__file__).resolve().parents[1]


def _have_torch():
    from importlib.util import find_spec

    return find_spec("torch") is not None


needs_torch = pytest.mark.skipif(not _have_torch(), reason="torch is a bench-only extra (pip install -e .[bench])")


@needs_torch
@pytest.mark.parametrize("name, builder, kwargs", [
    ("resnetv2_20", "torch_preact_resnet", {"depth": 20, "block": "basic"}),
    ("resnetv2_56", "torch_preact_resnet", {"depth": 56, "block": "basic"}),
    ("resnetv2_164", "torch_preact_resnet", {"depth": 164, "block": "bottleneck"}),
    ("densenet_bc_100_12", "torch_densenet_bc", {"depth": 100, "growth_rate": 12}),
])
def test_torch_references_have_the_keras_models_parameters(name, builder, kwargs):
    import keras_preact
    from bench import cpu_training, reference_models

    assert cpu_training.MODELS[name]["torch"] == [builder, kwargs]
    net = getattr(reference_models, builder)(**kwargs)
    keras_model = keras_preact.get_model(name)
    assert sum(p.numel() for p in net.parameters()) == keras_preact.count_params(keras_model, trainable_only=True)
    convs = [m for m in net.modules() if type(m).__name__ == "Conv2d"]
    assert len(convs) == sum(1 for layer in keras_model.layers if type(layer).__name__ == "Conv2D")


@needs_torch
def test_torch_reference_trains_channels_last():
    import torch

    from bench import reference_models

    net = reference_models.torch_preact_resnet(8).to(memory_format=torch.channels_last)
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    out = net(x)
    assert out.shape == (4, 10)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_fused_sgd_update_is_keras_sgd():
    """The fused update the bench measures gives Keras SGD's (Nesterov) momentum update exactly."""
    import keras
    import tensorflow as tf

    from bench import cpu_training

    rng = np.random.RandomState(0)
    start = [rng.standard_normal((3, 3, 4, 8)).astype("float32"), rng.standard_normal((8,)).astype("float32")]
    grads = [[tf.constant(rng.standard_normal(w.shape).astype("float32")) for w in start] for _ in range(3)]
    finals = []
    for fused in (False, True):
        variables = [keras.Variable(w) for w in start]
        opt = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 1, 0.5), momentum=0.9,
                                   nesterov=True)
        opt.build(variables)
        for g in grads:
            if fused:
                cpu_training.fused_sgd_apply(opt, g, variables)
            else:
                opt.apply_gradients(zip(g, variables))
        assert int(opt.iterations.numpy()) == 3
        finals.append([v.numpy() for v in variables])
    for a, b in zip(*finals):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_shared_moments_variant_is_memory_efficient_without_recomputation(monkeypatch):
    """The sweep's `shared_moments` row: memory_efficient=True's layers, each traced once (no
    keras.remat), keras.remat restored after; `memory_efficient` recomputes; ResNets refused."""
    import keras

    from bench import cpu_training
    from keras_preact.models import densenet_memory

    calls = []
    original = densenet_memory.concat_normalize_convolve
    monkeypatch.setattr(densenet_memory, "concat_normalize_convolve",
                        lambda *args: calls.append(1) or original(*args))
    data = cpu_training.Data(4, 32, 10)
    model = {"name": "densenet_40_12", "overrides": {"blocks": (1, 1, 1)}}  # 3 dense layers, 2 transitions
    traced = {}
    for name in ("memory_efficient", "shared_moments"):
        calls.clear()
        runner = cpu_training.TrainerRunner(name, model, data, None)
        runner.run(1)
        traced[name] = len(calls)
        assert any(isinstance(layer, densenet_memory.MemoryEfficientDenseBlock) for layer in runner.model.layers)
    assert keras.remat.__name__ != "<lambda>"  # the bench's stand-in is gone
    # 5 layers: traced once each in the forward pass, again in the backward pass when recomputed.
    assert traced == {"memory_efficient": 10, "shared_moments": 5}
    with pytest.raises(ValueError, match="is for DenseNets"):
        cpu_training.TrainerRunner("shared_moments", {"name": "resnetv2_20", "overrides": {"depth": 8}}, data, None)


def test_profile_classifies_kernels_by_layer_and_op():
    from bench.profile_step import classify_tf, scope_layer

    layers = {"conv2_block1_1_conv": ("conv", "3x3 conv, 16 ch out, 32x32"), "conv2_block1_1_bn": ("bn", None),
              "conv2_block1_out": ("merge", None), "preprocessing": ("preprocessing", None)}
    assert scope_layer("resnetv2_20_1/conv2_block1_1_conv_1/convolution", layers) == "conv2_block1_1_conv"
    cases = {
        ("resnetv2_20_1/conv2_block1_1_conv_1/convolution", "_MklNativeConv2D"): "conv forward",
        ("gradient_tape/resnetv2_20_1/conv2_block1_1_conv_1/convolution/Conv2DBackpropInput",
         "_MklNativeConv2DBackpropInput"): "conv backprop-input",
        ("gradient_tape/resnetv2_20_1/conv2_block1_1_conv_1/convolution/Conv2DBackpropFilter",
         "_MklNativeConv2DBackpropFilter"): "conv backprop-filter",
        ("resnetv2_20_1/conv2_block1_1_bn_1/moments/SquaredDifference", "SquaredDifference"): "batch norm forward",
        ("gradient_tape/resnetv2_20_1/conv2_block1_1_bn_1/batchnorm/mul/Mul", "Mul"): "batch norm backward",
        ("resnetv2_20_1/conv2_block1_1_bn_1/FusedBatchNormV3", "FusedBatchNormV3"): "batch norm forward",
        ("gradient_tape/x/FusedBatchNormGradV3", "FusedBatchNormGradV3"): "batch norm backward",
        ("sgd/Mul_12", "Mul"): "optimizer update (SGD momentum)",
        ("ResourceApplyKerasMomentum_3", "ResourceApplyKerasMomentum"): "optimizer update (SGD momentum)",
        ("gradient_tape/L2Loss_3/mul", "Mul"): "weight decay (L2 penalty)",
        ("AddN_62", "AddN"): "gradient accumulation (AddN)",
        ("resnetv2_20_1/conv2_block1_out_1/Add", "AddV2"): "residual add / concat",
        ("resnetv2_20_1/preprocessing_1/mul", "Mul"): "input normalization (in the model)",
        ("gradient_tape/resnetv2_20_1/conv3_block1_1_pad_1/Slice_1", "Slice"): "casts, copies, pads, layout",
        ("gradient_tape/resnetv2_20_1/post_relu_1/ReluGrad", "ReluGrad"): "relu backward",
    }
    for (name, op_type), category in cases.items():
        assert classify_tf(name, op_type, layers)[0] == category, name
    assert classify_tf("resnetv2_20_1/conv2_block1_1_conv_1/convolution", "_MklNativeConv2D", layers)[1] == \
        "3x3 conv, 16 ch out, 32x32"


def test_profile_classifies_torch_operators():
    from bench.profile_step import classify_torch

    assert classify_torch("aten::mkldnn_convolution") == "conv forward"
    assert classify_torch("aten::convolution_backward") == "conv backward (input + filter)"
    assert classify_torch("aten::native_batch_norm") == "batch norm forward"
    assert classify_torch("aten::native_batch_norm_backward") == "batch norm backward"
    assert classify_torch("aten::threshold_backward") == "relu backward"
    assert classify_torch("aten::_foreach_add_") == "optimizer update (SGD momentum)"


def _fake(root, name, payload):
    results = root / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    base = {"command": f"python -m bench.{name}", "date": "2026-12-01T00:00:00Z", "quick": False,
            "machine": {"cpu": "AMD EPYC", "cores": 2, "avx2": True, "avx512": ["avx512f"], "avx512_bf16": True,
                        "amx": []},
            "loadavg_start": [0.1, 0.2, 0.3], "markdown": f"| {name} | x |\n|---|---|\n| a | 1 |"}
    (results / f"{name}.json").write_text(json.dumps(dict(base, **payload)))


def test_report_renders_the_cpu_training_sections_and_target(tmp_path):
    from bench import report

    _fake(tmp_path, "cpu_training", {"models": [
        {"model": "resnetv2_20", "ours_over_torch": 1.1, "ours_over_torch_range": [1.0, 1.2],
         "best_tensorflow": {"name": "ours", "over_torch": 1.1}},
        {"model": "resnetv2_56", "ours_over_torch": 0.8, "ours_over_torch_range": [0.7, 0.9],
         "best_tensorflow": {"name": "fused_bn", "over_torch": 1.3}},
        {"model": "resnetv2_164", "ours_over_torch": 0.5}]})
    _fake(tmp_path, "profile_step", {})
    doc = "<!-- result: cpu_training -->\n<!-- /result -->\n<!-- result: profile_step -->\n<!-- /result -->\n" \
          "<!-- result: cpu_training_sweep -->\n<!-- /result -->\n<!-- result: targets -->\n<!-- /result -->\n"
    new = report.update(doc, str(tmp_path))
    assert "Command: `python -m bench.cpu_training`; measured 2026-12-01T00:00:00Z on AMD EPYC, 2 cores, AVX2, " \
           "AVX-512 with AVX512_BF16, no AMX" in new
    assert "| cpu_training | x |" in new and "| profile_step | x |" in new
    assert "not measured yet: run `python -m bench.cpu_training --sweep`" in new
    assert "resnetv2_20: met, 1.10x (per-round 1.00–1.20); resnetv2_56: MISSED by 20%, 0.80x (per-round " \
           "0.70–0.90) (fastest TensorFlow option measured: fused_bn 1.30x)" in new
    assert "resnetv2_164" not in new.split("<!-- result: targets -->")[1]


@pytest.mark.slow
def test_cpu_training_quick(tmp_path):
    """About 40 s of CPU (three worker processes import TensorFlow, JAX and torch): slow."""
    stdout, result = run_quick("bench.cpu_training", tmp_path, cpu_limit=120)
    (model,) = result["models"]
    names = [r["name"] for r in model["rows"]]
    assert names == ["ours", "before", "fit_tensorflow", "fit_jax", "jax_step", "fit_torch", "torch", "fused_sgd"]
    ours, before = model["rows"][0], model["rows"][1]
    # the summary's "ours ÷ before issue 27": the ratio of the two rows' rates
    assert model["ours_over_before"] == pytest.approx(ours["images_per_second"] / before["images_per_second"])
    for row in model["rows"]:
        if row["name"] in ("fit_torch", "torch") and not result["torch_installed"]:
            assert "torch not installed" in row["error"]
            continue
        assert row.get("error") is None, row
        assert row["images_per_second"] > 0 and len(row["step_seconds"]) == 1
        assert row["params"] == model["params"]
        assert row["over_ours"] > 0 and 0 < row["fraction_of_peak"]
    assert ours["source"] == "keras_preact.training.loop.Trainer._build/_make_steps"
    assert result["peak_gflops"]["max"] > 0
    if result["torch_installed"]:
        assert model["torch_baseline"] == "torch" and model["ours_over_torch"] > 0
    assert len(table_rows(stdout, ["model", "implementation", "images/s", "÷ PyTorch (per-round range)"])) == 8
    assert len(table_rows(stdout, ["model", "ours ÷ PyTorch"])) == 1


@pytest.mark.slow
def test_profile_step_quick(tmp_path):
    stdout, result = run_quick("bench.profile_step", tmp_path, cpu_limit=120)
    (model,) = result["models"]
    tf_res = model["tensorflow"]
    assert tf_res["kernel_ms_per_step"]["conv forward"] > 0
    assert tf_res["kernel_ms_per_step"]["batch norm forward"] > 0
    assert tf_res["kernel_ms_per_step"]["optimizer update (SGD momentum)"] > 0
    assert 0 < tf_res["busy_fraction"] <= 1
    assert any("16 ch out" in key for key in tf_res["conv_ms_per_step"])
    rows = table_rows(stdout, ["category", "TF kernel ms/step", "PyTorch self ms/step"])
    assert rows[-1][0] == "**step (unprofiled)**"
    check_common(result, "bench.profile_step", stdout)

"""bench/runtime_cards.py: its int8 latency timing (which requests it makes, in which order), its int8 targets
and sizes, and what writing a card rewrites (no runtime needed)."""

import itertools
import json
import shutil

import numpy as np

from bench import runtime_cards
from keras_preact.zoo import PACKAGED_ZOO


def _recorder(calls):
    def predictor_for(key):
        def predict(pixels):
            calls.append((key, len(pixels)))
            return np.zeros((len(pixels), 10), np.float32)
        return predict
    return predictor_for


def test_latency_alternates_one_runtimes_two_models_in_blocks_after_an_untimed_request():
    calls = []
    make = _recorder(calls)
    keys = [(fmt, precision) for fmt in ("onnx", "openvino") for precision in ("float32", "int8")]
    images = np.zeros((5, 8, 8, 3), np.uint8)
    iters, block = 7, 3
    out = runtime_cards.time_interleaved({key: make(key) for key in keys}, images, [(32, iters)], block=block)

    assert {key: stats["requests"] for key, stats in out[32].items()} == {"|".join(k): iters for k in keys}
    assert all(batch == 32 for _, batch in calls)  # 5 images are tiled to the batch
    # One runtime at a time: every ONNX Runtime request before the first OpenVINO one.
    runtimes_seen = [fmt for (fmt, _), _ in calls]
    assert [fmt for fmt, _ in itertools.groupby(runtimes_seen)] == ["onnx", "openvino"]
    # After the warm-up, rounds of one untimed and up to `block` timed requests per model, the first model
    # rotating (A B, B A, A B: drift cancels), so no request is timed right after the other model's.
    warmup = runtime_cards.WARMUP[32]
    for fmt in ("onnx", "openvino"):
        a, b = (fmt, "float32"), (fmt, "int8")
        sequence = [key for key, _ in calls if key[0] == fmt]
        assert sequence[:2 * warmup] == [a] * warmup + [b] * warmup
        assert sequence[2 * warmup:] == [a] * 4 + [b] * 4 + [b] * 4 + [a] * 4 + [a] * 2 + [b] * 2


def _int8_result(size_ratio_bytes, int8_top1, int8_seconds):
    """A hand-made --int8 result: two models, ONNX only, float32 32 ms a batch-32 request."""
    def entry(top1, file_bytes):
        return {"top1": top1, "float32_top1": 0.9000, "file_bytes": file_bytes, "float32_file_bytes": 1000}

    def latency(seconds):
        return {"32": {"onnx|float32": {"request_seconds": [0.032] * 5}, "onnx|int8": {"request_seconds": [seconds] * 5}}}

    return {"models": {
        "resnetv2_20_cifar10": {"entries": {"onnx_int8": entry(0.9000, 250)}, "latency": latency(0.032),
                                "formats": ["onnx"]},
        "resnetv2_56_cifar10": {"entries": {"onnx_int8": entry(int8_top1, size_ratio_bytes)},
                                "latency": latency(int8_seconds), "formats": ["onnx"]}}}


def test_int8_targets_are_judged_from_the_raw_result():
    """BENCHMARKS.md's issue-37 target rows: accuracy, size and the deeper models' batch-32 speed-up."""
    from bench import report

    good = report._int8_rows(_int8_result(size_ratio_bytes=300, int8_top1=0.8960, int8_seconds=0.020))
    assert report._int8_accuracy_status(good).startswith("met on all 2 ")
    assert report._int8_size_status(good) == "met on all 2 model x runtime pairs"
    # resnetv2_20 (depth 20) is slower in int8 here (1.00x) but is not held to the speed-up.
    assert report._int8_speed_status(good).startswith("met on all 1 deeper model x runtime pairs (1.60x to 1.60x")

    bad = report._int8_rows(_int8_result(size_ratio_bytes=310, int8_top1=0.8940, int8_seconds=0.022))
    assert report._int8_accuracy_status(bad).startswith(
        "MISSED on 1 of 2 model x runtime pairs: resnetv2_56_cifar10 ONNX Runtime -0.60 points")
    assert report._int8_size_status(bad) == (
        "MISSED on 1 of 2 model x runtime pairs: resnetv2_56_cifar10 ONNX Runtime 0.31x")
    assert report._int8_speed_status(bad).startswith(
        "MISSED on 1 of 1 deeper model x runtime pairs: resnetv2_56_cifar10 ONNX Runtime 1.45x")


def test_int8_sizes_are_recomputed_per_file_and_shown_for_multi_file_exports(tmp_path):
    """An OpenVINO export is model.xml + model.bin: the bench keeps each file's bytes, the total and
    the ratio are recomputed from them, and the table shows each file's ratio (the .xml grows)."""
    for name, size in (("model.xml", 300), ("model.bin", 1000), ("model_info.json", 50)):
        (tmp_path / name).write_bytes(b"\0" * size)
    assert runtime_cards.artifact_files(tmp_path) == {"model.bin": 1000, "model.xml": 300}
    entry = {"file_bytes": 1, "float32_file_bytes": 1, "size_ratio": 1.0,
             "file_bytes_per_file": {"model.bin": 250, "model.xml": 690},
             "float32_file_bytes_per_file": {"model.bin": 1000, "model.xml": 300}}
    result = runtime_cards.derive_int8({"models": {"m": {"entries": {"openvino_int8": entry}, "latency": {}}}})
    derived = result["models"]["m"]["entries"]["openvino_int8"]
    assert (derived["file_bytes"], derived["float32_file_bytes"], derived["size_ratio"]) == (940, 1300, 0.723)
    assert runtime_cards.per_file_ratios(derived) == "; model.bin 0.25x, model.xml 2.30x"
    assert runtime_cards.per_file_ratios({"file_bytes_per_file": {"model.onnx": 3},
                                          "float32_file_bytes_per_file": {"model.onnx": 9}}) == ""
    assert runtime_cards.per_file_ratios({"file_bytes": 3}) == ""  # results before per-file bytes were kept


def test_writing_a_card_renders_its_readme_and_the_zoos_int8_table_again(tmp_path, monkeypatch):
    """A card's new int8 entry reaches the zoo's README.md, whose int8 table spans every card, in
    the same run (the first R164 int8 run left that table one model short until re-rendered)."""
    name = "resnet_20_cifar10"
    (tmp_path / name).mkdir()
    shutil.copy(PACKAGED_ZOO / name / "model_card.json", tmp_path / name / "model_card.json")
    monkeypatch.setenv("KERAS_PREACT_ZOO", str(tmp_path))
    entry = {**json.loads((tmp_path / name / "model_card.json").read_text())["runtimes"]["onnx_int8"],
             "top1": 0.1234}
    assert runtime_cards.write_card(name, {"onnx_int8": entry}, merge=True) == tmp_path / name
    assert f"| {name} | ONNX Runtime | 88.18% | 12.34% |" in (tmp_path / "README.md").read_text()
    assert "12.34%" in (tmp_path / name / "README.md").read_text()
    assert json.loads((tmp_path / name / "model_card.json").read_text())["runtimes"]["openvino_int8"]  # merged

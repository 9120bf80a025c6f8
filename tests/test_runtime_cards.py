"""bench/runtime_cards.py's int8 latency timing: which requests it makes, in which order (no runtime needed)."""

import itertools

import numpy as np

from bench import runtime_cards


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

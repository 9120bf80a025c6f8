"""Every result block of BENCHMARKS.md, recomputed from the raw measurements in its JSON.

`python -m bench.report --check` (tests/test_bench.py) compares each block with the `markdown`
string stored in its bench/results/*.json: a figure changed consistently in the block, in that
string and in the JSON's derived fields (a stored ratio, a stored median) passed it. Here each
bench's own table function (`markdown(result)`; runtime_cards' `int8_markdown`), the one its main()
prints and stores, rebuilds the table from the JSON's raw fields: the step times of every round,
RSS readings, file bytes, counts, profiler kernel times. Derived values (round medians, medians,
images/s, ratios and their per-round ranges, shares, verdicts, recommendations) are recomputed from
them by the bench's `derive(result)`, never read from what the JSON stored beside them. The rebuilt
table must equal the stored one exactly, so a planted figure fails here unless its raw measurements
were changed to match; and every derived field stored in the JSON must equal its recomputation
(the targets block, tests/test_benchmarks_prose.py and the docs read some of them directly).

What a JSON does not keep cannot be recomputed: NOT_RAW names, per block, the figures rendered
from a stored summary and why (the benches store the raw values from 2026-12 on; a re-run of the
bench makes them recomputable). Milliseconds: no model is built.
"""

import copy
import json
import math
import pathlib

import pytest

from bench import report

ROOT = pathlib.Path(__file__).resolve().parents[1]

# section of bench.report -> (bench module, its table function, its derive function): the
# functions its main() uses to fill the JSON's derived fields and to print/store the table
RENDERERS = {
    "train_speed": ("bench.train_speed", "markdown", "derive"),
    "train_speed_sweep": ("bench.train_speed", "markdown", "derive"),
    "train_speed_sweep_avx512": ("bench.train_speed", "markdown", "derive"),
    "input_pipeline": ("bench.input_pipeline", "markdown", "derive"),
    "serving_latency": ("bench.serving_latency", "markdown", "derive"),
    "int8": ("bench.runtime_cards", "int8_markdown", "derive_int8"),
    "scaling": ("bench.scaling", "markdown", "derive"),
    "densenet_memory": ("bench.densenet_memory", "markdown", "derive"),
    "jpeg_copy": ("bench.jpeg_copy", "markdown", "derive"),
    "cpu_training": ("bench.cpu_training", "markdown", "derive"),
    "cpu_training_sweep": ("bench.cpu_training", "markdown", "derive"),
    "cpu_training_sweep_r164": ("bench.cpu_training", "markdown", "derive"),
    "cpu_training_sweep_densenet": ("bench.cpu_training", "markdown", "derive"),
    "optimizer_update": ("bench.optimizer_update", "markdown", "derive"),
    "profile_step": ("bench.profile_step", "markdown", "derive"),
    "profile_step_before": ("bench.profile_step", "markdown", "derive"),
    "profile_step_densenet": ("bench.profile_step", "markdown", "derive"),
}

# Figures each block renders from a stored summary, because its JSON does not keep the raw values
# under it (the benches store them from 2026-12 on where named; a re-run makes them recomputable).
# Everything else in the blocks is recomputed from raw fields.
NOT_RAW = {
    "serving_latency": "the p50/p90/p99 latencies: the workers kept the percentiles and the mean, not each "
                       "request's time (request_seconds from 2026-12); ratios and images/s are recomputed",
    # "int8": _int8_not_raw() below, by whether the JSON keeps the per-image lists
    "densenet_memory": "each run's step time: the median of its steps (step_times_seconds from 2026-12); "
                       "step memory (peak RSS - RSS before), the medians over runs, every ratio and the "
                       "BC-190 batches are recomputed",
    "jpeg_copy": "the mean file and coded bytes: each split's counts and means, not its byte totals "
                 "(stored from 2026-12; the files themselves are the raw data); files and bits per pixel "
                 "are recomputed",
    "optimizer_update": "each update's and the step's median ms: the medians, not the calls' times "
                        "(seconds from 2026-12); the shares and the estimated speed-up are recomputed",
    "profile_step": "the profiler's kernel ms per category, busy ms and the profiled step (aggregates of "
                    "the trace, which is not kept); the step (median of step_ms_all), shares of the step, "
                    "concurrency and overhead are recomputed",
    "profile_step_before": "as profile_step",
    "profile_step_densenet": "as profile_step",
}


# int8.json's entries keep `per_image` (runtime_cards.PER_IMAGE: the sorted indices of the test images
# each export misses at top-1/top-5 and where int8's top-1 differs from float32's and Keras') from
# the run after this date on; derive_int8 recomputes top1, top5, float32_top1, float32_top5,
# top1_agreement_with_float32 and top1_differs from them, so the checks below cover those figures.
INT8_PER_IMAGE_SINCE = "2026-12-03T12:00:00Z"


def _int8_not_raw(result):
    """NOT_RAW's int8 line for `result`: the accuracy figures are named only while an entry lacks its lists."""
    from bench import runtime_cards

    without = [f"{name}/{key}" for name, res in result["models"].items() for key, e in res["entries"].items()
               if runtime_cards.PER_IMAGE not in e]
    rest = ("the change in points, the size ratios (from the file bytes), the p50/p90 latencies (from "
            "request_seconds, kept since the 2026-12-03 run), their ratios and images/s are recomputed")
    if not without:
        return None
    return (f"the top-1s, top-5s and the top-1 agreement of {len(without)} entries without per-image lists "
            f"(summaries over the test images; `per_image` kept from {INT8_PER_IMAGE_SINCE} on, then "
            f"recomputed by derive_int8); " + rest)


NOT_RAW.update({"int8": text} if (text := _int8_not_raw(json.loads(
    (ROOT / report.SECTIONS["int8"][0]).read_text(encoding="utf-8")))) else {})


def _result(name):
    return json.loads((ROOT / report.SECTIONS[name][0]).read_text(encoding="utf-8"))


def _functions(name):
    import importlib

    module_name, table, derive = RENDERERS[name]
    module = importlib.import_module(module_name)
    return getattr(module, table), getattr(module, derive)


def test_every_section_has_a_renderer():
    """A section added to bench.report without a renderer here would go unchecked."""
    assert set(RENDERERS) == set(report.SECTIONS)
    assert set(NOT_RAW) <= set(RENDERERS)


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_block_is_recomputed_from_the_raw_measurements(name):
    """The stored table (and so the block, which test_bench's --check compares with it) is what
    the bench's table function gives from the JSON's raw fields."""
    table, _ = _functions(name)
    result = _result(name)
    assert not result.get("quick")
    assert table(result) == result["markdown"], (
        f"{report.SECTIONS[name][0]}'s stored table is not what {RENDERERS[name][0]}.{RENDERERS[name][1]} "
        f"recomputes from its raw measurements")


def _mismatches(stored, derived, path=""):
    """Where `stored` differs from `derived`: floats to 1e-9 relative; a key only `derived` has
    (a field the bench stores since the JSON was written) is not a difference."""
    if isinstance(stored, dict) and isinstance(derived, dict):
        out = [f"{path}/{k}: stored, not recomputed" for k in stored if k not in derived]
        return out + [m for k in stored if k in derived for m in _mismatches(stored[k], derived[k], f"{path}/{k}")]
    if isinstance(stored, list) and isinstance(derived, list):
        if len(stored) != len(derived):
            return [f"{path}: {len(stored)} items stored, {len(derived)} recomputed"]
        return [m for i, (a, b) in enumerate(zip(stored, derived)) for m in _mismatches(a, b, f"{path}[{i}]")]
    if isinstance(stored, float) or isinstance(derived, float):
        if isinstance(stored, bool) or isinstance(derived, bool) or not isinstance(stored, (int, float)) \
                or not isinstance(derived, (int, float)) or not math.isclose(stored, derived, rel_tol=1e-9,
                                                                              abs_tol=1e-12):
            return [f"{path}: stored {stored!r}, recomputed {derived!r}"]
        return []
    return [] if stored == derived else [f"{path}: stored {stored!r}, recomputed {derived!r}"]


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_stored_derived_fields_are_what_the_raw_measurements_give(name):
    """The JSON's derived fields (ratios, medians, ranges, summaries) equal their recomputation from
    its raw fields: the targets block, the prose checks and the docs read some of them directly."""
    _, derive = _functions(name)
    result = _result(name)
    problems = _mismatches(result, derive(copy.deepcopy(result)))
    assert not problems, f"{report.SECTIONS[name][0]}: " + "; ".join(problems[:10])


# --- int8: the accuracy figures recomputed from the per-image lists (issue 38) -------------------


def _per_image_problems(entry):
    """What is wrong with an int8 entry's per-image lists: indices unsorted, repeated or out of range,
    a top-5 miss that is no top-1 miss, a top-1 difference that changes no miss."""
    from bench import runtime_cards

    lists, total = entry[runtime_cards.PER_IMAGE], entry["num_examples"]
    problems = [f"{key}: not sorted unique indices in [0, {total})" for key, indices in lists.items()
                if indices != sorted(set(indices)) or any(not isinstance(i, int) or not 0 <= i < total
                                                          for i in indices)]
    for prefix in ("", "float32_"):
        if not set(lists[f"{prefix}top5_misses"]) <= set(lists[f"{prefix}top1_misses"]):
            problems.append(f"{prefix}top5_misses: not all top-1 misses")
    # where int8 and float32 agree at top-1, both hit or both miss
    changed = set(lists["top1_misses"]) ^ set(lists["float32_top1_misses"])
    if not changed <= set(lists["top1_differs_from_float32"]):
        problems.append("top1_misses / float32_top1_misses differ where top1_differs_from_float32 says they agree")
    return problems


def test_int8_json_keeps_the_per_image_lists_from_their_date_on():
    """A run of today's bench keeps the lists in every entry (so derive_int8 recomputes its accuracy
    figures above); an older int8.json has none, and NOT_RAW names its figures as summaries."""
    from bench import runtime_cards

    result = _result("int8")
    entries = [e for res in result["models"].values() for e in res["entries"].values()]
    kept = [runtime_cards.PER_IMAGE in e for e in entries]
    if result["date"] >= INT8_PER_IMAGE_SINCE:
        assert all(kept), "an int8.json of the current bench lost per-image lists"
    assert all(kept) or not any(kept), "some int8.json entries have per-image lists and some not"
    assert ("int8" in NOT_RAW) == (not all(kept))
    for e in entries:
        if runtime_cards.PER_IMAGE in e:
            assert not _per_image_problems(e)


def _int8_with_lists():
    """A hand-made --int8 result of 10 images, one model, ONNX only, with its per-image lists, the
    summaries written as measure_int8 writes them."""
    from bench import runtime_cards

    entry = {"num_examples": 10, "max_abs_diff": 0.25, "precision": "int8", "file_bytes": 300,
             "float32_file_bytes": 1000, "runtime": "onnxruntime", "quantizer": "q", "method": "m",
             "calibration": {"count": 4, "split": "train", "seed": 0},
             runtime_cards.PER_IMAGE: {"top1_misses": [1, 4, 7], "top5_misses": [7],
                                       "float32_top1_misses": [1, 4], "float32_top5_misses": [],
                                       "top1_differs_from_float32": [7, 9],
                                       "top1_differs_from_keras": [3, 7, 9]}}
    entry.update({"top1": 0.7, "top5": 0.9, "float32_top1": 0.8, "float32_top5": 1.0,
                  "top1_agreement_with_float32": 0.8, "top1_differs": 3, "size_ratio": 0.3})
    stats = {"onnx|float32": {"request_seconds": [0.032, 0.034, 0.033]},
             "onnx|int8": {"request_seconds": [0.020, 0.021, 0.022]}}
    result = {"quick": False, "int8_instructions": ["avx512_vnni"], "split": "test", "num_examples": 10,
              "dataset_label": "CIFAR-10", "latency_method": runtime_cards.LATENCY_METHOD,
              "models": {"resnet_20_cifar10": {"entries": {"onnx_int8": entry}, "formats": ["onnx"],
                                               "latency": {"32": stats}}}}
    result = runtime_cards.derive_int8(result)  # the latency percentiles, as the bench stores them
    result["markdown"] = runtime_cards.int8_markdown(result)
    return result


def test_int8_accuracy_figures_are_recomputed_from_the_per_image_lists():
    from bench import runtime_cards

    result = _int8_with_lists()
    entry = result["models"]["resnet_20_cifar10"]["entries"]["onnx_int8"]
    assert runtime_cards.int8_accuracy(entry) == {
        "top1": 0.7, "top5": 0.9, "float32_top1": 0.8, "float32_top5": 1.0, "top1_agreement_with_float32": 0.8,
        "top1_differs": 3}
    assert not _per_image_problems(entry)
    assert not _mismatches(result, runtime_cards.derive_int8(copy.deepcopy(result)))
    assert runtime_cards.int8_markdown(result) == result["markdown"]
    assert "| resnet_20_cifar10 | ONNX Runtime | 80.00% | 70.00% | -10.00 | 80.00% |" in result["markdown"]
    # rounded as `scores` rounds: 2 misses of 3 images is 0.6667
    assert runtime_cards.int8_accuracy({"num_examples": 3, runtime_cards.PER_IMAGE: {
        "top1_misses": [0], "top5_misses": [], "float32_top1_misses": [0, 1], "float32_top5_misses": [0],
        "top1_differs_from_float32": [1]}}) == {"top1": 0.6667, "top5": 1.0, "float32_top1": 0.3333,
                                                "float32_top5": 0.6667, "top1_agreement_with_float32": 0.6667}
    assert runtime_cards.int8_accuracy({"num_examples": 3, "top1": 0.5}) == {}
    assert runtime_cards.card_entry(entry) == {k: v for k, v in entry.items() if k != runtime_cards.PER_IMAGE}
    assert _int8_not_raw(result) is None  # every entry has its lists: nothing left to name in NOT_RAW
    del entry[runtime_cards.PER_IMAGE]
    assert _int8_not_raw(result).startswith("the top-1s, top-5s and the top-1 agreement of 1 entries without")


def test_int8_json_writes_each_index_list_on_one_line(tmp_path):
    from bench import runtime_cards

    result = _int8_with_lists()
    runtime_cards.write_int8_result(str(tmp_path / "int8.json"), result)
    text = (tmp_path / "int8.json").read_text()
    assert json.loads(text) == result
    assert '"top1_misses": [1, 4, 7],' in text and '"top1_differs_from_keras": [3, 7, 9]' in text
    assert '"request_seconds": [\n' in text  # floats as common.write_result writes them


def test_bench_lists_are_what_scores_counts():
    """measure_int8's lists (runtime_cards.misses, top1_differences) and `scores` count the same images."""
    import numpy as np

    from bench import runtime_cards

    rng = np.random.default_rng(0)
    probabilities, other = rng.random((200, 10), np.float32), rng.random((200, 10), np.float32)
    probabilities[:, 3] += 0.3  # some hits
    labels = rng.integers(0, 10, 200)
    scores = runtime_cards.scores(probabilities, labels, other)
    lists = runtime_cards.misses(probabilities, labels)
    entry = {"num_examples": 200, runtime_cards.PER_IMAGE: {
        "top1_misses": lists["top1"], "top5_misses": lists["top5"], "float32_top1_misses": lists["top1"],
        "float32_top5_misses": lists["top5"], "top1_differs_from_float32": [],
        "top1_differs_from_keras": runtime_cards.top1_differences(probabilities, other)}}
    recomputed = runtime_cards.int8_accuracy(entry)
    assert 0 < len(lists["top5"]) < len(lists["top1"]) < 200
    assert {k: recomputed[k] for k in ("top1", "top5", "top1_differs")} == {
        k: scores[k] for k in ("top1", "top5", "top1_differs")}


# field planted, new value, the markdown string it changes (None: a figure BENCHMARKS.md does not show)
INT8_PLANTS = [("top1", 0.71, ("70.00% | -10.00", "71.00% | -9.00")),
               ("float32_top1", 0.79, ("80.00% | 70.00% | -10.00", "79.00% | 70.00% | -9.00")),
               ("top1_agreement_with_float32", 0.9, ("-10.00 | 80.00%", "-10.00 | 90.00%")),
               ("top5", 0.95, None), ("float32_top5", 0.9, None), ("top1_differs", 2, None)]


@pytest.mark.parametrize("field,value,shown", INT8_PLANTS, ids=[p[0] for p in INT8_PLANTS])
def test_an_int8_figure_planted_in_the_entry_and_its_markdown_fails_while_the_lists_stay(field, value, shown):
    """The weakness closed here: a figure changed consistently in the JSON entry and in its stored
    table passes both checks when the entry has no lists (as every entry before 2026-12-03 12:00);
    with the lists kept it fails the stored-derived-field check, and the table check where shown."""
    from bench import runtime_cards

    planted = _int8_with_lists()
    planted["models"]["resnet_20_cifar10"]["entries"]["onnx_int8"][field] = value
    if shown:
        assert shown[0] in planted["markdown"]
        planted["markdown"] = planted["markdown"].replace(*shown)
    without = copy.deepcopy(planted)
    del without["models"]["resnet_20_cifar10"]["entries"]["onnx_int8"][runtime_cards.PER_IMAGE]
    assert runtime_cards.int8_markdown(without) == without["markdown"]  # consistent: passes without lists
    assert not _mismatches(without, runtime_cards.derive_int8(copy.deepcopy(without)))

    problems = _mismatches(planted, runtime_cards.derive_int8(copy.deepcopy(planted)))
    true = _int8_with_lists()["models"]["resnet_20_cifar10"]["entries"]["onnx_int8"][field]
    assert problems == [f"/models/resnet_20_cifar10/entries/onnx_int8/{field}: stored {value!r}, recomputed {true!r}"]
    assert (runtime_cards.int8_markdown(planted) != planted["markdown"]) == bool(shown)


def test_bad_per_image_lists_are_found():
    from bench import runtime_cards

    def entry(**lists):
        base = _int8_with_lists()["models"]["resnet_20_cifar10"]["entries"]["onnx_int8"]
        base[runtime_cards.PER_IMAGE].update(lists)
        return base

    assert _per_image_problems(entry(top1_misses=[4, 1, 7]))
    assert _per_image_problems(entry(top1_misses=[1, 4, 7, 10]))
    assert _per_image_problems(entry(top5_misses=[2]))
    assert _per_image_problems(entry(top1_differs_from_float32=[9]))  # image 7: int8 misses, float32 hits

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
    "optimizer_update": ("bench.optimizer_update", "markdown", "derive"),
    "profile_step": ("bench.profile_step", "markdown", "derive"),
    "profile_step_before": ("bench.profile_step", "markdown", "derive"),
}

# Figures each block renders from a stored summary, because its JSON does not keep the raw values
# under it (the benches store them from 2026-12 on where named; a re-run makes them recomputable).
# Everything else in the blocks is recomputed from raw fields.
NOT_RAW = {
    "serving_latency": "the p50/p90/p99 latencies: the workers kept the percentiles and the mean, not each "
                       "request's time (request_seconds from 2026-12); ratios and images/s are recomputed",
    "int8": "the top-1s and the top-1 agreement (summaries over the 10,000 test images; per-image "
            "predictions not stored); the change in points, the size ratios (from the file bytes), the "
            "p50/p90 latencies (from request_seconds, kept since the 2026-12-03 run), their ratios and "
            "images/s are recomputed",
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
}


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

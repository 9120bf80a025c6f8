"""Every result block of BENCHMARKS.md, recomputed from the raw measurements in its JSON.

`python -m bench.report --check` (tests/test_bench.py) compares each block with the `markdown`
string stored in its bench/results/*.json: a figure changed consistently in the block, in that
string and in the JSON's derived fields (a stored ratio, a stored median) passed it. Here each
bench's own table code (`markdown(result)`, the function its main() prints and stores) rebuilds the
table from the JSON's raw fields: step times of every round, per-request percentiles, RSS readings,
counts, profiler kernel times; derived values (medians, ratios, ranges, percentages, verdicts) are
recomputed from them inside `markdown`, never read from what the JSON stored beside them. The
rebuilt table must equal the stored one exactly, so a planted figure fails here unless its raw
measurements were changed to match.

What a JSON does not keep cannot be recomputed; those figures are rendered from what is stored,
named in NOT_RAW below (each bench's derive() docstring says the same).
"""

import json
import pathlib

import pytest

from bench import report

ROOT = pathlib.Path(__file__).resolve().parents[1]

# section of bench.report -> the bench module whose markdown(result) renders its block
RENDERERS = {
    "train_speed": "bench.train_speed",
    "train_speed_sweep": "bench.train_speed",
    "train_speed_sweep_avx512": "bench.train_speed",
    "input_pipeline": "bench.input_pipeline",
    "serving_latency": "bench.serving_latency",
    "scaling": "bench.scaling",
    "densenet_memory": "bench.densenet_memory",
    "jpeg_copy": "bench.jpeg_copy",
}

# Figures rendered from a stored summary because the JSON does not keep the raw values under it.
NOT_RAW = {
    # the workers kept p50/p90/p99 and the mean, not each request's time (request_seconds is
    # stored from 2026-12 on); the ratio columns and images/s are recomputed from the percentiles
    "serving_latency": "the p50/p90/p99 latencies (per-request times not stored)",
    # each run kept the median of its steps (step_times_seconds is stored from 2026-12 on); step
    # memory (peak RSS - RSS before), the medians over runs, every ratio and the BC-190 batches
    # are recomputed
    "densenet_memory": "each run's step time (the median of its steps; the steps not stored)",
    # the files are the raw data: the JSON keeps each split's counts and mean bytes, not the
    # byte totals (stored from 2026-12 on); files and bits per pixel are recomputed from them
    "jpeg_copy": "the mean file and coded bytes (totals not stored)",
}


def _result(name):
    return json.loads((ROOT / report.SECTIONS[name][0]).read_text(encoding="utf-8"))


# sections whose bench does not render its table from raw fields yet (issue 38, in progress)
PENDING = {"int8", "cpu_training", "cpu_training_sweep", "cpu_training_sweep_r164", "optimizer_update",
           "profile_step", "profile_step_before"}


def test_every_section_has_a_renderer():
    """A section added to bench.report without a renderer here would go unchecked."""
    assert set(RENDERERS) | PENDING == set(report.SECTIONS)


@pytest.mark.parametrize("name", sorted(RENDERERS))
def test_block_is_recomputed_from_the_raw_measurements(name):
    import importlib

    module = importlib.import_module(RENDERERS[name])
    result = _result(name)
    assert not result.get("quick")
    assert module.markdown(result) == result["markdown"], (
        f"{report.SECTIONS[name][0]}'s stored table is not what {RENDERERS[name]}.markdown recomputes "
        f"from its raw measurements")

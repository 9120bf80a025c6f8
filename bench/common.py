"""What every timing bench shares: the machine record, fresh-process workers,
percentiles, markdown tables and the JSON result file.

A result JSON always has ``command``, ``date`` (UTC, ISO 8601), ``machine``
(CPU model, cores, AVX2/AVX-512/AMX flags, memory, library versions),
``loadavg_start``/``loadavg_end`` (1, 5, 15-minute load averages around the
measurement: a loaded machine makes absolute numbers pessimistic, which is why
every bench reports ratios measured side by side), ``quick`` and ``markdown``
(the table the command printed, so BENCHMARKS.md can be regenerated from the
JSON by ``python -m bench.report``).
"""

import json
import os
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_preact.training.environment import cpu_summary  # noqa: E402  (one reader of /proc/cpuinfo for runs and benches)


def machine():
    """The machine and software a result was measured on."""
    info = dict(cpu_summary())
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    info["platform"] = platform.platform()
    info["python"] = platform.python_version()
    versions = {}
    for name, distributions in (("tensorflow", ("tensorflow", "tensorflow-cpu")), ("keras", ("keras",)),
                                ("jax", ("jax",)), ("numpy", ("numpy",))):
        for dist in distributions:
            found = _version(dist)
            if found:
                versions[name] = found
                break
    info["versions"] = versions
    return info


def _version(distribution):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def machine_line(m):
    """One line for a table caption: 'AMD EPYC, 2 cores, AVX2, AVX-512 with AVX512_BF16, no AMX'.

    AVX512_BF16 is named because it decides whether mixed_bfloat16 can be fast on a CPU
    without AMX (the project's machines have come both with and without it)."""
    simd = "AVX2" if m.get("avx2") else "no AVX2"
    if m.get("avx512"):
        simd += ", AVX-512 with AVX512_BF16" if m.get("avx512_bf16") else ", AVX-512 without AVX512_BF16"
    else:
        simd += ", no AVX-512"
    simd += ", AMX" if m.get("amx") else ", no AMX"
    return f"{m.get('cpu')}, {m.get('cores')} cores, {simd}"


def loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def command_line(module):
    return " ".join(["python -m " + module, *sys.argv[1:]])


def percentile(values, q):
    """Linear-interpolated q-th percentile (0..100) of a non-empty sequence."""
    xs = sorted(values)
    if not xs:
        raise ValueError("percentile of an empty sequence")
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values):
    return percentile(values, 50)


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    return f"{x:,.{digits}f}"


def ratio(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}x"


def run_worker(module, payload, env=None, timeout=None):
    """Run ``python -m module --worker JSON`` in a fresh process; its last stdout
    line is a JSON object. A failure comes back as ``{"error": last stderr line}``."""
    command = [sys.executable, "-m", module, "--worker", json.dumps(payload)]
    full_env = dict(os.environ, **(env or {}))
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
        return {"error": tail[-1][:500] if tail else f"exit status {result.returncode}"}
    return json.loads(lines[-1])


def write_result(path, result):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"wrote {path}", file=sys.stderr)


def result_header(module, quick):
    """The common keys, filled at the start of a bench; `finish` adds the rest."""
    return {"command": command_line(module), "date": now(), "machine": machine(),
            "loadavg_start": loadavg(), "quick": bool(quick)}


def command_option(result, flag, default):
    """The value of ``flag`` in the command line a result records (``default`` when not given):
    for settings an older JSON kept only in its command."""
    import shlex

    words = shlex.split(result.get("command", ""))
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return type(default)(words[i + 1]) if default is not None else words[i + 1]
        if word.startswith(flag + "="):
            value = word.split("=", 1)[1]
            return type(default)(value) if default is not None else value
    return default


def round_medians(times, rounds, steps):
    """The median of each round's steps, from a configuration's step times in the order they ran
    (round k is times[k * steps:(k + 1) * steps]); None for a round without its steps."""
    return [median(times[k * steps:(k + 1) * steps]) if len(times) >= (k + 1) * steps else None
            for k in range(rounds)]


def finish(result, markdown, path):
    result.setdefault("loadavg_end", loadavg())  # a bench that renders its table from loadavg_end sets it first
    result["markdown"] = markdown
    print(markdown)
    write_result(path, result)
    return result

"""The `keras-preact` command shows its own output, not TensorFlow's log lines (issue 36)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from keras_preact import _startup, cli

REPO = Path(__file__).resolve().parent.parent
CAT = REPO / "docs" / "samples" / "cat.jpg"


def console_script():
    """The installed `keras-preact` script, or `python -m keras_preact.cli`."""
    script = Path(sys.executable).parent / "keras-preact"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "keras_preact.cli"]


def run_cli(args, tmp_path, timeout=300):
    """The command as a user's shell runs it: no TF_CPP_MIN_LOG_LEVEL (conftest.py sets one)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "PYTHONWARNINGS")}
    env["KERAS_HOME"] = str(tmp_path / "keras_home")
    return subprocess.run(console_script() + args, capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=timeout)


def tensorflow_lines(text):
    return _startup.split_log(text)[0]


def test_predict_prints_its_answer_and_no_tensorflow_line_and_verbose_shows_them(tmp_path):
    quiet = run_cli(["predict", "--model", "resnetv2_20_cifar10", str(CAT)], tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stdout.splitlines()
    assert lines[0] == str(CAT) and lines[1].split()[:2] == ["1.", "cat"] and len(lines) == 6
    assert quiet.stderr == ""
    # --verbose (here after the command): TensorFlow's lines come through, so the check above
    # saw a process that does print them.
    verbose = run_cli(["predict", "--model", "resnetv2_20_cifar10", "--verbose", str(CAT)],
                      tmp_path)
    assert verbose.returncode == 0, verbose.stderr
    assert verbose.stdout == quiet.stdout
    assert tensorflow_lines(verbose.stderr), verbose.stderr
    assert _startup.split_log(verbose.stderr)[1] == [], verbose.stderr  # nothing but TF's lines


def test_verbose_may_come_before_the_command(capsys):
    assert cli.main(["--verbose", "list"]) == 0
    assert "resnetv2_20_cifar10" in capsys.readouterr().out


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                    reason='needs the litert extra: pip install ".[litert]"')
def test_export_hides_tensorflow_lites_delegate_line(tmp_path):
    result = run_cli(["export", "--model", "resnetv2_20_cifar10", "--format", "litert",
                      "--out", str(tmp_path / "litert")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("LiteRT model written to ")
    assert result.stderr == ""


def test_split_log_takes_tensorflows_records_and_keeps_the_rest():
    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796241121.755865    5157 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1796241182.832863    5619 cpu_feature_guard.cc:227] This TensorFlow binary\n"
        "To enable the following instructions: AVX2 AVX512F, in other operations, rebuild.\n"
        "/x/y.py:3: UserWarning: a Python warning\n"
        "  warnings.warn('a Python warning')\n"
        "E0000 00:00:1796241182.1    12 cuda_dnn.cc:8310] Unable to register cuDNN factory\n"
        "2023-11-01 10:00:00.123456: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] "
        "TF-TRT Warning: Could not find TensorRT\n"
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
        "\n"
        "our own line\n"
        "Traceback (most recent call last):\n"
    )
    log, other = _startup.split_log(text)
    assert other == ["/x/y.py:3: UserWarning: a Python warning\n",
                     "  warnings.warn('a Python warning')\n", "\n", "our own line\n",
                     "Traceback (most recent call last):\n"]
    assert "".join(log) + "".join(other) != text  # (order differs) every line is in one of them
    assert sorted(log + other) == sorted(text.splitlines(keepends=True))
    assert len(log) == 7


def test_cli_invocation_is_the_console_script_or_the_module():
    assert _startup.cli_invocation(["/venv/bin/keras-preact", "predict", "--verbose"], []) == \
        ["predict", "--verbose"]
    assert _startup.cli_invocation(["-m", "list"], ["python", "-m", "keras_preact.cli", "list"]) == \
        ["list"]
    assert _startup.cli_invocation(["-c"], ["python", "-c", "import keras_preact"]) is None
    assert _startup.cli_invocation(["/usr/bin/pytest", "-q"], ["python", "-m", "pytest"]) is None

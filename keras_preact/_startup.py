"""TensorFlow's start-up lines, kept out of the `keras-preact` command's output.

TensorFlow 2.21 writes C++ log records to stderr while it is being imported, before it reads
TF_CPP_MIN_LOG_LEVEL: the oneDNN notice (twice, each after absl's "WARNING: All log messages
before absl::InitializeLog() is called are written to STDERR"), and on a GPU build without a GPU
CUDA-plugin errors. The variable cannot hide them, so when the process is the `keras-preact`
command (the console script or `python -m keras_preact.cli`) `keras_preact/__init__.py` imports
Keras and TensorFlow with file descriptor 2 pointed at a temporary file, drops the log records
from what was written, and passes everything else on (a Python warning, a traceback). After
the import, TF_CPP_MIN_LOG_LEVEL=2 (unless set) keeps TensorFlow's later INFO and WARNING
records out too. `keras-preact --verbose COMMAND` (the flag anywhere on the line) holds nothing
back and sets TF_CPP_MIN_LOG_LEVEL=0 (unless set). `keras-preact export` holds back the same
lines while it runs (its LiteRT check prints TensorFlow Lite's "INFO: Created TensorFlow Lite
XNNPACK delegate for CPU."). Importing keras_preact as a library changes nothing here.
"""

import contextlib
import importlib
import importlib.util
import os
import re
import sys
import tempfile

VERBOSE_FLAG = "--verbose"
CLI_SCRIPTS = ("keras-preact", "keras-preact.exe", "keras-preact-script.py")
CLI_MODULES = ("keras_preact.cli",)
# absl's C++ log line, "I1202 19:46:01.755865    5157 port.cc:153] ...": severity, month and
# day, time, thread, file:line (before absl is initialized: "I0000 00:00:1796241121.755865 ...").
RECORD = re.compile(r"[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
# TensorFlow's own format before it moved to absl (2.15 and older).
OLD_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\] ")
# TensorFlow Lite's INFO lines ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.").
LITE_INFO = re.compile(r"INFO: ")
ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# Lines that end a record's continuation lines: Python's own output, never TensorFlow's.
PYTHON_OUTPUT = re.compile(r"(Traceback \(most recent call last\)|\S+:\d+: \w*Warning: )")

# The lines held back at start-up, for debugging (`--verbose` shows them as they come instead).
held_back = []


def cli_invocation(argv=None, orig_argv=None):
    """Whether this process is the `keras-preact` command; its arguments when it is, else None."""
    argv = sys.argv if argv is None else argv
    orig_argv = getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv
    if argv and os.path.basename(argv[0]) in CLI_SCRIPTS:
        return list(argv[1:])
    for flag, module in zip(orig_argv, orig_argv[1:]):
        if flag == "-m" and module in CLI_MODULES:
            return list(argv[1:])
    return None


def split_log(text):
    """(TensorFlow's log lines, every other line) of text written to stderr.

    A record's continuation lines (the CPU-feature notice runs over two) go with it; a blank
    line or Python's own output ends it.
    """
    log, other, in_record = [], [], False
    for line in text.splitlines(keepends=True):
        if (RECORD.match(line) or OLD_RECORD.match(line) or LITE_INFO.match(line)
                or line.rstrip("\r\n") == ABSL_PREAMBLE):
            in_record = True
            log.append(line)
        elif in_record and line.strip() and not PYTHON_OUTPUT.match(line):
            log.append(line)
        else:
            in_record = False
            other.append(line)
    return log, other


@contextlib.contextmanager
def stderr_to_file():
    """Point file descriptor 2 (C++ writes included) at a temporary file inside the block.

    Yields a list that holds, after the block, the text written to it.
    """
    written = []
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as buffer:
            os.dup2(buffer.fileno(), 2)
            try:
                yield written
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                buffer.seek(0)
                written.append(buffer.read().decode("utf-8", "replace"))
    finally:
        os.close(saved)


@contextlib.contextmanager
def log_lines_held_back():
    """Inside the block, TensorFlow's log lines on stderr are held back; the rest follows it."""
    written = []
    try:
        with stderr_to_file() as written:
            yield
    finally:
        log, other = split_log("".join(written))
        held_back.extend(log)
        sys.stderr.write("".join(other))
        sys.stderr.flush()


def import_quietly(module):
    """Import `module`, holding back TensorFlow's log lines; every other line is written on."""
    if module in sys.modules:
        return sys.modules[module]
    with log_lines_held_back():
        return importlib.import_module(module)


def before_tensorflow():
    """For the `keras-preact` command: import Keras and TensorFlow without their start-up lines."""
    arguments = cli_invocation()
    if arguments is None:
        return
    if VERBOSE_FLAG in arguments:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import_quietly("keras")
    # Under KERAS_BACKEND=jax Keras does not import TensorFlow, but every command but `list` does.
    if "tensorflow" not in sys.modules and importlib.util.find_spec("tensorflow") is not None:
        import_quietly("tensorflow")

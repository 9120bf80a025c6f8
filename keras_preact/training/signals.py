"""SIGTERM / SIGINT as a request to stop training, honoured where stopping is clean.

``training.train`` installs the process's one :data:`stop_signals`; the training loop
defers them around its steps and checks between steps, and ``training.train`` turns
:class:`Interrupted` into a resumable exit 128 + signum.
"""

from __future__ import annotations

import contextlib
import signal
from typing import Optional


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGTERM / SIGINT as a request to stop, honoured where stopping is clean.

    A signal handler that raises drops its exception into whatever Python line runs at
    that instant. When that line is ``tf.function``'s argument binding, TensorFlow
    rewraps the exception as ``TypeError: Binding inputs to tf.function failed due to
    SIGTERM`` (seen in CI), and the run dies with a traceback instead of exit 143. So
    inside ``deferred()`` (the training and evaluation steps) the handler only records the
    signal and the loop calls ``check()`` between steps; everywhere else (decoding the
    dataset, building the model) it raises at once. A second signal while one is pending
    raises at once as well, so a stuck step can still be interrupted. ``received`` keeps the
    last signal, so a caller can tell an exception TensorFlow rewrapped from a real error.
    """

    def __init__(self):
        self.pending: Optional[int] = None
        self.received: Optional[int] = None
        self._defer = False

    def install(self, signums=(signal.SIGTERM, signal.SIGINT)) -> None:
        for signum in signums:
            signal.signal(signum, self._handle)

    def _handle(self, signum, frame):
        self.received = signum
        if self._defer and self.pending is None:
            self.pending = signum
            return
        raise Interrupted(signum)

    def check(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        previous, self._defer = self._defer, True
        try:
            yield self
        finally:
            self._defer = previous


# The process's one set of handlers; ``training.train`` installs them.
stop_signals = StopSignals()

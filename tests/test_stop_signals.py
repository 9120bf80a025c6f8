"""training.signals.StopSignals: a signal during a step is deferred to the step boundary.

CI once saw SIGTERM land inside tf.function's argument binding, which TensorFlow rewrapped
as ``TypeError: Binding inputs to tf.function failed due to SIGTERM`` -- a traceback and
exit 1 instead of a clean, resumable exit 143. These tests pin the deferral logic with
SIGUSR1 sent to this process (handlers run in the main thread, between bytecodes).
"""

import os
import signal

import pytest

from keras_preact.training.signals import Interrupted, StopSignals


@pytest.fixture
def stops():
    previous = signal.getsignal(signal.SIGUSR1)
    s = StopSignals()
    s.install((signal.SIGUSR1,))
    yield s
    signal.signal(signal.SIGUSR1, previous)


def send():
    os.kill(os.getpid(), signal.SIGUSR1)


def test_outside_a_step_the_signal_raises_at_once(stops):
    with pytest.raises(Interrupted) as e:
        send()
        for _ in range(10_000):  # the handler runs at the next bytecode boundary
            pass
    assert e.value.signum == signal.SIGUSR1 and str(e.value) == "SIGUSR1"
    assert stops.received == signal.SIGUSR1


def test_inside_a_step_the_signal_waits_for_check(stops):
    finished = False
    with stops.deferred():
        send()
        for _ in range(10_000):
            pass
        finished = True  # the step ran to its end
    assert finished and stops.pending == signal.SIGUSR1
    with pytest.raises(Interrupted):
        stops.check()
    assert stops.pending is None
    stops.check()  # consumed: a second check does not raise


def test_a_second_signal_during_a_step_raises_at_once(stops):
    with pytest.raises(Interrupted):
        with stops.deferred():
            send()
            for _ in range(10_000):
                pass
            send()
            for _ in range(10_000):
                pass
    assert not stops._defer  # the context manager restored the state


def test_check_without_a_signal_does_nothing(stops):
    stops.check()
    assert stops.pending is None and stops.received is None

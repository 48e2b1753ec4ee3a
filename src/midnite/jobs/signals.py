"""Signals during a run: SIGTERM and SIGHUP stop a run as Ctrl-C does, and while a batch's
files are written all three wait until the files are complete.

A stop is a ``KeyboardInterrupt`` whose ``args[0]`` is the signal's number (none: Ctrl-C);
:func:`exit_status` gives the conventional status for it, 128 + the number (130, 143, 129).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = [
    "STOPS",
    "deferred_interrupt",
    "exit_status",
    "signal_name",
    "signal_of",
    "stop_on_signals",
]

# the signals that stop a run like Ctrl-C (SIGHUP where the platform has it)
STOPS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _stop(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt(int(signum)) if signum != signal.SIGINT else KeyboardInterrupt()


def signal_of(stop: BaseException) -> int:
    """The signal number a stop carries (SIGINT when it carries none: Ctrl-C)."""
    found = stop.args[0] if stop.args else None
    return found if isinstance(found, int) and not isinstance(found, bool) else signal.SIGINT


def exit_status(stop: BaseException) -> int:
    """128 + the signal that stopped the run: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + int(signal_of(stop))


def signal_name(stop: BaseException) -> str:
    """``Ctrl-C``, ``SIGTERM`` or ``SIGHUP``: what stopped the run, for its one line."""
    number = signal_of(stop)
    return "Ctrl-C" if number == signal.SIGINT else signal.Signals(number).name


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """During the block, SIGTERM and SIGHUP raise ``KeyboardInterrupt(signum)`` as Ctrl-C
    raises ``KeyboardInterrupt``; the handlers are restored to what they were after it.

    A signal the process ignores (``SIG_IGN``, e.g. SIGHUP under ``nohup``) stays ignored.
    """
    if not _main_thread():
        yield
        return

    def stop(signum, frame):
        raise _stop(signum)

    previous = {}
    for sig in STOPS:
        if sig == signal.SIGINT:
            continue
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP during the block (main thread only), then raise
    the stop of the first that came; the handlers are restored to what they were."""
    if not _main_thread():
        yield
        return
    caught: list[int] = []
    previous = {}
    for sig in STOPS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        raise _stop(caught[0])

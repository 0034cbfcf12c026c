"""Ctrl-C during a folder run: the first one asks the run to stop feeding scans (what is in flight is finished and
written), a second one stops at once (KeyboardInterrupt). The handler only sets a flag: printing from it could land
inside a write to stderr that the main thread is making (a reentrant call)."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def stop_on_interrupt() -> Iterator[threading.Event]:
    """An Event set by the first SIGINT; the second raises KeyboardInterrupt. Off the main thread (where Python
    delivers no signal) the Event is only set by the caller."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, old)

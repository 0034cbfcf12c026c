"""What a folder run's helper processes (reader and writer processes) share: they start and live deaf to Ctrl-C,
which a terminal sends to the whole process group (the run decides what follows, and the helpers finish the work in
hand), and they die with the run (a kill -9 of it leaves none behind; Linux)."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def spawning() -> Iterator[None]:
    """Around starting helper processes: SIGINT ignored meanwhile (in the main thread, where Python handles it), so
    a Ctrl-C while they start does not reach them before they ignore it themselves."""
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, old)


def become_helper() -> None:
    """First thing in a helper process: no KeyboardInterrupt, and death with the run (PR_SET_PDEATHSIG)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass

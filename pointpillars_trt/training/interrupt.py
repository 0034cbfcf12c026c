"""Ctrl-C during training that leaves a consistent checkpoint: a SIGINT that arrives inside an optimisation step
(forward with BatchNorm statistics, backward, optimizer and LR steps, the iteration count) is held until the step
ends, one that arrives while data loads stops at once. Either way the loop ends with KeyboardInterrupt at a step
boundary, so the weights, optimizer state and iteration saved afterwards belong to the same finished step."""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class StepGuard:
    """`with StepGuard() as guard:` around the loop and `with guard.step():` around each step. Only the main thread
    can own SIGINT's handler; elsewhere the guard does nothing and Ctrl-C acts as usual."""

    def __init__(self) -> None:
        self.in_step = self.pending = False
        self._previous: Any = None

    def __enter__(self) -> "StepGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if not self.in_step:
            raise KeyboardInterrupt
        self.pending = True

    @contextmanager
    def step(self) -> Iterator[None]:
        """One step that Ctrl-C does not cut in half; a Ctrl-C held during it is raised when it ends."""
        self.in_step = True
        try:
            yield
        finally:
            self.in_step = False
        if self.pending:
            raise KeyboardInterrupt

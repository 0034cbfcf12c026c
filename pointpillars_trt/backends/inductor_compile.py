"""When the torch backend's RPN goes through Inductor, for each input shape: now (the shape's first call compiles,
and tunes if this machine never did), or auto: in the background where this Inductor cache already tuned the shape
(the first calls run the uncompiled module, a worker thread compiles, later calls use the compiled one), else now.

Why: with warm caches, compiling still costs 3-5 s of Dynamo and Inductor in every new process (H200: first
detection 9.1-9.5 s compiled against 3.6-4.0 s uncompiled, bench/results/2026-12-02_h200_startup-compile.log), while
the compiled RPN saves about 0.15 ms a scan. A tuning never runs in the background: timed beside the pipeline's own
kernels its measurements would be off, and the cache keeps whatever it picked.
"""
from __future__ import annotations

import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Hashable

from pointpillars_trt.errors import UserError

#: compile= values; True means "now" and False "off"
MODES = ("auto", "now", "off")
#: inside the Inductor cache folder, so that clearing the folder also forgets what it had tuned
TUNED_FILE = "pointpillars_trt_tuned.json"


def compile_mode(value: object) -> str:
    """The compile mode a compile= argument names (True: now, False / None: off); UserError for anything else."""
    if value is True:
        return "now"
    if value is False or value is None:
        return "off"
    if isinstance(value, str) and value in MODES:
        return value
    raise UserError(f"compile must be one of {', '.join(MODES)} (or True / False), got {value!r}")


class TunedShapes:
    """The shapes an Inductor cache folder holds tunings for, by key (torch version, GPU, network, precision,
    shape). Only a hint for 'auto': a key whose tuning was evicted just means a background tuning."""

    def __init__(self, folder: str | os.PathLike | None) -> None:
        self.path = Path(folder) / TUNED_FILE if folder else None

    def _load(self) -> set[str]:
        if self.path is None:
            return set()
        try:
            keys = json.loads(self.path.read_text()).get("tuned", [])
        except (OSError, ValueError, AttributeError):
            return set()
        return {k for k in keys if isinstance(k, str)}

    def __contains__(self, key: str) -> bool:
        return key in self._load()

    def add(self, key: str) -> None:
        """Record a finished tuning (written whole, then renamed: a reader never sees half a file)."""
        if self.path is None or key in self:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps({"tuned": sorted(self._load() | {key})}, indent=1) + "\n")
            os.replace(tmp, self.path)
        except OSError:  # a read-only cache: 'auto' tunes in the foreground again next time
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass


#: replays of the uncompiled graph before the queued compiles start: a short run (`infer` of a few files, `view`)
#: never compiles, so it never waits at exit for a compile it would not use; a long one starts within a second
START_AFTER_REPLAYS = 100
#: Python's thread switch interval while a background compile runs (Python's default is 5 ms): the compiling thread
#: keeps the GIL up to one interval at a time, and a scan meanwhile waits for it. H200, scans during the compile:
#: wall p99 12.6-19.8 ms at 5 ms, 5.7-5.8 ms at 0.5 ms (bench/results/2026-12-02_h200_startup.log)
SWITCH_INTERVAL_S = 0.0005


class _ShortSwitches:
    """Process-wide: a shorter thread switch interval while any background compile runs, restored after the last
    unless something else changed it meanwhile, and never longer than it was."""

    _lock = threading.Lock()
    _depth = 0
    _saved: float | None = None

    def __enter__(self) -> None:
        cls = type(self)
        with cls._lock:
            if cls._depth == 0 and sys.getswitchinterval() > SWITCH_INTERVAL_S:
                cls._saved = sys.getswitchinterval()
                sys.setswitchinterval(SWITCH_INTERVAL_S)
            cls._depth += 1

    def __exit__(self, *exc: object) -> None:
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0 and cls._saved is not None:
                if math.isclose(sys.getswitchinterval(), SWITCH_INTERVAL_S):
                    sys.setswitchinterval(cls._saved)
                cls._saved = None


class BackgroundCompiles:
    """Compile jobs, one worker thread per input shape. A job is queued on its shape's first call (which the GPU
    pipeline captures with the uncompiled module) and started after start_after replays (note_replay) or by start().
    From then on the process calls no torch module until the job ends (the pipeline replays graphs, and waits for
    the job before running or capturing anything new): FX's tracer, which Inductor uses, patches
    torch.nn.Module.__call__ for every thread, and a module called on another thread meanwhile fails (seen on an
    H200)."""

    def __init__(self, log: Callable[[str], None] | None = None, start_after: int = START_AFTER_REPLAYS) -> None:
        self._log = log or (lambda msg: None)
        self.start_after, self._replays = int(start_after), 0
        self._lock = threading.Lock()
        self._queued: dict[Hashable, Callable[[], None]] = {}
        self._threads: dict[Hashable, threading.Thread] = {}
        self.ready: set[Hashable] = set()
        self.failed: dict[Hashable, str] = {}

    @property
    def version(self) -> int:
        """Grows each time a shape's compiled module becomes ready (the pipeline then recaptures its graphs)."""
        return len(self.ready)

    @property
    def queued(self) -> bool:
        return bool(self._queued)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in list(self._threads.values()))

    @property
    def pending(self) -> bool:
        """True while a requested shape is neither compiled nor given up on."""
        return self.queued or self.running

    def request(self, shape: Hashable, job: Callable[[], None]) -> None:
        """Queue `job` for `shape` unless it is queued, running, done or failed."""
        with self._lock:
            if not (shape in self.ready or shape in self.failed or shape in self._threads or shape in self._queued):
                self._queued[shape] = job

    def note_replay(self) -> None:
        """The pipeline replayed a graph of the uncompiled module while a job is queued: the start_after-th time,
        start the queued jobs."""
        self._replays += 1
        if self._replays >= self.start_after:
            self.start()

    def start(self) -> None:
        """Start every queued job on a worker thread of its own."""
        with self._lock:
            jobs, self._queued = self._queued, {}
            threads = [threading.Thread(target=self._run, args=(shape, job), daemon=True,
                                        name=f"pointpillars_trt compile {shape}") for shape, job in jobs.items()]
            self._threads.update(zip(jobs, threads))
        for t in threads:
            t.start()

    def _run(self, shape: Hashable, job: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        name = list(shape) if isinstance(shape, tuple) else shape
        try:
            with _ShortSwitches():
                job()
        except Exception as e:  # the uncompiled module keeps serving this shape
            why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            with self._lock:
                self.failed[shape] = why
            self._log(f"background compile for shape {name} failed ({why}); the uncompiled network keeps running")
            return
        with self._lock:
            self.ready.add(shape)
        self._log(f"compiled in the background in {time.perf_counter() - t0:.1f} s; the next scan of shape {name} "
                  f"captures it")

    def wait(self, timeout: float | None = None) -> bool:
        """Start every queued job and wait for all (at most `timeout` seconds); True when none is pending."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in list(self._threads.values()):
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.pending

    def close(self) -> None:
        """Forget queued jobs and wait for running ones (a thread inside Inductor cannot be stopped safely)."""
        with self._lock:
            self._queued.clear()
        if self.running:
            self._log("waiting for the background compile to finish (a few seconds; it cannot be stopped halfway)")
        for t in list(self._threads.values()):
            t.join()

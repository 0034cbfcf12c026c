"""When the torch backend's RPN goes through Inductor, for each input shape (compile=):
- now: the shape's first call compiles, and tunes if this cache never did (about a minute on a fresh machine);
- auto (the default): no call ever waits for Inductor. The first calls run the uncompiled module (captured in the
  pipeline's graph). Where this cache already tuned the shape, a worker thread compiles from the tuning after
  START_AFTER_REPLAYS replays (seconds). Where it did not, a child process tunes once the run proves long
  (TUNE_AFTER_REPLAYS replays over TUNE_AFTER_S seconds), into the same cache, and the worker thread then compiles
  from it. The tuning stays in the cache for every later process; `tune` (or compile='now') tunes ahead of a run;
- off: never.

Why: the README's first command on a fresh H100 took 127.6 s when the first call tuned (about 57 s of it waiting on
Inductor's autotuning, in a profile), for one scan whose uncompiled RPN takes about 1 ms. With warm caches, compiling
still costs 3-5 s of Dynamo and Inductor in every new process (H200: first detection 9.1-9.4 s compiled against
3.6-4.0 s uncompiled, bench/results/2026-12-02_h200_startup-compile.log), while the compiled RPN saves about 0.2 ms a scan. The tuning runs in a process of its own, not on the worker thread:
it holds no GIL the scans need, patches nothing in this process (FX's tracer patches torch.nn.Module.__call__ for
every thread), never blocks a new shape for a minute, and can be stopped when the run ends first. It shares the GPU
with the scans meanwhile, so its picks may be a little off those of `tune` on an idle GPU.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import signal
import subprocess
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


def first_call_plan(mode: str, tuned: bool) -> str:
    """What a shape's first call does under compile mode `mode`, given whether this cache tuned the shape: 'now'
    (compile, tuning if need be, before answering), 'background' (answer uncompiled; compile from the tuning on a
    worker thread), 'tune' (answer uncompiled; tune in a child process once the run is long, then as 'background'),
    'off'. 'auto' never answers 'now': no first detection waits for Inductor."""
    if mode == "auto":
        return "background" if tuned else "tune"
    return mode


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
#: a tuning starts once the uncompiled graph has been replayed this many times over at least this many seconds: a run
#: that has lasted about as long as a tuning takes is taken to last as long again, long enough for the tuning to end
#: while it runs and pay itself back; a folder of a few thousand scans (seconds) never starts one
TUNE_AFTER_REPLAYS = 1000
TUNE_AFTER_S = 60.0
#: at most this often a replay looks whether a tuning process has ended
POLL_S = 0.5
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
    """Compile jobs, one worker thread per input shape, and the tunings before them, one child process per shape.

    A compile job is queued on its shape's first call (which the GPU pipeline captures with the uncompiled module)
    and started after start_after replays (note_replay) or by start(). From then on the process calls no torch module
    until the job ends (the pipeline replays graphs, and waits for the job before running or capturing anything new):
    FX's tracer, which Inductor uses, patches torch.nn.Module.__call__ for every thread, and a module called on
    another thread meanwhile fails (seen on an H200). A tuning (request_tuning) starts after tune_after replays over
    tune_after_s seconds, or on wait(); its process shares nothing with this one but the GPU and the cache folder,
    so the pipeline runs and captures freely meanwhile; when it succeeds, its compile job is queued and started."""

    def __init__(self, log: Callable[[str], None] | None = None, start_after: int = START_AFTER_REPLAYS,
                 tune_after: int = TUNE_AFTER_REPLAYS, tune_after_s: float = TUNE_AFTER_S) -> None:
        self._log = log or (lambda msg: None)
        self.start_after, self._replays = int(start_after), 0
        self.tune_after, self.tune_after_s = int(tune_after), float(tune_after_s)
        self._first_replay: float | None = None
        self._last_poll = 0.0
        self._lock = threading.Lock()
        self._queued: dict[Hashable, Callable[[], None]] = {}
        self._threads: dict[Hashable, threading.Thread] = {}
        #: shape -> (start the tuning process, the compile job after it) / (process, its log, the job, start time)
        self._tunings: dict[Hashable, tuple[Callable[[], tuple[subprocess.Popen, Path]], Callable[[], None]]] = {}
        self._tuners: dict[Hashable, tuple[subprocess.Popen, Path, Callable[[], None], float]] = {}
        self.ready: set[Hashable] = set()
        self.failed: dict[Hashable, str] = {}

    @property
    def version(self) -> int:
        """Grows each time a shape's compiled module becomes ready (the pipeline then recaptures its graphs)."""
        return len(self.ready)

    @property
    def queued(self) -> bool:
        """A compile or a tuning waits for its start."""
        return bool(self._queued or self._tunings)

    @property
    def running(self) -> bool:
        """A compile runs on a worker thread (no torch module may be called meanwhile); tunings do not count."""
        return any(t.is_alive() for t in list(self._threads.values()))

    @property
    def tuning(self) -> bool:
        return bool(self._tuners)

    @property
    def listening(self) -> bool:
        """The pipeline should call note_replay: something waits for replays, or a tuning process may have ended."""
        return bool(self._queued or self._tunings or self._tuners)

    @property
    def pending(self) -> bool:
        """True while a requested shape is neither compiled nor given up on."""
        return self.queued or self.running or self.tuning

    def _known(self, shape: Hashable) -> bool:
        return any(shape in d for d in (self.ready, self.failed, self._threads, self._queued, self._tunings,
                                        self._tuners))

    def request(self, shape: Hashable, job: Callable[[], None]) -> None:
        """Queue `job` for `shape` unless the shape is queued, tuning, compiling, done or failed."""
        with self._lock:
            if not self._known(shape):
                self._queued[shape] = job

    def request_tuning(self, shape: Hashable, spawn: Callable[[], tuple[subprocess.Popen, Path]],
                       job: Callable[[], None]) -> None:
        """Queue a tuning for `shape`: spawn() starts its process (returns it and its log file) once the run proves
        long or on wait(); when the process succeeds, `job` compiles from the cache it filled."""
        with self._lock:
            if not self._known(shape):
                self._tunings[shape] = (spawn, job)

    def note_replay(self) -> None:
        """The pipeline replayed a graph of the uncompiled module while something listens: start the queued compiles
        at the start_after-th replay, the queued tunings once the run is long, and look at the running tunings."""
        now = time.monotonic()
        if self._first_replay is None:
            self._first_replay = now
        self._replays += 1
        if self._queued and self._replays >= self.start_after:
            self.start()
        if self._tunings and self._replays >= self.tune_after and now - self._first_replay >= self.tune_after_s:
            self.start_tuning()
        if self._tuners and now - self._last_poll >= POLL_S:
            self._last_poll = now
            self._poll_tuners()

    def start(self) -> None:
        """Start every queued compile job on a worker thread of its own."""
        with self._lock:
            jobs, self._queued = self._queued, {}
            threads = [threading.Thread(target=self._run, args=(shape, job), daemon=True,
                                        name=f"pointpillars_trt compile {shape}") for shape, job in jobs.items()]
            self._threads.update(zip(jobs, threads))
        for t in threads:
            t.start()

    def start_tuning(self) -> None:
        """Start every queued tuning in its process."""
        with self._lock:
            tunings, self._tunings = self._tunings, {}
        for shape, (spawn, job) in tunings.items():
            try:
                proc, log_file = spawn()
            except Exception as e:  # noqa: BLE001  (the uncompiled module keeps serving the shape)
                self._give_up(shape, f"the tuning process did not start ({_first_line(e)})")
                continue
            _LIVE.add(proc)
            with self._lock:
                self._tuners[shape] = (proc, log_file, job, time.perf_counter())
            self._log(f"tuning the RPN for shape {_name(shape)} with Inductor in a background process (pid "
                      f"{proc.pid}, about a minute; scans go on uncompiled meanwhile; the tuning is kept for later runs)")

    def _poll_tuners(self) -> None:
        """Queue and start the compile of each tuning that ended well; give up on those that failed."""
        for shape, (proc, log_file, job, t0) in list(self._tuners.items()):
            rc = proc.poll()
            if rc is None:
                continue
            _LIVE.discard(proc)
            log_file.with_suffix(".pt").unlink(missing_ok=True)  # the network it was given, if it never read it
            with self._lock:
                del self._tuners[shape]
            if rc != 0:
                self._give_up(shape, f"the tuning process ended with exit status {rc}; its output: {log_file}")
                continue
            log_file.unlink(missing_ok=True)
            self._log(f"tuned shape {_name(shape)} in {time.perf_counter() - t0:.0f} s; compiling from the tuning")
            self.request(shape, job)
            self.start()

    def _give_up(self, shape: Hashable, why: str) -> None:
        with self._lock:
            self.failed[shape] = why
        self._log(f"background compile for shape {_name(shape)} failed ({why}); the uncompiled network keeps running")

    def _run(self, shape: Hashable, job: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        try:
            with _ShortSwitches():
                job()
        except Exception as e:  # noqa: BLE001  (the uncompiled module keeps serving this shape)
            self._give_up(shape, _first_line(e))
            return
        with self._lock:
            self.ready.add(shape)
        self._log(f"compiled in the background in {time.perf_counter() - t0:.1f} s; the next scan of shape "
                  f"{_name(shape)} captures it")

    def wait(self, timeout: float | None = None) -> bool:
        """Start every queued tuning and compile and wait for all (at most `timeout` seconds); True when none is
        pending."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.start_tuning()
        while self._tuners and (deadline is None or time.monotonic() < deadline):
            self._poll_tuners()
            if self._tuners:
                time.sleep(0.1)
        self.start()
        for t in list(self._threads.values()):
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.pending

    def close(self) -> None:
        """Forget queued work, stop running tunings (the run ended first: the next run starts over) and wait for
        running compiles (a thread inside Inductor cannot be stopped safely)."""
        with self._lock:
            self._queued.clear()
            self._tunings.clear()
            tuners, self._tuners = self._tuners, {}
        for proc, log_file, _, _ in tuners.values():
            if proc.poll() is None:
                self._log("stopping the RPN's background tuning: the run ended first (`python -m pointpillars_trt "
                          "tune` tunes ahead of a run)")
                _stop(proc)
            _LIVE.discard(proc)
            for f in (log_file, log_file.with_suffix(".pt")):
                f.unlink(missing_ok=True)
        if self.running:
            self._log("waiting for the background compile to finish (a few seconds; it cannot be stopped halfway)")
        for t in list(self._threads.values()):
            t.join()


def _name(shape: Hashable) -> object:
    return list(shape) if isinstance(shape, tuple) else shape


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


#: tuning processes still running: stopped at exit if a pipeline was never closed
_LIVE: set[subprocess.Popen] = set()


def _stop(proc: subprocess.Popen) -> None:
    """End a tuning process and the autotuning workers it started (its own process group)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@atexit.register
def _stop_live() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            _stop(proc)

"""A cold start's CUDA kernels compiled side by side, not one after another.

Numba compiles a kernel on its first launch, under one process-wide lock: the 17 kernels of a scan took about 8 s of
a cold first scan on an H200 (profiled: a 32.1 s first scan holding a 23.7 s Inductor compile, against 3.4 s
warm) and take 17 s for their PTX alone on this project's 2-core CI machine
(tests/test_cuda_compile.py). Before a pipeline's first launch, its first scan runs once with every Numba launch
recorded instead of run (record), the kernels Numba's disk cache (cache=True) lacks are compiled by child processes
at once, each writing its kernels into that cache (fill), while this process runs the RPN's first call (cuDNN's
tuning), and then every kernel is loaded from the cache (load). A warm process only loads. A kernel a child did not
deliver is compiled here on load, as before; $POINTPILLARS_TRT_KERNEL_PROCESSES=0 keeps that slower path, to compare.

Run as `python -m pointpillars_trt.pipelines.kernel_cache SHARE.pkl` (a child: compiles the kernels it names).
"""
from __future__ import annotations

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from pointpillars_trt import phases
from pointpillars_trt.errors import UserError

ENV_VAR = "POINTPILLARS_TRT_KERNEL_PROCESSES"
#: child processes at most: each imports Numba and opens a CUDA context (about a second, and a few hundred MiB of
#: device memory), then compiles its share
MAX_PROCESSES = 8
#: the folder that holds the package, for the children's import path (a source checkout run without installing)
PACKAGE_ROOT = Path(__file__).resolve().parents[2]

Launch = tuple[Any, tuple]  # (Numba CUDA dispatcher, argument types)

_patch_lock = threading.Lock()
_local = threading.local()


@contextmanager
def recording() -> Iterator[list[Launch]]:
    """Numba CUDA launches made by this thread inside the block are recorded (dispatcher, argument types), not run;
    other threads launch as usual."""
    from numba.cuda.dispatcher import CUDADispatcher

    calls: list[Launch] = []
    with _patch_lock:
        original = CUDADispatcher.call

        def call(self: Any, args: tuple, launch_config: Any) -> Any:
            log = getattr(_local, "calls", None)
            if log is None:
                return original(self, args, launch_config)
            log.append((self, tuple(self.typeof_pyval(a) for a in args)))
            return None

        CUDADispatcher.call = call
        _local.calls = calls
        try:
            yield calls
        finally:
            _local.calls = None
            CUDADispatcher.call = original


def unique(launches: list[Launch]) -> list[Launch]:
    """Each (kernel, argument types) once, in first-launch order."""
    seen, out = set(), []
    for disp, sig in launches:
        if (id(disp), sig) not in seen:
            seen.add((id(disp), sig))
            out.append((disp, sig))
    return out


def missing(launches: list[Launch]) -> list[Launch]:
    """The launches whose kernel is neither loaded in this process nor in Numba's disk cache. Where the cache cannot
    be asked (caching off, or a Numba that keeps it otherwise), a kernel counts as cached: it compiles here on load."""
    out = []
    for disp, sig in unique(launches):
        if sig in disp.overloads:
            continue
        try:
            cache = disp._cache
            if cache._index_key(sig, disp.targetctx.codegen()) in cache._cache_file._load_index():
                continue
        except Exception:  # noqa: BLE001  (only an optimisation: never stop a scan)
            continue
        out.append((disp, sig))
    return out


def processes(kernels: int) -> int:
    """Child processes for `kernels` kernels: $POINTPILLARS_TRT_KERNEL_PROCESSES, else one a CPU core up to
    MAX_PROCESSES; none for a single core (a child would only add its start)."""
    given = os.environ.get(ENV_VAR)
    if given is not None:
        try:
            n = int(given)
        except ValueError:
            raise UserError(f"${ENV_VAR} must be a whole number of processes (0: compile in this process), "
                            f"got {given!r}") from None
    else:
        n = min(MAX_PROCESSES, os.cpu_count() or 1)
        n = n if n > 1 else 0
    return max(0, min(n, kernels))


def _shares(launches: list[Launch], n: int) -> list[list[tuple[str, str, list[tuple]]]]:
    """(module, name, [argument types]) per kernel, dealt round-robin into n shares: all of a kernel's signatures go
    to one child, since a kernel's cache index is one file its compiles rewrite."""
    kernels: dict[int, tuple[str, str, list[tuple]]] = {}
    for disp, sig in launches:
        f = disp.py_func
        kernels.setdefault(id(disp), (f.__module__, f.__qualname__, []))[2].append(sig)
    items = list(kernels.values())
    return [items[i::n] for i in range(n) if items[i::n]]


class Fill:
    """Child processes compiling their shares of kernels into Numba's disk cache (started by __init__)."""

    def __init__(self, launches: list[Launch], n: int) -> None:
        self.kernels = len({id(d) for d, _ in launches})
        env = phases.without(dict(os.environ))  # the children's own phases would overwrite this process's
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
        self._folder = tempfile.TemporaryDirectory(prefix="pointpillars_trt_kernels_")
        self._procs: list[tuple[subprocess.Popen, Any]] = []
        for i, share in enumerate(_shares(launches, n)):
            path = Path(self._folder.name) / f"share{i}.pkl"
            path.write_bytes(pickle.dumps(share))
            err = tempfile.TemporaryFile()
            proc = subprocess.Popen([sys.executable, "-m", __name__, str(path)], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, env=env)
            self._procs.append((proc, err))

    @property
    def processes(self) -> int:
        return len(self._procs)

    def wait(self) -> list[str]:
        """Wait for every child; one line for each that failed (its kernels then compile in this process)."""
        failed = []
        for proc, err in self._procs:
            rc = proc.wait()
            err.seek(0)
            lines = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
            err.close()
            if rc != 0:
                failed.append(f"exit status {rc}: {lines[-1] if lines else 'no output'}")
        self._folder.cleanup()
        return failed


def load(launches: list[Launch]) -> None:
    """Every kernel loaded into this process: from Numba's disk cache, or compiled here where it is not there."""
    for disp, sig in unique(launches):
        disp.compile(sig)


def prepare(record: Callable[[], None], warm: Callable[[], None], log: Callable[[str], None]) -> None:
    """record() runs a first scan whose Numba launches are recorded; the missing kernels are compiled by child
    processes while warm() runs here; then every kernel is loaded. Counts go to the start-up phases."""
    with recording() as launches:
        record()
    todo = missing(launches)
    n = processes(len({id(d) for d, _ in todo}))
    t0 = time.perf_counter()
    fill = None
    if todo and n:
        try:
            fill = Fill(todo, n)
        except OSError as e:  # no child processes here: compile in this one
            log(f"could not start processes to compile the CUDA kernels ({e}); compiling them here")
    if fill is not None:
        log(f"compiling {fill.kernels} CUDA kernels in {fill.processes} processes (once per machine: Numba's cache)")
    warm()
    failed = fill.wait() if fill is not None else []
    for why in failed:
        log(f"a kernel-compiling process failed ({why}); its kernels compile here")
    load(launches)
    kernels = len({id(d) for d, _ in launches})
    compiled = len({id(d) for d, _ in todo})
    phases.note("CUDA kernels", f"{kernels} kernels, {compiled} not in Numba's cache: "
                + (f"compiled in {fill.processes} processes" if fill else "compiled here" if compiled else "none")
                + f"; {time.perf_counter() - t0:.2f} s with the RPN's first call beside")
    phases.mark("CUDA kernels (compile or load) and the RPN's first call")


def prepare_pipeline(pipe: Any, key: tuple, log: Callable[[str], None]) -> None:
    """prepare() for a GpuPipeline's first launch of `key` (batch, capacity, source, host slot, device slot): the
    recorded scan skips the networks, except a runner that only launches Numba kernels (numba_kernels: its launch
    is recorded with the others); the RPN's first call runs beside the compiling children."""
    from pointpillars_trt.model import tensor_names as tn

    real = pipe.pfn, pipe.rpn
    ds, batch = pipe.devs[key[4]], key[0]

    def record() -> None:
        pipe.pfn, pipe.rpn = (r if getattr(r, "numba_kernels", False) else _Silent(r) for r in real)
        try:
            pipe.enqueue(*key[:4])
        finally:
            pipe.pfn, pipe.rpn = real
        ds.stream.synchronize()

    def warm() -> None:
        pipe.rpn.infer({tn.RPN_INPUT: ds.canvas[:batch]}, {k: v[:batch] for k, v in ds.heads.items()},
                       ds.stream.handle)
        ds.stream.synchronize()

    prepare(record, warm, log)


class _Silent:
    """A runner whose infer does nothing (the recorded first scan skips the networks)."""

    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._runner, name)

    def infer(self, *args: Any, **kwargs: Any) -> None:
        return None


def main(argv: list[str] | None = None) -> int:
    """A child: compile the kernels of the share file named on the command line into Numba's disk cache."""
    args = sys.argv[1:] if argv is None else argv
    share = pickle.loads(Path(args[0]).read_bytes())
    from numba import cuda

    cuda.current_context()  # a compile binds the kernel to a context (and writes its cubin into the cache)
    for module, name, sigs in share:
        disp = getattr(importlib.import_module(module), name)
        for sig in sigs:
            disp.compile(sig)
    return 0


if __name__ == "__main__":
    sys.exit(main())

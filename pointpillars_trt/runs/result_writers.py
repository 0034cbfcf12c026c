"""Writing a folder run's result files beside the detector, a chunk of scans (one batch) per task: on threads, or in
writer processes. Formatting a result holds the GIL, so on threads it competes with the loop that feeds the GPU and
with the reader threads; processes format and write on their own cores and get small arrays per chunk (the run's
settings once, when they start). Writer processes ignore SIGINT (Ctrl-C reaches the whole process group: the chunk
in hand is finished and the run decides what follows) and die with the run (a kill -9 of it leaves no writer behind).
"""
from __future__ import annotations

import os
import pickle
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.helper_processes import become_helper, spawning
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.result_files import ResultFolder, ScanJob

WRITERS = ("auto", "threads", "processes")
#: writer threads: file calls release the GIL, so two overlap one's formatting with the other's writes
WRITE_THREADS = 2
#: writer processes at most (one per 3 cores): a JSON and a KITTI txt a scan cost one of them about 1 ms
#: (bench/results/2026-12-06_cpu-2core_folder-host.md), so 5 on 16 cores keep up with 2500 scans/s with margin
MAX_WRITE_PROCESSES = 6
#: "auto" starts processes for runs of at least this many scans (starting them costs about 0.3 s each on 2 cores)
PROCESS_MIN_SCANS = 256


def writer_kind(writers: str, scans: int) -> str:
    """'threads' or 'processes' for a run of `scans` scans: auto takes processes for long runs on 4+ cores."""
    if writers not in WRITERS:
        raise UserError(f"writers must be one of {', '.join(WRITERS)}, got {writers!r}")
    if writers != "auto":
        return writers
    return "processes" if scans >= PROCESS_MIN_SCANS and (os.cpu_count() or 1) >= 4 else "threads"


class ResultWriters:
    """Writes chunks of (job, detections) into a ResultFolder; submit() gives a Future of one outcome per scan:
    None (its files are written whole) or the exception that failed it."""

    def __init__(self, folder: ResultFolder, class_names: Sequence[str], meta: dict[str, Any], kind: str) -> None:
        self.kind = kind
        self._local = (folder, tuple(class_names), meta)
        self._pool: Executor
        if kind == "threads":
            self._pool = ThreadPoolExecutor(WRITE_THREADS, thread_name_prefix="result-write")
            return
        import multiprocessing

        n = max(1, min(MAX_WRITE_PROCESSES, (os.cpu_count() or 2) // 3))
        self._pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                                         initargs=(str(folder.out), folder.settings, tuple(class_names), meta))
        with spawning():  # each starts its process now (they are spawned on demand, one a busy submit)
            for _ in range(n):
                self._pool.submit(os.getpid)

    def submit(self, items: Sequence[tuple[ScanJob, Detections]]) -> Future:
        """Write these scans' files (in order) on a writer."""
        jobs = [job for job, _ in items]
        if self.kind == "threads":
            return self._pool.submit(write_chunk, *self._local, jobs, [d for _, d in items])
        dets = [d for _, d in items]
        return self._pool.submit(_write_in_process, jobs, np.concatenate([d.boxes.reshape(-1, 7) for d in dets]),
                                 np.concatenate([d.scores for d in dets]), np.concatenate([d.labels for d in dets]),
                                 np.cumsum([0] + [len(d) for d in dets]))

    def __enter__(self) -> "ResultWriters":
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)


def write_chunk(folder: ResultFolder, class_names: Sequence[str], meta: dict[str, Any], jobs: Sequence[ScanJob],
                dets: Sequence[Detections]) -> list[Exception | None]:
    """Each job's files (ResultFolder.write, meta + the scan's path); a scan that cannot be written gets its
    exception, the others are still written."""
    out: list[Exception | None] = []
    for job, d in zip(jobs, dets):
        try:
            folder.write(job, d, class_names, {"scan": str(job.source), **meta})
            out.append(None)
        except Exception as e:  # noqa: BLE001  a file that cannot be written fails its scan, not the run
            out.append(e)
    return out


_STATE: tuple[ResultFolder, tuple[str, ...], dict[str, Any]] | None = None


def _start(out: str, settings: dict, class_names: tuple[str, ...], meta: dict[str, Any]) -> None:
    """A writer process's set-up: no KeyboardInterrupt, death with the run (Linux), the run's folder and meta."""
    global _STATE
    become_helper()
    _STATE = (ResultFolder(out, settings), class_names, meta)


def _write_in_process(jobs: Sequence[ScanJob], boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                      offsets: np.ndarray) -> list[Exception | None]:
    assert _STATE is not None
    dets = [Detections(boxes[a:b], scores[a:b], labels[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
    return [_picklable(e) for e in write_chunk(*_STATE, jobs, dets)]


def _picklable(e: Exception | None) -> Exception | None:
    """The exception as it is when it crosses back to the run, else one that says the same in its type and text."""
    if e is None:
        return None
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(e).__name__}: {e}")

"""A folder run in one process at the GPU's pace: files read ahead of the detector (in reader processes for long
runs, io.read_processes; else on threads), batches on the GPU
(Detector.stream: batch i+1 queued while batch i runs), result files formatted and written a batch at a time by
writer processes or threads (runs.result_writers), each step overlapping the others; finished results skipped, a Ctrl-C finishing what is in flight."""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import Future
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from pointpillars_trt import log
from pointpillars_trt.api import Detector
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.io.points import PointReader
from pointpillars_trt.io.result_files import ResultFolder, ScanJob
from pointpillars_trt.pipelines.cpu import ScanResult
from pointpillars_trt.runs.interrupt import stop_on_interrupt
from pointpillars_trt.pipelines.prefetch import MAX_READ_THREADS
from pointpillars_trt.runs.result_writers import PROCESS_MIN_SCANS, ResultWriters, writer_kind
from pointpillars_trt.runs.summary import FolderSummary, named, reason

#: seconds between progress lines off a terminal
PROGRESS_SECONDS = 5.0
READERS = ("auto", "threads", "processes")


@dataclass
class Done:
    """One scan's outcome, handed to on_result in input order once its files are written."""

    job: ScanJob
    detector: Detector
    result: ScanResult
    detections: Detections  # after the run's score threshold
    read_info: Any  # what the reader returned beside the points (io.points.ScanStats), or None
    index: int  # 0 for the run's first scan (its time includes warm-up)


def run_settings(model_id: str, precision: str, score_thresh: float, reader: dict[str, Any] | None = None) -> dict:
    """What a result depends on besides its scan, recorded in each JSON: results of other settings are not mixed."""
    return {"model_id": model_id, "precision": precision, "score_thresh": float(score_thresh), "reader": reader or {}}


def run_jobs(detector: Detector, jobs: Sequence[ScanJob], folder: ResultFolder | None = None, *,
             read: Callable[[Any], Any] | None = None, score_thresh: float | None = None,
             on_result: Callable[[Done], None] | None = None, fail_fast: bool = False,
             progress: bool = True, writers: str = "auto", readers: str = "auto") -> FolderSummary:
    """Detect every job's scan and write its files into `folder` (none: only on_result sees them), overlapping
    reading, the detector and writing. read(source) gives points, or (points, info); a scan that fails is counted
    with its reason (fail_fast: raised, as a UserError naming the scan when it is one). writers: threads, processes
    or auto (result_writers.writer_kind); readers: the same for reading (reader_kind). The first Ctrl-C stops feeding scans: those in flight are finished and
    written, and the summary says interrupted. progress: a bar on a terminal, else a line every PROGRESS_SECONDS."""
    summary = FolderSummary(total=len(jobs), out=folder.out if folder else None)
    if not jobs:
        return summary
    kind, rkind = writer_kind(writers, len(jobs)), reader_kind(readers, jobs, read)
    fed: deque[ScanJob] = deque()
    info: dict[int, deque] = {}  # id(source) -> what the reader returned beside the points (a source given twice: two)
    pending: deque[tuple[list[Done], Future | None]] = deque()  # chunks of results waiting for their files
    chunk: list[Done] = []
    size = max(1, detector.max_batch)  # scans per writer task: a batch
    limit = 5  # chunks waiting for their files at most (memory stays flat)
    meta = {"model": detector.description, "untrained": detector.untrained}
    shown = Progress(len(jobs), progress)

    def finish(block: bool) -> None:
        while pending and (block or len(pending) > limit or pending[0][1] is None or pending[0][1].done()):
            dones, fut = pending.popleft()
            try:
                outcomes = fut.result() if fut is not None else [None] * len(dones)
            except Exception as e:  # noqa: BLE001  a writer that died fails its chunk's scans, not the run
                outcomes = [e] * len(dones)
            for done, failure in zip(dones, outcomes):
                if failure is not None:
                    _failed(summary, done.job, failure, fail_fast)
                    continue
                summary.done += 1
                if on_result is not None:
                    on_result(done)
            shown.update(len(dones))

    def hand_over() -> None:
        if chunk:
            pending.append((chunk[:], writer.submit([(d.job, d.detections) for d in chunk]) if writer else None))
            chunk.clear()
        finish(block=False)

    said: list[bool] = []  # whether the interruption was announced (here, not in the signal handler)

    def announce() -> None:
        if not said:
            said.append(True)
            log.warn("interrupted: finishing the scans in flight (Ctrl-C again stops at once)")

    with stop_on_interrupt() as stop, \
            (ResultWriters(folder, detector.cfg.class_names, meta, kind) if folder else nullcontext()) as writer, \
            (_reader_processes(read) if rkind == "processes" else nullcontext()) as procs:
        read_one = _keeping_info(procs or read or read_default, info)

        def feed() -> Iterator[Any]:
            for job in jobs:
                if stop.is_set():
                    announce()
                    return
                fed.append(job)
                yield job.source

        t0 = time.perf_counter()
        try:
            for k, (src, res) in enumerate(detector.stream(feed(), prefetch=2 * size, read=read_one)):
                job = fed.popleft()
                extra = info[id(src)].popleft() if info.get(id(src)) else None
                if isinstance(res, Exception):
                    _failed(summary, job, res, fail_fast)
                else:
                    if not summary.warmup_scans:
                        summary.warmup_seconds, summary.warmup_scans = time.perf_counter() - t0, size
                    dets = res.detections if score_thresh is None else res.detections.above(score_thresh)
                    chunk.append(Done(job, detector, res, dets, extra, k))
                if (k + 1) % size == 0:  # the stream hands out a batch's scans together: a chunk a batch
                    hand_over()
            hand_over()
            finish(block=True)
        finally:
            summary.seconds = time.perf_counter() - t0
            summary.warmup_scans = min(summary.warmup_scans, summary.done)
            summary.interrupted = stop.is_set()
            if stop.is_set():
                announce()
            shown.close()
    return summary


class Progress:
    """A bar on a terminal (tqdm, scans/s and time left); elsewhere a line every PROGRESS_SECONDS (a log, CI)."""

    def __init__(self, total: int, on: bool) -> None:
        self.total, self.n, self.t0 = total, 0, time.perf_counter()
        self.bar = log.progress(total=total, unit="scan", desc="infer", smoothing=0.05) if on and sys.stderr.isatty() else None
        self.next = self.t0 + PROGRESS_SECONDS if on and self.bar is None else float("inf")

    def update(self, n: int) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.perf_counter() >= self.next:
            now = time.perf_counter()
            self.next = now + PROGRESS_SECONDS
            rate = self.n / (now - self.t0)
            log.info(f"infer: {self.n} of {self.total} scans, {rate:.0f} scans/s, "
                     f"{(self.total - self.n) / rate if rate else 0:.0f} s left")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _failed(summary: FolderSummary, job: ScanJob, e: Exception, fail_fast: bool) -> None:
    """Count a failed scan with its one-line reason; with fail_fast raise (a UserError naming the scan)."""
    why = named(job.source, reason(e))
    if fail_fast:
        raise (UserError(why) if isinstance(e, UserError) else e) from None
    summary.failed.append((job.source, why))
    log.warn(f"failed, skipped: {why}")


def _keeping_info(read: Callable[[Any], Any], info: dict[int, deque]) -> Callable[[Any], Any]:
    """read, handing the detector the points only: what it returns beside them (points, info) goes to info[id(src)]."""
    def read_one(src: Any) -> Any:
        got = read(src)
        if isinstance(got, tuple):
            info.setdefault(id(src), deque()).append(got[1])
            return got[0]
        return got

    return read_one


def reader_kind(readers: str, jobs: Sequence[ScanJob], read: Callable[[Any], Any] | None) -> str:
    """'threads' or 'processes': auto takes reader processes for long runs on 4+ cores whose scans are files read
    with a PointReader (a custom read function, or bag messages, are read on threads)."""
    if readers not in READERS:
        raise UserError(f"readers must be one of {', '.join(READERS)}, got {readers!r}")
    files = (read is None or isinstance(read, PointReader)) and all(isinstance(j.source, (str, os.PathLike)) for j in jobs)
    if readers == "processes" and not files:
        raise UserError("reader processes read scan files with read_points' options (io.points.PointReader); these "
                        "scans come with another read function or are no files: use readers='threads'")
    if readers != "auto":
        return readers
    return "processes" if files and len(jobs) >= PROCESS_MIN_SCANS and (os.cpu_count() or 1) >= 4 else "threads"


def _reader_processes(read: Callable[[Any], Any] | None) -> Any:
    from pointpillars_trt.io.read_processes import ProcessReader

    return ProcessReader(read if isinstance(read, PointReader) else PointReader(), MAX_READ_THREADS)


def read_default(path: Any) -> Any:
    """A scan as io.points reads it by its extension: (points, ScanStats)."""
    from pointpillars_trt.io.points import read_points

    return read_points(path, with_stats=True)

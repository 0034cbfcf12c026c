"""Reading scans ahead on a thread pool while the pipeline runs, handing them out in input order."""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator

MAX_READ_THREADS = 4


def is_read(source: Any) -> bool:
    """Whether a source is read (a path, or a message that decodes itself: io.rosbag.BagScan.read_points) rather than
    passed through as points (arrays)."""
    return isinstance(source, (str, os.PathLike)) or callable(getattr(source, "read_points", None))


def prefetched(sources: Iterable[Any], read: Callable[[Any], Any], prefetch: int) -> Iterator[tuple[Any, Any]]:
    """(source, what read(source) returned or the exception it raised), in input order. Paths (str / PathLike) and
    bag messages (is_read) are read on up to MAX_READ_THREADS threads, at most `prefetch` ahead of the one handed
    out; other sources (arrays) pass through as they are."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(prefetch, MAX_READ_THREADS)), thread_name_prefix="scan-read")
    window: deque[tuple[Any, Future | None]] = deque()
    it = iter(sources)

    def fill() -> None:
        while len(window) <= prefetch:
            src = next(it, _END)
            if src is _END:
                return
            window.append((src, pool.submit(read, src) if is_read(src) else None))

    try:
        fill()
        while window:
            src, fut = window.popleft()
            fill()  # the next reads start before this one is handed out
            yield src, src if fut is None else _outcome(fut)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


_END = object()


def _outcome(fut: Future) -> Any:
    """The read's result, or its exception (one unreadable file is reported for its source; the rest go on)."""
    try:
        return fut.result()
    except Exception as e:
        return e


class Checked:
    """A scan read and checked on a reader thread (checked_reader): the batches take it as it is."""

    __slots__ = ("scan",)

    def __init__(self, scan: Any) -> None:
        self.scan = scan


def checked_reader(read: Callable[[Any], Any], check: Callable[[Any], Any]) -> Callable[[Any], Checked]:
    """read, then check (the detector's checks, giving the scan the pipeline takes), both on the reader's thread: the
    loop feeding the GPU only stages the scan (bench/tools.py folder-loop: checking there cost it 0.3 ms a scan,
    mostly waiting for the GIL)."""
    return lambda src: Checked(check(read(src)))


def read_scan(path: Any) -> Any:
    """A velodyne .bin, as io.kitti.read_bin reads it (NaN/Inf rows dropped, with a warning naming the file), or a
    bag message's points (io.rosbag.BagScan.read_points)."""
    from pointpillars_trt import log
    from pointpillars_trt.io.kitti import read_bin

    if not isinstance(path, (str, os.PathLike)):
        return path.read_points()
    points, rd = read_bin(path, with_stats=True)
    if rd.num_nonfinite:
        log.warn(f"{path}: dropped {rd.num_nonfinite} point(s) with NaN/Inf coordinates")
    return points

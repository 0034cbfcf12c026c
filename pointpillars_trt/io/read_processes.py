"""Reading scan files in reader processes, for a folder run's reader threads: each thread that calls a ProcessReader
gets a process of its own, sends it a path and receives the points over a pipe straight into a new array.

Why: in one process, reading and checking a scan holds the GIL for about 0.1 ms (opening, the float32/column checks
of io/bin_check.py, the NaN/Inf pass, Python around them), and the loop that feeds the GPU waits for the GIL behind
the reader threads (bench/tools.py folder-loop, py-spy --gil: reading was two thirds of the GIL's time). Here the
threads only wait on pipes (the GIL released) and copy nothing themselves: the kernel copies each scan once, from
the pipe into its array. The processes read exactly as read_points does (the same PointReader), so the points,
stats and refusals are the same; like writer processes they ignore Ctrl-C and die with the run (helper_processes)."""
from __future__ import annotations

import os
import queue
import struct
from typing import Any

import numpy as np

from pointpillars_trt.errors import UserError
from pointpillars_trt.helper_processes import become_helper, spawning
from pointpillars_trt.io.points import PointReader, ScanStats

_HEAD = struct.Struct("<iqq")  # status, then (rows, nonfinite) for points or (message bytes, 0) for a refusal
_OK, _REFUSED, _FAILED = 0, 1, 2
_PIPE_BYTES = 1 << 20  # a KITTI-size scan (0.3 MB) fits the pipe whole: its reader goes on to the next one at once
_F_SETPIPE_SZ = 1031


class ProcessReader:
    """read(path) -> (points [N, 4] float32, ScanStats), as reader(path) would give them, read in one of `processes`
    reader processes (one per calling thread at a time); a refusal is the same UserError. Close it (or use `with`)."""

    def __init__(self, reader: PointReader, processes: int) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # no fork of a process that holds CUDA state or threads
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._procs = []
        with spawning():
            for _ in range(max(1, processes)):
                req_r, req_w = ctx.Pipe(duplex=False)
                res_r, res_w = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_serve, args=(req_r, res_w, reader), daemon=True, name="scan-reader")
                p.start()
                req_r.close()
                res_w.close()
                _grow_pipe(res_r.fileno())
                self._procs.append((p, req_w, res_r))
                self._idle.put((req_w, res_r))

    def __call__(self, path: Any) -> tuple[np.ndarray, ScanStats]:
        ends = self._idle.get()
        try:
            return _ask(*ends, path)
        finally:
            self._idle.put(ends)

    def close(self) -> None:
        """Stop the reader processes (each finishes the scan in hand)."""
        for p, req_w, res_r in self._procs:
            req_w.close()  # its request pipe ends: the process returns
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
            res_r.close()
        self._procs.clear()

    def __enter__(self) -> "ProcessReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ask(req_w: Any, res_r: Any, path: Any) -> tuple[np.ndarray, ScanStats]:
    name = os.fsencode(path)
    _write_all(req_w.fileno(), struct.pack("<q", len(name)) + name)
    fd = res_r.fileno()
    status, a, b = _HEAD.unpack(_read_exact(fd, bytearray(_HEAD.size)))
    if status == _OK:
        pts = np.empty((a, 4), np.float32)
        _read_exact(fd, memoryview(pts).cast("B"))
        return pts, ScanStats(num_points=a, num_nonfinite=b)
    message = _read_exact(fd, bytearray(a)).decode("utf-8", "replace")
    raise UserError(message) if status == _REFUSED else RuntimeError(message)


def _serve(req: Any, res: Any, reader: PointReader) -> None:
    """A reader process: paths in, points (or the refusal's message) out, until the request pipe closes."""
    become_helper()
    rfd, wfd = req.fileno(), res.fileno()
    while True:
        try:
            (n,) = struct.unpack("<q", _read_exact(rfd, bytearray(8)))
        except EOFError:
            return
        path = os.fsdecode(bytes(_read_exact(rfd, bytearray(n))))
        try:
            pts, stats = reader(path)
            pts = np.ascontiguousarray(pts[:, :4], dtype=np.float32)
        except UserError as e:
            _reply(wfd, _REFUSED, str(e))
            continue
        except Exception as e:  # noqa: BLE001  reported against its scan, as a reader thread's would be
            _reply(wfd, _FAILED, f"{type(e).__name__}: {e}")
            continue
        _write_all(wfd, _HEAD.pack(_OK, len(pts), stats.num_nonfinite))
        _write_all(wfd, memoryview(pts).cast("B"))


def _reply(fd: int, status: int, message: str) -> None:
    data = message.encode("utf-8")
    _write_all(fd, _HEAD.pack(status, len(data), 0) + data)


def _read_exact(fd: int, buf: Any) -> Any:
    """Fill buf (bytearray or a writable memoryview) from fd; EOFError if the other end closed first."""
    view, got = memoryview(buf), 0
    while got < len(view):
        n = os.readv(fd, [view[got:]])
        if n == 0:
            raise EOFError("reader pipe closed")
        got += n
    return buf


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data)
    while len(view):
        view = view[os.write(fd, view):]


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)
    except (OSError, ImportError):
        pass  # the default 64 KiB works too, with more turns between the two ends

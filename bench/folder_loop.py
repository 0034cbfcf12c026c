"""The host ceiling of `infer DIR --out`: the real folder loop (runs.folder.infer_folder -> runs.single.run_jobs ->
Detector.stream: reader threads, per-scan checks, staging, the result split, writers, the per-scan line) with only
the network replaced by results computed once (the default model on the CPU), replayed per batch as the GPU
pipeline hands them out (its host slot's rows split per scan, runs.gpu's _result). A measurement tool, not a test:
what it prints is how fast this machine's host side can go, not whether the results are right."""
from __future__ import annotations

import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import deque
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

#: the main thread's parts, by function name (cProfile, which sees the thread that enables it only)
PARTS = {"_scan": "stream: as_scan + intensity check", "check": "pipeline.check", "_stage": "staging into the slot",
         "_result": "rows -> ScanResult/Detections", "above": "Detections.above", "_report_one": "per-scan line",
         "submit": "handing results to the writers", "finish": "collecting written results",
         "_outcome": "waiting for reads"}


class ReplayPipeline:
    """GpuPipeline's host side with no GPU: check, stage each scan into a [B, max_points, 4] slot, and split a
    [B, nout] row block into ScanResults (the rows are the real model's, looked up by the scan's point count)."""

    def __init__(self, cfg: Any, rows: dict[int, np.ndarray], max_batch: int, max_points: int = 150_000) -> None:
        from pointpillars_trt.stages.postprocess_cuda import HEADER

        self.cfg, self.max_batch, self.max_points, self.device_id, self.header = cfg, max_batch, max_points, 0, HEADER
        self.rows = rows
        self.slots = [np.zeros((max_batch, max_points, 4), np.float32) for _ in range(2)]
        self.out = [np.zeros((max_batch, next(iter(rows.values())).size), np.float32) for _ in range(2)]

    def check(self, scan: Any) -> int:
        if not isinstance(scan, np.ndarray) or scan.ndim != 2 or scan.shape[1] < 4 or scan.dtype != np.float32:
            raise ValueError("points must be a float32 [N, >=4] array")
        return len(scan)

    def _stage(self, scans: Sequence[np.ndarray], k: int) -> int:
        for b, scan in enumerate(scans):
            n = self.check(scan)
            self.slots[k][b, :n] = scan[:, :4]
            self.out[k][b] = self.rows[n]
        return len(scans)

    def _result(self, k: int, b: int, times: dict[str, float]) -> Any:
        from pointpillars_trt.io.detections import Detections
        from pointpillars_trt.pipelines.cpu import ScanResult
        from pointpillars_trt.stages.voxelize import VoxelStats

        row = self.out[k][b]
        h = row[:self.header].view(np.int32)
        ndet = int(h[0])
        dets = Detections.from_array(row[self.header: self.header + ndet * 9].reshape(ndet, 9).copy())
        return ScanResult(dets, VoxelStats(int(h[1]), int(h[2]), int(h[3]), int(h[4]), int(h[5])), times)

    def run_batches(self, batches: Iterable[Sequence[Any]]) -> Iterator[list[Any]]:
        pending: deque[tuple[int, int]] = deque()
        k = 0
        for scans in batches:
            pending.append((k, self._stage(scans, k)))
            k = 1 - k
            if len(pending) > 1:
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    def _collect(self, k: int, n: int) -> list[Any]:
        t = {"total": 0.009}
        return [self._result(k, b, dict(t)) for b in range(n)]

    def __exit__(self, *exc: object) -> None:
        pass


def replay_detector(scans: list[Path], max_batch: int) -> Any:
    """A Detector whose pipeline replays the default model's results for these scans (computed here on the CPU)."""
    from pointpillars_trt import Detector
    from pointpillars_trt.io.points import read_points
    from pointpillars_trt.stages.postprocess_cuda import HEADER

    with Detector.default(device="cpu") as det:
        rows = {}
        for s in scans:
            pts = read_points(s)
            res = det.run(pts)
            a = res.detections.as_array()
            row = np.zeros(HEADER + det.cfg.max_det * 9, np.float32)
            st = res.stats
            row[:HEADER].view(np.int32)[:6] = [len(a), st.num_pillars, st.points_in_range, st.points_kept,
                                               st.dropped_pillar_full, st.dropped_max_pillars]
            row[HEADER: HEADER + a.size] = a.ravel()
            if len(pts) in rows:
                raise SystemExit(f"two scans of {len(pts)} points: the replay tells scans apart by their point count")
            rows[len(pts)] = row
        ident, model, cfg = det.model_id, det._model, det.cfg
    pipe = ReplayPipeline(cfg, rows, max_batch)
    return Detector(pipe, cfg=cfg, model=model, backend="replay", device="cpu", precision="fp16",
                    description="replayed default-model results (no network)", max_batch=max_batch,
                    identity=lambda: ident), float(np.mean([r[:HEADER].view(np.int32)[0] for r in rows.values()]))


def folder_loop(args: Any) -> int:
    """infer_folder over N hard-linked scans with the network replayed: scans/s of the host side, then (--profile)
    where the main thread's time goes."""
    import argparse

    from pointpillars_trt.cli.infer import _report_one
    from pointpillars_trt.runs.folder import infer_folder
    from pointpillars_trt.runs.scan_links import linked_scans

    src = sorted(args.scans.glob("*.bin"))
    det, mean_dets = replay_detector(src, args.batch)
    tmp = Path(tempfile.mkdtemp(prefix="folder-loop-"))
    line_args = argparse.Namespace(show=0)
    sink = open(os.devnull, "w")
    try:
        paths = linked_scans(src, args.n, tmp / "scans")
        print(f"{len(src)} scans ({mean_dets:.1f} detections a scan), {args.n} names; {os.cpu_count()} cores; "
              f"batch {args.batch}; writers {args.writers}; readers {args.readers}; per-scan lines {'on' if args.lines else 'off'}")
        for rep in range(args.repeat):
            out = tmp / f"out{rep}"
            prof = cProfile.Profile() if args.profile and rep == args.repeat - 1 else None

            def on_result(done: Any) -> None:
                with redirect_stdout(sink):
                    _report_one(done, line_args)

            t, cpu = time.perf_counter(), os.times()
            if prof:
                prof.enable()
            s = infer_folder(det, paths, out, calib=args.calib, progress=False,
                             on_result=on_result if args.lines else None,
                             **({"writers": args.writers} if args.writers else {}),
                             **({"readers": args.readers} if args.readers else {}))
            if prof:
                prof.disable()
            wall, used = time.perf_counter() - t, [b - a for a, b in zip(cpu, os.times())]
            assert s.done == args.n and not s.failed, (s.done, s.failed[:3])
            print(f"run {rep + 1}: {s.done} scans in {s.seconds:.2f} s: {s.rate:.0f} scans/s in the loop "
                  f"({wall:.2f} s with planning); CPU a scan: {1e6 * (used[0] + used[1]) / s.done:.0f} us this "
                  f"process (all its threads), {1e6 * (used[2] + used[3]) / s.done:.0f} us reader and writer processes")
            if prof:
                _parts(prof, args.n)
            shutil.rmtree(out)
    finally:
        sink.close()
        det.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _parts(prof: cProfile.Profile, n: int) -> None:
    """The main thread's time per scan in PARTS (cumulative) and its top functions by own time."""
    st = pstats.Stats(prof)
    seen: dict[str, float] = {}
    for (file, _, name), (_, _, _, cum, _) in st.stats.items():
        if name in PARTS and "pointpillars_trt" in file or name in PARTS and "folder_loop" in file:
            seen[name] = seen.get(name, 0.0) + cum
    print("main thread, us a scan (cumulative):")
    for name, what in PARTS.items():
        if name in seen:
            print(f"  {1e6 * seen[name] / n:7.1f}  {what} ({name})")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(14)
    print("main thread, top functions by own time:")
    print("\n".join(l for l in buf.getvalue().splitlines() if l.strip()[:1].isdigit() or "ncalls" in l))

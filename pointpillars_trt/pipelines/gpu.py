"""The GPU pipeline: upload, voxelize -> PFN -> scatter -> RPN -> decode + NMS, download, on one stream; by default
one captured CUDA graph per (batch size, point-capacity bucket, input source, host slot), replayed for every scan.
The upload is a kernel that reads the scan's count and exactly its n points from mapped pinned memory.

Every buffer is allocated in __init__ (sized for max_points per scan and max_batch scans); stages share them by
address. Kernels read their counts (points, pillars, candidates) from device memory and launch over the bucket's
capacity, so nothing in a graph depends on a host-side count and a graph captured for one scan replays for any
other that fits its bucket. Buckets are powers of two from 16k points up to max_points: a sparse scan does not pay
for a dense one (the PFN runs on min(max_pillars, bucket) rows, the per-point kernels on `bucket` threads).
The launch-by-launch path (graph=False) enqueues exactly the same work without capture: the baseline `bench`
compares against, and the fallback. One stream synchronise per call, at the end.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from pointpillars_trt import phases
from pointpillars_trt.backends.base import Runner
from pointpillars_trt.errors import UserError
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.pipelines.cpu import STAGES, ScanResult
from pointpillars_trt.pipelines.graphs import TorchGraph, make_graph
from pointpillars_trt.pipelines.inputs import DevicePoints
from pointpillars_trt.pipelines.seam import numba_view
from pointpillars_trt.pipelines.slots import EVENTS, ROW, DeviceSlot, HostSlot
from pointpillars_trt.plugins.pillar_scatter import clear_pillars, scatter_pillars
from pointpillars_trt.stages.postprocess_cuda import HEADER
from pointpillars_trt.stages.upload_cuda import upload_points
from pointpillars_trt.stages.voxelize import VoxelStats

DEFAULT_MAX_POINTS = 400_000
MIN_BUCKET = 1 << 14


def point_buckets(max_points: int) -> tuple[int, ...]:
    """Capacities a scan is rounded up to: 16k, 32k, ... (powers of two below max_points), then max_points."""
    caps, c = [], MIN_BUCKET
    while c < max_points:
        caps.append(c)
        c *= 2
    return (*caps, int(max_points))


def require_gpu_stack() -> None:
    """UserError unless numba-cuda, cuda-python and a CUDA GPU are all usable here."""
    from pointpillars_trt.pipelines.cuda_runtime import _cudart, device_count

    _cudart()
    try:
        from numba import cuda
    except ImportError:
        raise UserError("the GPU path needs numba with CUDA support (pip install numba-cuda)") from None
    if device_count() == 0 or not cuda.is_available():
        raise UserError("no usable CUDA GPU found (cuda-python sees no device or numba.cuda.is_available() is False); "
                        "use --device cpu")


class GpuPipeline:
    """Runs scans (one, or a batch of up to max_batch) through two GPU runners (torch or TensorRT) and the kernels."""

    def __init__(self, cfg: PointPillarsConfig, pfn_runner: Runner, rpn_runner: Runner, max_batch: int = 1,
                 max_points: int = DEFAULT_MAX_POINTS, graph: bool = True, max_graphs: int = 24,
                 upload_kernel: bool = True, overlap_batches: bool = True,
                 log: Callable[[str], None] | None = None) -> None:
        require_gpu_stack()
        from numba import config as numba_config

        numba_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0  # small grids are the point here (counts read on device)
        for r in (pfn_runner, rpn_runner):
            if getattr(r, "device", "cpu") != "cuda":
                raise UserError(f"GpuPipeline needs GPU runners (device 'cuda'), got {r!r} on {r.device}")
        if max_batch < 1 or max_points < 1:
            raise UserError(f"max_batch and max_points must be at least 1, got {max_batch} and {max_points}")
        self.cfg, self.pfn, self.rpn = cfg, pfn_runner, rpn_runner
        self.max_batch, self.max_points = int(max_batch), int(max_points)
        self.use_graph, self.max_graphs = bool(graph), int(max_graphs)
        self.buckets = point_buckets(self.max_points)
        self._nout = HEADER + cfg.max_det * ROW
        self.upload_kernel = bool(upload_kernel)
        self.canvas_format = rpn_runner.input_format  # FP32 NCHW, or FP16 NHWC for the torch FP16 RPN
        self.devs = [self._device_slot()]  # a second one on the first run_batches (overlap_batches)
        d = self.devs[0]  # the single-scan path's slot, by its old names (tests and benches use them)
        self.stream, self._ns, self.alloc, self.items = d.stream, d.ns, d.alloc, d.items
        self.counts, self.canvas, self.heads, self.out = d.counts, d.canvas, d.heads, d.out
        self.overlap_batches = bool(overlap_batches) and all(getattr(r, "reentrant", False) for r in (pfn_runner,
                                                                                                    rpn_runner))
        self.slots = [HostSlot(self.max_batch, self.max_points, self._nout)]  # a second one on the first run_batches
        self._last = self.slots[0]  # the slot whose results were read last (times())
        self._graphs: OrderedDict[tuple, Any] = OrderedDict()
        self._graph_kind = "torch" if "torch" in (getattr(pfn_runner, "graph_capture", ""),
                                                  getattr(rpn_runner, "graph_capture", "")) else "cuda"
        #: bytes moved per direction since creation: point data H2D / D2D, counts H2D, results D2H
        self.transfers = {"h2d": 0, "d2d": 0, "h2d_meta": 0, "d2h": 0}
        self.replays = 0
        self.captures = 0
        self.capture_bytes = 0  # device memory the captures took (graph pools and instantiated graphs)
        self._capturing = False
        #: the runners' background compiles (backends/inductor_compile.py), and how many had finished at the last scan
        self._background = [b for b in (getattr(r, "background", None) for r in (pfn_runner, rpn_runner)) if b]
        self._compiled_version = 0
        self._log = log or (lambda msg: None)
        self._kernels_loaded = False  # pipelines/kernel_cache.py, before the first launch
        self._first_collected = False

    def _device_slot(self) -> DeviceSlot:
        # a PFN that reads only each pillar's points (the counts) needs no zero rows in its input
        dense = not getattr(self.pfn, "accepts_counts", False)
        return DeviceSlot(self.cfg, self.max_batch, self.max_points, self.canvas_format, self._nout, dense)

    def _dev(self, slot: int) -> DeviceSlot:
        """The device slot host slot `slot` runs on (all on the first unless batches overlap)."""
        return self.devs[slot if slot < len(self.devs) else 0]

    # ---- lifetime -------------------------------------------------------------
    def __enter__(self) -> "GpuPipeline":
        self.pfn.__enter__()
        self.rpn.__enter__()
        for runner, name, want, what in ((self.pfn, tn.PFN_INPUT, self.cfg.max_pillars, "pillars"),
                                         (self.rpn, tn.RPN_INPUT, self.max_batch, "batch")):
            max_shape = getattr(runner, "max_shape", None)
            if callable(max_shape) and int(max_shape(name)[0]) < want:
                raise UserError(f"the {name} engine's profile allows {int(max_shape(name)[0])} {what}, the pipeline "
                                f"needs {want}; rebuild the engines (build --max-pillars / --max-batch)")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_graphs()
        for d in self.devs:
            d.stream.synchronize()
        self.pfn.__exit__(*exc)
        self.rpn.__exit__(*exc)

    def close_graphs(self) -> None:
        """Free every captured graph (they are rebuilt on demand)."""
        for g in self._graphs.values():
            g.free()
        self._graphs.clear()

    # ---- input ------------------------------------------------------------------
    def check(self, scan: Any) -> int:
        """The scan's point count; UserError if this pipeline cannot take it (type, layout, more than max_points)."""
        if isinstance(scan, DevicePoints):
            n = int(scan.n)
        else:
            if not isinstance(scan, np.ndarray) or scan.ndim != 2 or scan.shape[1] < 4 or scan.dtype != np.float32:
                got = f"{type(scan).__name__} {getattr(scan, 'dtype', '')} {getattr(scan, 'shape', '')}"
                raise UserError(f"points must be a float32 [N, >=4] array (x, y, z, intensity first), got {got}")
            n = len(scan)
        if n > self.max_points:
            raise UserError(f"scan has {n} points; the GPU pipeline was sized for {self.max_points} (pass max_points)")
        return n

    def bucket(self, n: int) -> int:
        """The smallest capacity that holds n points."""
        return next(c for c in self.buckets if c >= n)

    def _stage_inputs(self, scans: Sequence[Any], counts: list[int], hs: HostSlot, ds: DeviceSlot) -> str:
        """Host scans into hs's pinned memory; device scans copied D2D into their batch slot now (after the
        producer's stream), so the graph never reads foreign memory. Returns the graph's source key."""
        s = ds.stream
        device = any(isinstance(x, DevicePoints) for x in scans)
        hs.counts.array[: len(scans)] = counts
        for b, (scan, n) in enumerate(zip(scans, counts)):
            item = ds.items[b]
            if isinstance(scan, DevicePoints):
                s.wait_for(scan.stream, ds.wait_event)
                s.d2d_rows(item.points, scan.ptr, scan.row_stride_bytes, 16, n)
                self.transfers["d2d"] += 16 * n
            else:
                hs.points.array[b, :n] = scan[:, :4]
                if device:  # mixed batch: this host scan is uploaded outside the graph
                    s.h2d(item.points, hs.points.array[b], 16 * n)
                    self.transfers["h2d"] += 16 * n
        return "device" if device else "host"

    # ---- the work of one call ------------------------------------------------------
    def enqueue(self, batch: int, capacity: int, source: str = "host", slot: int = 0) -> None:
        """Enqueue every stage for `batch` scans of up to `capacity` points, staged in host slot `slot`
        (no sync, no host-side counts)."""
        hs, ds = self.slots[slot], self._dev(slot)
        ev, s, cap_ = hs.events, ds.stream, self._capturing
        vox, ns = ds.vox, ds.ns
        cap_p = vox.pillar_capacity(capacity)
        ev["start"].record_timing(s, cap_)
        if self.upload_kernel:  # exactly n points read from the mapped pinned slot (stages/upload_cuda.py)
            upload_points(hs.src_counts, hs.src_points, source == "host", ds.counts_nb, ds.points_flat, capacity,
                          batch, ns)
        else:  # copies of fixed size: the whole capacity bucket
            s.h2d(ds.counts, hs.counts.array, 4 * batch)
            if source == "host":
                for b, it in enumerate(ds.items[:batch]):
                    s.h2d(it.points, hs.points.array[b], 16 * capacity)
        ev["h2d"].record_timing(s, cap_)

        # zero the canvas cells each slot's last scan wrote (its coords/count, before voxelize overwrites them)
        clear_pillars(vox.buf.coords, vox.buf.num_pillars, ds.canvas_nb, cap_p, ns, batch)
        vox.enqueue(capacity, ns, batch)
        ev["voxelize"].record_timing(s, cap_)
        if getattr(self.pfn, "batched", False):  # one call for the batch (the counts: rows >= P and zero rows skipped)
            feats, pf, num, npts = ds.pfn_io(batch)
            self.pfn.infer({tn.PFN_INPUT: feats, "num_pillars": num, "num_points": npts}, {tn.PFN_OUTPUT: pf},
                           s.handle)
        else:  # item by item (torch's PFN, TensorRT's: one [P, M, F] input)
            counts = getattr(self.pfn, "accepts_counts", False)
            for it in ds.items[:batch]:
                feed = {tn.PFN_INPUT: it.features[:cap_p]}
                if counts:
                    feed["num_pillars"], feed["num_points"] = it.vb.num_pillars, it.vb.npoints
                self.pfn.infer(feed, {tn.PFN_OUTPUT: it.pf[:cap_p]}, s.handle)
        ev["pfn"].record_timing(s, cap_)
        scatter_pillars(ds.pf_nb, vox.buf.coords, vox.buf.num_pillars, ds.canvas_nb, cap_p, ns, batch)
        ev["scatter"].record_timing(s, cap_)
        self.rpn.infer({tn.RPN_INPUT: ds.canvas[:batch]}, {k: v[:batch] for k, v in ds.heads.items()}, s.handle)
        ev["rpn"].record_timing(s, cap_)
        ds.post.enqueue(ds.head_views, vox.buf.num_pillars, vox.buf.stats, ds.header, ds.dets, ns, batch)
        ev["postprocess"].record_timing(s, cap_)
        s.d2h(hs.out.array, ds.out, ds.out.nbytes // self.max_batch * batch)
        ev["d2h"].record_timing(s, cap_)

    def _count(self, counts: list[int], capacity: int, source: str) -> None:
        batch = len(counts)
        self.transfers["h2d_meta"] += 4 * batch
        if source == "host":
            self.transfers["h2d"] += 16 * (sum(counts) if self.upload_kernel else capacity * batch)
        self.transfers["d2h"] += 4 * self._nout * batch

    def run_batch(self, scans: Sequence[Any], keep_on_device: bool = False) -> list[ScanResult]:
        """Detect objects in up to max_batch scans (NumPy [N, >=4] float32 or DevicePoints): one sync."""
        return self._collect(self._launch(scans, 0), keep_on_device)

    def run(self, scan: Any, keep_on_device: bool = False) -> ScanResult:
        """Detect objects in one scan: one upload (none for device input), one download, one synchronise."""
        return self.run_batch([scan], keep_on_device)[0]

    def run_batches(self, batches: Iterable[Sequence[Any]], keep_on_device: bool = False) -> Iterator[list[ScanResult]]:
        """Results of each batch, in order, with the host and the GPU overlapped: batch i+1 is staged into the
        other pinned slot and queued while batch i runs, and batch i's results are read while i+1 runs. With
        overlap_batches (the default, for runners that may run twice at once), batch i+1 also runs on a second
        device slot and stream, so its graph runs beside batch i's on the GPU: twice the device memory, +3-4% at
        B = 32 on an H200 once every stage was one launch per batch (one slot leaves the GPU idle between a batch's
        last kernel and the next batch's first). Each batch's results are yielded before the slot they came from
        is reused (the next-but-one batch)."""
        if len(self.slots) == 1:
            self.slots.append(HostSlot(self.max_batch, self.max_points, self._nout))
        if self.overlap_batches and len(self.devs) == 1:
            self.devs.append(self._device_slot())
        pending, k = None, 0
        for scans in batches:
            launched = self._launch(scans, k)
            if pending is not None:
                yield self._collect(pending, keep_on_device)
            pending, k = launched, 1 - k
        if pending is not None:
            yield self._collect(pending, keep_on_device)

    def _launch(self, scans: Sequence[Any], slot: int) -> tuple[int, int]:
        """Stage a batch in host slot `slot` and queue its work (a graph replay; the first batch of a shape runs
        eagerly, synchronises and is captured). Returns (slot, batch size); batch 0 = an empty single scan."""
        if not 1 <= len(scans) <= self.max_batch:
            raise UserError(f"a batch holds 1 to {self.max_batch} scans (max_batch), got {len(scans)}")
        counts = [self.check(x) for x in scans]
        if len(scans) == 1 and counts[0] == 0:  # nothing to detect: no GPU work (as the CPU pipeline)
            return slot, 0
        hs, ds = self.slots[slot], self._dev(slot)
        batch, cap = len(scans), self.bucket(max(counts))
        source = self._stage_inputs(scans, counts, hs, ds)
        key = (batch, cap, source, slot, self.devs.index(ds))
        if not self._kernels_loaded:  # once: Numba's kernels compiled side by side where its cache lacks them
            from pointpillars_trt.pipelines.kernel_cache import prepare_pipeline

            self._kernels_loaded = True
            prepare_pipeline(self, key, self._log)
        if self._background:
            self._follow_compiles(key)
        g = self._graphs.get(key) if self.use_graph else None
        if g is not None:
            self._graphs.move_to_end(key)
            g.replay(ds.stream.handle)
            self.replays += 1
            for b in self._background:  # queued on the shape's first scan, captured since: starts after enough replays
                if b.listening:
                    b.note_replay()
        else:
            self.enqueue(*key[:4])  # the first batch of a shape runs eagerly: it also warms everything up
        self._count(counts, cap, source)
        hs.done.record(ds.stream)
        if self.use_graph and g is None:
            ds.stream.synchronize()
            self._capture(key)
        return slot, batch

    def _follow_compiles(self, key: tuple) -> None:
        """Background compiles (the torch RPN's, compile='auto'): a key without a graph waits for a running compile
        (nothing may call a torch module or capture meanwhile, inductor_compile.BackgroundCompiles says why; once
        per shape, for at most the compile's few seconds); when a compile has finished, every graph is freed, to be
        captured again with the compiled module."""
        if self.use_graph and key not in self._graphs and any(b.running for b in self._background):
            self.wait_compiled()
        version = sum(b.version for b in self._background)
        if version != self._compiled_version:
            self._compiled_version = version
            for d in self.devs:  # a graph of the other device slot may still be running
                d.stream.synchronize()
            self.close_graphs()

    @property
    def compiling(self) -> bool:
        """True while a runner's background tuning or compile is queued or running (its shape replays a graph of
        the uncompiled network meanwhile)."""
        return any(b.pending for b in self._background)

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Start any queued background tuning and compile and wait for them (at most timeout seconds); True when
        done."""
        return all([b.wait(timeout) for b in self._background])

    def _collect(self, launched: tuple[int, int], keep_on_device: bool) -> list[ScanResult]:
        """Wait for a launched batch (one synchronise) and read its results from its host slot."""
        slot, batch = launched
        if batch == 0:
            return [ScanResult(Detections.empty(), VoxelStats(0, 0, 0, 0, 0), {k: 0.0 for k in (*STAGES, "total")})]
        hs = self.slots[slot]
        self._dev(slot).stream.synchronize_to(hs.done)
        self._last = hs
        if not self._first_collected:
            self._first_collected = True
            phases.mark("first scan")
        t = self.times()  # one reading of the batch's events, shared by its scans
        return [self._result(hs, b, keep_on_device, dict(t)) for b in range(batch)]

    def _capture(self, key: tuple) -> None:
        """Capture the work of `key` into a graph (nothing runs), evicting the least recently used beyond max_graphs."""
        while len(self._graphs) >= self.max_graphs:
            self._graphs.popitem(last=False)[1].free()
        dev = key[4]
        g = make_graph(self._graph_kind, pool=dev)  # graphs that may run at once never share memory
        self._capturing = True
        try:  # no compile runs meanwhile (_follow_compiles): the memory the capture took is the graph's
            g.capture(self.devs[dev].stream.handle, lambda: self.enqueue(*key[:4]))
        finally:
            self._capturing = False
        self.capture_bytes += g.took
        self._graphs[key] = g
        self.captures += 1

    def _result(self, hs: HostSlot, b: int, keep_on_device: bool, times: dict[str, float]) -> ScanResult:
        row = hs.out.array[b]
        h = row[:HEADER].view(np.int32)
        ndet = int(h[0])
        stats = VoxelStats(int(h[1]), int(h[2]), int(h[3]), int(h[4]), int(h[5]))
        dets = Detections.from_array(row[HEADER: HEADER + ndet * ROW].reshape(ndet, ROW).copy())
        ds = self._dev(self.slots.index(hs))
        dev = ds.out.view((ndet, ROW), np.float32, ds.items[b].out_offset + HEADER * 4) if keep_on_device else None
        return ScanResult(dets, stats, times, device_rows=dev)

    def times(self) -> dict[str, float]:
        """Seconds per stage of the last batch read (CUDA events, inside the graph when replayed), plus total."""
        ev = self._last.events
        t = {name: ev[EVENTS[i - 1]].elapsed_ms(ev[name]) / 1e3 for i, name in enumerate(EVENTS) if i > 0}
        t["total"] = ev["start"].elapsed_ms(ev["d2h"]) / 1e3
        return t

    def graph_info(self) -> dict[str, Any]:
        """Captured graphs (batch, capacity, source), replay and capture counts, the device memory the captures
        took (MiB; graphs share their slot's pool, so a later capture may take little), the size of the graphs' pools
        now (MiB, torch graphs: the process's), a background compile pending."""
        pool = TorchGraph.pool_bytes() if self._graph_kind == "torch" else 0
        return {"graphs": [list(k) for k in self._graphs], "replays": self.replays, "captures": self.captures,
                "capture_mib": round(self.capture_bytes / 2**20, 1), "pool_mib": round(pool / 2**20, 1),
                "kind": self._graph_kind, "compiling": self.compiling}

    # ---- debugging ----------------------------------------------------------------
    def canvas_host(self, b: int = 0) -> np.ndarray:
        """Slot b's canvas as float32 [1, C, ny, nx], whatever the RPN's input format (syncs; for tests)."""
        from numba import cuda

        cuda.synchronize()
        c = numba_view(self.canvas)[b: b + 1].copy_to_host().astype(np.float32)
        return c.transpose(0, 3, 1, 2).copy() if self.canvas_format[1] == "nhwc" else c

    def snapshot(self, b: int = 0) -> dict[str, Any]:
        """Host copies of slot b's last intermediate buffers (syncs; for tests, never on the hot path)."""
        self.stream.synchronize()
        buf = self.items[b].vb
        p = int(buf.num_pillars.copy_to_host()[0])
        from numba import cuda

        def host(x: Any) -> np.ndarray:
            return numba_view(x).copy_to_host()

        out = {"num_pillars": p, "features": buf.features.copy_to_host()[:p], "coords": buf.coords.copy_to_host()[:p],
               "npoints": buf.npoints.copy_to_host()[:p], "pillar_features": host(self.items[b].pf)[:p],
               "canvas": self.canvas_host(b)}
        out.update({k: host(v)[b: b + 1] for k, v in self.heads.items()})
        cuda.synchronize()
        return out

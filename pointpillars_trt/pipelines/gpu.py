"""The GPU pipeline: one upload, voxelize -> PFN -> scatter -> RPN -> decode + NMS on one stream, one download, one sync.

Every buffer is allocated in __init__; stages share them by address (the
voxelizer writes the PFN input, the PFN the scatter input, the scatter the RPN
input). The PFN runs on P_bound = min(max_pillars, N) rows, a shape the host
knows before the upload; rows past the real pillar count are zero and the
scatter ignores them (it reads the count from device memory). Per-stage times
come from CUDA events read after the one stream synchronise.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.backends.base import Runner
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.io.detections import Detections
from pointpillars_trt.errors import UserError
from pointpillars_trt.pipelines.cpu import STAGES, ScanResult
from pointpillars_trt.stages.voxelize import VoxelStats
from pointpillars_trt.pipelines.cuda_runtime import DeviceBuffer, Event, PinnedBuffer, Stream
from pointpillars_trt.stages.postprocess_cuda import HEADER, GpuPostprocess, HeadViews
from pointpillars_trt.pipelines.seam import BufferAllocator, numba_stream, numba_view
from pointpillars_trt.stages.voxelize_cuda import GpuVoxelizer

#: event order within a scan; times[k] = elapsed(EVENTS[i-1] -> EVENTS[i])
EVENTS = ("start", "h2d", "voxelize", "pfn", "scatter", "rpn", "postprocess", "d2h")
DEFAULT_MAX_POINTS = 400_000


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
    """Runs one scan at a time through two GPU runners (torch or TensorRT) and the Numba kernels."""

    def __init__(self, cfg: PointPillarsConfig, pfn_runner: Runner, rpn_runner: Runner, max_batch: int = 1,
                 max_points: int = DEFAULT_MAX_POINTS) -> None:
        require_gpu_stack()
        from numba import config as numba_config

        numba_config.CUDA_LOW_OCCUPANCY_WARNINGS = 0  # small grids are the point here (counts read on device)
        for r in (pfn_runner, rpn_runner):
            if getattr(r, "device", "cpu") != "cuda":
                raise UserError(f"GpuPipeline needs GPU runners (device 'cuda'), got {r!r} on {r.device}")
        self.cfg, self.pfn, self.rpn = cfg, pfn_runner, rpn_runner
        self.max_batch, self.max_points = int(max_batch), int(max_points)
        self.stream = Stream()
        self._ns = numba_stream(self.stream.handle)
        self.alloc = alloc = BufferAllocator()
        self.vox = GpuVoxelizer(cfg, alloc, self.max_points)
        nx, ny, _ = cfg.grid_size
        fx, fy = cfg.feature_map_size
        ch = cfg.head_channels
        P = cfg.max_pillars
        self.pillar_features = DeviceBuffer((P, cfg.pfn_filters), np.float32)
        self.canvas = DeviceBuffer((self.max_batch, cfg.pfn_filters, ny, nx), np.float32)
        self.heads = {name: DeviceBuffer((self.max_batch, fy, fx, ch[k]), np.float32)
                      for name, k in zip(tn.RPN_OUTPUTS, ("cls", "box", "dir"))}
        A = cfg.num_anchors
        cls_b, box_b, dir_b = (self.heads[n] for n in tn.RPN_OUTPUTS)
        self._head_views = HeadViews(numba_view(cls_b.view((A * cfg.num_classes,))),
                                     numba_view(box_b.view((A * 7,))),
                                     numba_view(dir_b.view((A * cfg.num_dir_bins,))))
        self._pf_nb = numba_view(self.pillar_features)
        self._canvas_nb = numba_view(self.canvas)
        self.post = GpuPostprocess(cfg, alloc, make_anchors(cfg))
        nout = HEADER + cfg.max_det * 9
        self.out = DeviceBuffer((nout,), np.float32)
        self._header_nb = numba_view(self.out.view((HEADER,), np.int32))
        self._dets_nb = numba_view(self.out.view((cfg.max_det, 9), np.float32, HEADER * 4))
        self.out_host = PinnedBuffer((nout,), np.float32)
        self.points_host = PinnedBuffer((self.max_points, 4), np.float32)
        self.events = {name: Event() for name in EVENTS}
        self._last_bound = 0

    # ---- lifetime -------------------------------------------------------------
    def __enter__(self) -> "GpuPipeline":
        self.pfn.__enter__()
        self.rpn.__enter__()
        max_shape = getattr(self.pfn, "max_shape", None)
        if callable(max_shape):
            pmax = int(max_shape(tn.PFN_INPUT)[0])
            if pmax < self.cfg.max_pillars:
                raise UserError(f"the PFN engine's profile allows {pmax} pillars, the config {self.cfg.max_pillars}; "
                                f"rebuild the engines with --max-pillars {self.cfg.max_pillars}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.pfn.__exit__(*exc)
        self.rpn.__exit__(*exc)

    # ---- one scan ---------------------------------------------------------------
    def _check_points(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points)
        if pts.ndim != 2 or pts.shape[1] < 4:
            raise UserError(f"points must be [N, >=4], got shape {pts.shape}")
        if len(pts) > self.max_points:
            raise UserError(f"scan has {len(pts)} points; the GPU pipeline was sized for {self.max_points} "
                            f"(pass max_points)")
        return pts

    def enqueue(self, points: np.ndarray) -> int:
        """Enqueue every stage of one scan on the stream (no sync); returns P_bound."""
        pts = self._check_points(points)
        n = len(pts)
        ev, s, ns, b = self.events, self.stream, self._ns, self.vox.buf
        self.points_host.array[:n] = pts[:, :4]
        ev["start"].record(s)
        s.h2d(self.alloc.buffers["points"], self.points_host.array, n * 16)
        ev["h2d"].record(s)
        from pointpillars_trt.plugins.pillar_scatter import clear_pillars, scatter_pillars

        clear_pillars(b.coords, b.num_pillars, self._canvas_nb, self._last_bound, ns)  # the last scan's cells
        bound = self.vox.enqueue(n, ns)
        ev["voxelize"].record(s)
        self.pfn.infer({tn.PFN_INPUT: self.alloc.buffers["features"][:bound]},
                       {tn.PFN_OUTPUT: self.pillar_features[:bound]}, s.handle)
        ev["pfn"].record(s)
        scatter_pillars(self._pf_nb, b.coords, b.num_pillars, self._canvas_nb, bound, ns)
        self._last_bound = bound
        ev["scatter"].record(s)
        self.rpn.infer({tn.RPN_INPUT: self.canvas[:1]}, {k: v[:1] for k, v in self.heads.items()}, s.handle)
        ev["rpn"].record(s)
        self.post.enqueue(self._head_views, b.num_pillars, b.stats, self._header_nb, self._dets_nb, ns)
        ev["postprocess"].record(s)
        s.d2h(self.out_host.array, self.out, self.out.nbytes)
        ev["d2h"].record(s)
        return bound

    def run(self, points: np.ndarray) -> ScanResult:
        """Detect objects in one [N, 4] float32 scan: one upload, one download, one stream synchronise."""
        pts = self._check_points(points)
        if len(pts) == 0:
            return ScanResult(Detections.empty(), VoxelStats(0, 0, 0, 0, 0), {k: 0.0 for k in (*STAGES, "total")})
        self.enqueue(pts)
        self.stream.synchronize()
        return self._result()

    def _result(self) -> ScanResult:
        h = self.out_host.array[:HEADER].view(np.int32)
        ndet = int(h[0])
        stats = VoxelStats(int(h[1]), int(h[2]), int(h[3]), int(h[4]), int(h[5]))
        rows = self.out_host.array[HEADER: HEADER + ndet * 9].reshape(ndet, 9).copy()
        return ScanResult(Detections.from_array(rows), stats, self.times())

    def times(self) -> dict[str, float]:
        """Seconds per stage of the last scan (CUDA events), plus h2d, d2h and total."""
        ev = self.events
        t = {name: ev[EVENTS[i - 1]].elapsed_ms(ev[name]) / 1e3 for i, name in enumerate(EVENTS) if i > 0}
        t["total"] = ev["start"].elapsed_ms(ev["d2h"]) / 1e3
        return t

    # ---- debugging ----------------------------------------------------------------
    def snapshot(self) -> dict[str, np.ndarray]:
        """Host copies of the last scan's intermediate buffers (syncs; for tests, never on the hot path)."""
        self.stream.synchronize()
        b = self.vox.buf
        num = b.num_pillars.copy_to_host()
        p = int(num[0])
        from numba import cuda

        def host(buf: Any) -> np.ndarray:
            return numba_view(buf).copy_to_host()

        out = {"num_pillars": p, "features": b.features.copy_to_host()[:p], "coords": b.coords.copy_to_host()[:p],
               "npoints": b.npoints.copy_to_host()[:p], "pillar_features": host(self.pillar_features)[:p],
               "canvas": host(self.canvas)[:1]}
        out.update({k: host(v)[:1] for k, v in self.heads.items()})
        cuda.synchronize()
        return out

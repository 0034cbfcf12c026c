"""The GPU pipeline's per-scan and per-batch state: Item (one batch slot's views of the batched device buffers),
DeviceSlot (the device buffers, stages and stream one batch runs on) and HostSlot (the pinned host memory
and events of one batch in flight)."""
from __future__ import annotations

from typing import Any

import numpy as np

from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.pipelines.cuda_runtime import DeviceBuffer, Event, PinnedBuffer, Stream
from pointpillars_trt.pipelines.seam import BufferAllocator, numba_stream, numba_strided, numba_view
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.stages.postprocess_cuda import HEADER, GpuPostprocess, HeadViews
from pointpillars_trt.stages.voxelize_cuda import GpuVoxelizer

#: event order within a call; times[k] = elapsed(EVENTS[i-1] -> EVENTS[i])
EVENTS = ("start", "h2d", "voxelize", "pfn", "scatter", "rpn", "postprocess", "d2h")
ROW = 9  # floats per detection: x, y, z, dx, dy, dz, yaw, score, label


class Item:
    """Batch slot b's views of the batched device buffers: its voxelizer buffers, points, PFN input and output (for
    the stages that run item by item: device input, PFN runners that take one scan) and where its result row is."""

    def __init__(self, b: int, cfg: PointPillarsConfig, alloc: BufferAllocator, vox: GpuVoxelizer, max_points: int,
                 pillar_features: DeviceBuffer, nout: int) -> None:
        self.vb = vox.item(b)
        P, M, F, C = cfg.max_pillars, vox.vp.max_points, cfg.pfn_in_features, cfg.pfn_filters
        self.points = alloc.buffers["points"].view((max_points, 4), np.float32, b * max_points * 16)
        self.features = alloc.buffers["features"].view((P, M, F), np.float32, b * P * M * F * 4)
        self.pf = pillar_features.view((P, C), np.float32, b * P * C * 4)
        self.out_offset = b * nout * 4


class DeviceSlot:
    """Everything one batch runs on: a stream and the device buffers the stages share (counts, the voxelizer's and
    the post-processing's scratch, pillar features, the RPN's canvas in its runner's input format, heads, result
    rows), all with a leading batch dimension so that each stage is one launch for the whole batch, and each batch
    item's views (Item). A second DeviceSlot lets run_batches run batch i+1's graph while batch i's is still
    running (overlap_batches: 4124 against 4015 scans/s at B = 32 on an H200,
    bench/results/2026-12-02_h200_throughput.md)."""

    def __init__(self, cfg: PointPillarsConfig, max_batch: int, max_points: int, canvas_format: tuple[str, str],
                 nout: int, dense: bool = True) -> None:
        nx, ny, _ = cfg.grid_size
        fx, fy = cfg.feature_map_size
        ch = cfg.head_channels
        B, P, C, A = max_batch, cfg.max_pillars, cfg.pfn_filters, cfg.num_anchors
        self.stream = Stream()
        self.ns = numba_stream(self.stream.handle)
        self.alloc = alloc = BufferAllocator()
        self.counts = DeviceBuffer((B,), np.int32)
        self.counts_nb = numba_view(self.counts)
        self.vox = GpuVoxelizer(cfg, alloc, max_points, batch=B, npts=self.counts_nb, dense=dense)
        self.points_flat = numba_view(alloc.buffers["points"].view((B, 4 * max_points), np.float32))
        self.pillar_features = DeviceBuffer((B, P, C), np.float32)
        self.pf_nb = numba_view(self.pillar_features)
        # the scatter sees the canvas as [B, C, ny, nx] in either layout (a strided view) and writes it directly
        dtype, layout = canvas_format
        nhwc = layout == "nhwc"
        self.canvas = DeviceBuffer((B, ny, nx, C) if nhwc else (B, C, ny, nx), np.dtype(dtype))
        self.canvas_nb = numba_view(self.canvas, (0, 3, 1, 2) if nhwc else None)
        self.heads = {name: DeviceBuffer((B, fy, fx, ch[k]), np.float32)
                      for name, k in zip(tn.RPN_OUTPUTS, ("cls", "box", "dir"))}
        flat = [numba_view(self.heads[name].view((B, A * n), np.float32))
                for name, n in zip(tn.RPN_OUTPUTS, (cfg.num_classes, 7, cfg.num_dir_bins))]
        self.head_views = HeadViews(*flat)
        self.post = GpuPostprocess(cfg, alloc, make_anchors(cfg), batch=B)
        self.out = DeviceBuffer((B, nout), np.float32)
        # each item's row: HEADER int32 words, then max_det detection rows (strided views over the batch's rows)
        self.header = numba_strided(self.out, (B, HEADER), np.int32, 0, (nout * 4, 4))
        self.dets = numba_strided(self.out, (B, cfg.max_det, ROW), np.float32, HEADER * 4, (nout * 4, ROW * 4, 4))
        self.items = [Item(b, cfg, alloc, self.vox, max_points, self.pillar_features, nout) for b in range(B)]
        self.wait_event = Event()

    def pfn_io(self, batch: int) -> tuple[Any, Any, Any, Any]:
        """The first `batch` items' PFN input [batch, P, M, F], output [batch, P, C], pillar counts [batch, 2] and
        point counts [batch, P], for a runner that takes a whole batch in one call."""
        v = self.vox
        P, M, F = v.buf.features.shape[1:]
        feats = self.alloc.buffers["features"].view((batch, P, M, F), np.float32)
        pf = self.pillar_features.view((batch, P, self.pillar_features.shape[2]), np.float32)
        return feats, pf, v.buf.num_pillars[:batch], v.buf.npoints[:batch]


class HostSlot:
    """Pinned host memory and events of one batch in flight: counts and points in, result rows out, stage events.
    Two of them let run_batches stage the next batch (and read the last one's results) while the GPU works. The
    counts and points are mapped: the upload kernel reads them in place (src_counts, src_points)."""

    def __init__(self, max_batch: int, max_points: int, nout: int) -> None:
        self.counts = PinnedBuffer((max_batch,), np.int32)
        self.points = PinnedBuffer((max_batch, max_points, 4), np.float32)
        self.out = PinnedBuffer((max_batch, nout), np.float32)
        self.events = {name: Event() for name in EVENTS}
        self.done = Event()
        self.src_counts = numba_view(self.counts.device_view((max_batch,), np.int32))
        self.src_points = numba_view(self.points.device_view((max_batch, 4 * max_points), np.float32))

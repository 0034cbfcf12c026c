"""The GPU pipeline's per-scan and per-batch state: Item (one batch slot's stages and views of the shared device
buffers), DeviceSlot (the device buffers, stream and lanes one batch runs on) and HostSlot (the pinned host memory
and events of one batch in flight)."""
from __future__ import annotations

from typing import Any

import numpy as np

from pointpillars_trt.model import tensor_names as tn
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.pipelines.cuda_runtime import DeviceBuffer, Event, PinnedBuffer, Stream
from pointpillars_trt.pipelines.seam import BufferAllocator, numba_stream, numba_view
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.stages.postprocess_cuda import HEADER, GpuPostprocess, HeadViews
from pointpillars_trt.stages.voxelize_cuda import GpuVoxelizer

#: event order within a call; times[k] = elapsed(EVENTS[i-1] -> EVENTS[i])
EVENTS = ("start", "h2d", "voxelize", "pfn", "scatter", "rpn", "postprocess", "d2h")
ROW = 9  # floats per detection: x, y, z, dx, dy, dz, yaw, score, label


class Item:
    """The per-scan state of batch slot b: post-processing, and views of the batched device buffers (its voxelizer
    buffers, points, PFN input and output, heads, result row)."""

    def __init__(self, b: int, cfg: PointPillarsConfig, alloc: BufferAllocator, vox: GpuVoxelizer, max_points: int,
                 pillar_features: DeviceBuffer, heads: dict[str, DeviceBuffer], out: DeviceBuffer) -> None:
        self.b = b
        self.vb = vox.item(b)
        P, M, F, C = cfg.max_pillars, vox.vp.max_points, cfg.pfn_in_features, cfg.pfn_filters
        self.points = alloc.buffers["points"].view((max_points, 4), np.float32, b * max_points * 16)
        self.features = alloc.buffers["features"].view((P, M, F), np.float32, b * P * M * F * 4)
        self.pf = pillar_features.view((P, C), np.float32, b * P * C * 4)
        A = cfg.num_anchors

        def head(name: str, ch: int) -> Any:
            return numba_view(heads[name].view((A * ch,), np.float32, b * A * ch * 4))

        self.heads = HeadViews(head(tn.RPN_OUTPUTS[0], cfg.num_classes), head(tn.RPN_OUTPUTS[1], 7),
                               head(tn.RPN_OUTPUTS[2], cfg.num_dir_bins))
        self.post = GpuPostprocess(cfg, alloc, make_anchors(cfg), name=f"b{b}_")
        row0 = b * (HEADER + cfg.max_det * ROW) * 4
        self.header = numba_view(out.view((HEADER,), np.int32, row0))
        self.dets = numba_view(out.view((cfg.max_det, ROW), np.float32, row0 + HEADER * 4))
        self.out_offset = row0


class DeviceSlot:
    """Everything one batch runs on: a stream, the device buffers the stages share (counts, the voxelizer's, pillar
    features, the RPN's canvas in its runner's input format, heads, result rows), all with a leading batch
    dimension so that a stage is one launch for the whole batch, each batch item's views and post-processing
    (Item) and, with `concurrent`, one lane (stream) per item for the stages that still run item by item. A second
    DeviceSlot lets run_batches run batch i+1's graph while batch i's is still running (overlap_batches; no gain
    measured on an H200, where a batch's kernels already keep the GPU busy: bench/results/)."""

    def __init__(self, cfg: PointPillarsConfig, max_batch: int, max_points: int, canvas_format: tuple[str, str],
                 nout: int, concurrent: bool) -> None:
        nx, ny, _ = cfg.grid_size
        fx, fy = cfg.feature_map_size
        ch = cfg.head_channels
        B, P, C = max_batch, cfg.max_pillars, cfg.pfn_filters
        self.stream = Stream()
        self.ns = numba_stream(self.stream.handle)
        self.alloc = alloc = BufferAllocator()
        self.counts = DeviceBuffer((B,), np.int32)
        self.counts_nb = numba_view(self.counts)
        self.vox = GpuVoxelizer(cfg, alloc, max_points, batch=B, npts=self.counts_nb)
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
        self.out = DeviceBuffer((B, nout), np.float32)
        self.items = [Item(b, cfg, alloc, self.vox, max_points, self.pillar_features, self.heads, self.out)
                      for b in range(B)]
        self.wait_event = Event()
        # concurrent: in a batch, each item's kernels of a per-item stage run on a lane of their own, forked from
        # the stream and joined back before the next stage (parallel branches of the captured graph)
        self.lanes = [Stream() for _ in range(B)] if concurrent and B > 1 else []
        self.lane_ns = [numba_stream(lane.handle) for lane in self.lanes]
        self.fork = [Event() for _ in self.lanes]
        self.join = [Event() for _ in self.lanes]

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

"""Deterministic hard voxelization + 10-feature decoration on the GPU (Numba CUDA), bit-identical to voxelize.py.

Seven module-level kernels (compiled once, cached on disk), no host sync, every count read from device memory
(``npts[b]`` points, ``num_pillars[b, 0]`` pillars), so launches only need a capacity and a captured CUDA graph
replays them for any scan that fits it. Each launch covers a whole batch: blockIdx.y is the batch item and every
buffer has a leading batch dimension.
  1. per point: float32 cell id (same arithmetic as the njit code); per cell
     atomicMin of the first point index and a point count.
  2. per block of points: how many points open their cell (i == first point)
     and how many are in range.
  3. per point: pillar id = number of openers before it (block prefix + block
     scan), so pillars are numbered by first appearance exactly as on the CPU;
     openers past max_pillars get none (their cell's points are dropped); each
     kept pillar's bucket space comes from one atomic a block and a scan of counts.
  4. per point: append the point index to its pillar's bucket (unordered).
  5. per bucket entry: its slot = how many entries of its pillar have a smaller
     index (a pillar keeps its first max_points points in input order); x, y, z,
     intensity into that slot.
  6. per bucket entry in a slot < max_points: the mean (summed in slot order) and
     the decoration.
  7. (dense, the ONNX PFN's input) per (pillar, slot): zeros past the points.
With dense, rows in [P, previous P) of the feature buffer are zeroed too, so rows >= P
are always zero and the PFN may run on any capacity >= P. Cell-indexed scratch is
reset by the kernels that last read it (only the touched cells).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda, float32, int32

from pointpillars_trt.launch import bounded_blocks
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.stages.cuda_block import TPB, block_scan, block_sum
from pointpillars_trt.stages.cuda_fp import fadd, fmul
from pointpillars_trt.stages.voxelize import VoxelParams, VoxelStats

DECORATE_BLOCKS = 4096  # decorate blocks of a batch (enough to fill an H100/H200), split between the items
DECORATE_BLOCKS_MIN = 16  # ... but at least this many per item
INT_MAX = np.int32(2**31 - 1)
# stats slots (int32)
IN_RANGE, KEPT, DROPPED_FULL, DROPPED_MAX = 0, 1, 2, 3
NSTATS = 8


@cuda.jit(cache=True)
def _cells(points, npts, rx0, ry0, rz0, rx1, ry1, vx, vy, vz, nx, ny, nz, cell_of_point, first_pt, cell_count,
           num_pillars, stats, alloc):
    """Per point of item blockIdx.y: its cell (float32 arithmetic as the njit code), the cell's first point and
    point count."""
    b = cuda.blockIdx.y
    i = cuda.grid(1)
    if i == 0:
        num_pillars[b, 1] = num_pillars[b, 0]  # the previous scan's P (decorate zeroes rows [P, prev))
        for k in range(NSTATS):
            stats[b, k] = 0
        alloc[b] = 0
    if i >= npts[b]:
        return
    x = points[b, i, 0]
    y = points[b, i, 1]
    z = points[b, i, 2]
    c = -1
    if x >= rx0 and x <= rx1 and y >= ry0 and y <= ry1:
        fx = (x - rx0) / vx
        fy = (y - ry0) / vy
        fz = (z - rz0) / vz
        # floor(f) >= 0 <=> f >= 0 and floor(f) < n <=> f < n; int32(f) == floor(f) for f >= 0
        if fx >= 0 and fx < nx and fy >= 0 and fy < ny and fz >= 0 and fz < nz:
            c = (int32(fz) * ny + int32(fy)) * nx + int32(fx)
            cuda.atomic.min(first_pt, (b, c), i)
            cuda.atomic.add(cell_count, (b, c), 1)
    cell_of_point[b, i] = c


@cuda.jit(cache=True)
def _count_openers(npts, cell_of_point, first_pt, block_open, stats):
    """Per block of points: how many open their cell (are its first point); points in range to the stats."""
    sh = cuda.shared.array(TPB, int32)
    b = cuda.blockIdx.y
    i = cuda.grid(1)
    t = cuda.threadIdx.x
    op = 0
    inr = 0
    if i < npts[b]:
        c = cell_of_point[b, i]
        if c >= 0:
            inr = 1
            if first_pt[b, c] == i:
                op = 1
    tot_open = block_sum(sh, t, op)
    tot_in = block_sum(sh, t, inr)
    if t == 0:
        block_open[b, cuda.blockIdx.x] = tot_open
        if tot_in > 0:
            cuda.atomic.add(stats, (b, IN_RANGE), tot_in)


@cuda.jit(cache=True)
def _number_pillars(npts, nx, ny, max_pillars, cell_of_point, first_pt, cell_count, block_open,
                    pillar_of_cell, coords, pillar_cnt, pillar_off, alloc, num_pillars):
    """Per point: pillar id = openers before it (block prefix + in-block scan): numbered by first appearance; each
    kept pillar's place in the bucket array (pillar_off: where its point indices go)."""
    sh = cuda.shared.array(TPB, int32)
    base_sh = cuda.shared.array(1, int32)
    b = cuda.blockIdx.y
    i = cuda.grid(1)
    t = cuda.threadIdx.x
    blk = cuda.blockIdx.x
    part = 0
    for k in range(t, blk, TPB):
        part += block_open[b, k]
    prefix = block_sum(sh, t, part)
    op = 0
    c = -1
    if i < npts[b]:
        c = cell_of_point[b, i]
        if c >= 0 and first_pt[b, c] == i:
            op = 1
    pid = prefix + block_scan(sh, t, op) - op
    total = prefix + sh[TPB - 1]
    cuda.syncthreads()
    # the kept pillars' bucket space: an in-block scan of their point counts and one atomic a block on the item's
    # counter (an atomic a pillar, all on one address, took 136 us for a batch of 32 scans on an H200)
    keep = op == 1 and pid < max_pillars
    cnt = cell_count[b, c] if keep else 0
    end = block_scan(sh, t, cnt)
    if t == TPB - 1:
        base_sh[0] = cuda.atomic.add(alloc, b, end) if end > 0 else 0
    cuda.syncthreads()
    if keep:
        pillar_of_cell[b, c] = pid
        coords[b, pid, 0] = b
        coords[b, pid, 1] = c // (nx * ny)
        coords[b, pid, 2] = (c // nx) % ny
        coords[b, pid, 3] = c % nx
        pillar_cnt[b, pid] = cnt
        pillar_off[b, pid] = base_sh[0] + end - cnt
    if blk == cuda.gridDim.x - 1 and t == TPB - 1:
        num_pillars[b, 0] = total if total < max_pillars else max_pillars


@cuda.jit(cache=True)
def _fill_buckets(npts, cell_of_point, pillar_of_cell, first_pt, cell_count, pillar_off, fill, bucket, bucket_pillar,
                  stats):
    """Per point: append its index to its pillar's bucket (unordered) and note the entry's pillar; reset the cell
    scratch it read."""
    sh = cuda.shared.array(TPB, int32)
    b = cuda.blockIdx.y
    i = cuda.grid(1)
    t = cuda.threadIdx.x
    drop = 0
    if i < npts[b]:
        c = cell_of_point[b, i]
        if c >= 0:
            p = pillar_of_cell[b, c]
            if p < 0:
                drop = 1
            else:
                q = pillar_off[b, p] + cuda.atomic.add(fill, (b, p), 1)
                bucket[b, q] = i
                bucket_pillar[b, q] = p
            first_pt[b, c] = INT_MAX
            cell_count[b, c] = 0
    tot = block_sum(sh, t, drop)
    if t == 0 and tot > 0:
        cuda.atomic.add(stats, (b, DROPPED_MAX), tot)


@cuda.jit(cache=True)
def _place_points(npts, alloc, bucket, bucket_pillar, pillar_cnt, pillar_off, points, M, iscale, features, slot_of):
    """Per bucket entry q (a kept point i of pillar p): its slot = how many of p's entries have a smaller index, so
    a pillar keeps its first M points in input order whatever order its bucket was filled in; slots < M get x, y,
    z, intensity * iscale in features[b, p, slot, 0:4]. One thread a point, no barriers: the O(n^2) compares only matter
    for the few dense pillars near the sensor (at most 231 points in the shared KITTI scans)."""
    b = cuda.blockIdx.y
    q = cuda.grid(1)
    if q >= alloc[b] or q >= npts[b]:
        return
    i = bucket[b, q]
    p = bucket_pillar[b, q]
    n = pillar_cnt[b, p]
    off = pillar_off[b, p]
    r = 0
    for j in range(n):
        if bucket[b, off + j] < i:
            r += 1
    slot_of[b, q] = r
    if r < M:
        for ch in range(3):
            features[b, p, r, ch] = points[b, i, ch]
        features[b, p, r, 3] = points[b, i, 3] * iscale


@cuda.jit(cache=True)
def _decorate(npts, alloc, bucket_pillar, slot_of, pillar_cnt, fill, coords, pillar_of_cell, nx, ny, M, vx, vy, vz,
              ox, oy, oz, features, npoints, stats):
    """Per bucket entry in slot r < M of pillar p: the offsets from the pillar mean (its first k = min(n, M) points
    summed in slot order, as on the CPU) and from the pillar centre; slot 0 also writes the pillar's point count,
    resets its scratch and counts the kept and dropped points. One thread a kept point: the warp-per-pillar kernel
    before (4 barriers a pillar, 3-6 points in 32 lanes) was bound by its chain of dependent loads, 24 us a scan
    for 3,000-8,600 pillars on an H200, 564 us for a batch of 32."""
    sh = cuda.shared.array(TPB, int32)
    b = cuda.blockIdx.y
    t = cuda.threadIdx.x
    q = cuda.grid(1)
    kept = 0
    full = 0
    if q < alloc[b] and q < npts[b]:
        r = slot_of[b, q]
        p = bucket_pillar[b, q]
        if r < M:
            n = pillar_cnt[b, p]
            k = n if n < M else M
            sx = float32(0.0)
            sy = float32(0.0)
            sz = float32(0.0)
            for s in range(k):  # slot order, as the CPU
                sx += features[b, p, s, 0]
                sy += features[b, p, s, 1]
                sz += features[b, p, s, 2]
            fn = float32(k)
            x = features[b, p, r, 0]
            y = features[b, p, r, 1]
            z = features[b, p, r, 2]
            cz = coords[b, p, 1]
            cy = coords[b, p, 2]
            cx = coords[b, p, 3]
            features[b, p, r, 4] = x - sx / fn
            features[b, p, r, 5] = y - sy / fn
            features[b, p, r, 6] = z - sz / fn
            features[b, p, r, 7] = x - fadd(fmul(float32(cx), vx), ox)
            features[b, p, r, 8] = y - fadd(fmul(float32(cy), vy), oy)
            features[b, p, r, 9] = z - fadd(fmul(float32(cz), vz), oz)
            if r == 0:
                npoints[b, p] = k
                fill[b, p] = 0
                pillar_of_cell[b, (cz * ny + cy) * nx + cx] = -1
                kept = k
                full = n - k
    kept = block_sum(sh, t, kept)
    full = block_sum(sh, t, full)
    if t == 0:
        if kept > 0:
            cuda.atomic.add(stats, (b, KEPT), kept)
        if full > 0:
            cuda.atomic.add(stats, (b, DROPPED_FULL), full)


@cuda.jit(cache=True)
def _zero_rows(num_pillars, npoints, M, nfeat, features):
    """The dense PFN input's zeros, per (pillar, slot) of item blockIdx.y, grid-stride: the slots past a pillar's
    points and every slot of the rows in [P, previous P), so every row >= P and every slot >= npoints is zero."""
    b = cuda.blockIdx.y
    num = num_pillars[b, 0]
    prev = num_pillars[b, 1]
    end = (num if num > prev else prev) * M
    e = cuda.grid(1)
    while e < end:
        p = e // M
        r = e - p * M
        if p >= num or r >= npoints[b, p]:
            for ch in range(nfeat):
                features[b, p, r, ch] = float32(0.0)
        e += cuda.gridsize(1)


@dataclass
class VoxelBuffers:
    """Device arrays of the voxelizer (Numba views), batched [B, ...] or one item's [...] slices (item(b));
    features/coords/npoints/num_pillars feed later stages."""

    points: Any  # [B, max_points_in, 4] float32 (first n rows valid)
    features: Any  # [B, max_pillars, M, 10] float32: the PFN input
    coords: Any  # [B, max_pillars, 4] int32 (b, z, y, x)
    npoints: Any  # [B, max_pillars] int32
    npts: Any  # [B] int32: each scan's point count (written by the pipeline's upload)
    num_pillars: Any  # [B, 2] int32: [b, 0] this scan's P, [b, 1] the previous scan's
    stats: Any  # [B, 8] int32: in_range, kept, dropped_full, dropped_max


class GpuVoxelizer:
    """Enqueues the voxelization kernels on a stream for a batch of up to `batch` scans, each kernel one
    launch for the whole batch (blockIdx.y = batch item: at B = 32 one launch-by-lane per item kept the GPU idle
    between small kernels); every buffer comes from ``alloc`` once, with a leading batch dimension."""

    def __init__(self, cfg: PointPillarsConfig, alloc: Any, max_input_points: int, batch: int = 1,
                 npts: Any = None, dense: bool = True) -> None:
        self.cfg = cfg
        self.dense = bool(dense)  # zero every slot past a pillar's points and every row >= P (the ONNX PFN's input)
        self.vp = vp = VoxelParams.from_config(cfg)
        nx, ny, nz = vp.grid
        self.max_input_points = int(max_input_points)
        self.batch = B = int(batch)
        ncell = nx * ny * nz
        N, P = self.max_input_points, vp.max_pillars
        a = lambda shape, dtype, what: alloc.array((B, *shape), dtype, what)  # noqa: E731
        self.buf = VoxelBuffers(
            points=a((N, 4), np.float32, "points"),
            features=a((P, vp.max_points, cfg.pfn_in_features), np.float32, "features"),
            coords=a((P, 4), np.int32, "coords"),
            npoints=a((P,), np.int32, "npoints"),
            npts=alloc.array((B,), np.int32, "npts") if npts is None else npts,
            num_pillars=a((2,), np.int32, "num_pillars"),
            stats=a((NSTATS,), np.int32, "vox_stats"),
        )
        self.cell_of_point = a((N,), np.int32, "cell_of_point")
        self.first_pt = a((ncell,), np.int32, "first_pt")
        alloc.fill(self.first_pt, INT_MAX)
        self.cell_count = a((ncell,), np.int32, "cell_count")
        self.pillar_of_cell = a((ncell,), np.int32, "pillar_of_cell")
        alloc.fill(self.pillar_of_cell, -1)
        self.block_open = a(((N + TPB - 1) // TPB,), np.int32, "block_open")
        self.pillar_cnt = a((P,), np.int32, "pillar_cnt")
        self.pillar_off = a((P,), np.int32, "pillar_off")
        self.fill = a((P,), np.int32, "pillar_fill")
        self.bucket = a((N,), np.int32, "bucket")
        self.bucket_pillar = a((N,), np.int32, "bucket_pillar")
        self.slot_of = a((N,), np.int32, "slot_of")
        self.alloc_ctr = alloc.array((B,), np.int32, "alloc_ctr")
        f = np.float32
        self._range = tuple(f(v) for v in (vp.range_min[0], vp.range_min[1], vp.range_min[2], vp.range_max[0], vp.range_max[1]))
        self._vsize = tuple(f(v) for v in vp.voxel_size)
        self._offset = tuple(f(v) for v in vp.centre_offset)

    def item(self, b: int) -> VoxelBuffers:
        """Batch item b's buffers (views; npts as a [1] view of its count)."""
        x = self.buf
        return VoxelBuffers(x.points[b], x.features[b], x.coords[b], x.npoints[b], x.npts[b: b + 1],
                            x.num_pillars[b], x.stats[b])

    def pillar_capacity(self, point_capacity: int) -> int:
        """Rows the PFN must run on for scans of up to point_capacity points: min(max_pillars, capacity)."""
        return max(1, min(self.vp.max_pillars, int(point_capacity)))

    def _check(self, point_capacity: int, batch: int | None) -> tuple[int, int]:
        cap, batch = int(point_capacity), self.batch if batch is None else int(batch)
        if cap > self.max_input_points or not 1 <= batch <= self.batch:
            raise ValueError(f"capacity {cap} x batch {batch} exceeds the GPU buffers of {self.max_input_points} "
                             f"points x {self.batch}")
        return cap, batch

    def enqueue(self, point_capacity: int, stream: Any = 0, batch: int | None = None) -> int:
        """Voxelize the first npts[b] (<= point_capacity) rows of buf.points[b] for the first `batch` items (all by
        default); returns the pillar capacity. Launch sizes depend only on the capacity and the batch size, never
        on a scan's counts (graph-safe)."""
        cap, batch = self._check(point_capacity, batch)
        nx, ny, nz = self.vp.grid
        b = self.buf
        grid = (max(1, (cap + TPB - 1) // TPB), batch)
        _cells[grid, TPB, stream](b.points, b.npts, *self._range, *self._vsize, nx, ny, nz, self.cell_of_point,
                                  self.first_pt, self.cell_count, b.num_pillars, b.stats, self.alloc_ctr)
        _count_openers[grid, TPB, stream](b.npts, self.cell_of_point, self.first_pt, self.block_open, b.stats)
        _number_pillars[grid, TPB, stream](b.npts, nx, ny, self.vp.max_pillars, self.cell_of_point, self.first_pt,
                                           self.cell_count, self.block_open, self.pillar_of_cell, b.coords,
                                           self.pillar_cnt, self.pillar_off, self.alloc_ctr, b.num_pillars)
        _fill_buckets[grid, TPB, stream](b.npts, self.cell_of_point, self.pillar_of_cell, self.first_pt,
                                         self.cell_count, self.pillar_off, self.fill, self.bucket,
                                         self.bucket_pillar, b.stats)
        return self.enqueue_decorate(cap, stream, batch)

    def enqueue_decorate(self, point_capacity: int, stream: Any = 0, batch: int | None = None) -> int:
        """Launches 5-7 alone (enqueue runs them last): the features of the pillars whose buckets launches 1-4
        filled. Rerunning them on the same buckets gives the same features (tests reorder a bucket to check the
        slots). Launch 7 (dense only) strides over (pillar, slot) pairs with at most about DECORATE_BLOCKS blocks:
        a launch over the whole pillar capacity (40,000 x 32 for 3,000-8,600 pillars) would mostly start empty
        blocks. Without `dense` the slots past a pillar's points and the rows >= P keep old values: a PFN that
        reads only each pillar's npoints rows of its P pillars (backends/numba_pfn.py) never sees them, and those
        zeros were 85% of the feature bytes written."""
        cap, batch = self._check(point_capacity, batch)
        nx, ny, _ = self.vp.grid
        b = self.buf
        M = self.vp.max_points
        grid = (max(1, (cap + TPB - 1) // TPB), batch)
        _place_points[grid, TPB, stream](b.npts, self.alloc_ctr, self.bucket, self.bucket_pillar, self.pillar_cnt,
                                         self.pillar_off, b.points, M, self.vp.intensity_scale, b.features,
                                         self.slot_of)
        _decorate[grid, TPB, stream](b.npts, self.alloc_ctr, self.bucket_pillar, self.slot_of, self.pillar_cnt,
                                     self.fill, b.coords, self.pillar_of_cell, nx, ny, M, *self._vsize, *self._offset,
                                     b.features, b.npoints, b.stats)
        rows = self.pillar_capacity(cap)
        if self.dense:
            blocks = bounded_blocks((rows * M + TPB - 1) // TPB, batch, DECORATE_BLOCKS, DECORATE_BLOCKS_MIN)
            _zero_rows[(blocks, batch), TPB, stream](b.num_pillars, b.npoints, M, self.cfg.pfn_in_features,
                                                     b.features)
        return rows


def stats_from_device(num_pillars: int, stats: np.ndarray) -> VoxelStats:
    """VoxelStats from the downloaded counters."""
    return VoxelStats(int(num_pillars), int(stats[IN_RANGE]), int(stats[KEPT]), int(stats[DROPPED_FULL]),
                      int(stats[DROPPED_MAX]))

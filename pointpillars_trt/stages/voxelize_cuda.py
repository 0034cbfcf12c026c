"""Deterministic hard voxelization + 10-feature decoration on the GPU (Numba CUDA), bit-identical to voxelize.py.

Five module-level kernels (compiled once, cached on disk), no host sync, every count read from device memory
(``npts[0]`` points, ``num_pillars[0]`` pillars), so launches only need a capacity and a captured CUDA graph
replays them for any scan that fits it:
  1. per point: float32 cell id (same arithmetic as the njit code); per cell
     atomicMin of the first point index and a point count.
  2. per block of points: how many points open their cell (i == first point)
     and how many are in range.
  3. per point: pillar id = number of openers before it (block prefix + block
     scan), so pillars are numbered by first appearance exactly as on the CPU;
     openers past max_pillars get none (their cell's points are dropped).
  4. per point: append the point index to its pillar's bucket (unordered).
  5. per pillar (32 threads): the 32 smallest point indices of the bucket, sorted
     (bitonic selection, 32 entries at a time), so a pillar keeps its first
     max_points points in input order; then the mean (summed in slot order) and
     the decoration.
Rows in [P, previous P) of the feature buffer are zeroed (grid-stride), so rows >= P
are always zero and the PFN may run on any capacity >= P. Cell-indexed scratch is
reset by the kernels that last read it (only the touched cells).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cuda, float32, int32

from pointpillars_trt.errors import UserError
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.stages.cuda_fp import fadd, fmul
from pointpillars_trt.stages.voxelize import VoxelParams, VoxelStats

TPB = 256  # threads per block of the per-point kernels (power of two)
LANES = 32  # threads per pillar in the decorate kernel: at most 32 points per pillar on the GPU
G = 4  # pillars per block in the decorate kernel (G * LANES threads)
INT_MAX = np.int32(2**31 - 1)
# stats slots (int32)
IN_RANGE, KEPT, DROPPED_FULL, DROPPED_MAX = 0, 1, 2, 3
NSTATS = 8


@cuda.jit(device=True)
def _block_sum(sh, t, v):
    """Sum v over the block (TPB threads) through shared array sh; result valid in every thread."""
    sh[t] = v
    cuda.syncthreads()
    s = TPB // 2
    while s > 0:
        if t < s:
            sh[t] += sh[t + s]
        cuda.syncthreads()
        s //= 2
    r = sh[0]
    cuda.syncthreads()
    return r


@cuda.jit(cache=True)
def _cells(points, npts, rx0, ry0, rz0, rx1, ry1, vx, vy, vz, nx, ny, nz, cell_of_point, first_pt, cell_count,
           num_pillars, stats, alloc):
    """Per point: its cell (float32 arithmetic as the njit code), the cell's first point and point count."""
    i = cuda.grid(1)
    if i == 0:
        num_pillars[1] = num_pillars[0]  # the previous scan's P (decorate zeroes rows [P, prev))
        for k in range(NSTATS):
            stats[k] = 0
        alloc[0] = 0
    if i >= npts[0]:
        return
    x = points[i, 0]
    y = points[i, 1]
    z = points[i, 2]
    c = -1
    if x >= rx0 and x <= rx1 and y >= ry0 and y <= ry1:
        fx = (x - rx0) / vx
        fy = (y - ry0) / vy
        fz = (z - rz0) / vz
        # floor(f) >= 0 <=> f >= 0 and floor(f) < n <=> f < n; int32(f) == floor(f) for f >= 0
        if fx >= 0 and fx < nx and fy >= 0 and fy < ny and fz >= 0 and fz < nz:
            c = (int32(fz) * ny + int32(fy)) * nx + int32(fx)
            cuda.atomic.min(first_pt, c, i)
            cuda.atomic.add(cell_count, c, 1)
    cell_of_point[i] = c


@cuda.jit(cache=True)
def _count_openers(npts, cell_of_point, first_pt, block_open, stats):
    """Per block of points: how many open their cell (are its first point); points in range to the stats."""
    sh = cuda.shared.array(TPB, int32)
    i = cuda.grid(1)
    t = cuda.threadIdx.x
    op = 0
    inr = 0
    if i < npts[0]:
        c = cell_of_point[i]
        if c >= 0:
            inr = 1
            if first_pt[c] == i:
                op = 1
    tot_open = _block_sum(sh, t, op)
    tot_in = _block_sum(sh, t, inr)
    if t == 0:
        block_open[cuda.blockIdx.x] = tot_open
        if tot_in > 0:
            cuda.atomic.add(stats, IN_RANGE, tot_in)


@cuda.jit(cache=True)
def _number_pillars(npts, batch, nx, ny, max_pillars, cell_of_point, first_pt, cell_count, block_open,
                    pillar_of_cell, coords, pillar_cnt, pillar_off, alloc, num_pillars):
    """Per point: pillar id = openers before it (block prefix + in-block scan): numbered by first appearance."""
    sh = cuda.shared.array(TPB, int32)
    i = cuda.grid(1)
    t = cuda.threadIdx.x
    b = cuda.blockIdx.x
    part = 0
    for k in range(t, b, TPB):
        part += block_open[k]
    prefix = _block_sum(sh, t, part)
    op = 0
    c = -1
    if i < npts[0]:
        c = cell_of_point[i]
        if c >= 0 and first_pt[c] == i:
            op = 1
    # inclusive Hillis-Steele scan of opener flags within the block
    sh[t] = op
    cuda.syncthreads()
    s = 1
    while s < TPB:
        v = sh[t - s] if t >= s else 0
        cuda.syncthreads()
        sh[t] += v
        cuda.syncthreads()
        s *= 2
    pid = prefix + sh[t] - op
    if op == 1 and pid < max_pillars:
        pillar_of_cell[c] = pid
        coords[pid, 0] = batch
        coords[pid, 1] = c // (nx * ny)
        coords[pid, 2] = (c // nx) % ny
        coords[pid, 3] = c % nx
        cnt = cell_count[c]
        pillar_cnt[pid] = cnt
        pillar_off[pid] = cuda.atomic.add(alloc, 0, cnt)
    if b == cuda.gridDim.x - 1 and t == TPB - 1:
        total = prefix + sh[t]
        num_pillars[0] = total if total < max_pillars else max_pillars


@cuda.jit(cache=True)
def _fill_buckets(npts, cell_of_point, pillar_of_cell, first_pt, cell_count, pillar_off, fill, bucket, stats):
    """Per point: append its index to its pillar's bucket (unordered); reset the cell scratch it read."""
    sh = cuda.shared.array(TPB, int32)
    i = cuda.grid(1)
    t = cuda.threadIdx.x
    drop = 0
    if i < npts[0]:
        c = cell_of_point[i]
        if c >= 0:
            p = pillar_of_cell[c]
            if p < 0:
                drop = 1
            else:
                k = cuda.atomic.add(fill, p, 1)
                bucket[pillar_off[p] + k] = i
            first_pt[c] = INT_MAX
            cell_count[c] = 0
    tot = _block_sum(sh, t, drop)
    if t == 0 and tot > 0:
        cuda.atomic.add(stats, DROPPED_MAX, tot)


@cuda.jit(device=True, inline=True)
def _partner(sv, g, lane, v, j):
    """The value of lane (lane ^ j) of this pillar's warp, through shared memory (the CUDA simulator CI tests with
    has no warp shuffles); block-wide barriers, so every thread of the block must call it the same number of times."""
    sv[g, lane] = v
    cuda.syncthreads()
    o = sv[g, lane ^ j]
    cuda.syncthreads()
    return o


@cuda.jit(device=True, inline=True)
def _bitonic32(sv, g, lane, v, k0, desc):
    """Bitonic sort stages k0..32 of 32 values (one per lane): k0=2 sorts, k0=32 merges a bitonic sequence;
    ascending across lanes, or descending with desc."""
    k = k0
    while k <= LANES:
        j = k // 2
        while j >= 1:
            o = _partner(sv, g, lane, v, j)
            up = ((lane & k) == 0) != desc
            if ((lane & j) == 0) == up:
                v = min(v, o)
            else:
                v = max(v, o)
            j //= 2
        k *= 2
    return v


@cuda.jit(cache=True)
def _decorate(points, bucket, pillar_cnt, pillar_off, fill, coords, pillar_of_cell, num_pillars, nx, ny, M, nfeat,
              vx, vy, vz, ox, oy, oz, features, npoints, stats):
    """Per pillar (LANES threads): its first M points in input order = the M smallest indices of its unordered
    bucket, selected 32 at a time (each chunk bitonic-sorted descending, merged into the running 32 smallest by
    an elementwise min and a bitonic merge): O(n log^2 32) per pillar where ranking every entry against every
    other was O(n^2) (dense pillars near the sensor hold hundreds of points). Then the mean (summed in slot
    order, as on the CPU) and the decoration, from registers. Rows in [P, previous P) are zeroed with a
    grid-stride loop, so rows >= P stay zero whatever the launch size."""
    sv = cuda.shared.array((G, LANES), int32)
    sxyz = cuda.shared.array((G, LANES, 3), float32)
    sh_cnt = cuda.shared.array((G, 2), int32)
    t = cuda.threadIdx.x
    g = t // LANES
    lane = t % LANES
    p = cuda.blockIdx.x * G + g
    num = num_pillars[0]
    prev = num_pillars[1]
    n = 0
    off = 0
    if p < num:
        n = pillar_cnt[p]
        off = pillar_off[p]
    if lane == 0:
        sh_cnt[g, 0] = n
    cuda.syncthreads()
    most = 0
    for q in range(G):
        most = max(most, sh_cnt[q, 0])  # every thread loops over the block's largest pillar (barriers inside)
    cuda.syncthreads()
    best = INT_MAX
    for base in range(0, most, LANES):
        e = base + lane
        v = bucket[off + e] if e < n else INT_MAX
        v = _bitonic32(sv, g, lane, v, 2, True)
        best = _bitonic32(sv, g, lane, min(best, v), LANES, False)
    k = n if n < M else M
    x = float32(0.0)
    y = float32(0.0)
    z = float32(0.0)
    if lane < k:
        x = points[best, 0]
        y = points[best, 1]
        z = points[best, 2]
        features[p, lane, 3] = points[best, 3]
    sxyz[g, lane, 0] = x
    sxyz[g, lane, 1] = y
    sxyz[g, lane, 2] = z
    if lane == 0:
        sh_cnt[g, 1] = n - k
    cuda.syncthreads()
    if p < num:
        sx = float32(0.0)
        sy = float32(0.0)
        sz = float32(0.0)
        for s in range(k):  # slot order, as the CPU
            sx += sxyz[g, s, 0]
            sy += sxyz[g, s, 1]
            sz += sxyz[g, s, 2]
        if lane < k:
            fn = float32(k)
            px = fadd(fmul(float32(coords[p, 3]), vx), ox)
            py = fadd(fmul(float32(coords[p, 2]), vy), oy)
            pz = fadd(fmul(float32(coords[p, 1]), vz), oz)
            features[p, lane, 0] = x
            features[p, lane, 1] = y
            features[p, lane, 2] = z
            features[p, lane, 4] = x - sx / fn
            features[p, lane, 5] = y - sy / fn
            features[p, lane, 6] = z - sz / fn
            features[p, lane, 7] = x - px
            features[p, lane, 8] = y - py
            features[p, lane, 9] = z - pz
        elif lane < M:
            for ch in range(nfeat):
                features[p, lane, ch] = float32(0.0)
        if lane == 0:
            npoints[p] = k
            fill[p] = 0
            pillar_of_cell[(coords[p, 1] * ny + coords[p, 2]) * nx + coords[p, 3]] = -1
    stride = cuda.gridDim.x * G
    q = p if p >= num else p + stride * ((num - p + stride - 1) // stride)  # first row >= num in this lane's walk
    while q < prev:
        if lane < M:
            for ch in range(nfeat):
                features[q, lane, ch] = float32(0.0)
        q += stride
    cuda.syncthreads()
    if t == 0:
        kept = 0
        full = 0
        for q in range(G):
            c = sh_cnt[q, 0]
            kept += c if c < M else M
            full += sh_cnt[q, 1]
        if kept > 0:
            cuda.atomic.add(stats, KEPT, kept)
        if full > 0:
            cuda.atomic.add(stats, DROPPED_FULL, full)


@dataclass
class VoxelBuffers:
    """Device arrays of the voxelizer (Numba views); features/coords/npoints/num_pillars feed later stages."""

    points: Any  # [max_points_in, 4] float32 (first n rows valid)
    features: Any  # [max_pillars, M, 10] float32: the PFN input
    coords: Any  # [max_pillars, 4] int32 (b, z, y, x)
    npoints: Any  # [max_pillars] int32
    npts: Any  # [1] int32: this scan's point count (written by the pipeline's upload)
    num_pillars: Any  # [2] int32: [0] this scan's P, [1] the previous scan's
    stats: Any  # [8] int32: in_range, kept, dropped_full, dropped_max


class GpuVoxelizer:
    """Enqueues the five voxelization kernels on a stream for one batch item; every buffer comes from ``alloc`` once."""

    def __init__(self, cfg: PointPillarsConfig, alloc: Any, max_input_points: int, batch_index: int = 0,
                 name: str = "", npts: Any = None) -> None:
        self.cfg = cfg
        self.vp = vp = VoxelParams.from_config(cfg)
        if vp.max_points > LANES:
            raise UserError(f"the GPU voxelizer keeps at most {LANES} points per pillar; the config asks for {vp.max_points}")
        nx, ny, nz = vp.grid
        self.max_input_points = int(max_input_points)
        self.batch_index = int(batch_index)
        ncell = nx * ny * nz
        N, P = self.max_input_points, vp.max_pillars
        a = lambda shape, dtype, what: alloc.array(shape, dtype, f"{name}{what}")  # noqa: E731
        self.buf = VoxelBuffers(
            points=a((N, 4), np.float32, "points"),
            features=a((P, vp.max_points, cfg.pfn_in_features), np.float32, "features"),
            coords=a((P, 4), np.int32, "coords"),
            npoints=a((P,), np.int32, "npoints"),
            npts=a((1,), np.int32, "npts") if npts is None else npts,
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
        self.alloc_ctr = a((1,), np.int32, "alloc_ctr")
        f = np.float32
        self._range = tuple(f(v) for v in (vp.range_min[0], vp.range_min[1], vp.range_min[2], vp.range_max[0], vp.range_max[1]))
        self._vsize = tuple(f(v) for v in vp.voxel_size)
        self._offset = tuple(f(v) for v in vp.centre_offset)

    def pillar_capacity(self, point_capacity: int) -> int:
        """Rows the PFN must run on for scans of up to point_capacity points: min(max_pillars, capacity)."""
        return max(1, min(self.vp.max_pillars, int(point_capacity)))

    def enqueue(self, point_capacity: int, stream: Any = 0) -> int:
        """Voxelize the first npts[0] (<= point_capacity) rows of buf.points; returns the pillar capacity.

        Launch sizes depend only on the capacity, never on this scan's counts (graph-safe)."""
        cap = int(point_capacity)
        if cap > self.max_input_points:
            raise ValueError(f"capacity {cap} exceeds the GPU buffer of {self.max_input_points} points")
        nx, ny, nz = self.vp.grid
        b = self.buf
        nb = max(1, (cap + TPB - 1) // TPB)
        _cells[nb, TPB, stream](b.points, b.npts, *self._range, *self._vsize, nx, ny, nz, self.cell_of_point,
                                self.first_pt, self.cell_count, b.num_pillars, b.stats, self.alloc_ctr)
        _count_openers[nb, TPB, stream](b.npts, self.cell_of_point, self.first_pt, self.block_open, b.stats)
        _number_pillars[nb, TPB, stream](b.npts, self.batch_index, nx, ny, self.vp.max_pillars, self.cell_of_point,
                                         self.first_pt, self.cell_count, self.block_open, self.pillar_of_cell,
                                         b.coords, self.pillar_cnt, self.pillar_off, self.alloc_ctr, b.num_pillars)
        _fill_buckets[nb, TPB, stream](b.npts, self.cell_of_point, self.pillar_of_cell, self.first_pt,
                                       self.cell_count, self.pillar_off, self.fill, self.bucket, b.stats)
        return self.enqueue_decorate(cap, stream)

    def enqueue_decorate(self, point_capacity: int, stream: Any = 0) -> int:
        """Launch 5 alone (enqueue runs it last): the features of the pillars whose buckets launches 1-4 filled.
        Rerunning it on the same buckets gives the same features (tests reorder a bucket to check the selection)."""
        nx, ny, _ = self.vp.grid
        b = self.buf
        rows = self.pillar_capacity(point_capacity)
        _decorate[(rows + G - 1) // G, G * LANES, stream](
            b.points, self.bucket, self.pillar_cnt, self.pillar_off, self.fill, b.coords, self.pillar_of_cell,
            b.num_pillars, nx, ny, self.vp.max_points, self.cfg.pfn_in_features, *self._vsize, *self._offset,
            b.features, b.npoints, b.stats)
        return rows


def stats_from_device(num_pillars: int, stats: np.ndarray) -> VoxelStats:
    """VoxelStats from the downloaded counters."""
    return VoxelStats(int(num_pillars), int(stats[IN_RANGE]), int(stats[KEPT]), int(stats[DROPPED_FULL]),
                      int(stats[DROPPED_MAX]))

"""The pillar scatter (MFN: PointPillarScatter) as Numba CUDA kernels writing the RPN input buffer directly.

scatter: canvas[b, c, y, x] = pillar_features[b, p, c] for p < num_pillars[b, 0]
(coords[b] rows (b, z, y, x)); one launch per batch (blockIdx.y = b); clear: zero exactly those cells again before the
next scan (as scatter.py's clear_pillars on the CPU), so a canvas is cleared in
O(P) instead of O(B*64*ny*nx). The pillar count is read from device memory, so
launches need only an upper bound (no host sync); one thread per (pillar, channel), grid-stride.
The canvas is whatever the RPN runner takes: FP32 NCHW, or FP16 NHWC passed as a strided [B, C, ny, nx] view (the
store rounds to nearest, as torch's cast); consecutive threads write consecutive channels, contiguous in NHWC.
"""
from __future__ import annotations

from typing import Any

from numba import cuda, float32

from pointpillars_trt.launch import bounded_blocks

TPB = 256


BLOCKS = 4096  # blocks of one launch over a batch (enough to fill an H100/H200), split between the items
BLOCKS_MIN = 16  # ... but at least this many per item


@cuda.jit(cache=True)
def _scatter(pillar_features, coords, num_pillars, canvas):
    # grid-stride over item b's (pillar, channel) pairs: the launch is sized for a capacity, the count is on device
    b = cuda.blockIdx.y
    nc = pillar_features.shape[2]
    total = num_pillars[b, 0] * nc
    i = cuda.grid(1)
    while i < total:
        p = i // nc
        c = i - p * nc
        canvas[b, c, coords[b, p, 2], coords[b, p, 3]] = pillar_features[b, p, c]
        i += cuda.gridsize(1)


@cuda.jit(cache=True)
def _clear(coords, num_pillars, canvas):
    # grid-stride: the last scan may have had more pillars than this launch's capacity
    b = cuda.blockIdx.y
    nc = canvas.shape[1]
    i = cuda.grid(1)
    total = num_pillars[b, 0] * nc
    while i < total:
        p = i // nc
        c = i - p * nc
        canvas[b, c, coords[b, p, 2], coords[b, p, 3]] = float32(0.0)
        i += cuda.gridsize(1)


def _grid(bound: int, channels: int, batch: int) -> tuple[int, int]:
    """(blocks per item, items): enough threads for `bound` pillars, at most about BLOCKS in all (a launch over
    40,000 pillars x 64 channels for 3,000-8,600 real pillars spent most of its time starting empty blocks: 0.2 ms
    at B = 32 on an H200)."""
    need = max(1, (bound * channels + TPB - 1) // TPB)
    return bounded_blocks(need, batch, BLOCKS, BLOCKS_MIN), int(batch)


def scatter_pillars(pillar_features: Any, coords: Any, num_pillars: Any, canvas: Any, bound: int,
                    stream: Any = 0, batch: int | None = None) -> None:
    """Enqueue the scatter of item b's first num_pillars[b, 0] (<= bound) pillars into canvas[b] ([B, C, ny, nx]),
    for the first `batch` items (all of pillar_features' [B, P, C] by default), in one launch."""
    b = pillar_features.shape[0] if batch is None else batch
    _scatter[_grid(bound, canvas.shape[1], b), TPB, stream](pillar_features, coords, num_pillars, canvas)


def clear_pillars(coords: Any, num_pillars: Any, canvas: Any, bound: int, stream: Any = 0,
                  batch: int | None = None) -> None:
    """Enqueue zeroing of the cells that the last scatter wrote (same coords and counts, any count: grid-stride)."""
    b = coords.shape[0] if batch is None else batch
    _clear[_grid(bound, canvas.shape[1], b), TPB, stream](coords, num_pillars, canvas)

"""The pillar scatter (MFN: PointPillarScatter) as Numba CUDA kernels writing the RPN input buffer directly.

scatter: canvas[b, c, y, x] = pillar_features[p, c] for p < num_pillars[0]
(coords rows (b, z, y, x)); clear: zero exactly those cells again before the
next scan (as scatter.py's clear_pillars on the CPU), so a canvas is cleared in
O(P) instead of O(B*64*ny*nx). The pillar count is read from device memory, so
launches need only an upper bound (no host sync); one thread per (pillar, channel).
The canvas is whatever the RPN runner takes: FP32 NCHW, or FP16 NHWC passed as a strided [B, C, ny, nx] view (the
store rounds to nearest, as torch's cast); consecutive threads write consecutive channels, contiguous in NHWC.
"""
from __future__ import annotations

from typing import Any

from numba import cuda, float32

TPB = 256


@cuda.jit(cache=True)
def _scatter(pillar_features, coords, num_pillars, canvas):
    i = cuda.grid(1)
    nc = pillar_features.shape[1]
    p = i // nc
    if p < num_pillars[0]:
        c = i - p * nc
        canvas[coords[p, 0], c, coords[p, 2], coords[p, 3]] = pillar_features[p, c]


@cuda.jit(cache=True)
def _clear(coords, num_pillars, canvas):
    # grid-stride: the last scan may have had more pillars than this launch's capacity
    nc = canvas.shape[1]
    i = cuda.grid(1)
    total = num_pillars[0] * nc
    while i < total:
        p = i // nc
        c = i - p * nc
        canvas[coords[p, 0], c, coords[p, 2], coords[p, 3]] = float32(0.0)
        i += cuda.gridsize(1)


def _grid(bound: int, channels: int) -> int:
    return max(1, (bound * channels + TPB - 1) // TPB)


def scatter_pillars(pillar_features: Any, coords: Any, num_pillars: Any, canvas: Any, bound: int,
                    stream: Any = 0) -> None:
    """Enqueue the scatter of the first num_pillars[0] (<= bound) pillars into canvas [B, C, ny, nx]."""
    _scatter[_grid(bound, canvas.shape[1]), TPB, stream](pillar_features, coords, num_pillars, canvas)


def clear_pillars(coords: Any, num_pillars: Any, canvas: Any, bound: int, stream: Any = 0) -> None:
    """Enqueue zeroing of the cells that the last scatter wrote (same coords and count, any count: grid-stride)."""
    _clear[_grid(bound, canvas.shape[1]), TPB, stream](coords, num_pillars, canvas)

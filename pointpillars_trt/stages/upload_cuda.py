"""The upload as a kernel: a scan's count and its n points read by the GPU straight from mapped pinned host memory.

Why: a captured memcpy must copy a fixed size, so the upload moved the whole capacity bucket (16 B x 32768 points
for a 20k-point scan) before any kernel ran; a kernel reads the count first and copies exactly 4 x n floats, flat,
so a warp reads 128 consecutive bytes of host memory at a time. One thread per float of the capacity; the count is
read once per block, and one launch covers the batch (blockIdx.y). With copy=0 it copies only the count (device input: the points are already on the GPU).
"""
from __future__ import annotations

from typing import Any

from numba import cuda, int32

TPB = 256


@cuda.jit(cache=True)
def _upload(src_counts, src_points, copy, counts, points):
    """For batch item b = blockIdx.y: counts[b] = src_counts[b]; points[b, :4n] = src_points[b, :4n] (flat float32)
    when copy != 0."""
    n_sh = cuda.shared.array(1, int32)
    b = cuda.blockIdx.y
    t = cuda.threadIdx.x
    if t == 0:
        n_sh[0] = src_counts[b]
        if cuda.blockIdx.x == 0:
            counts[b] = n_sh[0]
    cuda.syncthreads()
    i = cuda.grid(1)
    if copy != 0 and i < 4 * n_sh[0]:
        points[b, i] = src_points[b, i]


def upload_points(src_counts: Any, src_points: Any, copy: bool, counts: Any, points: Any, capacity: int,
                  batch: int, stream: Any = 0) -> None:
    """Enqueue, for the first `batch` items, one launch: counts[b] from src_counts[b], and (copy) that many
    [x, y, z, i] rows from the flat src_points[b] into the flat points[b] (capacity rows at most); src_* may be
    mapped pinned host memory."""
    blocks = max(1, (4 * int(capacity) + TPB - 1) // TPB) if copy else 1
    _upload[(blocks, int(batch)), TPB, stream](src_counts, src_points, 1 if copy else 0, counts, points)

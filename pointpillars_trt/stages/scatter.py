"""The pillar scatter (OpenPCDet's PointPillarScatter) on the CPU: [P, C] + coords -> canvas [B, C, ny, nx].

The GPU version is the Numba CUDA kernel in plugins/pillar_scatter.py; both write
only the cells of the given pillars, so clearing a canvas costs O(P), not O(grid).
"""
from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def scatter_pillars(pillar_features, coords, num_pillars, canvas):
    """canvas[b, :, y, x] = pillar_features[p] for p < num_pillars (coords rows are (b, z, y, x))."""
    for p in range(num_pillars):
        b = coords[p, 0]
        y = coords[p, 2]
        x = coords[p, 3]
        for c in range(pillar_features.shape[1]):
            canvas[b, c, y, x] = pillar_features[p, c]


@numba.njit(cache=True, nogil=True)
def clear_pillars(coords, num_pillars, canvas):
    """Zero the canvas cells that scatter_pillars wrote for these coords."""
    for p in range(num_pillars):
        b = coords[p, 0]
        y = coords[p, 2]
        x = coords[p, 3]
        for c in range(canvas.shape[1]):
            canvas[b, c, y, x] = 0.0

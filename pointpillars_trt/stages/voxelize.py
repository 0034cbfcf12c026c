"""Hard voxelization into pillars with the 10-feature decoration (CPU, Numba njit).

Semantics (DESIGN.md, OpenPCDet's test-time voxelizer + PillarVFE decoration):
points are visited in input order; a point is kept if range_min <= x,y <= range_max
and its float32 cell floor((p - min) / size) lies in the grid (this drops z outside
[-3, 1)); pillars are numbered by first appearance; a pillar keeps its first
``max_points`` points; a point that would open pillar ``max_pillars + 1`` is
dropped. Features per kept point: [x, y, z, i, x-xc, y-yc, z-zc, x-px, y-py, z-pz]
(i = the point's intensity times the config's intensity_scale, one float32 multiply)
with c the float32 mean of the pillar's kept points (summed in slot order) and p
the pillar centre; padded slots are all zero. The GPU kernel (stages/voxelize_cuda.py)
implements the same arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from pointpillars_trt.model.config import PointPillarsConfig


@dataclass(frozen=True)
class VoxelParams:
    """float32 constants the voxelizers need, derived from the config once."""

    range_min: np.ndarray  # [3] float32
    range_max: np.ndarray  # [3] float32
    voxel_size: np.ndarray  # [3] float32
    centre_offset: np.ndarray  # [3] float32: voxel_size/2 + range_min (OpenPCDet's x/y/z_offset)
    grid: tuple[int, int, int]  # nx, ny, nz
    max_points: int
    max_pillars: int
    intensity_scale: np.float32  # multiplies each kept point's intensity (1 leaves it exactly as given)

    @classmethod
    def from_config(cls, cfg: PointPillarsConfig) -> "VoxelParams":
        r = np.asarray(cfg.point_cloud_range, np.float64)
        v = np.asarray(cfg.voxel_size, np.float64)
        return cls(r[:3].astype(np.float32), r[3:].astype(np.float32), v.astype(np.float32),
                   (v / 2 + r[:3]).astype(np.float32), cfg.grid_size, cfg.max_points_per_pillar, cfg.max_pillars,
                   np.float32(cfg.intensity_scale))


@dataclass
class VoxelStats:
    """Counts a voxelization produced (for warnings and tests)."""

    num_pillars: int
    points_in_range: int
    points_kept: int
    dropped_pillar_full: int  # beyond max_points in a pillar (normal)
    dropped_max_pillars: int  # would have opened pillar max_pillars+1 (warn)


@numba.njit(cache=True, nogil=True)
def _voxelize(points, rmin, rmax, vsize, coffset, nx, ny, nz, max_points, max_pillars, iscale,
              pillar_of_cell, features, coords, npoints):
    """Assign points to pillars, then decorate. Returns (P, in_range, kept, dropped_full, dropped_max)."""
    n_pillars = 0
    in_range = 0
    kept = 0
    dropped_full = 0
    dropped_max = 0
    for i in range(points.shape[0]):
        x = points[i, 0]
        y = points[i, 1]
        z = points[i, 2]
        if not (x >= rmin[0] and x <= rmax[0] and y >= rmin[1] and y <= rmax[1]):
            continue
        fx = np.floor((x - rmin[0]) / vsize[0])
        fy = np.floor((y - rmin[1]) / vsize[1])
        fz = np.floor((z - rmin[2]) / vsize[2])
        # compare as floats before the int cast: z is not range-masked and may be huge
        if not (fx >= 0 and fx < nx and fy >= 0 and fy < ny and fz >= 0 and fz < nz):
            continue
        cx = np.int32(fx)
        cy = np.int32(fy)
        cz = np.int32(fz)
        in_range += 1
        cell = (cz * ny + cy) * nx + cx
        p = pillar_of_cell[cell]
        if p < 0:
            if n_pillars >= max_pillars:
                dropped_max += 1
                continue
            p = n_pillars
            n_pillars += 1
            pillar_of_cell[cell] = p
            coords[p, 0] = 0
            coords[p, 1] = cz
            coords[p, 2] = cy
            coords[p, 3] = cx
            npoints[p] = 0
        k = npoints[p]
        if k >= max_points:
            dropped_full += 1
            continue
        for c in range(3):
            features[p, k, c] = points[i, c]
        features[p, k, 3] = points[i, 3] * iscale
        npoints[p] = k + 1
        kept += 1
    for p in range(n_pillars):
        _decorate(p, features, coords, npoints, vsize, coffset, max_points)
        # reset the cell map for the next scan (touch only what was set)
        pillar_of_cell[(coords[p, 1] * ny + coords[p, 2]) * nx + coords[p, 3]] = -1
    return n_pillars, in_range, kept, dropped_full, dropped_max


@numba.njit(cache=True, nogil=True, inline="always")
def _decorate(p, features, coords, npoints, vsize, coffset, max_points):
    """Fill features[p, :, 4:10] for kept slots and zero padded slots (float32 throughout)."""
    n = npoints[p]
    sx = np.float32(0.0)
    sy = np.float32(0.0)
    sz = np.float32(0.0)
    for k in range(n):
        sx += features[p, k, 0]
        sy += features[p, k, 1]
        sz += features[p, k, 2]
    fn = np.float32(n)
    mx = sx / fn
    my = sy / fn
    mz = sz / fn
    px = np.float32(coords[p, 3]) * vsize[0] + coffset[0]
    py = np.float32(coords[p, 2]) * vsize[1] + coffset[1]
    pz = np.float32(coords[p, 1]) * vsize[2] + coffset[2]
    for k in range(n):
        x = features[p, k, 0]
        y = features[p, k, 1]
        z = features[p, k, 2]
        features[p, k, 4] = x - mx
        features[p, k, 5] = y - my
        features[p, k, 6] = z - mz
        features[p, k, 7] = x - px
        features[p, k, 8] = y - py
        features[p, k, 9] = z - pz
    for k in range(n, max_points):
        for c in range(features.shape[2]):
            features[p, k, c] = np.float32(0.0)


class Voxelizer:
    """CPU voxelizer with buffers allocated once (sized for max_pillars)."""

    def __init__(self, cfg: PointPillarsConfig) -> None:
        self.params = vp = VoxelParams.from_config(cfg)
        nx, ny, nz = vp.grid
        self.pillar_of_cell = np.full(nx * ny * nz, -1, np.int32)
        self.features = np.zeros((vp.max_pillars, vp.max_points, cfg.pfn_in_features), np.float32)
        self.coords = np.zeros((vp.max_pillars, 4), np.int32)
        self.npoints = np.zeros(vp.max_pillars, np.int32)

    def __call__(self, points: np.ndarray) -> VoxelStats:
        """Voxelize one scan into self.features/coords/npoints[:P]; returns the counts."""
        vp = self.params
        pts = np.ascontiguousarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] < 4:
            raise ValueError(f"points must be [N, >=4], got {pts.shape}")
        nx, ny, nz = vp.grid
        r = _voxelize(pts, vp.range_min, vp.range_max, vp.voxel_size, vp.centre_offset, nx, ny, nz,
                      vp.max_points, vp.max_pillars, vp.intensity_scale, self.pillar_of_cell, self.features,
                      self.coords, self.npoints)
        return VoxelStats(*[int(v) for v in r])

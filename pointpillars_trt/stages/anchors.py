"""Anchor generation (OpenPCDet's AnchorGenerator with align_center=False).

Layout: a = ((j * fx + i) * num_classes + class) * num_rot + rot, each row
(x, y, z_centre, dx, dy, dz, yaw). Centres are not cell-centred:
x = xmin + i * (xmax - xmin) / (fx - 1), likewise y; z = bottom + dz / 2.
"""
from __future__ import annotations

import numpy as np

from pointpillars_trt.model.config import PointPillarsConfig


def make_anchors(cfg: PointPillarsConfig) -> np.ndarray:
    """All anchors [fy * fx * classes * rotations, 7] float32 in head-output order."""
    fx, fy = cfg.feature_map_size
    r = cfg.point_cloud_range
    xs = r[0] + np.arange(fx, dtype=np.float64) * ((r[3] - r[0]) / (fx - 1))
    ys = r[1] + np.arange(fy, dtype=np.float64) * ((r[4] - r[1]) / (fy - 1))
    nrot = len(cfg.anchors[0].rotations)
    out = np.zeros((fy, fx, cfg.num_classes, nrot, 7), np.float64)
    out[..., 0] = xs[None, :, None, None]
    out[..., 1] = ys[:, None, None, None]
    for c, a in enumerate(cfg.anchors):
        out[:, :, c, :, 2] = a.bottom_z + a.size[2] / 2
        out[:, :, c, :, 3:6] = a.size
        out[:, :, c, :, 6] = np.asarray(a.rotations)[None, None, :]
    return out.reshape(-1, 7).astype(np.float32)

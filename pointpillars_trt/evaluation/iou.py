"""Overlap measures of the KITTI protocol: 2D image boxes, rotated BEV boxes and 3D boxes (Numba).

BEV and 3D boxes are KITTI camera-frame boxes (x, y_bottom, z, l, h, w, rotation_y). The BEV
footprint lies in the camera x-z plane with the length axis along (cos ry, -sin ry) (rotation
about camera y); the box spans y in [y_bottom - h, y_bottom] (camera y points down). Overlaps
are exact: the footprints are intersected by clipping one rotated rectangle by the other.
"""
from __future__ import annotations

import numpy as np
from numba import njit


# ------------------------------------------------------------------------------------ 2D
@njit(cache=True)
def box2d_overlap(a: np.ndarray, b: np.ndarray, criterion: int) -> float:
    """Overlap of two x1,y1,x2,y2 boxes: IoU (criterion -1) or intersection / area of `a` (criterion 0)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0.0 or h <= 0.0:
        return 0.0
    inter = w * h
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    if criterion == 0:
        return inter / area_a if area_a > 0.0 else 0.0
    union = area_a + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0.0 else 0.0


# ------------------------------------------------------------------------------- rotated BEV
@njit(cache=True)
def _footprint(box: np.ndarray, out: np.ndarray) -> None:
    """Counter-clockwise corners [4,2] (x, z) of the BEV footprint of a camera box."""
    c = np.cos(box[6])
    s = np.sin(box[6])
    hl = 0.5 * box[3]
    hw = 0.5 * box[5]
    # local (length, width) corners in CCW order; length axis (c, -s), width axis (s, c): det = +1
    for k in range(4):
        u = -hl if (k == 0 or k == 3) else hl
        v = -hw if k < 2 else hw
        out[k, 0] = box[0] + u * c + v * s
        out[k, 1] = box[2] - u * s + v * c


@njit(cache=True)
def _polygon_area(p: np.ndarray, n: int) -> float:
    acc = 0.0
    for i in range(n):
        j = (i + 1) % n
        acc += p[i, 0] * p[j, 1] - p[j, 0] * p[i, 1]
    return 0.5 * abs(acc)


@njit(cache=True)
def convex_clip_area(subject: np.ndarray, clip: np.ndarray) -> float:
    """Area of the intersection of two convex CCW quadrilaterals (Sutherland-Hodgman clipping)."""
    buf_a = np.empty((16, 2))
    buf_b = np.empty((16, 2))
    for i in range(4):
        buf_a[i, 0] = subject[i, 0]
        buf_a[i, 1] = subject[i, 1]
    n = 4
    src = buf_a
    dst = buf_b
    for e in range(4):
        ax = clip[e, 0]
        az = clip[e, 1]
        ex = clip[(e + 1) % 4, 0] - ax
        ez = clip[(e + 1) % 4, 1] - az
        m = 0
        if n == 0:
            break
        px = src[n - 1, 0]
        pz = src[n - 1, 1]
        pside = ex * (pz - az) - ez * (px - ax)
        for i in range(n):
            qx = src[i, 0]
            qz = src[i, 1]
            qside = ex * (qz - az) - ez * (qx - ax)
            if qside >= 0.0:
                if pside < 0.0:  # entering: add the crossing point first
                    t = pside / (pside - qside)
                    dst[m, 0] = px + t * (qx - px)
                    dst[m, 1] = pz + t * (qz - pz)
                    m += 1
                dst[m, 0] = qx
                dst[m, 1] = qz
                m += 1
            elif pside >= 0.0:  # leaving: add the crossing point only
                t = pside / (pside - qside)
                dst[m, 0] = px + t * (qx - px)
                dst[m, 1] = pz + t * (qz - pz)
                m += 1
            px = qx
            pz = qz
            pside = qside
        n = m
        tmp = src
        src = dst
        dst = tmp
    if n < 3:
        return 0.0
    return _polygon_area(src, n)


@njit(cache=True)
def bev_intersection(a: np.ndarray, b: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> float:
    """Area shared by the BEV footprints of camera boxes a and b (ca, cb: scratch [4,2])."""
    dx = a[0] - b[0]
    dz = a[2] - b[2]
    ra = 0.5 * np.sqrt(a[3] * a[3] + a[5] * a[5])
    rb = 0.5 * np.sqrt(b[3] * b[3] + b[5] * b[5])
    if dx * dx + dz * dz >= (ra + rb) * (ra + rb):
        return 0.0
    _footprint(a, ca)
    _footprint(b, cb)
    return convex_clip_area(ca, cb)


@njit(cache=True)
def bev_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Rotated BEV IoU of two camera boxes (x, y, z, l, h, w, ry) in the x-z plane."""
    ca = np.empty((4, 2))
    cb = np.empty((4, 2))
    inter = bev_intersection(a, b, ca, cb)
    if inter <= 0.0:
        return 0.0
    union = a[3] * a[5] + b[3] * b[5] - inter
    return inter / union if union > 0.0 else 0.0


@njit(cache=True)
def iou3d(a: np.ndarray, b: np.ndarray) -> float:
    """3D IoU of two camera boxes: BEV intersection x overlap of [y - h, y] intervals."""
    dy = min(a[1], b[1]) - max(a[1] - a[4], b[1] - b[4])
    if dy <= 0.0:
        return 0.0
    ca = np.empty((4, 2))
    cb = np.empty((4, 2))
    inter = bev_intersection(a, b, ca, cb) * dy
    if inter <= 0.0:
        return 0.0
    union = a[3] * a[4] * a[5] + b[3] * b[4] * b[5] - inter
    return inter / union if union > 0.0 else 0.0


# --------------------------------------------------------------------------- whole dataset
METRIC_BBOX, METRIC_BEV, METRIC_3D = 0, 1, 2


@njit(cache=True)
def dataset_overlaps(metric: int, gt_box: np.ndarray, gt_bbox: np.ndarray, gt_off: np.ndarray, gt_use: np.ndarray,
                     dt_box: np.ndarray, dt_bbox: np.ndarray, dt_off: np.ndarray, dt_use: np.ndarray,
                     pair_off: np.ndarray) -> np.ndarray:
    """Per-frame gt x dt overlap matrices, flattened frame after frame (frame f at pair_off[f], row-major).

    Pairs where either side is not used (DontCare, classes not evaluated) are left at 0.
    """
    out = np.zeros(pair_off[-1])
    ca = np.empty((4, 2))
    cb = np.empty((4, 2))
    for f in range(len(gt_off) - 1):
        g0 = gt_off[f]
        ng = gt_off[f + 1] - g0
        d0 = dt_off[f]
        nd = dt_off[f + 1] - d0
        base = pair_off[f]
        for i in range(ng):
            gi = g0 + i
            if not gt_use[gi]:
                continue
            for j in range(nd):
                dj = d0 + j
                if not dt_use[dj]:
                    continue
                if metric == METRIC_BBOX:
                    v = box2d_overlap(gt_bbox[gi], dt_bbox[dj], -1)
                else:
                    a = gt_box[gi]
                    b = dt_box[dj]
                    if metric == METRIC_BEV:
                        inter = bev_intersection(a, b, ca, cb)
                        union = a[3] * a[5] + b[3] * b[5] - inter
                    else:
                        dy = min(a[1], b[1]) - max(a[1] - a[4], b[1] - b[4])
                        inter = bev_intersection(a, b, ca, cb) * dy if dy > 0.0 else 0.0
                        union = a[3] * a[4] * a[5] + b[3] * b[4] * b[5] - inter
                    v = inter / union if inter > 0.0 and union > 0.0 else 0.0
                out[base + i * nd + j] = v
    return out

"""Exact rotated-rectangle BEV overlap (Numba njit): convex polygon clipping, float64.

Used by NMS (and usable by evaluation). A lidar box (x, y, z, dx, dy, dz, yaw)
covers in BEV the rectangle centred at (x, y), dx along the heading yaw, dy across.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def bev_corners(x, y, dx, dy, yaw, out):
    """Write the 4 corners (counter-clockwise) of a BEV rectangle into out[4, 2]."""
    c = np.cos(yaw)
    s = np.sin(yaw)
    hx = 0.5 * dx
    hy = 0.5 * dy
    lx = (hx, -hx, -hx, hx)
    ly = (hy, hy, -hy, -hy)
    for k in range(4):
        out[k, 0] = x + lx[k] * c - ly[k] * s
        out[k, 1] = y + lx[k] * s + ly[k] * c


@numba.njit(cache=True, nogil=True)
def polygon_area(poly, n):
    a = 0.0
    for k in range(n):
        j = (k + 1) % n
        a += poly[k, 0] * poly[j, 1] - poly[j, 0] * poly[k, 1]
    return 0.5 * abs(a)


@numba.njit(cache=True, nogil=True)
def convex_intersection_area(pa, na, pb, nb):
    """Area of the intersection of two counter-clockwise convex polygons (Sutherland-Hodgman)."""
    # a convex polygon clipped by a half-plane gains at most one vertex; 64 leaves room for float degeneracies
    cur = np.empty((64, 2))
    nxt = np.empty((64, 2))
    for k in range(na):
        cur[k, 0] = pa[k, 0]
        cur[k, 1] = pa[k, 1]
    n = na
    for e in range(nb):
        ax = pb[e, 0]
        ay = pb[e, 1]
        bx = pb[(e + 1) % nb, 0]
        by = pb[(e + 1) % nb, 1]
        m = 0
        for k in range(n):
            px = cur[k, 0]
            py = cur[k, 1]
            qx = cur[(k + 1) % n, 0]
            qy = cur[(k + 1) % n, 1]
            sp = (bx - ax) * (py - ay) - (by - ay) * (px - ax)  # >= 0: inside (left of edge)
            sq = (bx - ax) * (qy - ay) - (by - ay) * (qx - ax)
            if sp >= 0:
                nxt[m, 0] = px
                nxt[m, 1] = py
                m += 1
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                nxt[m, 0] = px + t * (qx - px)
                nxt[m, 1] = py + t * (qy - py)
                m += 1
        n = m
        if n < 3:
            return 0.0
        if n > 32:  # impossible for convex input; bail out rather than overrun the buffers next pass
            return 0.0
        for k in range(n):
            cur[k, 0] = nxt[k, 0]
            cur[k, 1] = nxt[k, 1]
    return polygon_area(cur, n)


@numba.njit(cache=True, nogil=True)
def bev_overlap(a, b):
    """Intersection area of the BEV rectangles of lidar boxes a and b (rows of 7)."""
    ra = 0.5 * np.sqrt(a[3] * a[3] + a[4] * a[4])
    rb = 0.5 * np.sqrt(b[3] * b[3] + b[4] * b[4])
    ddx = a[0] - b[0]
    ddy = a[1] - b[1]
    if ddx * ddx + ddy * ddy > (ra + rb) * (ra + rb):
        return 0.0
    pa = np.empty((4, 2))
    pb = np.empty((4, 2))
    bev_corners(a[0], a[1], a[3], a[4], a[6], pa)
    bev_corners(b[0], b[1], b[3], b[4], b[6], pb)
    return convex_intersection_area(pa, 4, pb, 4)


@numba.njit(cache=True, nogil=True)
def bev_iou(a, b):
    """Rotated BEV IoU of two lidar boxes; inter / max(union, 1e-8) as OpenPCDet's kernel."""
    inter = bev_overlap(a, b)
    union = a[3] * a[4] + b[3] * b[4] - inter
    return inter / max(union, 1e-8)


@numba.njit(cache=True, nogil=True)
def bev_iou_matrix(boxes_a, boxes_b):
    """[Na, Nb] rotated BEV IoU (float64 inputs/outputs)."""
    out = np.zeros((boxes_a.shape[0], boxes_b.shape[0]))
    for i in range(boxes_a.shape[0]):
        for j in range(boxes_b.shape[0]):
            out[i, j] = bev_iou(boxes_a[i], boxes_b[j])
    return out

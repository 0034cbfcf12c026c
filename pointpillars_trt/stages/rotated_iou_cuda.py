"""Rotated BEV IoU as a CUDA device function: the same float64 polygon clipping as rotated_iou.py."""
from __future__ import annotations

import math

from numba import cuda, float64


@cuda.jit(device=True)
def _corners(x, y, dx, dy, yaw, out):
    c = math.cos(yaw)
    s = math.sin(yaw)
    hx = 0.5 * dx
    hy = 0.5 * dy
    for k in range(4):
        lx = hx if (k == 0 or k == 3) else -hx
        ly = hy if k < 2 else -hy
        out[k, 0] = x + lx * c - ly * s
        out[k, 1] = y + lx * s + ly * c


@cuda.jit(device=True)
def _area(poly, n):
    a = 0.0
    for k in range(n):
        j = k + 1 if k + 1 < n else 0
        a += poly[k, 0] * poly[j, 1] - poly[j, 0] * poly[k, 1]
    return 0.5 * abs(a)


@cuda.jit(device=True)
def _clip_area(pa, pb):
    """Area of the intersection of two CCW quadrilaterals (Sutherland-Hodgman, as convex_intersection_area)."""
    cur = cuda.local.array((16, 2), float64)
    nxt = cuda.local.array((16, 2), float64)
    for k in range(4):
        cur[k, 0] = pa[k, 0]
        cur[k, 1] = pa[k, 1]
    n = 4
    for e in range(4):
        ax = pb[e, 0]
        ay = pb[e, 1]
        e1 = e + 1 if e < 3 else 0
        bx = pb[e1, 0]
        by = pb[e1, 1]
        m = 0
        for k in range(n):
            px = cur[k, 0]
            py = cur[k, 1]
            k1 = k + 1 if k + 1 < n else 0  # (k + 1) % n without an integer division
            qx = cur[k1, 0]
            qy = cur[k1, 1]
            sp = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
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
        for k in range(n):
            cur[k, 0] = nxt[k, 0]
            cur[k, 1] = nxt[k, 1]
    return _area(cur, n)


@cuda.jit(device=True)
def iou_from_corners(pa, ax, ay, ra, area_a, pb, bx, by, rb, area_b):
    """Rotated BEV IoU from precomputed corners (CCW), centres, circumradii and areas: boxes whose circumcircles do
    not meet skip the clipping. The NMS kernel precomputes the corners once per box instead of once per pair."""
    ddx = ax - bx
    ddy = ay - by
    inter = 0.0
    if not (ddx * ddx + ddy * ddy > (ra + rb) * (ra + rb)):
        inter = _clip_area(pa, pb)
    union = area_a + area_b - inter
    return inter / max(union, 1e-8)


@cuda.jit(device=True)
def box_geometry(x, y, dx, dy, yaw, corners):
    """Fill corners (4 x 2) of a box; return (circumradius, area) in float64, as bev_iou_dev computes them."""
    _corners(x, y, dx, dy, yaw, corners)
    return 0.5 * math.sqrt(dx * dx + dy * dy), dx * dy


@cuda.jit(device=True)
def bev_iou_dev(ax, ay, adx, ady, ayaw, bx, by, bdx, bdy, byaw):
    """Rotated BEV IoU of box a and box b (float64 scalars), inter / max(union, 1e-8)."""
    pa = cuda.local.array((4, 2), float64)
    pb = cuda.local.array((4, 2), float64)
    ra, area_a = box_geometry(ax, ay, adx, ady, ayaw, pa)
    rb, area_b = box_geometry(bx, by, bdx, bdy, byaw, pb)
    return iou_from_corners(pa, ax, ay, ra, area_a, pb, bx, by, rb, area_b)

"""Analytic primitives (yaw-rotated boxes, convex polytopes, vertical cylinders, spheres) and their ray intersections."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

@dataclass
class Prim:
    """One analytic surface. kind: 'box' (cx,cy,cz,dx,dy,dz,yaw), 'cyl' (cx,cy,r,z0,z1), 'sph' (cx,cy,cz,r),
    'poly' (cx,cy,cz,yaw,radius) with `planes` [P, 4]: the half-spaces n . q <= d of a convex polytope, q in the
    frame at (cx, cy, cz) turned by yaw (radius bounds it in the ground plane).

    owner: index of the labelled object it belongs to, -1 for clutter. material: a sample.returns.MATERIALS name;
    shade: where in that material's reflectivity range this surface lies, [0, 1]; jitter: extra range noise (foliage).
    """

    kind: str
    p: tuple[float, ...]
    owner: int = -1
    material: str = "wall"
    shade: float = 0.5
    jitter: float = 0.0
    planes: np.ndarray | None = None

    def footprint(self) -> tuple[float, float, float]:
        """Bounding circle (cx, cy, r) in the ground plane."""
        if self.kind == "box":
            return self.p[0], self.p[1], 0.5 * math.hypot(self.p[3], self.p[4])
        if self.kind == "poly":
            return self.p[0], self.p[1], self.p[4]
        return self.p[0], self.p[1], self.p[2] if self.kind == "cyl" else self.p[3]


def _hit_box(d: np.ndarray, p: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ray (origin 0, dirs d) vs yaw-rotated box slab test -> (t or inf, outward normal)."""
    cx, cy, cz, dx, dy, dz, yaw = p
    c, s = math.cos(yaw), math.sin(yaw)
    o = -np.array([c * cx + s * cy, -s * cx + c * cy, cz])  # origin in the box frame
    dl = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
    dl = np.where(np.abs(dl) < 1e-12, 1e-12, dl)
    h = np.array([dx, dy, dz]) / 2
    t1, t2 = (-h - o) / dl, (h - o) / dl
    tn, tf = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = tn.argmax(axis=1)
    t_near, t_far = tn.max(axis=1), tf.min(axis=1)
    t = np.where((t_near <= t_far) & (t_near > 1e-6), t_near, np.inf)
    rows = np.arange(len(d))
    nl = np.zeros_like(dl)
    nl[rows, axis] = -np.sign(dl[rows, axis])
    n = np.stack([c * nl[:, 0] - s * nl[:, 1], s * nl[:, 0] + c * nl[:, 1], nl[:, 2]], axis=1)
    return t, n


def _hit_cyl(d: np.ndarray, p: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ray vs vertical cylinder (side + both caps)."""
    cx, cy, r, z0, z1 = p
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = -2 * (d[:, 0] * cx + d[:, 1] * cy)
    disc = b * b - 4 * a * (cx * cx + cy * cy - r * r)
    ts = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12))
    zs = ts * d[:, 2]
    t_side = np.where((disc >= 0) & (ts > 1e-6) & (zs >= z0) & (zs <= z1), ts, np.inf)
    dz = np.where(np.abs(d[:, 2]) < 1e-12, 1e-12, d[:, 2])
    t_best, cap = t_side, np.zeros(len(d))
    for zc, sign in ((z1, 1.0), (z0, -1.0)):
        tc = zc / dz
        inside = (tc * d[:, 0] - cx) ** 2 + (tc * d[:, 1] - cy) ** 2 <= r * r
        tc = np.where((tc > 1e-6) & inside, tc, np.inf)
        better = tc < t_best
        t_best, cap = np.where(better, tc, t_best), np.where(better, sign, cap)
    with np.errstate(invalid="ignore"):  # missed rays: inf * 0
        px, py = t_best * d[:, 0] - cx, t_best * d[:, 1] - cy
    n = np.where((cap == 0)[:, None], np.stack([px / r, py / r, np.zeros(len(d))], 1), np.stack(
        [np.zeros(len(d)), np.zeros(len(d)), cap], 1))
    return t_best, np.nan_to_num(n)


def _hit_sph(d: np.ndarray, p: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Ray vs sphere."""
    c = np.array(p[:3])
    r = p[3]
    b = d @ c
    disc = b * b - (c @ c - r * r)
    t = b - np.sqrt(np.maximum(disc, 0))
    t = np.where((disc >= 0) & (t > 1e-6), t, np.inf)
    with np.errstate(invalid="ignore"):  # missed rays: inf * 0
        n = np.nan_to_num((t[:, None] * d - c) / r)
    return t, n


def _hit_poly(d: np.ndarray, p: tuple[float, ...], planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ray vs convex polytope: the ray enters at the last entering plane if that comes before the first exiting one."""
    cx, cy, cz, yaw, _ = p
    c, s = math.cos(yaw), math.sin(yaw)
    o = -np.array([c * cx + s * cy, -s * cx + c * cy, cz])
    dl = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
    n, h = planes[:, :3], planes[:, 3]
    den = dl @ n.T  # [R, P]
    num = h - n @ o  # [P]: >= 0 where the origin is inside the plane
    with np.errstate(divide="ignore", invalid="ignore"):
        t = num[None, :] / den
    t_in = np.where(den < 0, t, -np.inf)
    k = t_in.argmax(axis=1)
    t_near = t_in[np.arange(len(d)), k]
    t_far = np.where(den > 0, t, np.inf).min(axis=1)
    miss = ((den == 0) & (num[None, :] < 0)).any(axis=1)
    t_hit = np.where((t_near <= t_far) & (t_near > 1e-6) & ~miss, t_near, np.inf)
    nl = n[k]
    return t_hit, np.stack([c * nl[:, 0] - s * nl[:, 1], s * nl[:, 0] + c * nl[:, 1], nl[:, 2]], axis=1)


_HIT = {"box": _hit_box, "cyl": _hit_cyl, "sph": _hit_sph}


def ray_range(prim: Prim, az: np.ndarray, n_el: int) -> tuple[int, int]:
    """Contiguous ray range [r0, r1) whose azimuths can reach the primitive's bounding circle."""
    cx, cy, r = prim.footprint()
    d = math.hypot(cx, cy)
    if d <= r + 0.05:
        return 0, len(az) * n_el
    centre, half = math.atan2(cy, cx), math.asin(min(1.0, r / d)) + 2 * (az[1] - az[0])
    a0 = int(np.searchsorted(az, centre - half, "left"))
    a1 = int(np.searchsorted(az, centre + half, "right"))
    return a0 * n_el, a1 * n_el


def intersect(prim: Prim, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rays from the origin along d vs one primitive -> (distance t or inf, outward normal) per ray."""
    if prim.kind == "poly":
        return _hit_poly(d, prim.p, prim.planes)
    return _HIT[prim.kind](d, prim.p)

"""The unlabelled part of a street scene: raised sidewalks with kerbs, building fronts, walls, hedges and fences,
poles, signs, trees and bushes, and vans and trucks (KITTI labels them Van/Truck, so they are background for Car)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pointpillars_trt.sample.raycast import Prim
from pointpillars_trt.sample.vehicles import vehicle_prims


@dataclass
class Street:
    """A street along u (heading psi in the lidar frame): road half-width, sidewalk width, the ground height function
    and the bounding circles (x, y, r) of everything placed so far (objects must keep clear of them)."""

    psi: float
    road: tuple[float, float]  # metres from the sensor to the road's left (+v) and right (-v) edge
    walk: float  # sidewalk width
    ground: object  # (x, y) -> ground z
    kerbs: tuple[float, float] = (0.0, 0.0)  # sidewalk height on the left (+v) and right side
    circles: list[tuple[float, float, float]] = field(default_factory=list)

    def xy(self, u: float, v: float) -> tuple[float, float]:
        """Street coordinates (along, across) -> lidar x, y."""
        c, s = math.cos(self.psi), math.sin(self.psi)
        return u * c - v * s, u * s + v * c

    def edge(self, side: int) -> float:
        """Distance from the sensor to the road's edge on side +1 (left) or -1 (right)."""
        return self.road[0] if side > 0 else self.road[1]

    def surface(self, x: float, y: float) -> float:
        """Height of what one stands on at (x, y): the ground, or the sidewalk beyond the kerb."""
        v = -x * math.sin(self.psi) + y * math.cos(self.psi)
        side = 1 if v > 0 else -1
        return self.ground(x, y) + (self.kerbs[0 if side > 0 else 1] if abs(v) > self.edge(side) else 0.0)

    def clear(self, x: float, y: float, r: float, margin: float = 0.3) -> bool:
        return all(math.hypot(x - cx, y - cy) > r + cr + margin for cx, cy, cr in self.circles)

    def in_sight(self, x: float, y: float) -> bool:
        """No circle placed so far crosses the line from the sensor to (x, y)."""
        d = math.hypot(x, y)
        ux, uy = x / d, y / d
        for cx, cy, cr in self.circles:
            t = cx * ux + cy * uy  # along the line of sight
            if 0 < t < d - cr and abs(cx * uy - cy * ux) < 0.8 * cr:
                return False
        return True


def _box(st: Street, u: float, v: float, length: float, depth: float, z0: float, z1: float, material: str,
         shade: float, jitter: float = 0.0) -> Prim:
    """A box along the street from z0 to z1 above the local ground."""
    x, y = st.xy(u, v)
    g = st.ground(x, y)
    return Prim("box", (x, y, g + (z0 + z1) / 2, length, depth, z1 - z0, st.psi), -1, material, shade, jitter)


def _frontage(st: Street, side: int, rng: np.random.Generator) -> list[Prim]:
    """The sidewalk (raised behind a kerb, or level) and what stands behind it: buildings, walls, hedges, fences."""
    out = []
    kerb = st.kerbs[0 if side > 0 else 1]
    if kerb:
        walk_shade = float(rng.random())
        for u in np.arange(-10.0, 110.0, 10.0):  # 10 m pieces follow the ground's slope
            out.append(_box(st, float(u) + 5.0, side * (st.edge(side) + st.walk / 2 + 0.5), 10.0, st.walk + 1.0, -0.4, kerb,
                            "sidewalk", walk_shade))
    u = float(rng.uniform(-10, 5))
    back = st.edge(side) + st.walk
    while u < 110:
        length = float(rng.uniform(6, 35))
        kind = rng.choice(["building", "wall", "hedge", "fence", "none"], p=[0.4, 0.12, 0.2, 0.13, 0.15])
        v = side * (back + float(rng.uniform(0, 1.0)))
        if kind == "building":
            depth = float(rng.uniform(4, 10))
            out.append(_box(st, u + length / 2, v + side * depth / 2, length, depth, -0.3, float(rng.uniform(4, 15)),
                            "wall", float(rng.random())))
        elif kind == "wall":
            out.append(_box(st, u + length / 2, v + side * 0.2, length, 0.4, -0.3, float(rng.uniform(0.6, 2.2)),
                            "wall", float(rng.random())))
        elif kind == "hedge":
            depth = float(rng.uniform(0.6, 1.6))
            out.append(_box(st, u + length / 2, v + side * depth / 2, length, depth, -0.2, float(rng.uniform(0.8, 2.2)),
                            "vegetation", float(rng.random()), jitter=0.12))
        elif kind == "fence":
            out.append(_box(st, u + length / 2, v, length, 0.05, -0.2, float(rng.uniform(0.8, 1.8)), "fence",
                            float(rng.random())))
        else:  # an open verge: low, ragged vegetation
            depth = float(rng.uniform(1.0, 4.0))
            out.append(_box(st, u + length / 2, v + side * depth / 2, length, depth, -0.2, float(rng.uniform(0.15, 0.6)),
                            "vegetation", float(rng.random()), jitter=0.08))
        u += length + float(rng.uniform(0, 6))
    return out


def _kerbside(st: Street, side: int, rng: np.random.Generator) -> list[Prim]:
    """Poles (some with signs), trees with lumpy crowns and bushes along the kerb."""
    out = []
    u = float(rng.uniform(2, 15))
    while u < 90:
        x, y = st.xy(u, side * (st.edge(side) + float(rng.uniform(0.3, 0.8))))
        g = st.ground(x, y)
        if rng.random() < 0.55:
            r, top = float(rng.uniform(0.06, 0.15)), float(rng.uniform(3.5, 8.0))
            out.append(Prim("cyl", (x, y, r, g - 0.2, g + top), -1, "pole", float(rng.random())))
            st.circles.append((x, y, r))
            if rng.random() < 0.3:
                out.append(Prim("box", (x, y, g + 2.4, 0.05, 0.6, 0.6, st.psi), -1, "sign", float(rng.random())))
        else:
            r, trunk, crown = float(rng.uniform(0.12, 0.3)), float(rng.uniform(2.0, 3.5)), float(rng.uniform(1.2, 2.4))
            out.append(Prim("cyl", (x, y, r, g - 0.2, g + trunk + crown * 0.5), -1, "wall", float(rng.random())))
            st.circles.append((x, y, r))
            shade = float(rng.random())
            for _ in range(int(rng.integers(2, 5))):  # the crown: a few overlapping, noisy blobs
                ox, oy = rng.normal(0, 0.35 * crown, 2)
                out.append(Prim("sph", (x + ox, y + oy, g + trunk + crown * float(rng.uniform(0.7, 1.2)),
                                        crown * float(rng.uniform(0.5, 0.85))), -1, "vegetation", shade, 0.15))
        u += float(rng.uniform(4, 18))
    for _ in range(int(rng.integers(0, 7))):  # bins, bollards, cabinets, benches on the sidewalk
        x, y = st.xy(float(rng.uniform(2, 50)), side * (st.edge(side) + float(rng.uniform(0.3, st.walk))))
        size = (float(rng.uniform(0.3, 1.6)), float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.5, 1.5)))
        if st.clear(x, y, 0.5 * math.hypot(size[0], size[1]), 0.1):
            g = st.surface(x, y)
            out.append(Prim("box", (x, y, g + size[2] / 2 - 0.05, size[0], size[1], size[2] + 0.1,
                                    st.psi + float(rng.normal(0, 0.3))), -1, str(rng.choice(["wall", "pole", "fence"])),
                            float(rng.random())))
            st.circles.append((x, y, 0.5 * math.hypot(size[0], size[1])))
    for _ in range(int(rng.integers(0, 7))):  # bushes in front of the frontage
        x, y = st.xy(float(rng.uniform(3, 60)), side * (st.edge(side) + st.walk - float(rng.uniform(0.3, 0.8))))
        r = float(rng.uniform(0.4, 1.1))
        out.append(Prim("sph", (x, y, st.surface(x, y) + 0.4 * r, r), -1, "vegetation", float(rng.random()), 0.1))
        st.circles.append((x, y, r))
    return out


def _vans(st: Street, rng: np.random.Generator) -> list[Prim]:
    """0-2 vans or small trucks, parked or in a lane."""
    out = []
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        size = (float(rng.uniform(4.5, 7.0)), float(rng.uniform(1.85, 2.3)), float(rng.uniform(1.9, 2.9)))
        u = float(rng.uniform(6, 55))
        side = int(rng.choice([-1, 1]))
        v = side * (st.edge(side) - 1.2) if rng.random() < 0.6 else float(rng.uniform(1.3 - st.road[1], st.road[0] - 1.3))
        x, y = st.xy(u, v)
        r = 0.5 * math.hypot(size[0], size[1])
        if math.hypot(x, y) < 6 or not st.clear(x, y, r):
            continue
        yaw = st.psi + (0.0 if rng.random() < 0.5 else math.pi)
        box = np.array([x, y, st.ground(x, y) + size[2] / 2, *size, yaw])
        out += vehicle_prims(box, "van", -1, rng)
        st.circles.append((x, y, r))
    return out


def street_clutter(st: Street, rng: np.random.Generator) -> list[Prim]:
    """Everything unlabelled on both sides of the street, registered in st.circles where objects must keep clear."""
    st.kerbs = tuple(float(rng.uniform(0.08, 0.2)) if rng.random() < 0.75 else 0.0 for _ in range(2))
    out = []
    for side in (1, -1):
        out += _frontage(st, side, rng)
        out += _kerbside(st, side, rng)
    return out + _vans(st, rng)

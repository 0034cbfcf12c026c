"""Vehicle bodies as convex polytopes: a lower body with a sloped hood and rounded corners, a glass cabin with
raked windshield and rear window and a painted roof, wheels, number plates. Sedans, hatchbacks and estates/SUVs
for labelled cars; boxier vans for the unlabelled vehicles of the scene (KITTI's Van/Truck, not Car)."""
from __future__ import annotations

import math

import numpy as np

from pointpillars_trt.sample.raycast import Prim

# body style: windshield base, roof front, roof rear, rear-window base (x as fractions of the length from the
# front), nose and belt-line heights (fractions of the height)
STYLES = {
    "sedan": (0.30, 0.47, 0.72, 0.86, 0.50, 0.60),
    "hatchback": (0.30, 0.47, 0.86, 0.96, 0.50, 0.58),
    "estate": (0.26, 0.40, 0.95, 0.99, 0.52, 0.56),
    "van": (0.10, 0.20, 0.99, 1.00, 0.45, 0.50),
}


def _plane(n: tuple[float, float, float], through: tuple[float, float, float]) -> list[float]:
    v = np.asarray(n, np.float64)
    v = v / np.linalg.norm(v)
    return [*v, float(v @ np.asarray(through, np.float64))]


def _slope(a: tuple[float, float], b: tuple[float, float], up_front: bool) -> list[float]:
    """The plane through the x-z line a -> b (b above a), facing forward (up_front) or backward, and up."""
    ax, az = a
    bx, bz = b
    run, rise = abs(bx - ax), bz - az
    return _plane((rise if up_front else -rise, 0.0, run), (ax, 0.0, az))


def _box_planes(x0: float, x1: float, hw: float, z0: float, z1: float) -> list[list[float]]:
    return [[1, 0, 0, x1], [-1, 0, 0, -x0], [0, 1, 0, hw], [0, -1, 0, hw], [0, 0, 1, z1], [0, 0, -1, -z0]]


def _poly(box: np.ndarray, planes: list[list[float]], owner: int, material: str, shade: float) -> Prim:
    l, w = box[3], box[4]
    return Prim("poly", (box[0], box[1], box[2] - box[5] / 2, box[6], 0.5 * math.hypot(l, w) + 0.05), owner,
                material, shade, planes=np.array(planes, np.float64))


def vehicle_prims(box: np.ndarray, style: str, owner: int, rng: np.random.Generator) -> list[Prim]:
    """The primitives of one vehicle, all inside its box (x, y, z_centre, l, w, h, yaw)."""
    l, w, h = (float(v) for v in box[3:6])
    ws, rf, rr, rw, nose, belt = STYLES[style]
    front, x = l / 2, lambda f: l / 2 - f * l  # noqa: E731  fraction from the front -> local x
    zb, zn, zt = 0.12 * h, nose * h, belt * h
    paint = float(rng.random())
    chamfer = min(0.35, 0.18 * w) / math.sqrt(2)
    body = _box_planes(-front, front, w / 2, zb, zt)
    body += [_slope((front, zn), (x(ws), zt), True), _slope((-front, zn + 0.03 * h), (max(x(rw) - 0.02 * l, 0.01 * l - front), zt), False)]
    body += [[sx / math.sqrt(2), sy / math.sqrt(2), 0, (front + w / 2) / math.sqrt(2) - chamfer]
             for sx in (1, -1) for sy in (1, -1)]
    out = [_poly(box, body, owner, "paint", paint)]
    tw0, tw1 = 0.47 * w, (0.36 if style != "van" else 0.44) * w  # cabin half-width: belt line -> roof (tumblehome)
    roof = h - 0.05 * h
    cabin = [[0, 0, -1, -(zt - 0.02 * h)], [0, 0, 1, roof],
             _slope((x(ws), zt), (x(rf), h), True), _slope((x(rw), zt), (x(rr), h), False),
             _plane((0, h - zt, tw0 - tw1), (0, tw0, zt)), _plane((0, -(h - zt), tw0 - tw1), (0, -tw0, zt))]
    out.append(_poly(box, cabin, owner, "glass", float(rng.random())))
    lid = [[0, 0, -1, -roof], [0, 0, 1, h], [1, 0, 0, x(rf) - 0.02 * l], [-1, 0, 0, -(x(rr) + 0.02 * l)],
           [0, 1, 0, tw1], [0, -1, 0, tw1]]
    out.append(_poly(box, lid, owner, "paint", paint))
    wl, wz = min(0.66, 0.18 * l), min(0.36 * h, 0.68)
    for ox in (0.31 * l, -0.3 * l):
        for sy in (1, -1):
            out.append(_poly(box, _shift_y(_box_planes(ox - wl / 2, ox + wl / 2, 0.11, 0.0, wz), sy * (w / 2 - 0.13)),
                             owner, "tyre", float(rng.random())))
    for sx in (1, -1):  # number plates (and the reflectors beside the rear one) at bumper height
        out.append(_poly(box, _box_planes(sx * front - 0.015, sx * front + 0.005, 0.26, 0.3 * h, 0.38 * h) if sx > 0
                         else _box_planes(-front - 0.005, -front + 0.015, 0.26, 0.4 * h, 0.48 * h),
                         owner, "plate", float(rng.random())))
    return out


def _shift_y(planes: list[list[float]], dy: float) -> list[list[float]]:
    """The same half-spaces moved by dy along the local y axis."""
    return [[a, b, c, d + b * dy] for a, b, c, d in planes]


def car_style(rng: np.random.Generator) -> str:
    """KITTI's cars: mostly sedans and hatchbacks, some estates and SUVs."""
    return str(rng.choice(["sedan", "hatchback", "estate"], p=[0.45, 0.35, 0.2]))

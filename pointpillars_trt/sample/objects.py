"""The labelled objects' shapes: cars (sample/vehicles.py), pedestrians and cyclists built from primitives inside
their boxes."""
from __future__ import annotations

import math

import numpy as np

from pointpillars_trt.sample.raycast import Prim
from pointpillars_trt.sample.vehicles import car_style, vehicle_prims


def _part(box: np.ndarray, ox: float, oy: float, z0: float, z1: float, lx: float, ly: float) -> tuple[float, ...]:
    """A box part of an object in its own frame: offset (ox, oy) from the centre, z0..z1 above its bottom."""
    x, y, zc, _, _, dz, yaw = box
    c, s = math.cos(yaw), math.sin(yaw)
    bottom = zc - dz / 2
    return (x + ox * c - oy * s, y + ox * s + oy * c, bottom + (z0 + z1) / 2, lx, ly, z1 - z0, yaw)


def _local_xy(box: np.ndarray, ox: float, oy: float) -> tuple[float, float]:
    c, s = math.cos(box[6]), math.sin(box[6])
    return box[0] + ox * c - oy * s, box[1] + ox * s + oy * c


def _car(box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    """A sedan, hatchback or estate body (sample/vehicles.py)."""
    return vehicle_prims(box, car_style(rng), k, rng)


def _pedestrian(box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    """Two legs (cylinders), torso (box), arms (cylinders) and a head (sphere)."""
    l, w, h = box[3:6]
    bottom = box[2] - h / 2
    cloth = float(rng.random())
    stride = float(rng.uniform(0.0, 0.14)) * l
    out = []
    for sy, ox in ((1, stride), (-1, -stride)):
        cx, cy = _local_xy(box, ox, sy * 0.15 * w)
        out.append(Prim("cyl", (cx, cy, 0.12 * w, bottom, bottom + 0.48 * h), k, "cloth", cloth))
    tw = 0.62 * w
    out.append(Prim("box", _part(box, 0, 0, 0.48 * h, 0.83 * h, 0.32 * l, tw), k, "cloth", cloth))
    ra = 0.07 * w
    for sy in (1, -1):
        cx, cy = _local_xy(box, 0.02 * l, sy * (w / 2 - ra - 0.01))
        out.append(Prim("cyl", (cx, cy, ra, bottom + 0.5 * h, bottom + 0.82 * h), k, "cloth", cloth))
    rh = min(0.11, 0.18 * w)
    out.append(Prim("sph", (box[0], box[1], bottom + h - rh, rh), k, "cloth", float(rng.random())))
    return out


def _cyclist(box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    """A bicycle (two thin wheels, frame, handlebar) with a rider (legs, torso, arms, head)."""
    l, w, h = box[3:6]
    cloth, frame = float(rng.random()), float(rng.random())
    wd = 0.38 * h
    out = [Prim("box", _part(box, sx * (l / 2 - wd / 2), 0, 0, wd, wd, 0.06), k, "tyre", frame) for sx in (1, -1)]
    out.append(Prim("box", _part(box, 0, 0, 0.26 * h, 0.44 * h, 0.5 * l, 0.07), k, "bike", frame))
    out.append(Prim("box", _part(box, 0.3 * l, 0, 0.52 * h, 0.57 * h, 0.05, 0.9 * w), k, "bike", frame))
    for part in ((-0.04 * l, 0.22, 0.55, 0.18 * l, 0.5 * w), (-0.08 * l, 0.55, 0.85, 0.2 * l, 0.68 * w),
                 (0.12 * l, 0.7, 0.76, 0.3 * l, 0.8 * w)):  # legs, torso, arms
        ox, z0, z1, lx, ly = part
        out.append(Prim("box", _part(box, ox, 0, z0 * h, z1 * h, lx, ly), k, "cloth", cloth))
    rh = min(0.12, 0.2 * w)
    hx, hy = _local_xy(box, -0.02 * l, 0)
    out.append(Prim("sph", (hx, hy, box[2] + h / 2 - rh, rh), k, "cloth", float(rng.random())))
    return out


def _generic(box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    return [Prim("box", tuple(float(v) for v in box), k, "wall", float(rng.random()))]


_SHAPES = {"car": _car, "pedestrian": _pedestrian, "cyclist": _cyclist}


def object_prims(name: str, box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    """The primitives of labelled object k, all inside its box (unknown classes are plain boxes)."""
    return _SHAPES.get(name.lower(), _generic)(np.asarray(box, np.float64), k, rng)

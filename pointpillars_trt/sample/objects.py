"""The labelled objects' shapes: cars, pedestrians and cyclists built from primitives inside their boxes."""
from __future__ import annotations

import math

import numpy as np

from pointpillars_trt.sample.raycast import Prim


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
    """Wheels, lower body and a narrower, set-back cabin (low-reflectance glass)."""
    l, w, h = box[3:6]
    paint = float(rng.uniform(0.15, 0.6))
    out = [Prim("box", _part(box, 0, 0, 0.2 * h, 0.6 * h, l, w), k, paint),
           Prim("box", _part(box, -0.06 * l, 0, 0.6 * h, h, 0.52 * l, 0.86 * w), k, 0.08)]
    wl = min(0.66, 0.18 * l)
    for ox in (0.31 * l, -0.3 * l):
        for sy in (1, -1):
            out.append(Prim("box", _part(box, ox, sy * (w / 2 - 0.12), 0, 0.38 * h, wl, 0.22), k, 0.06))
    return out


def _pedestrian(box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    """Two legs (cylinders), torso (box), arms (cylinders) and a head (sphere)."""
    l, w, h = box[3:6]
    bottom = box[2] - h / 2
    cloth = float(rng.uniform(0.2, 0.5))
    stride = float(rng.uniform(0.0, 0.14)) * l
    out = []
    for sy, ox in ((1, stride), (-1, -stride)):
        cx, cy = _local_xy(box, ox, sy * 0.15 * w)
        out.append(Prim("cyl", (cx, cy, 0.12 * w, bottom, bottom + 0.48 * h), k, cloth))
    tw = 0.62 * w
    out.append(Prim("box", _part(box, 0, 0, 0.48 * h, 0.83 * h, 0.32 * l, tw), k, cloth))
    ra = 0.07 * w
    for sy in (1, -1):
        cx, cy = _local_xy(box, 0.02 * l, sy * (w / 2 - ra - 0.01))
        out.append(Prim("cyl", (cx, cy, ra, bottom + 0.5 * h, bottom + 0.82 * h), k, cloth))
    rh = min(0.11, 0.18 * w)
    out.append(Prim("sph", (box[0], box[1], bottom + h - rh, rh), k, 0.3))
    return out


def _cyclist(box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    """A bicycle (two thin wheels, frame, handlebar) with a rider (legs, torso, arms, head)."""
    l, w, h = box[3:6]
    cloth = float(rng.uniform(0.2, 0.5))
    wd = 0.38 * h
    out = [Prim("box", _part(box, sx * (l / 2 - wd / 2), 0, 0, wd, wd, 0.06), k, 0.15) for sx in (1, -1)]
    out.append(Prim("box", _part(box, 0, 0, 0.26 * h, 0.44 * h, 0.5 * l, 0.07), k, 0.5))
    out.append(Prim("box", _part(box, 0.3 * l, 0, 0.52 * h, 0.57 * h, 0.05, 0.9 * w), k, 0.5))
    out.append(Prim("box", _part(box, -0.04 * l, 0, 0.22 * h, 0.55 * h, 0.18 * l, 0.5 * w), k, cloth))
    out.append(Prim("box", _part(box, -0.08 * l, 0, 0.55 * h, 0.85 * h, 0.2 * l, 0.68 * w), k, cloth))
    out.append(Prim("box", _part(box, 0.12 * l, 0, 0.7 * h, 0.76 * h, 0.3 * l, 0.8 * w), k, cloth))
    rh = min(0.12, 0.2 * w)
    hx, hy = _local_xy(box, -0.02 * l, 0)
    out.append(Prim("sph", (hx, hy, box[2] + h / 2 - rh, rh), k, 0.3))
    return out


def _generic(box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    return [Prim("box", tuple(float(v) for v in box), k, float(rng.uniform(0.2, 0.5)))]


_SHAPES = {"car": _car, "pedestrian": _pedestrian, "cyclist": _cyclist}


def object_prims(name: str, box: np.ndarray, k: int, rng: np.random.Generator) -> list[Prim]:
    """The primitives of labelled object k, all inside its box (unknown classes are plain boxes)."""
    return _SHAPES.get(name.lower(), _generic)(np.asarray(box, np.float64), k, rng)

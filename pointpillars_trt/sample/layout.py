"""A frame's layout before ray casting: a street with buildings, poles, trees, bushes and the labelled objects."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pointpillars_trt.io.kitti import Calib
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.sample.raycast import Prim
from pointpillars_trt.sample.sensor import Sensor, box_truncation


@dataclass
class Layout:
    """What a frame contains before ray casting: labelled objects, clutter and the ground plane.

    Ground: z = -sensor_height + slope[0] * x + slope[1] * y.
    """

    names: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # lidar (x, y, z_centre, dx, dy, dz, yaw)
    clutter: list[Prim] = field(default_factory=list)
    slope: tuple[float, float] = (0.0, 0.0)
    ground_reflect: float = 0.2

    def ground_z(self, x: float, y: float, sensor: Sensor) -> float:
        return -sensor.height + self.slope[0] * x + self.slope[1] * y

    def add_object(self, name: str, x: float, y: float, size: tuple[float, float, float], yaw: float,
                   sensor: Sensor) -> None:
        """Place an object standing on the ground at (x, y)."""
        dx, dy, dz = size
        z = self.ground_z(x, y, sensor) + dz / 2
        yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
        self.names.append(name)
        self.boxes.append(np.array([x, y, z, dx, dy, dz, yaw], np.float64))


def _clear(circles: list[tuple[float, float, float]], x: float, y: float, r: float, margin: float) -> bool:
    return all(math.hypot(x - cx, y - cy) > r + cr + margin for cx, cy, cr in circles)


def sample_layout(rng: np.random.Generator, cfg: PointPillarsConfig, sensor: Sensor, calib: Calib) -> Layout:
    """A street along x (small random heading): buildings, poles, trees, bushes, then cars, pedestrians, cyclists."""
    lay = Layout(slope=(float(rng.uniform(-0.015, 0.015)), float(rng.uniform(-0.01, 0.01))),
                 ground_reflect=float(rng.uniform(0.12, 0.25)))
    psi = float(rng.uniform(-0.12, 0.12))
    cp, sp = math.cos(psi), math.sin(psi)
    to_xy = lambda u, v: (u * cp - v * sp, u * sp + v * cp)  # noqa: E731  road (along, across) -> lidar
    hw, sw = float(rng.uniform(4.0, 7.5)), float(rng.uniform(2.0, 4.0))
    circles: list[tuple[float, float, float]] = []

    def clutter(prim: Prim, r: float | None = None) -> None:
        lay.clutter.append(prim)
        cx, cy, cr = prim.footprint()
        circles.append((cx, cy, cr if r is None else r))

    gz = lambda x, y: lay.ground_z(x, y, sensor)  # noqa: E731
    for side in (1, -1):
        u = float(rng.uniform(-10, 5))
        while u < 110:  # building facades / low walls, with gaps
            length = float(rng.uniform(8, 35))
            if rng.random() < 0.8:
                low = rng.random() < 0.25
                height = float(rng.uniform(1.0, 2.2) if low else rng.uniform(4, 15))
                depth = float(rng.uniform(0.3, 0.6) if low else rng.uniform(4, 10))
                v = side * (hw + sw + float(rng.uniform(0, 2)) + depth / 2)
                x, y = to_xy(u + length / 2, v)
                g = gz(x, y)
                lay.clutter.append(Prim("box", (x, y, g - 0.3 + (height + 0.3) / 2, length, depth, height + 0.3, psi),
                                        -1, float(rng.uniform(0.3, 0.7))))
            u += length + float(rng.uniform(0, 8))
        u = float(rng.uniform(2, 15))
        while u < 90:  # poles and trees on the kerb side of the sidewalk
            x, y = to_xy(u, side * (hw + float(rng.uniform(0.3, 0.8))))
            g = gz(x, y)
            if rng.random() < 0.55:
                r, top = float(rng.uniform(0.06, 0.15)), float(rng.uniform(3.5, 8.0))
                clutter(Prim("cyl", (x, y, r, g - 0.2, g + top), -1, float(rng.uniform(0.4, 0.8))))
                if rng.random() < 0.3:  # a traffic sign: very reflective
                    lay.clutter.append(Prim("box", (x, y, g + 2.4, 0.05, 0.6, 0.6, psi), -1, 0.95))
            else:
                r, trunk, crown = float(rng.uniform(0.12, 0.3)), float(rng.uniform(2.4, 3.5)), float(rng.uniform(1.2, 2.4))
                clutter(Prim("cyl", (x, y, r, g - 0.2, g + trunk + crown * 0.5), -1, 0.3))
                lay.clutter.append(Prim("sph", (x, y, g + trunk + crown, crown), -1, float(rng.uniform(0.15, 0.35)), 0.1))
            u += float(rng.uniform(8, 25))
        for _ in range(int(rng.integers(0, 5))):  # bushes against the buildings
            x, y = to_xy(float(rng.uniform(3, 60)), side * (hw + sw - float(rng.uniform(0.3, 0.8))))
            r = float(rng.uniform(0.4, 0.9))
            clutter(Prim("sph", (x, y, gz(x, y) + 0.4 * r, r), -1, float(rng.uniform(0.15, 0.35)), 0.05))

    def place(name: str, size: tuple[float, float, float], pose) -> None:
        for _ in range(40):
            u, v, yaw = pose()
            x, y = to_xy(u, v)
            r = 0.5 * math.hypot(size[0], size[1])
            box = np.array([x, y, gz(x, y) + size[2] / 2, *size, yaw])
            if math.hypot(x, y) < 4.0 or not _clear(circles, x, y, r, 0.3) or box_truncation(box, calib) > 0.5:
                continue
            lay.add_object(name, x, y, size, yaw, sensor)
            circles.append((x, y, r))
            return

    def jitter_size(base: tuple[float, float, float]) -> tuple[float, float, float]:
        return tuple(float(b * np.clip(1 + rng.normal(0, 0.06), 0.85, 1.15)) for b in base)  # type: ignore[return-value]

    def along() -> float:
        return psi + (0.0 if rng.random() < 0.5 else math.pi)

    counts = {"car": (3, 11), "pedestrian": (0, 7), "cyclist": (0, 4)}
    for anchor in cfg.anchors:
        key = anchor.name.lower()
        lo, hi = counts.get(key, (0, 3))
        for _ in range(int(rng.integers(lo, hi))):
            size = jitter_size(anchor.size)
            if key == "car":
                if rng.random() < 0.6:  # driving in a lane
                    pose = lambda: (rng.uniform(5, 60), rng.uniform(-hw + 1.2, hw - 1.2), along() + rng.normal(0, 0.05))
                else:  # parked at the kerb, now and then nose-in
                    pose = lambda: (rng.uniform(4, 50), rng.choice([-1, 1]) * (hw - 1.1),
                                    along() + (math.pi / 2 if rng.random() < 0.15 else 0) + rng.normal(0, 0.05))
            elif key == "pedestrian":
                pose = lambda: (rng.uniform(4, 40), rng.choice([-1, 1]) * (hw + rng.uniform(0.9, sw - 0.6))
                                if rng.random() < 0.8 else rng.uniform(-hw, hw), rng.uniform(-math.pi, math.pi))
            elif key == "cyclist":
                pose = lambda: (rng.uniform(5, 45), rng.choice([-1, 1]) * (hw - rng.uniform(0.5, 1.5)),
                                along() + rng.normal(0, 0.15))
            else:
                pose = lambda: (rng.uniform(5, 50), rng.uniform(-hw, hw), rng.uniform(-math.pi, math.pi))
            place(anchor.name, size, lambda: tuple(float(v) for v in pose()))
    return lay

"""A frame's layout before ray casting: a street (sample/street.py) and the labelled objects on it."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pointpillars_trt.io.kitti import Calib
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.sample.raycast import Prim
from pointpillars_trt.sample.sensor import Sensor, box_truncation
from pointpillars_trt.sample.street import Street, street_clutter


@dataclass
class Layout:
    """What a frame contains before ray casting: labelled objects, clutter and the ground plane.

    Ground: z = -sensor_height + slope[0] * x + slope[1] * y; objects stand on `surface` (x, y) -> z where given
    (sidewalks are raised), else on the ground.
    """

    names: list[str] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # lidar (x, y, z_centre, dx, dy, dz, yaw)
    clutter: list[Prim] = field(default_factory=list)
    slope: tuple[float, float] = (0.0, 0.0)
    ground_shade: float = 0.5  # where the road lies in the ground material's reflectivity range
    surface: Callable[[float, float], float] | None = None

    def ground_z(self, x: float, y: float, sensor: Sensor) -> float:
        return -sensor.height + self.slope[0] * x + self.slope[1] * y

    def add_object(self, name: str, x: float, y: float, size: tuple[float, float, float], yaw: float,
                   sensor: Sensor) -> None:
        """Place an object standing on the ground (or the sidewalk) at (x, y)."""
        dx, dy, dz = size
        z = (self.surface(x, y) if self.surface else self.ground_z(x, y, sensor)) + dz / 2
        yaw = (yaw + math.pi) % (2 * math.pi) - math.pi
        self.names.append(name)
        self.boxes.append(np.array([x, y, z, dx, dy, dz, yaw], np.float64))


# relative 1-sigma spread of (length, width, height) around the anchor size, from KITTI's label statistics
# (Car 3.88 +- 0.43 x 1.63 +- 0.10 x 1.53 +- 0.14; pedestrians' length includes their stride)
SIZE_SPREAD = {"car": (0.1, 0.06, 0.08), "pedestrian": (0.22, 0.18, 0.06), "cyclist": (0.1, 0.15, 0.05)}
IN_SIGHT = {"car": 0.3, "pedestrian": 0.8, "cyclist": 0.7}  # chance an object must be placed in plain sight


def sample_layout(rng: np.random.Generator, cfg: PointPillarsConfig, sensor: Sensor, calib: Calib) -> Layout:
    """A street along x (small random heading): sidewalks, frontages, kerbside clutter, vans, then the labelled
    cars (some in parked rows), pedestrians and cyclists."""
    lay = Layout(slope=(float(rng.uniform(-0.015, 0.015)), float(rng.uniform(-0.01, 0.01))),
                 ground_shade=float(rng.random()))
    # the sensor drives in the right-hand lane: the road's right edge is nearer (KITTI: clutter 2-6 m to the side)
    st = Street(psi=float(rng.uniform(-0.12, 0.12)), road=(float(rng.uniform(2.5, 9.0)), float(rng.uniform(2.0, 5.0))),
                walk=float(rng.uniform(1.0, 3.5)), ground=lambda x, y: lay.ground_z(x, y, sensor))
    lay.clutter += street_clutter(st, rng)
    lay.surface = st.surface
    left, right, sw = st.road[0], st.road[1], st.walk
    edge = st.edge

    def place(name: str, size: tuple[float, float, float], pose) -> bool:
        # KITTI's annotators label what the camera shows: most pedestrians and cyclists, many cars in plain sight
        sight = rng.random() < IN_SIGHT.get(name.lower(), 0.0)
        for _ in range(40):
            u, v, yaw = pose()
            x, y = st.xy(u, v)
            r = 0.5 * math.hypot(size[0], size[1])
            box = np.array([x, y, st.surface(x, y) + size[2] / 2, *size, yaw])
            if math.hypot(x, y) < 4.0 or not st.clear(x, y, r) or box_truncation(box, calib) > 0.5:
                continue
            if sight and not st.in_sight(x, y):
                continue
            lay.add_object(name, x, y, size, yaw, sensor)
            st.circles.append((x, y, r))
            return True
        return False

    def jitter_size(base: tuple[float, float, float], key: str) -> tuple[float, float, float]:
        spread = SIZE_SPREAD.get(key, (0.06, 0.06, 0.06))
        return tuple(float(b * (1 + np.clip(rng.normal(0, s), -2 * s, 2 * s))) for b, s in zip(base, spread))  # type: ignore[return-value]

    def along() -> float:
        return st.psi + (0.0 if rng.random() < 0.5 else math.pi)

    def side_at(edge, offset: float) -> float:
        """v of a random side's road edge moved by offset outwards (negative: into the road)."""
        side = 1 if rng.random() < 0.5 else -1
        return side * (edge(side) + offset)

    counts = {"car": (2, 10), "pedestrian": (0, 7), "cyclist": (0, 4)}
    for anchor in cfg.anchors:
        key = anchor.name.lower()
        if key == "car":
            for side in (1, -1):  # a row of parked cars along the kerb
                if rng.random() < 0.45:
                    u = float(rng.uniform(3, 30))
                    for _ in range(int(rng.integers(2, 7))):
                        size = jitter_size(anchor.size, key)
                        yaw = along() + float(rng.normal(0, 0.04))
                        place(anchor.name, size, lambda: (u, side * (edge(side) - 1.0 - float(rng.uniform(0, 0.3))), yaw))
                        u += size[0] + float(rng.uniform(0.6, 3.0))
        lo, hi = counts.get(key, (0, 3))
        for _ in range(int(rng.integers(lo, hi))):
            size = jitter_size(anchor.size, key)
            if key == "car":
                if rng.random() < 0.6:  # driving in a lane
                    pose = lambda: (rng.uniform(5, 60), rng.uniform(1.2 - right, left - 1.2), along() + rng.normal(0, 0.05))
                else:  # parked at the kerb, now and then nose-in
                    pose = lambda: (rng.uniform(4, 50), side_at(edge, -1.1),
                                    along() + (math.pi / 2 if rng.random() < 0.15 else 0) + rng.normal(0, 0.05))
            elif key == "pedestrian":
                pose = lambda: (rng.uniform(4, 40), side_at(edge, rng.uniform(0.5, max(sw - 0.3, 0.6)))
                                if rng.random() < 0.8 else rng.uniform(-right, left), rng.uniform(-math.pi, math.pi))
            elif key == "cyclist":
                pose = lambda: (rng.uniform(5, 45), side_at(edge, -rng.uniform(0.5, 1.5)), along() + rng.normal(0, 0.15))
            else:
                pose = lambda: (rng.uniform(5, 50), rng.uniform(-right, left), rng.uniform(-math.pi, math.pi))
            place(anchor.name, size, lambda: tuple(float(v) for v in pose()))
    return lay

"""Synthetic KITTI-like sample data: a seeded HDL-64E-style ray caster over a street scene.

The project cannot ship KITTI (licence) nor download it, so it makes its own scans, label_2,
calib and ImageSets in KITTI's layout, byte-reproducible from a seed. Geometry is a handful of
analytic primitives (yaw-rotated boxes, vertical cylinders, spheres, a tilted ground plane);
every ray keeps its nearest hit, so objects occlude each other like in a real scan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.io.kitti import (KITTI_IMAGE_SHAPE, Calib, KittiObjects, box_corners_lidar, lidar_boxes_to_camera, project_boxes_to_image,
                       write_labels)
from pointpillars_trt.io.points import write_bin

IMAGE_SHAPE = KITTI_IMAGE_SHAPE

# KITTI's 2011_09_26 calibration (P2, R0_rect, Tr_velo_to_cam): realistic numbers for the synthetic camera.
_KITTI_P2 = [7.070493e02, 0.0, 6.040814e02, 4.575831e01, 0.0, 7.070493e02, 1.805066e02, -3.454157e-01,
             0.0, 0.0, 1.0, 4.981016e-03]
_KITTI_R0 = [9.999128e-01, 1.009263e-02, -8.511932e-03, -1.012729e-02, 9.999406e-01, -4.037671e-03,
             8.470675e-03, 4.123522e-03, 9.999556e-01]
_KITTI_V2C = [6.927964e-03, -9.999722e-01, -2.757829e-03, -2.457729e-02, -1.162982e-03, 2.749836e-03,
              -9.999955e-01, -6.127237e-02, 9.999753e-01, 6.931141e-03, -1.143899e-03, -3.321029e-01]


def kitti_calib() -> Calib:
    """A KITTI-like calibration (the 2011_09_26 drives' values)."""
    return Calib(np.array(_KITTI_P2).reshape(3, 4), np.array(_KITTI_R0).reshape(3, 3), np.array(_KITTI_V2C).reshape(3, 4))


# ---------------------------------------------------------------------------- sensor
@dataclass(frozen=True)
class Sensor:
    """A spinning 64-beam lidar like KITTI's HDL-64E (two blocks of 32 lasers), lidar frame origin at the sensor.

    Only the forward sector (+-az_half_deg) is cast: everything else is cropped to the camera FOV anyway.
    """

    height: float = 1.73  # above the ground
    upper_deg: tuple[float, float] = (2.0, -8.33)  # 32 lasers, about 1/3 degree apart
    lower_deg: tuple[float, float] = (-8.83, -24.8)  # 32 lasers, about 1/2 degree apart
    az_step_deg: float = 0.16
    az_half_deg: float = 50.0
    max_range: float = 120.0
    range_noise: float = 0.02  # metres, 1 sigma
    dropout: float = 0.02  # rays with no return

    def elevations(self) -> np.ndarray:
        up = np.linspace(*self.upper_deg, 32)
        lo = np.linspace(*self.lower_deg, 32)
        return np.radians(np.concatenate([up, lo]))

    def azimuths(self) -> np.ndarray:
        n = int(round(2 * self.az_half_deg / self.az_step_deg)) + 1
        return np.radians(np.linspace(-self.az_half_deg, self.az_half_deg, n))

    def ray_dirs(self) -> np.ndarray:
        """Unit directions [A*E, 3], azimuth-major (ray a*E + e), so an azimuth interval is a contiguous slice."""
        az, el = self.azimuths()[:, None], self.elevations()[None, :]
        d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el) * np.ones_like(az)], axis=-1)
        return d.reshape(-1, 3)


# ---------------------------------------------------------------------------- primitives
@dataclass
class Prim:
    """One analytic surface. kind: 'box' (cx,cy,cz,dx,dy,dz,yaw), 'cyl' (cx,cy,r,z0,z1), 'sph' (cx,cy,cz,r).

    owner: index of the labelled object it belongs to, -1 for clutter. reflect: surface reflectivity in [0,1];
    jitter: extra range noise (vegetation).
    """

    kind: str
    p: tuple[float, ...]
    owner: int = -1
    reflect: float = 0.4
    jitter: float = 0.0

    def footprint(self) -> tuple[float, float, float]:
        """Bounding circle (cx, cy, r) in the ground plane."""
        if self.kind == "box":
            return self.p[0], self.p[1], 0.5 * math.hypot(self.p[3], self.p[4])
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
    n = np.nan_to_num((t[:, None] * d - c) / r)
    return t, n


_HIT = {"box": _hit_box, "cyl": _hit_cyl, "sph": _hit_sph}


# ---------------------------------------------------------------------------- object shapes
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


# ---------------------------------------------------------------------------- layout
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


def _truncation(box: np.ndarray, calib: Calib) -> float:
    """KITTI truncation: the fraction of the projected 3D box's 2D extent that falls outside the image."""
    corners = box_corners_lidar(box[None])[0]
    if calib.lidar_to_rect(corners)[:, 2].min() < 0.5:
        return 1.0
    full = project_boxes_to_image(box[None], calib, None)[0]
    clip = project_boxes_to_image(box[None], calib, IMAGE_SHAPE)[0]
    area = lambda b: max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)  # noqa: E731
    return float(np.clip(1.0 - area(clip) / max(area(full), 1e-9), 0.0, 1.0))


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
            if math.hypot(x, y) < 4.0 or not _clear(circles, x, y, r, 0.3) or _truncation(box, calib) > 0.5:
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


# ---------------------------------------------------------------------------- ray casting
@dataclass
class Scene:
    """One synthetic frame: the camera-FOV scan and its labelled objects (lidar frame) with KITTI attributes."""

    points: np.ndarray  # [N, 4] float32 x, y, z, intensity
    boxes: np.ndarray  # [M, 7] lidar (x, y, z_centre, dx, dy, dz, yaw)
    names: np.ndarray  # [M] class names
    occlusion: np.ndarray  # [M] int: 0 visible, 1 partly, 2 largely occluded, 3 no point reaches it
    truncation: np.ndarray  # [M] fraction of the 2D box outside the image
    num_points: np.ndarray  # [M] scan points on the object
    visible_fraction: np.ndarray  # [M] points / rays that would hit it were it alone
    calib: Calib
    image_shape: tuple[int, int] = IMAGE_SHAPE

    def kitti_objects(self) -> KittiObjects:
        """The label_2 objects: camera-frame boxes, alpha and the projected, clipped 2D box."""
        cam = lidar_boxes_to_camera(self.boxes, self.calib)
        alpha = cam[:, 6] - np.arctan2(cam[:, 0], cam[:, 2])
        alpha = alpha - np.floor(alpha / (2 * np.pi) + 0.5) * 2 * np.pi
        n = len(self.boxes)
        return KittiObjects(
            name=np.asarray(self.names, dtype="<U16"), truncated=self.truncation.astype(np.float64),
            occluded=self.occlusion.astype(int), alpha=alpha,
            bbox=project_boxes_to_image(self.boxes, self.calib, self.image_shape) if n else np.zeros((0, 4)),
            dimensions=cam[:, [4, 5, 3]], location=cam[:, :3], rotation_y=cam[:, 6])


def fov_mask(xyz: np.ndarray, calib: Calib, image_shape: tuple[int, int] = IMAGE_SHAPE) -> np.ndarray:
    """Points in front (x > 0) that project inside the image: KITTI's velodyne_reduced crop."""
    if len(xyz) == 0:
        return np.zeros(0, bool)
    rect = calib.lidar_to_rect(xyz[:, :3].astype(np.float64))
    uv, depth = calib.rect_to_image(rect)
    h, w = image_shape
    return ((xyz[:, 0] > 0) & (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h))


def _az_slice(prim: Prim, az: np.ndarray, n_el: int) -> tuple[int, int]:
    """Contiguous ray range [r0, r1) whose azimuths can reach the primitive's bounding circle."""
    cx, cy, r = prim.footprint()
    d = math.hypot(cx, cy)
    if d <= r + 0.05:
        return 0, len(az) * n_el
    centre, half = math.atan2(cy, cx), math.asin(min(1.0, r / d)) + 2 * (az[1] - az[0])
    a0 = int(np.searchsorted(az, centre - half, "left"))
    a1 = int(np.searchsorted(az, centre + half, "right"))
    return a0 * n_el, a1 * n_el


_LEVELS = (0.1, 0.5)  # blocked fraction up to which an object is occlusion level 0, then 1; above: 2


def render_layout(layout: Layout, rng: np.random.Generator, sensor: Sensor | None = None,
                  calib: Calib | None = None) -> Scene:
    """Ray-cast a layout: nearest hit per ray, range noise, dropout, intensity, FOV crop, occlusion levels."""
    sensor = sensor or Sensor()
    calib = calib or kitti_calib()
    dirs = sensor.ray_dirs()
    az, n_el = sensor.azimuths(), len(sensor.elevations())
    n_rays, n_obj = len(dirs), len(layout.boxes)

    # ground plane z = -h + gx x + gy y: t = -h / (dz - gx dx - gy dy)
    gx, gy = layout.slope
    denom = dirs[:, 2] - gx * dirs[:, 0] - gy * dirs[:, 1]
    with np.errstate(divide="ignore"):
        t_g = -sensor.height / denom
    t_best = np.where((denom < 0) & (t_g > 0), t_g, np.inf)
    normal = np.tile(np.array([-gx, -gy, 1.0]) / math.sqrt(1 + gx * gx + gy * gy), (n_rays, 1))
    owner = np.full(n_rays, -1, np.int64)
    reflect = np.full(n_rays, layout.ground_reflect)
    jitter = np.full(n_rays, 0.01)

    prims = list(layout.clutter)
    for k, (name, box) in enumerate(zip(layout.names, layout.boxes)):
        prims += object_prims(name, box, k, rng)
    alone = np.full((n_obj, n_rays), np.inf) if n_obj else np.zeros((0, n_rays))  # each object cast on its own
    for prim in prims:
        r0, r1 = _az_slice(prim, az, n_el)
        if r1 <= r0:
            continue
        t, n = _HIT[prim.kind](dirs[r0:r1], prim.p)
        if prim.owner >= 0:
            np.minimum(alone[prim.owner, r0:r1], t, out=alone[prim.owner, r0:r1])
        better = t < t_best[r0:r1]
        idx = np.nonzero(better)[0] + r0
        t_best[idx], normal[idx] = t[better], n[better]
        owner[idx], reflect[idx], jitter[idx] = prim.owner, prim.reflect, prim.jitter

    keep_ray = rng.random(n_rays) >= sensor.dropout
    far = np.clip((t_best - 70.0) / (sensor.max_range - 70.0), 0, 1)
    keep_ray &= rng.random(n_rays) >= 0.5 * far  # weak far returns thin out
    hit = np.isfinite(t_best) & (t_best <= sensor.max_range) & keep_ray
    noise = rng.normal(0.0, 1.0, n_rays) * np.hypot(sensor.range_noise, jitter)
    rng_m = t_best + noise
    xyz = dirs * np.where(hit, rng_m, 0.0)[:, None]
    cos_inc = np.abs(np.sum(normal * dirs, axis=1))
    inten = reflect * (0.3 + 0.7 * cos_inc) * (1.0 - 0.35 * np.clip(t_best / sensor.max_range, 0, 1))
    inten = np.round(np.clip(inten + rng.normal(0.0, 0.02, n_rays), 0.0, 1.0), 2)

    ring_major = np.arange(n_rays).reshape(-1, n_el).T.ravel()  # KITTI stores scans ring by ring
    sel = ring_major[hit[ring_major]]
    sel = sel[fov_mask(xyz[sel], calib)]
    points = np.column_stack([xyz[sel], inten[sel]]).astype(np.float32)

    boxes = np.array(layout.boxes, np.float64).reshape(-1, 7)
    num_points = np.bincount(owner[sel][owner[sel] >= 0], minlength=n_obj)[:n_obj]
    reach = np.zeros(n_obj, np.int64)
    for k in range(n_obj):
        rays = np.nonzero(np.isfinite(alone[k]) & keep_ray)[0]
        reach[k] = int(fov_mask(dirs[rays] * alone[k, rays, None], calib).sum())
    vis = np.where(reach > 0, num_points / np.maximum(reach, 1), 0.0)
    occl = np.where(1 - vis <= _LEVELS[0], 0, np.where(1 - vis <= _LEVELS[1], 1, 2))
    occl = np.where(num_points == 0, 3, occl)
    trunc = np.array([_truncation(b, calib) for b in boxes])
    return Scene(points=points, boxes=boxes, names=np.array(layout.names, dtype="<U16"), occlusion=occl.astype(int),
                 truncation=trunc, num_points=num_points, visible_fraction=vis, calib=calib)


def generate_scene(seed: int, cfg: PointPillarsConfig | None = None, sensor: Sensor | None = None) -> Scene:
    """One reproducible synthetic frame: same seed, same scene, bit for bit."""
    cfg = cfg or PointPillarsConfig()
    sensor = sensor or Sensor()
    calib = kitti_calib()
    rng = np.random.default_rng(seed)
    return render_layout(sample_layout(rng, cfg, sensor, calib), rng, sensor, calib)


# ---------------------------------------------------------------------------- dataset
def frame_seed(seed: int, index: int) -> int:
    """Seed of frame `index` of a dataset made with `seed` (independent streams per frame)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def write_frame(root: Path, frame_id: str, scene: Scene) -> None:
    """Write one scene's velodyne .bin, label_2 and calib files under root/training."""
    tr = Path(root) / "training"
    for sub in ("velodyne", "label_2", "calib"):
        (tr / sub).mkdir(parents=True, exist_ok=True)
    write_bin(tr / "velodyne" / f"{frame_id}.bin", scene.points)
    write_labels(tr / "label_2" / f"{frame_id}.txt", scene.kitti_objects())
    scene.calib.write(tr / "calib" / f"{frame_id}.txt")


def write_dataset(root: str | Path, n_frames: int, seed: int = 0, progress: bool = True,
                  cfg: PointPillarsConfig | None = None) -> list[str]:
    """Generate n_frames frames in KITTI's layout under root (ImageSets/val.txt lists them); returns the ids."""
    from tqdm import tqdm

    root = Path(root)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    cfg = cfg or PointPillarsConfig()
    ids = [f"{i:06d}" for i in range(n_frames)]
    for i, fid in enumerate(tqdm(ids, desc="sample frames", unit="frame", disable=not progress)):
        write_frame(root, fid, generate_scene(frame_seed(seed, i), cfg))
    (root / "ImageSets" / "val.txt").write_text("".join(f"{fid}\n" for fid in ids))
    return ids

"""Synthetic KITTI-like sample data: a seeded HDL-64E-style ray caster over a street scene.

The project cannot ship KITTI (licence) nor download it, so it makes its own scans, label_2,
calib and ImageSets in KITTI's layout, byte-reproducible from a seed. Geometry is a handful of
analytic primitives (yaw-rotated boxes, vertical cylinders, spheres, a tilted ground plane);
every ray keeps its nearest hit, so objects occlude each other like in a real scan.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pointpillars_trt.io.kitti import Calib, KittiObjects, lidar_boxes_to_camera, project_boxes_to_image
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.sample.layout import Layout, sample_layout
from pointpillars_trt.sample.objects import object_prims
from pointpillars_trt.sample.raycast import Prim, intersect, ray_range
from pointpillars_trt.sample.returns import material_index
from pointpillars_trt.sample.sensor import IMAGE_SHAPE, Sensor, box_truncation, fov_mask, kitti_calib

# Every public name of the sample package stays importable from here (scene.py held them all before the split).
__all__ = ["IMAGE_SHAPE", "Layout", "Prim", "Scene", "Sensor", "fov_mask", "frame_seed", "generate_scene", "kitti_calib",
           "object_prims", "render_layout", "sample_layout", "write_dataset", "write_frame"]
_FROM_DATASET = ("frame_seed", "write_dataset", "write_frame")  # dataset.py imports this module: resolved lazily


def __getattr__(name: str):
    if name in _FROM_DATASET:
        from pointpillars_trt.sample import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    surface: "Surface | None" = None  # per point: material, shade, incidence, range (for the return model's fit)

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


_LEVELS = (0.1, 0.5)  # blocked fraction up to which an object is occlusion level 0, then 1; above: 2


@dataclass
class Surface:
    """Per scan point: what it hit (index into sample.returns.MATERIAL_NAMES), that surface's shade, the cosine of
    the incidence angle and the range; what the return model's fit (evaluation/return_fit.py) re-shades."""

    material: np.ndarray
    shade: np.ndarray
    cos_inc: np.ndarray
    range_m: np.ndarray


def _nearest_hits(layout: Layout, prims: list[Prim], dirs: np.ndarray, sensor: Sensor, az: np.ndarray, n_el: int):
    """Nearest hit per ray over the ground plane and every primitive; also each object's hits cast on its own."""
    n_rays, n_obj = len(dirs), len(layout.boxes)
    gx, gy = layout.slope  # ground plane z = -h + gx x + gy y: t = -h / (dz - gx dx - gy dy)
    denom = dirs[:, 2] - gx * dirs[:, 0] - gy * dirs[:, 1]
    with np.errstate(divide="ignore"):
        t_g = -sensor.height / denom
    t_best = np.where((denom < 0) & (t_g > 0), t_g, np.inf)
    normal = np.tile(np.array([-gx, -gy, 1.0]) / math.sqrt(1 + gx * gx + gy * gy), (n_rays, 1))
    owner = np.full(n_rays, -1, np.int64)
    material = np.full(n_rays, material_index("ground"), np.int64)
    shade = np.full(n_rays, layout.ground_shade)
    jitter = np.full(n_rays, 0.01)
    alone = np.full((n_obj, n_rays), np.inf) if n_obj else np.zeros((0, n_rays))  # each object cast on its own
    for prim in prims:
        r0, r1 = ray_range(prim, az, n_el)
        if r1 <= r0:
            continue
        t, n = intersect(prim, dirs[r0:r1])
        if prim.owner >= 0:
            np.minimum(alone[prim.owner, r0:r1], t, out=alone[prim.owner, r0:r1])
        better = t < t_best[r0:r1]
        idx = np.nonzero(better)[0] + r0
        t_best[idx], normal[idx] = t[better], n[better]
        owner[idx], material[idx], shade[idx], jitter[idx] = prim.owner, material_index(prim.material), prim.shade, prim.jitter
    return t_best, normal, owner, material, shade, jitter, alone


def render_layout(layout: Layout, rng: np.random.Generator, sensor: Sensor | None = None,
                  calib: Calib | None = None) -> Scene:
    """Ray-cast a layout: nearest hit per ray, range noise, ray drop and intensity (sensor.returns), FOV crop,
    occlusion levels."""
    sensor = sensor or Sensor()
    calib = calib or kitti_calib()
    dirs = sensor.ray_dirs()
    az, n_el = sensor.azimuths(), len(sensor.elevations())
    n_rays, n_obj = len(dirs), len(layout.boxes)
    prims = list(layout.clutter)
    for k, (name, box) in enumerate(zip(layout.names, layout.boxes)):
        prims += object_prims(name, box, k, rng)
    t_best, normal, owner, material, shade, jitter, alone = _nearest_hits(layout, prims, dirs, sensor, az, n_el)

    model = sensor.returns
    keep_ray = model.kept(material, rng)
    far = np.clip((t_best - 70.0) / (sensor.max_range - 70.0), 0, 1)
    keep_ray &= rng.random(n_rays) >= 0.5 * far  # weak far returns thin out
    reach_ray = np.isfinite(t_best) & (t_best <= sensor.max_range)
    hit = reach_ray & keep_ray
    rng_m = t_best + rng.normal(0.0, 1.0, n_rays) * np.hypot(sensor.range_noise, jitter)
    xyz = dirs * np.where(hit, rng_m, 0.0)[:, None]
    cos_inc = np.abs(np.sum(normal * dirs, axis=1))
    inten = model.intensity(material, shade, cos_inc, np.where(hit, rng_m, 1.0), rng)

    ring_major = np.arange(n_rays).reshape(-1, n_el).T.ravel()  # KITTI stores scans ring by ring
    sel = ring_major[hit[ring_major]]
    sel = sel[fov_mask(xyz[sel], calib)]
    points = np.column_stack([xyz[sel], inten[sel]]).astype(np.float32)

    boxes = np.array(layout.boxes, np.float64).reshape(-1, 7)
    num_points = np.bincount(owner[sel][owner[sel] >= 0], minlength=n_obj)[:n_obj]
    seen = ring_major[reach_ray[ring_major]]  # the rays' nearest hits before any drop: occlusion is geometric
    seen = seen[fov_mask(dirs[seen] * t_best[seen, None], calib)]
    seen_count = np.bincount(owner[seen][owner[seen] >= 0], minlength=n_obj)[:n_obj]
    reach = np.zeros(n_obj, np.int64)
    for k in range(n_obj):
        rays = np.nonzero(np.isfinite(alone[k]))[0]
        reach[k] = int(fov_mask(dirs[rays] * alone[k, rays, None], calib).sum())
    vis = np.where(reach > 0, seen_count / np.maximum(reach, 1), 0.0)
    occl = np.where(1 - vis <= _LEVELS[0], 0, np.where(1 - vis <= _LEVELS[1], 1, 2))
    occl = np.where(num_points == 0, 3, occl)
    trunc = np.array([box_truncation(b, calib) for b in boxes])
    return Scene(points=points, boxes=boxes, names=np.array(layout.names, dtype="<U16"), occlusion=occl.astype(int),
                 truncation=trunc, num_points=num_points, visible_fraction=vis, calib=calib,
                 surface=Surface(material[sel], shade[sel], cos_inc[sel], rng_m[sel]))


def generate_scene(seed: int, cfg: PointPillarsConfig | None = None, sensor: Sensor | None = None) -> Scene:
    """One reproducible synthetic frame: same seed, same scene, bit for bit."""
    cfg = cfg or PointPillarsConfig()
    sensor = sensor or Sensor()
    calib = kitti_calib()
    rng = np.random.default_rng(seed)
    return render_layout(sample_layout(rng, cfg, sensor, calib), rng, sensor, calib)

"""Random but plausible KITTI labels and noisy detections, for tests and the evaluation benchmark.

Boxes are placed in front of a KITTI-like camera (P2 of a typical drive) and their 2D boxes are
the projections of the 3D corners, clipped to a 1242 x 375 image, so the 2D/BEV/3D overlaps agree.
"""
from __future__ import annotations

import numpy as np

from pointpillars_trt.io.kitti import KITTI_IMAGE_SHAPE, KittiObjects

IMAGE_H, IMAGE_W = (float(v) for v in KITTI_IMAGE_SHAPE)
FOCAL, CU, CV = 721.5, 609.6, 172.9

# class: (probability, mean h w l, std of h w l)
CLASS_SHAPES = {
    "Car": (0.55, (1.53, 1.63, 3.88), (0.14, 0.10, 0.43)),
    "Pedestrian": (0.15, (1.76, 0.66, 0.84), (0.11, 0.14, 0.23)),
    "Cyclist": (0.10, (1.74, 0.60, 1.76), (0.09, 0.12, 0.18)),
    "Van": (0.06, (2.21, 1.90, 5.08), (0.32, 0.14, 0.45)),
    "Truck": (0.03, (3.25, 2.59, 10.1), (0.45, 0.22, 2.0)),
    "Person_sitting": (0.02, (1.27, 0.54, 0.88), (0.1, 0.07, 0.2)),
    "DontCare": (0.09, None, None),
}


def camera_box_to_bbox(loc: np.ndarray, dims: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """2D boxes [N,4] of camera boxes (loc x,y_bottom,z; dims h,w,l) projected with the module's camera."""
    n = len(loc)
    if n == 0:
        return np.zeros((0, 4))
    h, w, l = dims[:, 0:1], dims[:, 1:2], dims[:, 2:3]
    xs = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5 * l
    zs = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5 * w
    ys = np.array([0, 0, 0, 0, -1, -1, -1, -1]) * h
    c, s = np.cos(ry)[:, None], np.sin(ry)[:, None]
    x = c * xs + s * zs + loc[:, 0:1]
    z = -s * xs + c * zs + loc[:, 2:3]
    y = ys + loc[:, 1:2]
    z = np.maximum(z, 0.5)
    u = FOCAL * x / z + CU
    v = FOCAL * y / z + CV
    bb = np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], axis=1)
    bb[:, [0, 2]] = bb[:, [0, 2]].clip(0, IMAGE_W - 1)
    bb[:, [1, 3]] = bb[:, [1, 3]].clip(0, IMAGE_H - 1)
    return bb


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def _objects(names, truncated, occluded, loc, dims, ry, score=None) -> KittiObjects:
    bbox = camera_box_to_bbox(loc, dims, ry)
    alpha = _wrap(ry - np.arctan2(loc[:, 0], loc[:, 2]))
    return KittiObjects(np.asarray(names, dtype="<U16"), np.asarray(truncated, float), np.asarray(occluded, int),
                        alpha, bbox, dims, loc, ry, score)


def random_labels(rng: np.random.Generator, n: int) -> KittiObjects:
    """n ground-truth objects of mixed classes (DontCare included) with random truncation and occlusion."""
    names = list(CLASS_SHAPES)
    p = np.array([CLASS_SHAPES[k][0] for k in names])
    cls = rng.choice(len(names), size=n, p=p / p.sum())
    dims = np.zeros((n, 3))
    for i, k in enumerate(cls):
        spec = CLASS_SHAPES[names[k]]
        dims[i] = np.maximum(rng.normal(spec[1], spec[2]), 0.3) if spec[1] else (1.5, 1.6, 3.9)
    z = rng.uniform(4.0, 60.0, n)
    x = rng.uniform(-0.6, 0.6, n) * z
    y = rng.normal(1.65, 0.1, n)
    ry = rng.uniform(-np.pi, np.pi, n)
    truncated = np.round(rng.choice([0.0, 0.0, 0.0, 0.1, 0.2, 0.4, 0.6], n), 2)
    occluded = rng.choice([0, 0, 1, 1, 2, 3], n)
    obj = _objects(np.array(names)[cls], truncated, occluded, np.column_stack([x, y, z]), dims, ry)
    dc = obj.name == "DontCare"
    obj.truncated[dc], obj.occluded[dc], obj.alpha[dc], obj.rotation_y[dc] = -1, -1, -10, -10
    obj.dimensions[dc], obj.location[dc] = -1, -1000
    return obj


def noisy_detections(rng: np.random.Generator, gt: KittiObjects, p_detect: float = 0.8, n_false: float = 3.0,
                     noise: float = 0.15) -> KittiObjects:
    """Detections of gt (jittered boxes, score falling with the jitter) plus Poisson(n_false) random false positives."""
    keep = (gt.name != "DontCare") & (rng.random(len(gt)) < p_detect)
    src = gt.select(keep)
    m = len(src)
    err = rng.normal(0, noise, (m, 4)) * rng.exponential(1.0, (m, 1))
    loc = src.location + np.column_stack([err[:, 0], 0.3 * err[:, 1], err[:, 2]]) * np.maximum(src.dimensions[:, [2]], 1)
    dims = src.dimensions * np.exp(0.5 * rng.normal(0, noise, (m, 3)))
    flip = rng.random(m) < 0.1
    ry = _wrap(src.rotation_y + err[:, 3] + np.pi * flip)
    score = np.clip(np.exp(-np.abs(err).sum(1)) * rng.uniform(0.6, 1.0, m), 0.01, 1.0)
    names = src.name.copy()
    swap = rng.random(m) < 0.05
    names[swap] = rng.choice(["Car", "Pedestrian", "Cyclist"], int(swap.sum()))
    fp = random_labels(rng, int(rng.poisson(n_false)))
    fp = fp.select(fp.name != "DontCare")
    fp.name[~np.isin(fp.name, ["Car", "Pedestrian", "Cyclist"])] = "Car"
    names = np.concatenate([names, fp.name]).astype("<U16")
    loc = np.concatenate([loc, fp.location])
    dims = np.concatenate([dims, fp.dimensions])
    ry = np.concatenate([ry, fp.rotation_y])
    score = np.concatenate([score, rng.uniform(0.01, 0.7, len(fp))])
    n = len(names)
    return _objects(names, np.zeros(n), np.zeros(n, int), loc, dims, ry, score=np.round(score, 4))

"""Measurements of a lidar frame that show how the generator's scans differ from real ones, computed the same way
for both: ground / background / object points, intensity by range, points on each labelled object, the beam
pattern (rings, azimuth step, missing returns) and the height profile of the clutter."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("Car", "Pedestrian", "Cyclist")
GROUND, BACKGROUND, OTHER = 0, 1, 2  # point categories; labelled class c is 3 + c
RANGE_BINS = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 70.0)
OBJECT_BINS = (0.0, 15.0, 30.0, 80.0)
HEIGHT_BINS = (0.2, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def points_in_box(points: np.ndarray, box: np.ndarray, tol: float = 0.0) -> np.ndarray:
    """Points inside a lidar box (x, y, z_centre, dx, dy, dz, yaw), grown by tol on every side."""
    x, y, z, dx, dy, dz, yaw = box
    px, py = points[:, 0] - x, points[:, 1] - y
    lx = np.cos(yaw) * px + np.sin(yaw) * py
    ly = -np.sin(yaw) * px + np.cos(yaw) * py
    return (np.abs(lx) <= dx / 2 + tol) & (np.abs(ly) <= dy / 2 + tol) & (np.abs(points[:, 2] - z) <= dz / 2 + tol)


def fit_ground_plane(points: np.ndarray, rounds: int = 3, band: float = 0.2) -> np.ndarray:
    """(a, b, c) of the ground z = a x + b y + c: least squares on the lowest points, refitted on its own inliers."""
    coef = np.array([0.0, 0.0, -1.73])
    if len(points) < 10:
        return coef
    sel = points[:, 2] < np.percentile(points[:, 2], 30)
    for _ in range(rounds):
        if sel.sum() < 10:
            break
        a = np.column_stack([points[sel, 0], points[sel, 1], np.ones(int(sel.sum()))])
        coef = np.linalg.lstsq(a.astype(np.float64), points[sel, 2].astype(np.float64), rcond=None)[0]
        sel = np.abs(points[:, 2] - (coef[0] * points[:, 0] + coef[1] * points[:, 1] + coef[2])) < band
    return coef


def ground_height(points: np.ndarray) -> np.ndarray:
    """Height of every point above the fitted ground plane."""
    a, b, c = fit_ground_plane(points)
    return points[:, 2] - (a * points[:, 0] + b * points[:, 1] + c)


@dataclass
class Categories:
    """Per point: category (GROUND, BACKGROUND, OTHER, or 3 + class index), range, height above the ground; and
    per labelled object of CLASSES: class index, distance, points in the box, its points above the box bottom."""

    cat: np.ndarray
    range_m: np.ndarray
    height: np.ndarray
    obj_class: np.ndarray
    obj_dist: np.ndarray
    obj_points: np.ndarray
    obj_size: np.ndarray  # [M, 3] length, width, height
    obj_members: list[np.ndarray]  # indices of each object's points above its bottom + 0.1 m (for intensity)


def categorize(points: np.ndarray, boxes: np.ndarray, names: np.ndarray, band: float = 0.2) -> Categories:
    """Split a frame's points: inside a labelled box (grown 0.1 m), else ground (within band of the fitted plane),
    else background. Boxes of other classes (Van, Truck, Misc, ...) mark their points OTHER."""
    n = len(points)
    h = ground_height(points) if n else np.zeros(0)
    cat = np.where(np.abs(h) < band, GROUND, BACKGROUND).astype(np.int64)
    cls, dist, cnt, size, members = [], [], [], [], []
    for name, box in zip(names, boxes):
        inside = points_in_box(points, box, 0.1)
        if name not in CLASSES:
            cat[inside] = OTHER
            continue
        c = CLASSES.index(name)
        cat[inside] = 3 + c
        cls.append(c)
        dist.append(float(np.hypot(box[0], box[1])))
        cnt.append(int(points_in_box(points, box).sum()))
        size.append(box[3:6])
        members.append(np.flatnonzero(inside & (points[:, 2] > box[2] - box[5] / 2 + 0.1)))
    return Categories(cat, np.hypot(points[:, 0], points[:, 1]), h, np.array(cls, np.int64), np.array(dist),
                      np.array(cnt, np.int64), np.array(size).reshape(-1, 3), members)


def _quantiles(v: np.ndarray) -> list[float]:
    """count, zero fraction, and the nonzero values' 25/50/75th percentiles (nan where empty)."""
    nz = v[v > 0]
    q = np.percentile(nz, [25, 50, 75]).tolist() if len(nz) else [np.nan] * 3
    return [float(len(v)), float(np.mean(v == 0)) if len(v) else np.nan, *q]


def intensity_table(frames: list[tuple[Categories, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per category and range bin: [count, zero fraction, nonzero p25, p50, p75] over all frames' points.

    Keys 'ground', 'background' (RANGE_BINS) and each class of CLASSES (OBJECT_BINS, the objects' own points);
    '<class> means': one row over the objects with >= 30 points of their mean intensity: [objects, fraction of
    dark ones (mean < 0.1), p25, p50, p75]."""
    out = {}
    for key, code, bins in (("ground", GROUND, RANGE_BINS), ("background", BACKGROUND, RANGE_BINS)):
        r = np.concatenate([c.range_m[c.cat == code] for c, _ in frames])
        i = np.concatenate([inten[c.cat == code] for c, inten in frames])
        out[key] = np.array([_quantiles(i[(r >= lo) & (r < hi)]) for lo, hi in zip(bins[:-1], bins[1:])])
    for k, name in enumerate(CLASSES):
        r, i, means = [], [], []
        for c, inten in frames:
            for cls, d, m in zip(c.obj_class, c.obj_dist, c.obj_members):
                if cls == k:
                    r.append(np.full(len(m), d))
                    i.append(inten[m])
                    if len(m) >= 30:
                        means.append(float(inten[m].mean()))
        r = np.concatenate(r) if r else np.zeros(0)
        i = np.concatenate(i) if i else np.zeros(0)
        out[name] = np.array([_quantiles(i[(r >= lo) & (r < hi)]) for lo, hi in zip(OBJECT_BINS[:-1], OBJECT_BINS[1:])])
        m = np.array(means)
        q = np.percentile(m, [25, 50, 75]).tolist() if len(m) else [np.nan] * 3
        out[name + " means"] = np.array([[len(m), float(np.mean(m < 0.1)) if len(m) else np.nan, *q]])
    return out


def height_profile(c: Categories, max_range: float = 40.0) -> np.ndarray:
    """Background points per height band above the ground (HEIGHT_BINS) within max_range, per frame."""
    m = (c.cat == BACKGROUND) & (c.range_m < max_range)
    return np.histogram(c.height[m], bins=HEIGHT_BINS)[0].astype(np.float64)


@dataclass
class Rings:
    """A scan's rings as stored (KITTI writes points ring by ring, each sweeping its azimuths): per ring the median
    elevation (degrees), points, and its fill (points / azimuth steps across the span it covers)."""

    elevation: np.ndarray
    points: np.ndarray
    fill: np.ndarray
    az_step: float  # degrees between neighbours on a ring (median)


def rings(points: np.ndarray) -> Rings:
    """Split a ring-ordered scan where the azimuth jumps back (> 30 degrees) and measure each ring."""
    az = np.degrees(np.arctan2(points[:, 1], points[:, 0]))
    el = np.degrees(np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1])))
    ring = np.concatenate([[0], np.cumsum(np.diff(az) < -30)])
    d = np.diff(az)[np.diff(ring) == 0]
    step = float(np.median(d[(d > 0) & (d < 0.5)])) if np.any((d > 0) & (d < 0.5)) else np.nan
    n = int(ring.max()) + 1 if len(ring) else 0
    elev, cnt, fill = np.zeros(n), np.zeros(n, np.int64), np.zeros(n)
    for r in range(n):
        m = ring == r
        elev[r], cnt[r] = np.median(el[m]), int(m.sum())
        fill[r] = cnt[r] / max((az[m].max() - az[m].min()) / step + 1, 1)
    return Rings(elev, cnt, fill, step)

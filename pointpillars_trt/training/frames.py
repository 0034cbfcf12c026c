"""Training frames as arrays, from the generator (seeded, cached as .npz) or from real labelled KITTI frames:
points [N, 4]; boxes [M, 7] of the evaluated classes with 1-based labels, negative for an object with fewer than
MIN_POINTS points (an ignore region: neither positive nor background); usable [M] (may enter the ground-truth
database); other [O, 7] labelled boxes of other classes (Van, Truck, Misc: background, but nothing is pasted onto
them); ground (a, b, c) of the fitted plane z = a x + b y + c."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from pointpillars_trt import log
from pointpillars_trt.evaluation.scan_stats import fit_ground_plane, points_in_box
from pointpillars_trt.io.kitti_frames import LabelledFrame
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.sample.dataset import frame_seed
from pointpillars_trt.sample.scene import generate_scene
from pointpillars_trt.training.gt_database import MIN_POINTS, GtDatabase, cut_objects, kitti_usable, merge

KEYS = ("points", "boxes", "labels", "usable", "other", "ground")


def _arrays(points: np.ndarray, boxes: np.ndarray, names: np.ndarray, counts: np.ndarray, usable: np.ndarray,
            cfg: PointPillarsConfig) -> dict[str, np.ndarray]:
    names = np.asarray(names)
    ours = np.array([n in cfg.class_names for n in names], bool)
    keep = ours & (counts > 0)
    labels = np.array([cfg.class_names.index(n) + 1 for n in names[keep]], np.int64)
    labels = np.where(counts[keep] < MIN_POINTS, -labels, labels)
    return {"points": points.astype(np.float32), "boxes": boxes[keep].astype(np.float64).reshape(-1, 7),
            "labels": labels, "usable": (usable & (counts >= MIN_POINTS))[keep],
            "other": boxes[~ours].astype(np.float64).reshape(-1, 7), "ground": fit_ground_plane(points)}


def scene_arrays(seed: int, index: int, cfg: PointPillarsConfig, cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """Frame `index` of generator seed `seed` (`make-sample --seed` frame index), from cache_dir when it is there."""
    path = cache_dir / f"s{seed}_{index:07d}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            if all(k in z for k in KEYS):
                return {k: z[k] for k in KEYS}
    sc = generate_scene(frame_seed(seed, index), cfg)
    objs = sc.kitti_objects()
    usable = kitti_usable(sc.truncation, sc.occlusion, objs.bbox[:, 3] - objs.bbox[:, 1])
    out = _arrays(sc.points, sc.boxes, sc.names, sc.num_points, usable, cfg)
    if path is not None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **out)
        tmp.replace(path)
    return out


def real_arrays(frame: LabelledFrame, cfg: PointPillarsConfig) -> dict[str, np.ndarray]:
    """A real labelled frame as training arrays."""
    o = frame.objects
    counts = np.array([int(points_in_box(frame.points, b).sum()) for b in frame.boxes], np.int64)
    usable = kitti_usable(o.truncated, o.occluded, o.bbox[:, 3] - o.bbox[:, 1])
    return _arrays(frame.points, frame.boxes, o.name, counts, usable, cfg)


def _cut_scene(job: tuple[int, int, PointPillarsConfig, Path | None]) -> GtDatabase:
    seed, index, cfg, cache_dir = job
    f = scene_arrays(seed, index, cfg, cache_dir)
    names = np.array([cfg.class_names[abs(int(l)) - 1] for l in f["labels"]], "<U16")
    return cut_objects(f["points"], f["boxes"], names, f["usable"], f["ground"], "synthetic")


def build_database(cfg: PointPillarsConfig, seed: int, n_synthetic: int, real: list[tuple[str, dict]],
                   cache_dir: Path | None = None, workers: int = 0) -> GtDatabase:
    """The database from the first n_synthetic training frames of seed and the real frames [(id, arrays)]."""
    jobs = [(seed, i, cfg, cache_dir) for i in range(n_synthetic)]
    if workers > 1 and n_synthetic > 1:
        with ProcessPoolExecutor(workers) as ex:
            parts = list(log.progress(ex.map(_cut_scene, jobs, chunksize=8), total=len(jobs), desc="gt database",
                                      unit="frame", leave=False))
    else:
        parts = [_cut_scene(j) for j in log.progress(jobs, desc="gt database", unit="frame", leave=False)]
    for fid, f in real:
        names = np.array([cfg.class_names[abs(int(l)) - 1] for l in f["labels"]], "<U16")
        parts.append(cut_objects(f["points"], f["boxes"], names, f["usable"], f["ground"], fid))
    return merge(parts)

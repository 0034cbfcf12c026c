"""Training frames: seeded scenes from the project's generator, augmented, voxelized and target-assigned
on the CPU (in DataLoader workers), batched with a batch column on the pillar coords.

Frame i of a set made with seed S is sample.scene.generate_scene(frame_seed(S, i)), exactly what
`make-sample --seed S` writes, so the held-apart validation set (seed cfg.val_seed) can be written
and evaluated with the ordinary commands.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.sample.dataset import frame_seed
from pointpillars_trt.sample.scene import generate_scene
from pointpillars_trt.stages.voxelize import Voxelizer
from pointpillars_trt.training.augment import augment, boxes_in_range
from pointpillars_trt.training.targets import anchor_classes, assign_targets


def scene_arrays(seed: int, index: int, cfg: PointPillarsConfig, cache_dir: Path | None = None) -> dict[str, np.ndarray]:
    """points [N,4], boxes [M,7] and 1-based labels [M] of one generated frame (objects with >= 1 point, evaluated classes)."""
    path = cache_dir / f"s{seed}_{index:07d}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in ("points", "boxes", "labels")}
    sc = generate_scene(frame_seed(seed, index), cfg)
    names = list(cfg.class_names)
    keep = np.array([n in names for n in sc.names], bool) & (sc.num_points > 0)
    out = {"points": sc.points.astype(np.float32), "boxes": sc.boxes[keep].astype(np.float64),
           "labels": np.array([names.index(n) + 1 for n in sc.names[keep]], np.int64)}
    if path is not None:
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **out)
        tmp.replace(path)
    return out


class SyntheticFrames(torch.utils.data.Dataset):
    """Frames 0..n-1 of seed `seed`. Item key k = epoch * n + i: frame i with the augmentation draw of that epoch."""

    def __init__(self, cfg: PointPillarsConfig, n_frames: int, seed: int, train: bool = True,
                 cache_dir: str | Path | None = None) -> None:
        self.cfg, self.n, self.seed, self.train = cfg, n_frames, seed, train
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.anchors = make_anchors(cfg)
        self.anchor_cls = anchor_classes(cfg)
        self._vox: Voxelizer | None = None  # made in the worker that uses it

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int) -> dict[str, np.ndarray]:
        cfg = self.cfg
        i = int(key) % self.n
        f = scene_arrays(self.seed, i, cfg, self.cache_dir)
        points, boxes, labels = f["points"], f["boxes"], f["labels"]
        if self.train:
            rng = np.random.default_rng([self.seed, int(key), 0xA06])
            points, boxes = augment(points, boxes, rng, cfg)
            keep = boxes_in_range(boxes, cfg)
            boxes, labels = boxes[keep], labels[keep]
        if self._vox is None:
            vcfg = dataclasses.replace(cfg, max_pillars=cfg.max_pillars_train) if self.train else cfg
            self._vox = Voxelizer(vcfg)
        st = self._vox(points)
        p = st.num_pillars
        t = assign_targets(self.anchors, boxes, labels, cfg, self.anchor_cls)
        return {"features": self._vox.features[:p].copy(), "coords": self._vox.coords[:p].copy(),
                "labels": t.labels, "pos_idx": t.pos_idx, "box_targets": t.box_targets, "dir_targets": t.dir_targets,
                "gt_boxes": boxes.astype(np.float32), "gt_labels": labels}


def collate(items: list[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Concatenate pillars (coords column 0 = batch item) and positives (pos_batch); stack the labels."""
    coords = []
    for b, it in enumerate(items):
        c = it["coords"].copy()
        c[:, 0] = b
        coords.append(c)
    cat = lambda k: torch.from_numpy(np.concatenate([it[k] for it in items]))  # noqa: E731
    return {
        "features": cat("features"),
        "coords": torch.from_numpy(np.concatenate(coords)).long(),
        "labels": torch.from_numpy(np.stack([it["labels"] for it in items])),
        "pos_batch": torch.from_numpy(np.concatenate([np.full(len(it["pos_idx"]), b, np.int64) for b, it in enumerate(items)])),
        "pos_idx": cat("pos_idx"),
        "box_targets": cat("box_targets"),
        "dir_targets": cat("dir_targets"),
    }

"""Training frames: seeded scenes from the project's generator, and optionally real labelled KITTI frames, with
ground-truth sampling (gt_sampling.py), augmented, voxelized and target-assigned on the CPU (in DataLoader workers),
batched with a batch column on the pillar coords.

Frame i of a set made with seed S is sample.scene.generate_scene(frame_seed(S, i)), exactly what
`make-sample --seed S` writes, so the held-apart validation set (seed cfg.val_seed) can be written
and evaluated with the ordinary commands.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from pointpillars_trt.model.config import PointPillarsConfig
from pointpillars_trt.stages.anchors import make_anchors
from pointpillars_trt.stages.voxelize import Voxelizer
from pointpillars_trt.training.augment import augment, boxes_in_range
from pointpillars_trt.training.frames import scene_arrays
from pointpillars_trt.training.gt_database import GtDatabase
from pointpillars_trt.training.gt_sampling import SamplingOptions, sample_into
from pointpillars_trt.training.labels import class_mask, raise_tops
from pointpillars_trt.training.targets import anchor_classes, anchor_index, assign_targets


@dataclasses.dataclass
class FrameMix:
    """What besides generated frames goes into training: real frames [(id, arrays)] and the share of items that
    are one of them, the ground-truth database pasted from (None: no gt_sampling), and how many metres generated
    cars' label boxes grow at the top (training/labels.py; 0: the generator's boxes)."""

    real: list[tuple[str, dict]] = dataclasses.field(default_factory=list)
    real_fraction: float = 0.0
    database: GtDatabase | None = None
    sampling: SamplingOptions = SamplingOptions()
    car_top: float = 0.0


class TrainingFrames(torch.utils.data.Dataset):
    """Frames 0..n-1 of seed `seed`. Item key k = epoch * n + i: frame i with the draws of that epoch; with a mix,
    the item is a real frame instead for a real_fraction of the keys, and gets database objects pasted in."""

    def __init__(self, cfg: PointPillarsConfig, n_frames: int, seed: int, train: bool = True,
                 cache_dir: str | Path | None = None, mix: FrameMix | None = None) -> None:
        self.cfg, self.n, self.seed, self.train = cfg, n_frames, seed, train
        self.mix = mix or FrameMix()
        self.cache_dir = Path(cache_dir) if cache_dir else None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.anchors = make_anchors(cfg)
        self.anchor_cls = anchor_classes(cfg)
        self.index = anchor_index(self.anchors, self.anchor_cls, cfg.num_classes)
        self._vox: Voxelizer | None = None  # made in the worker that uses it

    def __len__(self) -> int:
        return self.n

    def frame(self, key: int) -> tuple[str, dict[str, np.ndarray]]:
        """(source, arrays) of item key: 'synthetic' or the real frame's id."""
        mix = self.mix
        if self.train and mix.real and np.random.default_rng([self.seed, int(key), 0x5EA1]).random() < mix.real_fraction:
            return mix.real[int(key) % len(mix.real)]
        f = scene_arrays(self.seed, int(key) % self.n, self.cfg, self.cache_dir)
        if mix.car_top:
            f = {**f, "boxes": raise_tops(f["boxes"], class_mask(f["labels"], self.cfg.class_names, "Car"), mix.car_top)}
        return "synthetic", f

    def __getitem__(self, key: int) -> dict[str, np.ndarray]:
        cfg = self.cfg
        _, f = self.frame(key)
        if self.train:
            rng = np.random.default_rng([self.seed, int(key), 0xA06])
            if self.mix.database is not None:
                f = sample_into(f, self.mix.database, cfg.class_names, rng, self.mix.sampling)
            points, boxes = augment(f["points"], f["boxes"], rng, cfg)
            keep = boxes_in_range(boxes, cfg)
            boxes, labels = boxes[keep], f["labels"][keep]
        else:
            points, boxes, labels = f["points"], f["boxes"], f["labels"]
        if self._vox is None:
            vcfg = dataclasses.replace(cfg, max_pillars=cfg.max_pillars_train) if self.train else cfg
            self._vox = Voxelizer(vcfg)
        st = self._vox(points)
        p = st.num_pillars
        t = assign_targets(self.anchors, boxes, labels, cfg, self.anchor_cls, self.index)
        return {"features": self._vox.features[:p].copy(), "coords": self._vox.coords[:p].copy(),
                "labels": t.labels, "pos_idx": t.pos_idx, "box_targets": t.box_targets, "dir_targets": t.dir_targets,
                "gt_boxes": boxes.astype(np.float32), "gt_labels": labels}


def make_mix(cfg: PointPillarsConfig, seed: int, frames: int, real_root: str | None, real_ids: list[str],
             real_fraction: float, gt_sampling: bool, db_frames: int, cache_dir: str | None, workers: int,
             sampling: SamplingOptions = SamplingOptions(), car_top: float = 0.0) -> FrameMix:
    """Read the real training frames and build the ground-truth database (from the first db_frames training frames
    of seed, at most `frames`, and the real frames; generated cars' tops raised by car_top metres)."""
    from pointpillars_trt.io.kitti_frames import read_labelled_frame
    from pointpillars_trt.training.frames import build_database, real_arrays

    real = [(fid, real_arrays(read_labelled_frame(real_root, fid), cfg)) for fid in real_ids] if real_root else []
    db = None
    if gt_sampling:
        cache = Path(cache_dir) if cache_dir else None
        if cache:
            cache.mkdir(parents=True, exist_ok=True)
        db = build_database(cfg, seed, min(db_frames, frames), real, cache, workers)
        if car_top:
            db = dataclasses.replace(db, boxes=raise_tops(db.boxes, ~db.is_real & (db.names == "Car"), car_top))
    return FrameMix(real, real_fraction if real else 0.0, db, sampling, car_top)


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
